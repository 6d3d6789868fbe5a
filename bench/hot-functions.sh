#!/usr/bin/env bash
# bench/hot-functions.sh — writes bench/hot-functions.txt, the order in which
# the linker lays out the functions an export runs (build.rs passes it to
# lld as --symbol-ordering-file).
#
# Usage, from the repository root, after a change to the hot path, a
# dependency or the toolchain (symbol names carry a hash of all three):
#
#     bash bench/hot-functions.sh
#
# Why: the release binary is about 10 MB of code, and an export runs about
# 1.6 MB of it, spread over the whole file in the compiler's order. The
# latency-bound export (bench row (b)) wakes after every 50 ms wait with
# cold caches, so those scattered functions cost
# instruction-cache and TLB misses on every wake. Laid out together, the
# hottest first, the same export took 0.86-0.91x the CPU (alternated
# pairs; bench/results.md, tenth session).
#
# How: every workload below runs once under `valgrind --tool=callgrind`
# (the client only; the sandbox runs apart), and the functions are listed
# hottest first: by their own instructions as a share of each run's,
# summed over the runs. Callgrind
# counts instructions, not samples, so the list is the same from run to
# run, and every function that ran is in it, however rarely.
#
#     bash bench/hot-functions.sh check
#
# checks instead that target/release/leads (built by `cargo build --release`)
# still has at least 90% of the list's names, and lays them out in the
# list's order (at most 10% out of it), so a list gone stale with a new
# toolchain or dependency, or a build that dropped the list, fails CI
# rather than quietly losing the layout (.ci/run calls it).
#
# Needs valgrind and python3 (the check only nm). The build itself never
# needs this script: a stale or missing name in the list is skipped by the
# linker.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "${1:-}" == check ]]; then
    export LC_ALL=C
    # "rank name" of the list and "name address" of the binary's code, joined
    # into "name rank address" for every listed function the binary has.
    found=$(grep -v '^#' bench/hot-functions.txt | awk '{print NR, $1}' | sort -k2,2 |
        join -1 2 -2 1 - <(nm target/release/leads | awk '$2 ~ /^[tTwW]$/ {print $3, $1}' | sort -k1,1 -u))
    listed=$(grep -cv '^#' bench/hot-functions.txt)
    matched=$(grep -c . <<<"$found" || true)
    # In list order, the addresses rise (nm prints them zero-padded, so
    # they compare as text); in the compiler's order about half do not.
    unordered=$(sort -k2,2n <<<"$found" | awk 'NR > 1 && $3 < prev {n++} {prev = $3} END {print n + 0}')
    echo "hot-functions: $matched of $listed listed functions are in target/release/leads, $unordered of them out of the list's order" >&2
    ((matched * 10 >= listed * 9)) || {
        echo "hot-functions: error: bench/hot-functions.txt is stale (a new toolchain or dependency renamed the functions): run bash bench/hot-functions.sh and commit it" >&2
        exit 1
    }
    ((unordered * 10 <= matched)) || {
        echo "hot-functions: error: target/release/leads does not follow bench/hot-functions.txt: was it linked without lld, or with LEADS_HOT_FUNCTIONS=0?" >&2
        exit 1
    }
    exit 0
fi

command -v valgrind >/dev/null || { echo "hot-functions: error: valgrind is needed" >&2; exit 1; }
command -v python3 >/dev/null || { echo "hot-functions: error: python3 is needed" >&2; exit 1; }

