#!/usr/bin/env bash
# Creates (or reuses) the Python virtualenvs the Singer tests need, under
# target/ci-venv so reruns are fast, and prints the target-jsonl one's path
# (the value of LEADS_TEST_VENV). target-jsonl and Meltano cannot share a
# virtualenv (their pinned dependencies conflict), so each has its own:
#   target/ci-venv/targets   target-jsonl  (tests/it/singer.rs pipes tap-leads into it)
#   target/ci-venv/meltano   meltano       (scripts/meltano-example.sh)
# Usage: scripts/singer-venv.sh [targets|meltano]   (default: targets)
set -euo pipefail
cd "$(dirname "$0")/.."
root=target/ci-venv
which=${1:-targets}
case "$which" in
  targets) packages=(target-jsonl); probe=target-jsonl ;;
  meltano) packages=(meltano); probe=meltano ;;
  *) echo "usage: $0 [targets|meltano]" >&2; exit 2 ;;
esac
venv="$root/$which"
if [ ! -x "$venv/bin/$probe" ]; then
  rm -rf "$venv"
  mkdir -p "$root"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}" >&2
fi
"$venv/bin/$probe" --help >/dev/null 2>&1 || { echo "$venv/bin/$probe does not run" >&2; exit 1; }
cd "$venv" && pwd
