#!/usr/bin/env bash
# The Singer tests against a real target, as CI runs them: makes (or
# reuses) the target-jsonl virtualenv and runs the tap's integration tests
# with LEADS_TEST_VENV pointing at it. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
LEADS_TEST_VENV=$(bash scripts/singer-venv.sh targets)
export LEADS_TEST_VENV
cargo test --locked --test it singer:: "$@"
