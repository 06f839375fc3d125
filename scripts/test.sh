#!/usr/bin/env bash
# Runs every test: unit tests and the integration tests that start the real server binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prerequisites.sh
# Reuse one target dir outside the clone so repeated runs on a machine are incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb-target}"
cargo test --workspace --locked -- --test-threads=2
