#!/usr/bin/env bash
# bench/run.sh — the performance benchmark of SPEC section 9 and issue 14.
#
# Usage, from the repository root:
#
#     bash bench/run.sh
#     BENCH_BIG=20000 BENCH_ROUNDS=1 BENCH_SECTIONS="throughput multi" bash bench/run.sh   # a quick look
#
# Environment (all optional):
#     BENCH_ROUNDS=3        rounds of every alternating comparison (medians are taken)
#     BENCH_BIG=1000000     leads per vendor of the throughput / large-memory exports
#     BENCH_SECTIONS="latency throughput formats messages multi db xlsx instructions"
#                           which sections to run (space- or comma-separated, any order;
#                           they always run in the order below)
#     BENCH_VENDORS="chatzuri neoagent robofy chatbase"   vendors of `throughput`, `instructions`
#     BENCH_MULTI_ROUNDS=5  rounds of `multi` (at least BENCH_ROUNDS): one round
#                           of --all against the three alone moves by +-20% on a
#                           shared 2-core machine, so 3 pairs do not settle 1.10x
#     BENCH_LATENCY_RUNS=10 leads runs of the latency-bound export (at least
#                           BENCH_LATENCY_PAIRS: the first ones are paired with Python)
#     BENCH_LATENCY_PAIRS=5 leads/Python pairs of (b) (at least BENCH_ROUNDS): a
#                           leads run is ~0.03 s of CPU, and one burst of other
#                           work on the host can double it (a pair of 6.5x among
#                           10.6x and 12.4x), so 3 pairs leave the median to chance
#     BENCH_MSG_BYTES=100000        message size of `messages`
#     BENCH_MSG_CONVERSATIONS=300   conversations of `messages`
#     BENCH_MSG_PAGE_SIZE=40        their --page-size (see `messages` below)
#     BENCH_DB=0            leaves out `db` even when BENCH_SECTIONS names it
#     BENCH_BASELINE=PATH   an older `leads` binary: `instructions` counts it too
#                           (before/after), on the same sandbox
#     BENCH_OUT=bench/results.md    where the result table is written
#
# Sections, each one paired run (commands alternated round by round, A B A B,
# medians; a "max" is over every run):
#   latency     (a) 20,000 Chatzuri leads at --page-size 100 with 50 ms per
#               request (200 full pages, then the empty page that ends the
#               listing), `leads pull --concurrency 8 --format ndjson`; wall
#               against the ideal 200 / 8 x 50 ms = 1.25 s: <= 1.25 x ideal in
#               EVERY run (median and max reported);
#               (b) the same export by bench/reference_export.py (sequential,
#               urllib, standard library only), alternated with (a): >= 5x
#               faster wall, >= 10x less CPU (user+sys; the median of the
#               per-pair ratios).
#   throughput  (c) BENCH_BIG leads of each vendor to NDJSON, no latency,
#               default settings (NeoAgent over the sandbox's six months with
#               `--since 2025-01-01`, default `--window 30`), vendors alternated:
#               leads/s against SPEC section 9 (Chatzuri and Chatbase >= 600k/s,
#               NeoAgent >= 300k/s, Robofy >= 250k/s), with the client's and the
#               sandbox's CPU of the run;
#               (d) peak RSS of the same runs: <= 30 MB + 32 B/record (62 MB at 1M).
#   formats     (c) BENCH_BIG Chatzuri leads to CSV and JSON (leads/s, info) and
#               (d) their peak RSS; peak RSS of 10,000 leads to NDJSON, CSV, JSON.
#   messages    (g) `leads conversations` of BENCH_MSG_CONVERSATIONS Chatzuri
#               conversations whose every message is BENCH_MSG_BYTES long
#               (`leads sandbox --message-bytes`), defaults but for
#               --page-size 40: peak RSS against 30 MB + 2 x the largest
#               response body (the largest `N bytes` of the run's `-v` log).
#               Why 40: a sandbox conversation has 12.7 messages on average,
#               so the default 100 a page would make ~127 MB bodies, which
#               the client refuses (SPEC section 6: over 64 MiB is exit 5);
#               40 a page is ~51 MB, at most ~56 MB at 100 KB.
#   multi       (h) `leads pull --all` over a config file with three named
#               sources (Chatzuri, NeoAgent, Robofy, BENCH_BIG leads each)
#               alternated with the same three pulls run alone one after
#               another: CPU (user+sys) of --all / sum of the three <= 1.10
#               (median of the per-pair ratios over BENCH_MULTI_ROUNDS; max
#               reported), peak RSS (info). `instructions` counts the same
#               comparison at 20,000 leads a source, which no neighbour moves.
#   db          (f) BENCH_BIG leads into a new SQLite file, into the same file
#               again (every row unchanged: the upsert's worst case of
#               lookups), and into PostgreSQL (a throw-away cluster from
#               scripts/pg-test-cluster.sh unless LEADS_TEST_PG is set):
#               leads/s and peak RSS (info).
#   xlsx        (e) BENCH_BIG and 10,000 leads to XLSX (constant-memory mode):
#               wall and peak RSS, the bound of (d).
#   instructions (i) instructions of a 20,000-lead NDJSON export of each vendor
#               (`valgrind --tool=callgrind`, the client only; the sandbox runs
#               apart), and of BENCH_BASELINE's when set: the repeatable measure
#               of a change on a shared machine; and (h)'s --all against the
#               three alone, 20,000 leads a source. Skipped without valgrind.
# Every export writes to a temporary file (or database) whose record count is
# checked against what the sandbox served; a mismatch stops the script (exit 1).
# The sandboxes (`target/release/leads sandbox --port 0`, each its own process,
# so the server's memory and CPU are not the client's) start when a section
# first needs them and stop on exit (trap). At the end a table (measurement |
# measured | target | pass/miss) is printed and written, with the machine and
# commit, to BENCH_OUT, in the shape the README's Performance section takes.
#
# Timings come from bench/measure.py (python3, standard library only; wall
# time, user+sys CPU from wait4, peak RSS from /usr/bin/time when present),
# so nothing beyond python3 and the Rust toolchain is needed (psql for `db`).
# The machine is shared: numbers are noisy, hence medians of alternated rounds.

