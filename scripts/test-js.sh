#!/usr/bin/env bash
# JavaScript tests: installs the npm dependencies (npm ci), builds the wasm engine and the
# TypeScript SDK, runs the SDK's Node tests, the example app's and the admin console's
# Playwright tests (scripts/test-admin.sh, which also checks that admin/dist is current), all against
# the real server binary ($KALAMDB_SERVER, else $CARGO_TARGET_DIR/debug/kalamdb-server, built by
# `cargo build -p kalamdb-server` / `cargo test`; built here if missing). Idempotent; exits
# non-zero on any failure and prints one closing "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb-target}"
export PATH="$HOME/.cargo/bin:$PATH"
# npm ci, or npm install where npm ci refuses a lockfile that lacks rollup's per-platform
# optional packages (npm 11 leaves them out when the registry mirror has no entry for them).
npm_ci() {
  (cd "$1" && { npm ci --no-audit --no-fund --loglevel=error 2>/dev/null \
    || npm install --no-audit --no-fund --loglevel=error; })
}

# Prerequisites: wasm32 target, wasm-bindgen-cli of the pinned version, Chromium.
want=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' wasm/Cargo.toml)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
  cargo install wasm-bindgen-cli --version "$want"
fi
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; else sudo apt-get install -y chromium; fi
fi
[ -x "${KALAMDB_SERVER:-$CARGO_TARGET_DIR/debug/kalamdb-server}" ] || cargo build -p kalamdb-server

npm_ci sdks/typescript
scripts/build-wasm.sh
(cd sdks/typescript && npm run build --silent)
npm_ci examples/todo-react
npm_ci examples/node-backend
(cd examples/todo-react && npx vite build --logLevel warn)

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
(cd sdks/typescript && node --test --test-concurrency=1 --test-reporter=spec test/*.test.mjs) 2>&1 | tee -a "$log" || status=1
(cd examples/todo-react && node --test --test-concurrency=1 --test-reporter=spec tests/*.test.mjs) 2>&1 | tee -a "$log" || status=1
scripts/test-admin.sh 2>&1 | tee -a "$log" || status=1
# The Node backend example against its own server (run-example.sh starts one and sets it up).
if KALAMDB_URL= timeout 180 scripts/run-example.sh node-backend > "$log.example" 2>&1; then
  echo "✔ examples/node-backend runs against a fresh server"; echo "ℹ pass 1" >> "$log"
else
  cat "$log.example"; echo "✖ examples/node-backend failed"; echo "ℹ fail 1" >> "$log"; status=1
fi
rm -f "$log.example"
# The spec reporter ends each run with "ℹ pass N" / "ℹ fail N".
awk '/^ℹ pass / { p += $3 } /^ℹ fail / { f += $3 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
