# bench/sandbox.sh — sourced by bench/run.sh and bench/hot-functions.sh.
#
# start_sandbox NAME LOG ARGS... : starts `$BIN sandbox --port 0 ARGS...`
# (its own process, output in LOG), waits for its banner, and records each
# vendor's base URL in BASE_URL[NAME/vendor] and its key in the vendor's
# variable (exported). The pid is left in SANDBOX_STARTED. Returns 1, with
# the reason on stderr, when the sandbox exits early or its banner lacks a
# vendor. Needs BIN and `declare -A BASE_URL` in the caller.
start_sandbox() {
    local name=$1 log=$2 vendor url key i
    shift 2
    "$BIN" sandbox --port 0 "$@" >"$log" 2>&1 &
    SANDBOX_STARTED=$!
    for ((i = 0; i < 100; i++)); do
        grep -q 'Stop with Ctrl-C' "$log" 2>/dev/null && break
        kill -0 "$SANDBOX_STARTED" 2>/dev/null || {
            echo "sandbox $name exited early: $(cat "$log")" >&2
            return 1
        }
        sleep 0.1
    done
    for vendor in chatzuri neoagent robofy chatbase; do
        url=$(awk -v v="/$vendor" '/base URL/ && index($3, v) {print $3; exit}' "$log")
        [[ "$url" == http://127.0.0.1:* ]] || {
            echo "no $vendor base URL in the output of sandbox $name: $(cat "$log")" >&2
            return 1
        }
        BASE_URL[$name/$vendor]=$url
        key=$(awk -v v="${vendor^^}_API_KEY" '$1 == "key" && index($0, v) {print $2; exit}' "$log")
        [[ -n "$key" ]] || {
            echo "no $vendor key in the output of sandbox $name" >&2
            return 1
        }
        export "${vendor^^}_API_KEY=$key"
    done
}