set -euo pipefail

command -v python3 >/dev/null || {
    echo "bench: error: python3 is needed (bench/measure.py, bench/reference_export.py)" >&2
    exit 1
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
ROUNDS=${BENCH_ROUNDS:-3}
BIG=${BENCH_BIG:-1000000}
OUT=${BENCH_OUT:-bench/results.md}
SECTIONS=" ${BENCH_SECTIONS:-latency throughput formats messages multi db xlsx instructions} "
SECTIONS=${SECTIONS//,/ }
VENDORS=${BENCH_VENDORS:-chatzuri neoagent robofy chatbase}
LATENCY_PAIRS=${BENCH_LATENCY_PAIRS:-5}
((LATENCY_PAIRS >= ROUNDS)) || LATENCY_PAIRS=$ROUNDS
LATENCY_RUNS=${BENCH_LATENCY_RUNS:-10}
((LATENCY_RUNS >= LATENCY_PAIRS)) || LATENCY_RUNS=$LATENCY_PAIRS
MULTI_ROUNDS=${BENCH_MULTI_ROUNDS:-5}
((MULTI_ROUNDS >= ROUNDS)) || MULTI_ROUNDS=$ROUNDS
MSG_BYTES=${BENCH_MSG_BYTES:-100000}
MSG_CONVERSATIONS=${BENCH_MSG_CONVERSATIONS:-300}
MSG_PAGE_SIZE=${BENCH_MSG_PAGE_SIZE:-40}
SMALL=10000
BIN="$ROOT/target/release/leads"
# The interpreter itself, not a launcher shim (pyenv's would run helper
# processes whose CPU would be charged to the Python reference).
PY=$(python3 -c 'import sys; print(sys.executable)')
MEASURE=("$PY" "$ROOT/bench/measure.py")
CLK_TCK=$(getconf CLK_TCK)
RSS_NOTE=""

die() {
    echo "bench: error: $*" >&2
    exit 1
}

for section in $SECTIONS; do
    case $section in
        latency | throughput | formats | messages | multi | db | xlsx | instructions) ;;
        *) die "unknown section '$section' in BENCH_SECTIONS (latency throughput formats messages multi db xlsx instructions)" ;;
    esac
done
for vendor in $VENDORS; do
    case $vendor in
        chatzuri | neoagent | robofy | chatbase) ;;
        *) die "unknown vendor '$vendor' in BENCH_VENDORS" ;;
    esac
