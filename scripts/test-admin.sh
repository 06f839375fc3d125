#!/usr/bin/env bash
# The admin console's checks (also run by scripts/test-js.sh):
#   1. admin/dist matches its sources (scripts/build-admin.sh --check);
#   2. the console under Playwright (playwright-core + /usr/bin/chromium) against the real
#      server binary ($KALAMDB_SERVER, else $CARGO_TARGET_DIR/debug/kalamdb-server, built if
#      missing), which serves
#      the console embedded at build time. Screenshots go to $KALAMDB_ARTIFACTS/admin
#      (default: target/admin-screenshots).
#
#   scripts/test-admin.sh                 run both
#   scripts/test-admin.sh --update-docs   then copy the screenshots docs/admin.md shows to
#                                         docs/images/admin/
# Prints node's "ℹ pass N" / "ℹ fail N" lines (the check counts as one test); exits non-zero
# on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb-target}"
export PATH="$HOME/.cargo/bin:$PATH"
update_docs=false
case "${1:-}" in
  --update-docs) update_docs=true ;;
  "") ;;
  *) echo "usage: $0 [--update-docs]" >&2; exit 2 ;;
esac
status=0
if out=$(scripts/build-admin.sh --check 2>&1); then
  echo "✔ admin/dist matches its sources (scripts/build-admin.sh --check)"
  echo "ℹ pass 1"
else
  echo "$out"
  echo "✖ admin/dist does not match its sources"
  echo "ℹ fail 1"
  status=1
fi
[ -x "${KALAMDB_SERVER:-$CARGO_TARGET_DIR/debug/kalamdb-server}" ] || cargo build -p kalamdb-server
(cd admin && node --test --test-concurrency=1 --test-reporter=spec tests/*.test.mjs) || status=1
if $update_docs; then
  shots="${KALAMDB_ARTIFACTS:+$KALAMDB_ARTIFACTS/admin}"
  shots="${shots:-target/admin-screenshots}"
  mkdir -p docs/images/admin
  for name in sign-in-refused sql schema live live-queries jobs users health; do
    cp "$shots/$name.png" "docs/images/admin/$name.png"
  done
  echo "copied the screenshots to docs/images/admin/"
fi
exit "$status"
