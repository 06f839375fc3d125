#!/usr/bin/env bash
# Runs every test: unit tests and the integration tests that start the real server binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prerequisites.sh
# Reuse one target dir outside the clone so repeated runs on a machine are incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb-target}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --exclude kalamdb-wasm --locked -- --test-threads=2 2>&1 | tee "$log" || status=$?
# One closing line with the totals of every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