done
[[ "${BENCH_DB:-1}" != 0 ]] || SECTIONS=${SECTIONS// db / }
wants() { [[ "$SECTIONS" == *" $1 "* ]]; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/leads-bench.XXXXXX")
declare -A SANDBOX_PID BASE_URL
PG_STARTED=""
cleanup() {
    local pid
    if [[ -n "$PG_STARTED" ]]; then
        bash "$ROOT/scripts/pg-test-cluster.sh" stop "$PG_STARTED" || true
    fi
    for pid in "${SANDBOX_PID[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${SANDBOX_PID[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench: building (cargo build --release --locked)" >&2
cargo build --release --locked >&2
[[ -x "$BIN" ]] || die "$BIN was not built"
# Whether the binary measured has the hot-function layout (build.rs).
LAYOUT=$(bash "$ROOT/bench/hot-functions.sh" check 2>&1 | sed -n 's/^hot-functions: //p' | head -1 || true)

# shellcheck source=bench/sandbox.sh
source "$ROOT/bench/sandbox.sh"
# sandbox NAME ARGS... : starts sandbox NAME unless it runs already
# (bench/sandbox.sh), the sandbox's pid in SANDBOX_PID[NAME].
sandbox() {
    local name=$1
    shift
    [[ -z "${SANDBOX_PID[$name]:-}" ]] || return 0
    local started=0
    start_sandbox "$name" "$TMP/sandbox-$name.txt" "$@" || started=$?
    SANDBOX_PID[$name]=$SANDBOX_STARTED # stopped on exit, started or not
    ((started == 0)) || die "sandbox $name did not start"
    echo "bench: sandbox $name ($*) at ${BASE_URL[$name/chatzuri]%/chatzuri*}" >&2
}
sandbox_latency() { sandbox latency --leads 20000 --latency-ms 50; }
sandbox_big() { sandbox big --leads "$BIG"; }
sandbox_small() { sandbox small --leads "$SMALL"; }

# sandbox_cpu NAME : CPU seconds (user+sys) the sandbox process used so far.
sandbox_cpu() {
    awk -v t="$CLK_TCK" '{sub(/.*\) /, ""); print ($12 + $13) / t}' "/proc/${SANDBOX_PID[$1]}/stat"
}

# measure OUTVAR COMMAND... : runs COMMAND under bench/measure.py and stores
# "wall user sys maxrss_kb [inflated]" in OUTVAR; the command's stdout and
# stderr are left in $TMP/last-stderr.txt.
measure() {
    local -n result=$1
    shift
    # shellcheck disable=SC2086 # MEASURE_FLAGS is empty or one flag
    result=$("${MEASURE[@]}" ${MEASURE_FLAGS:-} "$@" 2>"$TMP/last-stderr.txt") ||
        die "command failed: $* : $(tail -5 "$TMP/last-stderr.txt")"
    [[ "$result" != *inflated* ]] || RSS_NOTE=" (no /usr/bin/time: includes ~10 MB of the Python launcher)"
}

# check_count FILE FORMAT EXPECTED : the export holds exactly EXPECTED records.
check_count() {
    local file=$1 format=$2 expected=$3 lines want
    lines=$(wc -l <"$file")
    case $format in
        ndjson) want=$expected ;;
        csv) want=$((expected + 1)) ;;              # header row
        json) want=$((expected == 0 ? 1 : expected + 2)) ;; # "[" ... "]", one record per line
        xlsx)
            # Data rows over every sheet (each sheet's header row left out),
            # read from the zip as a stream.
            lines=$("$PY" - "$file" <<'PYEOF'
import re, sys, zipfile
rows = 0
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith("xl/worksheets/sheet") and name.endswith(".xml"):
            tail = b""
            with z.open(name) as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    data = tail + chunk
                    rows += data.count(b"<row ")
                    tail = data[-4:]
            rows -= 1
print(rows)
PYEOF
)
            want=$expected
            ;;
        *) die "unknown format $format" ;;
    esac
    if [[ "$lines" -ne "$want" && "$format" == csv ]]; then
        # A quoted cell may hold a newline: count records properly.
        lines=$(($("$PY" -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline=""))))' "$file")))
    fi
    [[ "$lines" -eq "$want" ]] || die "$file ($format): $lines lines, expected $want for $expected records"
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
maximum() { printf '%s\n' "$@" | sort -g | tail -1; }
minimum() { printf '%s\n' "$@" | sort -g | head -1; }
calc() { awk "BEGIN {print $*}"; }
verdict() { if awk "BEGIN {exit !($*)}"; then echo pass; else echo miss; fi; }
mb() { calc "$1 * 1024 / 1000000"; } # KiB -> MB (10^6 bytes)
rss_limit() { calc "30 + 32 * $1 / 1000000"; }

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 |"); }
# The fields of a measure result.
rss_kb() { local _w _u _s kb _r; read -r _w _u _s kb _r <<<"$1"; echo "$kb"; }
cpu_of() { local _w u s _r; read -r _w u s _r <<<"$1"; calc "$u + $s"; }
wall_of() { local w _r; read -r w _r <<<"$1"; echo "$w"; }

display() {
    case $1 in
        chatzuri) echo Chatzuri ;;
        neoagent) echo NeoAgent ;;
        robofy) echo Robofy ;;
        chatbase) echo Chatbase ;;
    esac
}
# The leads/s target of SPEC section 9.
rate_target() {
    case $1 in
        chatzuri | chatbase) echo 600000 ;;
        neoagent) echo 300000 ;;
        robofy) echo 250000 ;;
    esac
}

