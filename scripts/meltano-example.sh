#!/usr/bin/env bash
# Runs the example Meltano project (examples/meltano) end to end:
# `meltano run tap-leads target-jsonl` against leads' built-in sandbox, then
# checks that every stream's rows equal what `leads pull` / `leads
# conversations` write for the same sandbox sources. The project is copied
# to target/meltano-example (kept, so Meltano's plugin install is reused).
# Usage: scripts/meltano-example.sh [BIN_DIR]   (default: target/release)
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir=$(cd "${1:-target/release}" && pwd)
[ -x "$bin_dir/tap-leads" ] && [ -x "$bin_dir/leads" ] || {
  echo "no tap-leads and leads in $bin_dir: cargo build --release first" >&2
  exit 1
}
meltano_venv=$(bash scripts/singer-venv.sh meltano)
project=target/meltano-example
mkdir -p "$project"
cp examples/meltano/meltano.yml "$project/meltano.yml"
rm -rf "$project/output"
mkdir -p "$project/output"
export PATH="$bin_dir:$meltano_venv/bin:$PATH"
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false
installing=$(date +%s.%N)
(cd "$project" && meltano --log-level=warning install >/dev/null)
started=$(date +%s.%N)
# From the start, whatever an earlier run of this script left in Meltano's
# state store.
(cd "$project" && meltano --log-level=warning run --full-refresh tap-leads target-jsonl)
ended=$(date +%s.%N)

# The oracle: the same sandbox sources through leads itself.
expected=$(mktemp -d)
trap 'rm -rf "$expected"' EXIT
for vendor in chatzuri neoagent robofy chatbase; do
  leads pull --sandbox --vendor "$vendor" --agent demo --format ndjson >>"$expected/leads.jsonl"
  leads conversations --sandbox --vendor "$vendor" --agent demo --format ndjson >>"$expected/conversations.jsonl"
done
"$meltano_venv/bin/python" - "$project/output" "$expected" <<'PY'
import json, sys, pathlib
out, expected = map(pathlib.Path, sys.argv[1:])
def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
for stream in ("leads", "conversations"):
    got, want = rows(out / f"{stream}.jsonl"), rows(expected / f"{stream}.jsonl")
    assert want, f"the oracle has no {stream}"
    assert got == want, f"{stream}: {len(got)} rows loaded, {len(want)} expected, or they differ"
conversations = rows(expected / "conversations.jsonl")
messages = rows(out / "messages.jsonl")
want = [
    {"vendor": c["vendor"], "agent_id": c["agent_id"], "conversation_id": c["id"],
     "message_index": i, "role": m["role"], "content": m["content"], "created_at": m["created_at"]}
    for c in conversations for i, m in enumerate(c["messages"])
]
assert messages == want, f"messages: {len(messages)} rows loaded, {len(want)} expected, or they differ"
print(f"meltano example: {len(rows(out / 'leads.jsonl'))} leads, {len(conversations)} conversations, {len(messages)} messages loaded as expected")
PY
# A second, incremental run picks up Meltano's stored state: nothing is new,
# so no row is added.
before=$(cat "$project"/output/*.jsonl | wc -l)
(cd "$project" && meltano --log-level=warning run tap-leads target-jsonl)
after=$(cat "$project"/output/*.jsonl | wc -l)
[ "$before" -eq "$after" ] || {
  echo "the incremental meltano run loaded $((after - before)) rows again" >&2
  exit 1
}
echo "meltano example: the incremental run from Meltano's state loaded nothing again"
echo "meltano install took $(echo "$started - $installing" | bc) s; meltano run tap-leads target-jsonl took $(echo "$ended - $started" | bc) s"
