#!/usr/bin/env bash
# Benchmark: catch-up of 100,000 rows (batches of 1,000 rows + cursor per commit) into an
# IndexedDB replica in headless Chromium, release build. Prints rows/s for the store alone,
# for frame → engine → store, and the time to load the replica back.
set -euo pipefail
cd "$(dirname "$0")/.."
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-300}"
exec scripts/test-wasm.sh --release --test idb_bench -- --include-ignored --nocapture