# source_args SANDBOX VENDOR : the flags that name VENDOR's demo source on
# SANDBOX (NeoAgent from the start of the sandbox's six months).
source_args() {
    local base=${BASE_URL[$1/$2]}
    case $2 in
        chatzuri) echo "--vendor chatzuri --agent demo --base-url $base" ;;
        neoagent) echo "--vendor neoagent --agent demo --base-url $base --since 2025-01-01" ;;
        robofy) echo "--vendor robofy --project 1 --agent demo --base-url $base" ;;
        chatbase) echo "--vendor chatbase --agent demo --base-url $base" ;;
    esac
}

# sources_config SANDBOX FILE : writes a config file (mode 600) naming
# SANDBOX's Chatzuri, NeoAgent and Robofy demo sources, for (h).
sources_config() {
    local vendor
    {
        for vendor in chatzuri neoagent robofy; do
            echo "[sources.$vendor]"
            echo "vendor = \"$vendor\""
            echo "agent = \"demo\""
            [[ $vendor == robofy ]] && echo 'project = "1"'
            echo "api_key_env = \"${vendor^^}_API_KEY\""
            echo "base_url = \"${BASE_URL[$1/$vendor]}\""
            echo
        done
    } >"$2"
    chmod 600 "$2"
}

# pull SANDBOX VENDOR FORMAT OUTPUT [EXTRA...] : measures one export into M.
pull() {
    local name=$1 vendor=$2 format=$3 output=$4
    shift 4
    # shellcheck disable=SC2046 # source_args is a list of flags without spaces
    measure M "$BIN" pull $(source_args "$name" "$vendor") --format "$format" -o "$output" -q "$@"
}

# ---------------------------------------------------------------- (a) + (b) latency
if wants latency; then
    sandbox_latency
    LAT_LEADS=20000 PAGE=100 CONC=8 LAT_MS=50
    IDEAL=$(calc "($LAT_LEADS / $PAGE) / $CONC * $LAT_MS / 1000")
    A_WALL=() A_CPU=() P_WALL=() P_CPU=() CPU_RATIO=()
    # No peak RSS here, and so no /usr/bin/time around either program: its
    # own ~1 ms of CPU would be 3-4% of a leads run and 0.3% of a Python one.
    MEASURE_FLAGS=--no-rss
    for ((r = 1; r <= LATENCY_RUNS; r++)); do
        out="$TMP/latency.ndjson"
        pull latency chatzuri ndjson "$out" --page-size "$PAGE" --concurrency "$CONC"
        check_count "$out" ndjson "$LAT_LEADS"
        A_WALL+=("$(wall_of "$M")") A_CPU+=("$(cpu_of "$M")")
        rm -f "$out"
        if ((r > LATENCY_PAIRS)); then
            echo "bench: run $r latency-bound: leads ${A_WALL[-1]} s wall" >&2
            continue
        fi
        out="$TMP/reference.ndjson"
        measure M "$PY" "$ROOT/bench/reference_export.py" "${BASE_URL[latency/chatzuri]}" demo "$PAGE" "$out"
        check_count "$out" ndjson "$LAT_LEADS"
        P_WALL+=("$(wall_of "$M")") P_CPU+=("$(cpu_of "$M")")
        CPU_RATIO+=("$(calc "${P_CPU[-1]} / ${A_CPU[-1]}")")
        rm -f "$out"
        echo "bench: round $r latency-bound: leads ${A_WALL[-1]} s wall ${A_CPU[-1]} s CPU; python ${P_WALL[-1]} s wall ${P_CPU[-1]} s CPU" >&2
    done
    MEASURE_FLAGS=
    aw=$(median "${A_WALL[@]}") amax=$(maximum "${A_WALL[@]}")
    ratio=$(calc "$aw / $IDEAL") worst=$(calc "$amax / $IDEAL")
    row "(a) latency-bound: 200 pages x 50 ms, --concurrency 8, wall (ideal ${IDEAL} s; $LATENCY_RUNS runs)" \
        "$(printf 'median %.2f s = %.2f x ideal, max %.2f s = %.2f x' "$aw" "$ratio" "$amax" "$worst")" \
        "<= 1.25 x ideal in every run" "$(verdict "$worst <= 1.25")"
    # The wall comparison pairs the first LATENCY_PAIRS leads runs with the Python runs.
    pw=$(median "${P_WALL[@]}") paw=$(median "${A_WALL[@]:0:LATENCY_PAIRS}")
    speed=$(calc "$pw / $paw")
    row "(b) same export, Python sequential reference (urllib), wall" \
        "$(printf '%.2f s (leads %.2f s): leads %.1fx faster' "$pw" "$paw" "$speed")" ">= 5x faster" "$(verdict "$speed >= 5")"
    cpu=$(median "${CPU_RATIO[@]}") cpu_min=$(minimum "${CPU_RATIO[@]}")
    row "(b) same export, CPU user+sys (median of $LATENCY_PAIRS pairs)" \
        "$(printf 'Python %.3f s, leads %.3f s: %.1fx less (lowest pair %.1fx)' "$(median "${P_CPU[@]}")" "$(median "${A_CPU[@]:0:LATENCY_PAIRS}")" "$cpu" "$cpu_min")" \
        ">= 10x less" "$(verdict "$cpu >= 10")"
