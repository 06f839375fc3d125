#!/usr/bin/env bash
# Builds the WebAssembly client (wasm/, crate kalamdb-wasm) for the TypeScript SDK:
#
#   sdks/typescript/wasm/web/   wasm-bindgen --target web     (browsers: `await init()`)
#   sdks/typescript/wasm/node/  wasm-bindgen --target nodejs  (Node.js, CommonJS)
#
# Needs the wasm32-unknown-unknown target and wasm-bindgen-cli of the exact version pinned in
# wasm/Cargo.toml (`cargo install wasm-bindgen-cli --version X`). Builds with the
# `wasm-release` profile (opt-level z, LTO, one codegen unit, panic=abort) and drops the name
# and producers sections: the name section alone was 470 KB of a 1.2 MB module.
# When npm's `binaryen` is installed (a devDependency of the SDK: `npm ci` in sdks/typescript)
# it also runs `wasm-opt -O1` and keeps the result only if it still loads in Node (Debian's
# binaryen writes modules that fail to load: never used). -O1 only: -O2, -Os and -Oz make the
# gzip size larger (their function reordering breaks up the runs of similar functions gzip
# compresses well: 384 KB against 356 KB with -O1 and 361 KB without wasm-opt, 2026-12-07).
#
# Also builds a variant without the CRDT feature (not shipped) and prints gzip sizes of
# wasm + JS with and without CRDT.
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/kalamdb-target), KALAMDB_WASM_OPT=0 not to
# run wasm-opt, KALAMDB_WASM_SIZES=0 to skip the size-only variant.
# Note: the variant overwrites $CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/kalamdb_wasm.wasm;
# the shipped build is the one copied into sdks/typescript/wasm/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb-target}"
export PATH="$HOME/.cargo/bin:$PATH"
sdk="$root/sdks/typescript"
out="$sdk/wasm"
wasm_in="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/kalamdb_wasm.wasm"

want=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' wasm/Cargo.toml)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ -z "$have" ]; then
  echo "build-wasm: wasm-bindgen not found; install it with: cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi
if [ -n "$want" ] && [ "$have" != "$want" ]; then
  echo "build-wasm: wasm-bindgen $have found, wasm/Cargo.toml pins $want" >&2
  exit 1
fi
rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

wasm_opt=""
if [ "${KALAMDB_WASM_OPT:-1}" = "1" ] && [ -x "$sdk/node_modules/.bin/wasm-opt" ]; then
  wasm_opt="$sdk/node_modules/.bin/wasm-opt"
fi

# bindgen SRC_WASM DEST_DIR: both targets into DEST_DIR/{web,node}.
bindgen() {
  local src=$1 dest=$2
  rm -rf "$dest/web" "$dest/node"
  mkdir -p "$dest/web" "$dest/node"
  wasm-bindgen "$src" --out-dir "$dest/web" --target web --out-name kalamdb_wasm --remove-name-section --remove-producers-section
  wasm-bindgen "$src" --out-dir "$dest/node" --target nodejs --out-name kalamdb_wasm --remove-name-section --remove-producers-section
  # The SDK package is ESM ("type": "module"); the nodejs target is CommonJS.
  if ! grep -q '^export ' "$dest/node/kalamdb_wasm.js"; then
    echo '{"type": "commonjs"}' > "$dest/node/package.json"
  fi
  if [ -n "$wasm_opt" ]; then
    local f
    for f in "$dest/web/kalamdb_wasm_bg.wasm" "$dest/node/kalamdb_wasm_bg.wasm"; do
      cp "$f" "$f.unopt"
      if "$wasm_opt" -O1 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
           --enable-mutable-globals --enable-reference-types --enable-multivalue \
           "$f.unopt" -o "$f" 2>/dev/null; then :; else cp "$f.unopt" "$f"; fi
    done
    # Keep the optimised module only if it still loads and instantiates.
    if ! node -e "require('$dest/node/kalamdb_wasm.js')" 2>/dev/null \
       && ! node --input-type=module -e "await import('$dest/node/kalamdb_wasm.js')" 2>/dev/null; then
      echo "build-wasm: the wasm-opt output does not load; keeping the unoptimised module" >&2
      for f in "$dest/web/kalamdb_wasm_bg.wasm" "$dest/node/kalamdb_wasm_bg.wasm"; do cp "$f.unopt" "$f"; done
    fi
    rm -f "$dest/web/kalamdb_wasm_bg.wasm.unopt" "$dest/node/kalamdb_wasm_bg.wasm.unopt"
  fi
}

gz() { gzip -9 -c "$@" | wc -c; }

# size LABEL DIR: gzip sizes of the web target's wasm and JS glue.
size_line() {
  local label=$1 dir=$2
  local raw wasm_gz js_gz
  raw=$(wc -c < "$dir/web/kalamdb_wasm_bg.wasm")
  wasm_gz=$(gz "$dir/web/kalamdb_wasm_bg.wasm")
  js_gz=$(gz "$dir/web/kalamdb_wasm.js")
  printf '  %-14s wasm %7d B raw, %7d B gzip; glue JS %6d B gzip; wasm+JS %7d B gzip (%d KB)\n' \
    "$label" "$raw" "$wasm_gz" "$js_gz" $((wasm_gz + js_gz)) $(((wasm_gz + js_gz + 1023) / 1024))
}

echo "build-wasm: cargo build -p kalamdb-wasm --profile wasm-release --target wasm32-unknown-unknown"
cargo build -p kalamdb-wasm --profile wasm-release --target wasm32-unknown-unknown
bindgen "$wasm_in" "$out"

sizes_ok=0
if [ "${KALAMDB_WASM_SIZES:-1}" != "0" ]; then
  echo "build-wasm: size-only variant without CRDT (--no-default-features)"
  # Same target dir: cargo keeps both feature sets' artifacts, only the uplifted .wasm is
  # overwritten (the shipped one was already copied out by wasm-bindgen above).
  cargo build -p kalamdb-wasm --profile wasm-release --target wasm32-unknown-unknown --no-default-features
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  bindgen "$wasm_in" "$tmp"
  sizes_ok=1
fi

sdk_js_gz=""
if [ -d "$sdk/dist" ]; then
  sdk_js_gz=$(cat "$sdk"/dist/*.js | gzip -9 | wc -c)
fi
echo "build-wasm: bundle sizes (web target${wasm_opt:+, wasm-opt -O1}):"
size_line "with CRDT" "$out"
[ "$sizes_ok" = 1 ] && size_line "without CRDT" "$tmp"
[ -n "$sdk_js_gz" ] && echo "  SDK JS (dist/*.js, all entry points, gzip together): $sdk_js_gz B"
echo "build-wasm: wrote $out/web and $out/node"