BIN=target/release/leads
OUT=bench/hot-functions.txt
TMP=$(mktemp -d "${TMPDIR:-/tmp}/leads-hot.XXXXXX")
SANDBOXES=()
cleanup() {
    local pid
    for pid in "${SANDBOXES[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

cargo build --release --locked >&2

# shellcheck source=bench/sandbox.sh
source bench/sandbox.sh
declare -A BASE_URL
sandbox() {
    local started=0
    start_sandbox "$1" "$TMP/sandbox-$1.txt" "${@:2}" || started=$?
    SANDBOXES+=("$SANDBOX_STARTED") # stopped on exit, started or not
    ((started == 0)) || exit 1
}
sandbox fast --leads 20000
# The latency-bound export of bench row (b) waits between pages, which
# runs the runtime's parking and timer code too.
sandbox slow --leads 20000 --latency-ms 50

# profile NAME ARGS... : one callgrind run of `leads ARGS...`, its output in
# $TMP/NAME.out (the functions under their mangled names).
profile() {
    local name=$1
    shift
    valgrind --tool=callgrind --demangle=no --callgrind-out-file="$TMP/$name.out" \
        "$BIN" "$@" -o "$TMP/$name.export" -q 2>"$TMP/$name.log" ||
        { echo "hot-functions: error: $name failed: $(tail -3 "$TMP/$name.log")" >&2; exit 1; }
    echo "hot-functions: $name: $(awk '/Collected :/ {print $NF}' "$TMP/$name.log") instructions" >&2
}
profile latency-bound pull --vendor chatzuri --agent demo --base-url "${BASE_URL[slow/chatzuri]}" --page-size 100 --concurrency 8 --format ndjson
profile chatzuri-ndjson pull --vendor chatzuri --agent demo --base-url "${BASE_URL[fast/chatzuri]}" --format ndjson
profile chatzuri-csv pull --vendor chatzuri --agent demo --base-url "${BASE_URL[fast/chatzuri]}" --format csv
profile chatzuri-json pull --vendor chatzuri --agent demo --base-url "${BASE_URL[fast/chatzuri]}" --format json
profile neoagent-ndjson pull --vendor neoagent --agent demo --base-url "${BASE_URL[fast/neoagent]}" --since 2025-01-01 --format ndjson
profile robofy-ndjson pull --vendor robofy --project 1 --agent demo --base-url "${BASE_URL[fast/robofy]}" --format ndjson
profile chatbase-ndjson pull --vendor chatbase --agent demo --base-url "${BASE_URL[fast/chatbase]}" --format ndjson
profile conversations conversations --vendor chatzuri --agent demo --base-url "${BASE_URL[fast/chatzuri]}" --format ndjson

python3 - "$TMP" "$OUT" <<'PYEOF'
import collections, glob, os, re, sys

tmp, out = sys.argv[1], sys.argv[2]
share = collections.Counter()
for path in glob.glob(os.path.join(tmp, "*.out")):
    own = collections.Counter()
    # Callgrind's format: "fn=(id) name" names a function once, "fn=(id)"
    # after; cost lines ("position Ir") follow until the next fn=, and a
    # "calls=" line's next cost line is the callee's inclusive cost, not
    # the function's own.
    names, ids, current, skip = {}, {}, None, False
    obj_ok = True
    for line in open(path, encoding="utf-8", errors="replace"):
        if line.startswith("ob="):
            m = re.match(r"ob=\((\d+)\)(?: (.*))?", line.strip())
            if m:
                if m.group(2):
                    ids[m.group(1)] = m.group(2)
                obj_ok = ids.get(m.group(1), "").endswith("/leads")
            continue
        # A name is given once, where its id first appears (on an fn=, a
        # cfn= or a cob= line), and by id alone after.
        m = re.match(r"(c?fn|cob)=\((\d+)\)(?: (.*))?", line.strip())
        if m and m.group(3):
            (ids if m.group(1) == "cob" else names)[m.group(2)] = m.group(3)
        if line.startswith("fn="):
            current = names[m.group(2)] if obj_ok else None
            continue
        if line.startswith("calls="):
            skip = True
            continue
        if line[:1].isdigit() or line[:1] in "+-*":
            if skip:
                skip = False
                continue
            parts = line.split()
            if current and len(parts) >= 2:
                own[current] += int(parts[1])
            continue
        if line.startswith(("cfn=", "cfi=", "cob=", "fi=", "fe=", "fl=")):
            # fi/fe switch the file (inlined code) of the same function;
            # cfn/cfi/cob describe the next call only.
            continue
    # Each export weighs the same: a function's rank is the sum of its
    # shares of each export's instructions, so the 20,000 Robofy leads
    # (four times Chatzuri's instructions) do not push the latency-bound
    # export's functions apart.
    total = sum(own.values())
    for name, cost in own.items():
        # "f'2" is callgrind's name for a recursive call of f.
        share[re.sub(r"'\d+$", "", name)] += cost / total
# Code callgrind could not name (an address, "(below main)") is no symbol.
hot = [
    name
    for name, weight in share.most_common()
    if weight > 0 and not name.startswith("0x") and " " not in name
]
with open(out, "w", encoding="utf-8") as f:
    f.write("# Functions of `leads` hottest first, for lld's --symbol-ordering-file\n")
    f.write("# (build.rs). Written by bench/hot-functions.sh; do not edit by hand.\n")
    for name in hot:
        f.write(name + "\n")
print(f"hot-functions: {len(hot)} functions written to {out}", file=sys.stderr)
PYEOF