fi

# ---------------------------------------------------------------- (c) + (d) per vendor
declare -A TP_WALL TP_CPU TP_SERVER TP_RSS
if wants throughput; then
    sandbox_big
    for ((r = 1; r <= ROUNDS; r++)); do
        for vendor in $VENDORS; do
            out="$TMP/big-$vendor.ndjson"
            before=$(sandbox_cpu big)
            pull big "$vendor" ndjson "$out"
            server=$(calc "$(sandbox_cpu big) - $before")
            check_count "$out" ndjson "$BIG"
            TP_WALL[$vendor]+="$(wall_of "$M") " TP_CPU[$vendor]+="$(cpu_of "$M") "
            TP_SERVER[$vendor]+="$server " TP_RSS[$vendor]+="$(rss_kb "$M") "
            rm -f "$out"
            echo "bench: round $r $BIG $vendor leads to ndjson: $M (sandbox CPU $server s)" >&2
        done
    done
    for vendor in $VENDORS; do
        # shellcheck disable=SC2086
        w=$(median ${TP_WALL[$vendor]}) c=$(median ${TP_CPU[$vendor]}) s=$(median ${TP_SERVER[$vendor]})
        rate=$(calc "$BIG / $w") target=$(rate_target "$vendor")
        row "(c) throughput, $(display "$vendor") leads, $BIG to ndjson, no latency" \
            "$(printf '%.0f leads/s (%.2f s; CPU: leads %.2f s, sandbox %.2f s)' "$rate" "$w" "$c" "$s")" \
            "$(printf '>= %d leads/s' "$target")" "$(verdict "$rate >= $target")"
    done
    limit=$(rss_limit "$BIG")
    for vendor in $VENDORS; do
        # shellcheck disable=SC2086
        rss=$(mb "$(maximum ${TP_RSS[$vendor]})")
        row "(d) peak RSS, $(display "$vendor") leads, $BIG to ndjson (max of $ROUNDS)" \
            "$(printf '%.1f MB%s' "$rss" "$RSS_NOTE")" "$(printf '<= %.2f MB' "$limit")" "$(verdict "$rss <= $limit")"
    done
fi

# ---------------------------------------------------------------- (c) + (d) formats
if wants formats; then
    sandbox_big
    sandbox_small
    declare -A F_WALL F_RSS
    for ((r = 1; r <= ROUNDS; r++)); do
        for format in csv json; do
            out="$TMP/big.$format"
            pull big chatzuri "$format" "$out"
            check_count "$out" "$format" "$BIG"
            F_WALL[$format]+="$(wall_of "$M") " F_RSS[$format]+="$(rss_kb "$M") "
            rm -f "$out"
            echo "bench: round $r $BIG leads to $format: $M" >&2
        done
        for format in ndjson csv json; do
            out="$TMP/small.$format"
            pull small chatzuri "$format" "$out"
            check_count "$out" "$format" "$SMALL"
            F_RSS[small-$format]+="$(rss_kb "$M") "
            rm -f "$out"
        done
    done
    for format in csv json; do
        # shellcheck disable=SC2086
        w=$(median ${F_WALL[$format]})
        row "(c) throughput, Chatzuri leads, $BIG to $format, no latency" \
            "$(printf '%.0f leads/s (%.2f s)' "$(calc "$BIG / $w")" "$w")" "(none; NDJSON's is above)" "info"
    done
    for n in "$SMALL" "$BIG"; do
        for format in ndjson csv json; do
            key=$format
            [[ $n == "$SMALL" ]] && key=small-$format
            [[ -n "${F_RSS[$key]:-}" ]] || continue # BIG NDJSON: under throughput
            # shellcheck disable=SC2086
            rss=$(mb "$(maximum ${F_RSS[$key]})") limit=$(rss_limit "$n")
            row "(d) peak RSS, Chatzuri leads, $n to $format (max of $ROUNDS)" \
                "$(printf '%.1f MB%s' "$rss" "$RSS_NOTE")" "$(printf '<= %.2f MB' "$limit")" "$(verdict "$rss <= $limit")"
        done
    done
