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
set -euo pipefail
cd "$(dirname "$0")/../admin"
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
  echo "admin/dist: $(find dist -type f ! -name '*.gz' | wc -l) files, $(cat dist/assets/*.js.gz dist/assets/*.css.gz dist/index.html.gz | wc -c) bytes gzip (html+js+css)"
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
