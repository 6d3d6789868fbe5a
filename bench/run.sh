#!/usr/bin/env bash
# bench/run.sh — the performance benchmark of SPEC section 9 (issue 5).
#
# Usage, from the repository root:
#
#     bash bench/run.sh
#
# Environment (all optional):
#     BENCH_ROUNDS=3        rounds of every alternating comparison (medians are taken)
#     BENCH_BIG=1000000     leads of the throughput / large-memory export
#     BENCH_OUT=bench/results.md   where the result table is written
#
# What it does, in one run:
#   1. builds `cargo build --release --locked`;
#   2. starts three `target/release/leads sandbox --port 0` processes (each its
#      own process, so the server's memory and CPU are not the client's):
#        - 20,000 leads with 50 ms latency per request,
#        - BENCH_BIG leads with no latency,
#        - 10,000 leads with no latency;
#      and stops them on exit (trap);
#   3. measures, alternating the commands round by round and taking medians:
#      (a) latency-bound export: 20,000 Chatzuri leads at --page-size 100
#          (200 full pages, then the empty page that ends the listing) with
#          `leads pull --concurrency 8 --format ndjson`; wall time against the
#          ideal 200 / 8 x 50 ms = 1.25 s; target ratio <= 1.25;
#      (b) the same export by bench/reference_export.py (sequential, standard
#          library only, the vendors' own example approach), alternated with
#          (a); wall and CPU (user+sys) of both; targets: leads >= 5x faster
#          wall and >= 10x less CPU;
#      (c) throughput with no latency: BENCH_BIG leads to NDJSON, CSV and
#          JSON, leads/s; target >= 100k leads/s to NDJSON;
#      (d) peak RSS of the client (GNU time's "Maximum resident set size",
#          via bench/measure.py; see there for the fallback without
#          /usr/bin/time) for 10,000 and BENCH_BIG
#          leads, NDJSON, CSV and JSON; target <= 30 MB + 32 bytes per record.
#          The BENCH_BIG figures come from the runs of (c).
#      (e) BENCH_BIG and 10,000 leads to XLSX (constant-memory mode): wall
#          time and peak RSS; target: the same flat-memory bound as (d).
#      (f) database outputs: BENCH_BIG leads into a new SQLite file, into the
#          same file again (every row unchanged: the upsert's worst case of
#          lookups), and into PostgreSQL (a throw-away cluster from
#          scripts/pg-test-cluster.sh unless LEADS_TEST_PG is set), leads/s and
#          peak RSS beside the NDJSON export of (c); BENCH_DB=0 skips it.
#   Every export writes to a temporary file whose record count is checked
#   against what the sandbox served; a mismatch stops the script (exit 1).
#   4. prints a table (measurement | measured | target | pass/miss) and
#      writes it, with the machine and commit, to BENCH_OUT.
#
# Timings come from bench/measure.py (python3, standard library only; wall
# time, user+sys CPU from wait4, peak RSS from /usr/bin/time when present),
# so nothing beyond python3 and the Rust toolchain is needed. The machine is
# shared: numbers are noisy, hence medians of alternated rounds.

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
BIN="$ROOT/target/release/leads"
# The interpreter itself, not a launcher shim (pyenv's would run helper
# processes whose CPU would be charged to the Python reference).
PY=$(python3 -c 'import sys; print(sys.executable)')
MEASURE=("$PY" "$ROOT/bench/measure.py")
CHATZURI_KEY=sk-sandbox-chatzuri-0123456789   # the sandbox's fixed, public key