fi

# ---------------------------------------------------------------- (g) big messages
if wants messages; then
    sandbox messages --conversations "$MSG_CONVERSATIONS" --message-bytes "$MSG_BYTES"
    G_RSS=() G_BODY=() G_WALL=()
    for ((r = 1; r <= ROUNDS; r++)); do
        out="$TMP/messages.ndjson"
        # shellcheck disable=SC2046
        measure M "$BIN" conversations $(source_args messages chatzuri) --page-size "$MSG_PAGE_SIZE" --format ndjson -o "$out" -v
        check_count "$out" ndjson "$MSG_CONVERSATIONS"
        body=$(grep -oE ' -> [0-9]+ in [0-9]+ ms, [0-9]+ bytes' "$TMP/last-stderr.txt" | awk '{print $(NF-1)}' | sort -n | tail -1)
        [[ -n "$body" ]] || die "no page sizes in the -v log of the conversations export: $(tail -3 "$TMP/last-stderr.txt")"
        G_RSS+=("$(rss_kb "$M")") G_BODY+=("$body") G_WALL+=("$(wall_of "$M")")
        rm -f "$out"
        echo "bench: round $r $MSG_CONVERSATIONS conversations of $MSG_BYTES-byte messages: $M (largest body $body bytes)" >&2
    done
    rss=$(mb "$(maximum "${G_RSS[@]}")") body_mb=$(calc "$(maximum "${G_BODY[@]}") / 1000000")
    limit=$(calc "30 + 2 * $body_mb")
    row "(g) peak RSS, Chatzuri conversations, $MSG_CONVERSATIONS with $MSG_BYTES-byte messages, --page-size $MSG_PAGE_SIZE, defaults otherwise (max of $ROUNDS)" \
        "$(printf '%.1f MB (largest body %.1f MB; %.2f s)' "$rss" "$body_mb" "$(median "${G_WALL[@]}")")$RSS_NOTE" \
        "$(printf '<= 30 MB + 2 x largest body = %.1f MB' "$limit")" "$(verdict "$rss <= $limit")"
fi

# ---------------------------------------------------------------- (h) pull --all
if wants multi; then
    sandbox_big
    config="$TMP/sources.toml"
    sources_config big "$config"
    # The same settings for both sides: --since is NeoAgent's six months and
    # changes nothing for the others (every sandbox lead is in 2025).
    H_ALL=() H_ALONE=() H_RATIO=() H_RSS=() H_WALL=() H_ALONE_WALL=()
    for ((r = 1; r <= MULTI_ROUNDS; r++)); do
        out="$TMP/all.ndjson"
        measure M "$BIN" pull --config "$config" --all --since 2025-01-01 --format ndjson -o "$out" -q
        check_count "$out" ndjson $((3 * BIG))
        rm -f "$out"
        H_ALL+=("$(cpu_of "$M")") H_RSS+=("$(rss_kb "$M")") H_WALL+=("$(wall_of "$M")")
        alone=0 alone_wall=0
        for vendor in chatzuri neoagent robofy; do
            out="$TMP/alone-$vendor.ndjson"
            measure M "$BIN" pull --config "$config" "$vendor" --since 2025-01-01 --format ndjson -o "$out" -q
            check_count "$out" ndjson "$BIG"
            rm -f "$out"
            alone=$(calc "$alone + $(cpu_of "$M")") alone_wall=$(calc "$alone_wall + $(wall_of "$M")")
        done
        H_ALONE+=("$alone") H_ALONE_WALL+=("$alone_wall") H_RATIO+=("$(calc "${H_ALL[-1]} / $alone")")
        echo "bench: round $r pull --all 3 x $BIG: ${H_ALL[-1]} s CPU; alone ${H_ALONE[-1]} s CPU; ratio ${H_RATIO[-1]}" >&2
    done
    ratio=$(median "${H_RATIO[@]}") worst=$(maximum "${H_RATIO[@]}")
    row "(h) \`pull --all\`, 3 sources x $BIG (Chatzuri, NeoAgent, Robofy), CPU against the three alone (median of $MULTI_ROUNDS pairs)" \
        "$(printf '%.3f s against %.3f s: %.2fx (max %.2fx)' "$(median "${H_ALL[@]}")" "$(median "${H_ALONE[@]}")" "$ratio" "$worst")" \
        "<= 1.10x" "$(verdict "$ratio <= 1.10")"
    row "(h) \`pull --all\`, 3 sources x $BIG: wall, peak RSS (max of $MULTI_ROUNDS)" \
        "$(printf '%.2f s (alone, one after another: %.2f s), %.1f MB%s' "$(median "${H_WALL[@]}")" "$(median "${H_ALONE_WALL[@]}")" "$(mb "$(maximum "${H_RSS[@]}")")" "$RSS_NOTE")" \
        "(none)" "info"
