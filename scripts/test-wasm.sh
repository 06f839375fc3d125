#!/usr/bin/env bash
# Runs the WebAssembly client's tests (crate kalamdb-wasm) in headless Chromium through
# wasm-bindgen-test-runner and chromedriver: the IndexedDB replica store and the multi-tab
# coordination. Exits non-zero if a test fails or a tool is missing.
#
# Needs: the wasm32-unknown-unknown target, wasm-bindgen-cli of the version pinned in
# wasm/Cargo.toml (it provides wasm-bindgen-test-runner, the cargo runner configured in
# .cargo/config.toml), and `apt-get install chromium chromium-driver`. Browser flags
# (headless, no sandbox: root) come from wasm/webdriver.json.
#
# Extra arguments go to cargo test, e.g. `scripts/test-wasm.sh --test idb_store`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb-target}"
export PATH="$HOME/.cargo/bin:$PATH"
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$(pwd)/wasm/webdriver.json"
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-60}"

want=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' wasm/Cargo.toml)
have=$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "test-wasm: need wasm-bindgen-test-runner $want (found '${have:-none}'): cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi
for tool in "$CHROMEDRIVER" /usr/bin/chromium; do
  [ -x "$tool" ] || { echo "test-wasm: $tool missing: apt-get install -y chromium chromium-driver" >&2; exit 1; }
done
rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

# Chromium, killed by chromedriver at the end of each test binary, leaves its profile
# directories in $TMPDIR (~15 MB each, one per binary): give it one this run removes.
browser_tmp=$(mktemp -d)
trap 'rm -rf "$browser_tmp"' EXIT
TMPDIR="$browser_tmp" cargo test -p kalamdb-wasm --target wasm32-unknown-unknown "$@"
