#!/usr/bin/env bash
# bench/compare.sh — two builds of leads, A B A B, on the same sandboxes:
# did a change cost wall time, CPU or memory?
#
#     bash bench/compare.sh OLD_BINARY NEW_BINARY
#
# Environment: COMPARE_ROUNDS=3 (rounds; medians are taken), COMPARE_BIG=1000000
# (leads of the throughput runs), COMPARE_OUT (also write the table there).
#
# The sandboxes are served by OLD_BINARY in processes of their own, so the
# server is the same for both clients. Each workload runs OLD then NEW, round
# after round, and every export's record count is checked. Prints a table:
# workload | old | new | new/old for wall, CPU (user+sys) and peak RSS.
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: bash bench/compare.sh OLD_BINARY NEW_BINARY" >&2; exit 2; }
OLD=$(realpath "$1") NEW=$(realpath "$2")
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
ROUNDS=${COMPARE_ROUNDS:-3}
BIG=${COMPARE_BIG:-1000000}
PY=$(python3 -c 'import sys; print(sys.executable)')
TMP=$(mktemp -d "${TMPDIR:-/tmp}/leads-compare.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
die() { echo "compare: error: $*" >&2; exit 1; }

# start NAME ARGS... : a sandbox; sets URL_<vendor> from its banner.
start() {
    local name=$1 log="$TMP/sandbox-$1.txt"
    shift
    "$OLD" sandbox --port 0 "$@" >"$log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q 'Stop with Ctrl-C' "$log" 2>/dev/null && break; sleep 0.1; done
    URL_chatzuri=$(awk '/base URL/ && /chatzuri/ {print $3; exit}' "$log")
    URL_neoagent=$(awk '/base URL/ && /neoagent/ {print $3; exit}' "$log")
    URL_robofy=$(awk '/base URL/ && /robofy/ {print $3; exit}' "$log")
    [[ $URL_chatzuri == http://127.0.0.1:* ]] || die "sandbox $name did not start: $(cat "$log")"
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
ROWS=()

# workload LABEL EXPECTED_RECORDS VENDOR_ENV_KEY ARGS... (after the binary)
workload() {
    local label=$1 expected=$2 keyvar=$3
    shift 3
    local -a ow oc orss nw nc nrss
    for ((r = 1; r <= ROUNDS; r++)); do
        for side in old new; do
            local bin=$OLD
            [[ $side == new ]] && bin=$NEW
            local out="$TMP/out.ndjson"
            local m
            m=$(env "$keyvar" "$PY" "$ROOT/bench/measure.py" "$bin" "$@" --format ndjson -q -o "$out" 2>"$TMP/err.txt") ||
                die "$label ($side) failed: $(tail -3 "$TMP/err.txt")"
            local lines
            lines=$(wc -l <"$out")
            [[ $lines -eq $expected ]] || die "$label ($side): $lines records, expected $expected"
            rm -f "$out"
            read -r w u s kb _ <<<"$m"
            local cpu
            cpu=$(awk "BEGIN {print $u + $s}")
            if [[ $side == old ]]; then ow+=("$w") oc+=("$cpu") orss+=("$kb"); else nw+=("$w") nc+=("$cpu") nrss+=("$kb"); fi
            echo "compare: $label round $r $side: ${w}s wall ${cpu}s CPU ${kb} KiB" >&2
        done
    done
    local a b
    for metric in wall cpu rss; do
        case $metric in
            wall) a=$(median "${ow[@]}") b=$(median "${nw[@]}") unit=s ;;
            cpu) a=$(median "${oc[@]}") b=$(median "${nc[@]}") unit=s ;;
            rss) a=$(awk "BEGIN {print $(median "${orss[@]}") / 1000}") b=$(awk "BEGIN {print $(median "${nrss[@]}") / 1000}") unit=MB ;;
        esac
        ROWS+=("$(printf '| %s | %s | %.2f %s | %.2f %s | %.2f |' "$label" "$metric" "$a" "$unit" "$b" "$unit" "$(awk "BEGIN {print $b / $a}")")")
    done
}

start lat --leads 20000 --latency-ms 50
workload "chatzuri 20k leads, 50 ms latency, --concurrency 8" 20000 \
    CHATZURI_API_KEY=sk-sandbox-chatzuri-0123456789 \
    pull --vendor chatzuri --agent demo --base-url "$URL_chatzuri" --page-size 100 --concurrency 8

start big --leads "$BIG" --conversations 2000
workload "chatzuri $BIG leads" "$BIG" CHATZURI_API_KEY=sk-sandbox-chatzuri-0123456789 \
    pull --vendor chatzuri --agent demo --base-url "$URL_chatzuri" --concurrency 4
workload "neoagent $BIG leads, --since 2025-01-01" "$BIG" NEOAGENT_API_KEY=sk-sandbox-neoagent-0123456789 \
    pull --vendor neoagent --agent demo --base-url "$URL_neoagent" --since 2025-01-01 --until 2025-06-30
workload "robofy $BIG leads" "$BIG" ROBOFY_API_KEY=sk-sandbox-robofy-0123456789 \
    pull --vendor robofy --agent 1/demo --base-url "$URL_robofy"
workload "robofy 2000 conversations" 2000 ROBOFY_API_KEY=sk-sandbox-robofy-0123456789 \
    conversations --vendor robofy --agent demo --base-url "$URL_robofy" --concurrency 8

{
    echo "Compared by \`bash bench/compare.sh OLD NEW\` on $(date -u +%Y-%m-%d), medians of $ROUNDS alternated rounds (old, new, old, new...)."
    echo "OLD: $OLD; NEW: $NEW. The sandbox is OLD's, in its own process."
    echo
    echo "| workload | measure | old | new | new/old |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} | tee "${COMPARE_OUT:-/dev/null}"