fi

# ---------------------------------------------------------------- (f) databases
if wants db; then
    sandbox_big
    if [[ -z "${LEADS_TEST_PG:-}" ]]; then
        eval "$(bash "$ROOT/scripts/pg-test-cluster.sh" start)"
        PG_STARTED=$LEADS_TEST_PG_DIR
    fi
    export PGPASSWORD=${LEADS_TEST_PG_PASSWORD:-${PGPASSWORD:-}}
    pg_count() { psql "$LEADS_TEST_PG" -tAc 'SELECT count(*) FROM leads'; }
    pg_reset() { PGOPTIONS='-c client_min_messages=warning' psql "$LEADS_TEST_PG" -qc 'DROP TABLE IF EXISTS leads, conversations, messages, leads_schema' >/dev/null; }
    sqlite_count() { "$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM leads").fetchone()[0])' "$1"; }
    declare -A DB_WALL DB_RSS
    for ((r = 1; r <= ROUNDS; r++)); do
        db="$TMP/big.db"
        rm -f "$db" "$db-wal" "$db-shm"
        pull big chatzuri sqlite "$db"
        [[ "$(sqlite_count "$db")" -eq "$BIG" ]] || die "$db: not $BIG rows"
        DB_WALL[sqlite-new]+="$(wall_of "$M") " DB_RSS[sqlite-new]+="$(rss_kb "$M") "
        pull big chatzuri sqlite "$db"
        [[ "$(sqlite_count "$db")" -eq "$BIG" ]] || die "$db: not $BIG rows after the second run"
        DB_WALL[sqlite-again]+="$(wall_of "$M") " DB_RSS[sqlite-again]+="$(rss_kb "$M") "
        rm -f "$db" "$db-wal" "$db-shm"
        pg_reset
        # shellcheck disable=SC2046
        measure M "$BIN" pull $(source_args big chatzuri) -o "$LEADS_TEST_PG" -q
        [[ "$(pg_count)" -eq "$BIG" ]] || die "PostgreSQL: not $BIG rows"
        DB_WALL[postgres]+="$(wall_of "$M") " DB_RSS[postgres]+="$(rss_kb "$M") "
        pg_reset
        echo "bench: round $r $BIG leads to SQLite, again, PostgreSQL: $(wall_of "$M") s (last)" >&2
    done
    compare="(none)"
    if [[ -n "${TP_WALL[chatzuri]:-}" ]]; then
        # shellcheck disable=SC2086
        compare=$(printf '(none; NDJSON %.0f leads/s, %.1f MB)' "$(calc "$BIG / $(median ${TP_WALL[chatzuri]})")" "$(mb "$(maximum ${TP_RSS[chatzuri]})")")
    fi
    for kind in sqlite-new sqlite-again postgres; do
        case $kind in
            sqlite-new) what="into a new SQLite file" ;;
            sqlite-again) what="into the same SQLite file again (all unchanged)" ;;
            postgres) what="into PostgreSQL (COPY + one merge), empty tables" ;;
        esac
        # shellcheck disable=SC2086
        w=$(median ${DB_WALL[$kind]}) rss=$(mb "$(maximum ${DB_RSS[$kind]})")
        row "(f) Chatzuri leads, $BIG $what" \
            "$(printf '%.0f leads/s (%.2f s), peak RSS %.1f MB' "$(calc "$BIG / $w")" "$w" "$rss")" "$compare" "info"
    done
fi

# ---------------------------------------------------------------- (e) XLSX
# XLSX is written in rust_xlsxwriter's constant-memory mode: peak RSS must not
# grow with the number of rows (the same bound as (d)).
if wants xlsx; then
    sandbox_big
    sandbox_small
    X_WALL=() X_RSS=() X_SMALL_RSS=()
    for ((r = 1; r <= ROUNDS; r++)); do
        out="$TMP/big.xlsx"
        pull big chatzuri xlsx "$out"
        check_count "$out" xlsx "$BIG"
        X_WALL+=("$(wall_of "$M")") X_RSS+=("$(rss_kb "$M")")
        rm -f "$out"
        out="$TMP/small.xlsx"
        pull small chatzuri xlsx "$out"
        check_count "$out" xlsx "$SMALL"
        X_SMALL_RSS+=("$(rss_kb "$M")")
        rm -f "$out"
        echo "bench: round $r $BIG leads to xlsx: ${X_WALL[-1]} s, peak RSS ${X_RSS[-1]} KiB ($SMALL leads: ${X_SMALL_RSS[-1]} KiB)" >&2
    done
    w=$(median "${X_WALL[@]}")
    row "(e) Chatzuri leads, $BIG to xlsx (constant memory), wall" "$(printf '%.2f s = %.0f leads/s' "$w" "$(calc "$BIG / $w")")" "(none)" "info"
    big_mb=$(mb "$(maximum "${X_RSS[@]}")") small_mb=$(mb "$(maximum "${X_SMALL_RSS[@]}")") limit=$(rss_limit "$BIG")
    row "(e) peak RSS, xlsx: $SMALL leads / $BIG leads (max of $ROUNDS)" "$(printf '%.1f MB / %.1f MB%s' "$small_mb" "$big_mb" "$RSS_NOTE")" \
        "$(printf '<= %.2f MB at %s' "$limit" "$BIG")" "$(verdict "$big_mb <= $limit")"