die() {
    echo "bench: error: $*" >&2
    exit 1
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/leads-bench.XXXXXX")
SANDBOX_PIDS=()
PG_STARTED=""
cleanup() {
    local pid
    if [[ -n "$PG_STARTED" ]]; then
        bash "$ROOT/scripts/pg-test-cluster.sh" stop "$PG_STARTED" || true
    fi
    for pid in "${SANDBOX_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${SANDBOX_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench: building (cargo build --release --locked)" >&2
cargo build --release --locked >&2
[[ -x "$BIN" ]] || die "$BIN was not built"

# start_sandbox NAME ARGS... : starts a sandbox, waits for its banner and sets
# the global BASE to its Chatzuri base URL.
start_sandbox() {
    local name=$1
    shift
    local log="$TMP/sandbox-$name.txt"
    "$BIN" sandbox --port 0 "$@" >"$log" 2>&1 &
    local pid=$!
    SANDBOX_PIDS+=("$pid")
    local i
    for ((i = 0; i < 100; i++)); do
        grep -q 'Stop with Ctrl-C' "$log" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || die "sandbox $name exited early: $(cat "$log")"
        sleep 0.1
    done
    BASE=$(awk '/base URL/ && /chatzuri/ {print $3; exit}' "$log")
    [[ "$BASE" == http://127.0.0.1:* ]] || die "no Chatzuri base URL in the output of sandbox $name: $(cat "$log")"
    echo "bench: sandbox $name ($*) at $BASE" >&2
}

# measure OUTVAR COMMAND... : runs COMMAND under bench/measure.py and stores
# "wall user sys maxrss_kb" in OUTVAR.
measure() {
    local -n result=$1
    shift
    result=$(CHATZURI_API_KEY=$CHATZURI_KEY "${MEASURE[@]}" "$@" 2>"$TMP/last-stderr.txt") ||
        die "command failed: $* : $(tail -5 "$TMP/last-stderr.txt")"
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
calc() { awk "BEGIN {print $*}"; }
verdict() { if awk "BEGIN {exit !($*)}"; then echo pass; else echo miss; fi; }

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 |"); }

leads_pull() { # BASE FORMAT OUTPUT [EXTRA...]
    local base=$1 format=$2 output=$3
    shift 3
    measure M "$BIN" pull --vendor chatzuri --agent demo --base-url "$base" --format "$format" -o "$output" -q "$@"
}

# ---------------------------------------------------------------- (a) + (b)
LAT_LEADS=20000 LAT_MS=50 PAGE=100 CONC=8
start_sandbox latency --leads "$LAT_LEADS" --latency-ms "$LAT_MS"
LAT_BASE=$BASE
IDEAL=$(calc "($LAT_LEADS / $PAGE) / $CONC * $LAT_MS / 1000")
declare -a A_WALL A_CPU P_WALL P_CPU
for ((r = 1; r <= ROUNDS; r++)); do
    out="$TMP/latency.ndjson"
    leads_pull "$LAT_BASE" ndjson "$out" --page-size "$PAGE" --concurrency "$CONC"
    check_count "$out" ndjson "$LAT_LEADS"
    read -r w u s _ <<<"$M"
    A_WALL+=("$w") A_CPU+=("$(calc "$u + $s")")
    rm -f "$out"
    out="$TMP/reference.ndjson"
    measure M "$PY" "$ROOT/bench/reference_export.py" "$LAT_BASE" demo "$PAGE" "$out"
    check_count "$out" ndjson "$LAT_LEADS"
    read -r w u s _ <<<"$M"
    P_WALL+=("$w") P_CPU+=("$(calc "$u + $s")")
    rm -f "$out"
    echo "bench: round $r latency-bound: leads ${A_WALL[-1]} s wall ${A_CPU[-1]} s CPU; python ${P_WALL[-1]} s wall ${P_CPU[-1]} s CPU" >&2
done
aw=$(median "${A_WALL[@]}") ac=$(median "${A_CPU[@]}") pw=$(median "${P_WALL[@]}") pc=$(median "${P_CPU[@]}")
ratio=$(calc "$aw / $IDEAL")
row "(a) latency-bound: 200 pages x 50 ms, --concurrency 8, wall (ideal ${IDEAL} s)" \
    "$(printf '%.2f s = %.2f x ideal' "$aw" "$ratio")" "<= 1.25 x ideal" "$(verdict "$ratio <= 1.25")"
speed=$(calc "$pw / $aw")
row "(b) same export, Python sequential reference, wall" "$(printf '%.2f s (leads %.2f s): leads %.1fx faster' "$pw" "$aw" "$speed")" \
    ">= 5x faster" "$(verdict "$speed >= 5")"
cpu=$(calc "$pc / $ac")
row "(b) same export, CPU user+sys" "$(printf 'Python %.3f s, leads %.3f s: %.1fx less' "$pc" "$ac" "$cpu")" \
    ">= 10x less" "$(verdict "$cpu >= 10")"

# ---------------------------------------------------------------- (c) + (d) large
start_sandbox big --leads "$BIG"
BIG_BASE=$BASE
declare -A WALLS RSS
RSS_NOTE=""
for ((r = 1; r <= ROUNDS; r++)); do
    for format in ndjson csv json; do
        out="$TMP/big.$format"
        leads_pull "$BIG_BASE" "$format" "$out" --concurrency 4
        check_count "$out" "$format" "$BIG"
        read -r w _ _ kb note <<<"$M"
        [[ -z "${note:-}" ]] || RSS_NOTE=" (no /usr/bin/time: includes ~10 MB of the Python launcher)"
        WALLS[$format]+="$w " RSS[$format]+="$kb "
        rm -f "$out"
        echo "bench: round $r $BIG leads to $format: $w s, peak RSS $kb KiB" >&2
    done
done
for format in ndjson csv json; do
    # shellcheck disable=SC2086
    w=$(median ${WALLS[$format]})
    rate=$(calc "$BIG / $w")
    if [[ $format == ndjson ]]; then
        target=">= 100,000 leads/s" pass=$(verdict "$rate >= 100000")
    else
        target="(none; NDJSON's is 100k/s)" pass="info"
    fi
    row "(c) throughput, $BIG leads to $format, no latency" "$(printf '%.0f leads/s (%.2f s)' "$rate" "$w")" "$target" "$pass"
done

# ---------------------------------------------------------------- (f) databases
if [[ "${BENCH_DB:-1}" != 0 ]]; then
    if [[ -z "${LEADS_TEST_PG:-}" ]]; then
        eval "$(bash "$ROOT/scripts/pg-test-cluster.sh" start)"
        PG_STARTED=$LEADS_TEST_PG_DIR
    fi
    export PGPASSWORD=${LEADS_TEST_PG_PASSWORD:-${PGPASSWORD:-}}
    pg_count() { psql "$LEADS_TEST_PG" -tAc 'SELECT count(*) FROM leads'; }
    pg_reset() { psql "$LEADS_TEST_PG" -qc 'DROP TABLE IF EXISTS leads, conversations, messages, leads_schema' >/dev/null; }
    sqlite_count() { "$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM leads").fetchone()[0])' "$1"; }
    declare -A DB_WALL DB_RSS
    for ((r = 1; r <= ROUNDS; r++)); do
        db="$TMP/big.db"
        rm -f "$db" "$db-wal" "$db-shm"
        leads_pull "$BIG_BASE" sqlite "$db" --concurrency 4
        [[ "$(sqlite_count "$db")" -eq "$BIG" ]] || die "$db: not $BIG rows"
        read -r w _ _ kb _ <<<"$M"
        DB_WALL[sqlite-new]+="$w " DB_RSS[sqlite-new]+="$kb "
        leads_pull "$BIG_BASE" sqlite "$db" --concurrency 4
        [[ "$(sqlite_count "$db")" -eq "$BIG" ]] || die "$db: not $BIG rows after the second run"
        read -r w2 _ _ kb2 _ <<<"$M"
        DB_WALL[sqlite-again]+="$w2 " DB_RSS[sqlite-again]+="$kb2 "
        rm -f "$db" "$db-wal" "$db-shm"
        pg_reset
        measure M "$BIN" pull --vendor chatzuri --agent demo --base-url "$BIG_BASE" -o "$LEADS_TEST_PG" -q --concurrency 4
        [[ "$(pg_count)" -eq "$BIG" ]] || die "PostgreSQL: not $BIG rows"
        read -r w3 _ _ kb3 _ <<<"$M"
        DB_WALL[postgres]+="$w3 " DB_RSS[postgres]+="$kb3 "
        pg_reset
        echo "bench: round $r $BIG leads to SQLite $w s ($kb KiB), again $w2 s ($kb2 KiB), PostgreSQL $w3 s ($kb3 KiB)" >&2
    done
    # shellcheck disable=SC2086
    nd_rate=$(calc "$BIG / $(median ${WALLS[ndjson]})")
    # shellcheck disable=SC2086
    nd_mb=$(calc "$(maximum ${RSS[ndjson]}) * 1024 / 1000000")
    for kind in sqlite-new sqlite-again postgres; do
        case $kind in
            sqlite-new) what="into a new SQLite file" ;;
            sqlite-again) what="into the same SQLite file again (all unchanged)" ;;
            postgres) what="into PostgreSQL (COPY + one merge), empty tables" ;;
        esac
        # shellcheck disable=SC2086
        w=$(median ${DB_WALL[$kind]})
        # shellcheck disable=SC2086
        mb=$(calc "$(maximum ${DB_RSS[$kind]}) * 1024 / 1000000")
        row "(f) $BIG leads $what" \
            "$(printf '%.0f leads/s (%.2f s), peak RSS %.1f MB' "$(calc "$BIG / $w")" "$w" "$mb")" \
            "$(printf '(none; NDJSON %.0f leads/s, %.1f MB)' "$nd_rate" "$nd_mb")" "info"
    done
fi

# ---------------------------------------------------------------- (d) small
start_sandbox small --leads 10000
SMALL_BASE=$BASE
for ((r = 1; r <= ROUNDS; r++)); do
    for format in ndjson csv json; do
        out="$TMP/small.$format"
        leads_pull "$SMALL_BASE" "$format" "$out" --concurrency 4
        check_count "$out" "$format" 10000
        read -r _ _ _ kb note <<<"$M"
        [[ -z "${note:-}" ]] || RSS_NOTE=" (no /usr/bin/time: includes ~10 MB of the Python launcher)"
        RSS[small-$format]+="$kb "
        rm -f "$out"
    done
done
for n in 10000 "$BIG"; do
    for format in ndjson csv json; do
        key=$format
        [[ $n == 10000 ]] && key=small-$format
        # shellcheck disable=SC2086
        kb=$(maximum ${RSS[$key]})
        mb=$(calc "$kb * 1024 / 1000000")
        limit=$(calc "30 + 32 * $n / 1000000")
        row "(d) peak RSS, $n leads to $format (max of $ROUNDS)" "$(printf '%.1f MB%s' "$mb" "$RSS_NOTE")" "$(printf '<= %.2f MB' "$limit")" \
            "$(verdict "$mb <= $limit")"
    done
done

# ---------------------------------------------------------------- (e) XLSX
# XLSX is written in rust_xlsxwriter's constant-memory mode: peak RSS must not
# grow with the number of rows (the same bound as (d)).
declare -a X_WALL X_RSS X_SMALL_RSS
for ((r = 1; r <= ROUNDS; r++)); do
    out="$TMP/big.xlsx"
    leads_pull "$BIG_BASE" xlsx "$out" --concurrency 4
    check_count "$out" xlsx "$BIG"
    read -r w _ _ kb _ <<<"$M"
    X_WALL+=("$w") X_RSS+=("$kb")
    rm -f "$out"
    out="$TMP/small.xlsx"
    leads_pull "$SMALL_BASE" xlsx "$out" --concurrency 4
    check_count "$out" xlsx 10000
    read -r _ _ _ kb _ <<<"$M"
    X_SMALL_RSS+=("$kb")
    rm -f "$out"
    echo "bench: round $r $BIG leads to xlsx: ${X_WALL[-1]} s, peak RSS ${X_RSS[-1]} KiB (10000 leads: ${X_SMALL_RSS[-1]} KiB)" >&2
done
w=$(median "${X_WALL[@]}")
row "(e) $BIG leads to xlsx (constant memory), wall" "$(printf '%.2f s = %.0f leads/s' "$w" "$(calc "$BIG / $w")")" "(none)" "info"
big_mb=$(calc "$(maximum "${X_RSS[@]}") * 1024 / 1000000")
small_mb=$(calc "$(maximum "${X_SMALL_RSS[@]}") * 1024 / 1000000")
limit=$(calc "30 + 32 * $BIG / 1000000")
row "(e) peak RSS, xlsx: 10000 leads / $BIG leads (max of $ROUNDS)" "$(printf '%.1f MB / %.1f MB%s' "$small_mb" "$big_mb" "$RSS_NOTE")" \
    "$(printf '<= %.2f MB at %s' "$limit" "$BIG")" "$(verdict "$big_mb <= $limit")"

# ---------------------------------------------------------------- report
{
    echo "Measured by \`bash bench/run.sh\` on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'),"
    echo "$(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo '?')), shared with other work;"
    echo "medians of $ROUNDS alternated rounds; the sandbox runs as its own process on the same cores."
    echo "MB = 10^6 bytes."
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
