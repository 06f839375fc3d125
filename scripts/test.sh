#!/usr/bin/env bash
# Runs every test, after the lints (formatting and clippy with warnings denied):
#   1. Rust: unit tests and the integration tests that start the real server binary
#      (including the native sync client against it);
#   2. the wasm client in headless Chromium (scripts/test-wasm.sh);
#   3. the npm package under Node, the example app and the admin console under Playwright
#      (scripts/test-js.sh).
# Installs what it needs first (scripts/prerequisites.sh). Ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prerequisites.sh
# Reuse one target dir outside the clone so repeated runs on a machine are incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb-target}"
# That dir only grows: cargo keeps the artifacts of every dependency version and flag set it
# has built, and incremental state per crate. Start it afresh when it has grown past a few
# cold builds, or when the disk is too short for this run's build, rather than fail midway
# with "No space left on device". A cold run fills ~6 GB there and takes ~45 minutes on 2 cores.
if [ -d "$CARGO_TARGET_DIR" ]; then
  free_gb=$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 { print int($4 / 1048576) }')
  held_gb=$(du -sk "$CARGO_TARGET_DIR" | awk '{ print int($1 / 1048576) }')
  if [ "$free_gb" -lt "${KALAMDB_TEST_MIN_FREE_GB:-10}" ] || [ "$held_gb" -gt "${KALAMDB_TEST_MAX_TARGET_GB:-20}" ]; then
    echo "== $CARGO_TARGET_DIR holds ${held_gb} GB and ${free_gb} GB are free: removing it, a cold build follows"
    rm -rf "$CARGO_TARGET_DIR"
  fi
fi
export PATH="$HOME/.cargo/bin:$PATH"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
echo "== lints: cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all --check || status=1
cargo clippy --workspace --all-targets --locked -- -D warnings || status=1
cargo test --workspace --exclude kalamdb-wasm --locked -- --test-threads=2 2>&1 | tee "$log" || status=1
scripts/test-wasm.sh --locked 2>&1 | tee -a "$log" || status=1
scripts/test-js.sh 2>&1 | tee -a "$log" || status=1
# One closing line with the totals of every test run (cargo's "test result:" lines and
# node's "ℹ pass N" / "ℹ fail N").
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     /^ℹ pass / { p += $3 } /^ℹ fail / { f += $3 }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
