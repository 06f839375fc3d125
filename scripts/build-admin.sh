#!/usr/bin/env bash
# Builds the admin console (admin/, Preact + Vite) into admin/dist, which is committed and
# embedded in the server binary at compile time (server/src/api/admin.rs), so that `cargo
# build` needs neither npm nor a network. Run it after changing anything under admin/src
# and commit admin/dist with the change.
#
#   scripts/build-admin.sh           type-check, then build into admin/dist
#   scripts/build-admin.sh --check   build into a temporary directory and fail if admin/dist
#                                    differs from it (what CI runs, through scripts/test-js.sh)
#
# npm packages come from the registry (npm ci against admin/package-lock.json).
#
# The SQL editor's completion is the crate kalamdb-complete (complete/) as WebAssembly, built
# here first into admin/wasm/ (generated, not committed), which Vite bundles into dist as a
# script and a .wasm loaded on the editor's first completion. The module must come out byte
# for byte the same from any checkout path and $HOME (CI builds a clean clone elsewhere and
# compares): the paths rustc would embed (panic locations) are remapped, the build has a
# target directory of its own (other RUSTFLAGS would rebuild the SDK's wasm dependencies),
# and wasm-bindgen drops the name and producers sections. Needs the wasm32-unknown-unknown
# target and wasm-bindgen-cli at the version complete/Cargo.toml pins (both installed here
# if missing). No wasm-opt: Debian's writes modules that fail to load.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PATH="$HOME/.cargo/bin:$PATH"
want=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' complete/Cargo.toml)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
  cargo install wasm-bindgen-cli --version "$want"
fi
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
target="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb-target}/admin-wasm"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
RUSTFLAGS="--remap-path-prefix=$root=/kalamdb --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$target=/target" \
  cargo rustc --quiet --locked -p kalamdb-complete --lib --crate-type cdylib \
  --target wasm32-unknown-unknown --profile wasm-release --target-dir "$target"
rm -rf admin/wasm
wasm-bindgen --target web --remove-name-section --remove-producers-section --out-dir admin/wasm \
  "$target/wasm32-unknown-unknown/wasm-release/kalamdb_complete.wasm"

cd admin
check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

# npm ci, or npm install where npm ci refuses a lockfile that lacks rollup's per-platform
# optional packages (as in scripts/test-js.sh).
npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || npm install --no-audit --no-fund --loglevel=error
npx tsc --noEmit

if ! $check; then
  npx vite build --logLevel warn
  # The first load is index.html and what it names; the rest (completion) loads on use.
  first=(dist/index.html.gz $(grep -o 'assets/[^"]*\.\(js\|css\)' dist/index.html | sed 's|^|dist/|; s|$|.gz|'))
  later=$(find dist/assets -name '*.gz' ! -name '*.svg.gz' | grep -v -F "$(printf '%s\n' "${first[@]}")")
  echo "admin/dist: $(find dist -type f ! -name '*.gz' | wc -l) files, first load $(cat "${first[@]}" | wc -c) bytes gzip (html+js+css)," \
    "loaded on first use $(cat $later | wc -c) bytes gzip (completion: js+wasm)"
  exit 0
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
npx vite build --logLevel warn --outDir "$out" --emptyOutDir
stale() {
  echo "admin/dist is stale: run scripts/build-admin.sh and commit admin/dist ($1)" >&2
  exit 1
}
diff <(cd "$out" && find . -type f | sort) <(cd dist && find . -type f | sort) >/dev/null \
  || stale "the built file names differ: $(diff <(cd "$out" && find . -type f | sort) <(cd dist && find . -type f | sort) | grep '^[<>]' | tr '\n' ' ')"
# The files themselves must match byte for byte. The .gz twins are compared by what they
# decompress to, since zlib builds may compress the same input differently.
while IFS= read -r f; do
  cmp -s "$out/$f" "dist/$f" || stale "$f differs"
done < <(cd "$out" && find . -type f ! -name '*.gz')
while IFS= read -r gz; do
  gzip -dc "dist/$gz" | cmp -s - "dist/${gz%.gz}" || stale "$gz does not hold ${gz%.gz}"
done < <(cd dist && find . -type f -name '*.gz')
echo "admin/dist is up to date"