fi

# ---------------------------------------------------------------- (i) instructions
# callgrind EXPECTED BINARY ARGS... : the callgrind instruction count of one
# `BINARY pull ARGS... --format ndjson -o FILE -q` export of EXPECTED leads.
callgrind() {
    local expected=$1 binary=$2 out="$TMP/instructions.ndjson" log="$TMP/callgrind.txt"
    shift 2
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$binary" pull "$@" \
        --format ndjson -o "$out" -q 2>"$log" || die "callgrind of $binary pull $* failed: $(tail -3 "$log")"
    check_count "$out" ndjson "$expected"
    rm -f "$out"
    awk '/Collected :/ {print $NF}' "$log"
}
# instructions BINARY VENDOR : the instruction count of VENDOR's 20,000 leads.
instructions() {
    # shellcheck disable=SC2046
    callgrind 20000 "$1" $(source_args instructions "$2")
}
if wants instructions; then
    if ! command -v valgrind >/dev/null; then
        echo "bench: no valgrind: section instructions skipped" >&2
    else
        sandbox instructions --leads 20000
        [[ -z "${BENCH_BASELINE:-}" || -x "$BENCH_BASELINE" ]] || die "BENCH_BASELINE=$BENCH_BASELINE is not an executable"
        for vendor in $VENDORS; do
            now=$(instructions "$BIN" "$vendor")
            measured=$(printf '%.1fM instructions' "$(calc "$now / 1000000")")
            if [[ -n "${BENCH_BASELINE:-}" ]]; then
                before=$(instructions "$BENCH_BASELINE" "$vendor")
                measured=$(printf '%.1fM (baseline %.1fM: %.2fx)' "$(calc "$now / 1000000")" "$(calc "$before / 1000000")" "$(calc "$now / $before")")
            fi
            echo "bench: $vendor 20000 leads under callgrind: $measured" >&2
            row "(i) $(display "$vendor") leads, 20000 to ndjson, callgrind" "$measured" "(none)" "info"
        done
        config="$TMP/instructions-sources.toml"
        sources_config instructions "$config"
        all=$(callgrind 60000 "$BIN" --config "$config" --all --since 2025-01-01)
        alone=0
        for vendor in chatzuri neoagent robofy; do
            alone=$((alone + $(callgrind 20000 "$BIN" --config "$config" "$vendor" --since 2025-01-01)))
        done
        measured=$(printf '%.1fM against %.1fM: %.3fx' "$(calc "$all / 1000000")" "$(calc "$alone / 1000000")" "$(calc "$all / $alone")")
        echo "bench: pull --all 3 x 20000 under callgrind: $measured" >&2
        row "(h) \`pull --all\`, 3 sources x 20000, callgrind, against the three alone" "$measured" "(none; CPU's is above)" "info"
    fi
fi

# ---------------------------------------------------------------- report
# extra_rounds : the sections paired more often than BENCH_ROUNDS, for the header.
extra_rounds() {
    local extra=""
    wants latency && extra+=", $LATENCY_PAIRS pairs for (b)"
    wants multi && extra+=", $MULTI_ROUNDS for multi"
    [[ -z $extra ]] || echo " (${extra#, })"
}

{
    echo "Measured by \`bash bench/run.sh\` on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'),"
    echo "$(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo '?')), shared with other work"
    echo "(load average $(cut -d' ' -f1-3 /proc/loadavg) at the end); medians of $ROUNDS alternated rounds$(extra_rounds),"
    echo "BENCH_BIG=$BIG, sections: $(echo $SECTIONS); the sandbox runs as its own process on the same cores. MB = 10^6 bytes."
    echo "Function layout (build.rs, bench/hot-functions.txt): $LAYOUT."
    echo
    echo "| measurement | measured | target | pass/miss |"
    echo "|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} >"$TMP/results.md"
cp "$TMP/results.md" "$OUT"
echo
cat "$OUT"
echo
echo "bench: table written to $OUT" >&2
