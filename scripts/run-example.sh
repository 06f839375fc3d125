#!/usr/bin/env bash
# Builds the TypeScript SDK and runs an example against a local KalamDB server.
#
#   scripts/run-example.sh todo-react     # Vite dev server for the React TODO app (Ctrl-C stops)
#   scripts/run-example.sh node-backend   # the Node.js backend script (exits when done)
#
# With KALAMDB_URL set (and ROOT_PASSWORD for the setup), it uses that server; otherwise it starts
# the debug server binary ($KALAMDB_SERVER, else $CARGO_TARGET_DIR/debug/kalamdb-server, built if missing) on a free
# port of 127.0.0.1 with a temporary data dir, creates app.todos, app.lists and the users alice/bob
# (passwords alice-password, bob-password) and stops it on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
example=${1:-}
case "$example" in
  todo-react | node-backend) ;;
  *) echo "usage: $0 todo-react|node-backend" >&2; exit 2 ;;
esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb-target}"

# The SDK: wasm (once), then TypeScript.
if [ ! -f sdks/typescript/wasm/web/kalamdb_wasm.js ] || [ ! -f sdks/typescript/wasm/node/kalamdb_wasm.js ]; then
  (cd sdks/typescript && npm ci --no-audit --no-fund)
  KALAMDB_WASM_SIZES=0 scripts/build-wasm.sh
fi
(cd sdks/typescript && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build)

pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  [ -n "${data:-}" ] && rm -rf "$data"
}
trap cleanup EXIT INT TERM

if [ -z "${KALAMDB_URL:-}" ]; then
  bin="${KALAMDB_SERVER:-$CARGO_TARGET_DIR/debug/kalamdb-server}"
  [ -x "$bin" ] || cargo build -p kalamdb-server
  data=$(mktemp -d)
  export ROOT_PASSWORD=${ROOT_PASSWORD:-root-example-password}
  out="$data/server.out"
  KALAMDB_ROOT_PASSWORD=$ROOT_PASSWORD KALAMDB_JWT_SECRET=example-jwt-secret-0123456789abcdef0123 \
    "$bin" --listen 127.0.0.1:0 --data-dir "$data/db" --bcrypt-cost 4 > "$out" 2>"$data/server.err" &
  pid=$!
  for _ in $(seq 1 300); do
    KALAMDB_URL=$(sed -n 's/^kalamdb-server listening on \(http:[^ ]*\).*/\1/p' "$out" | head -1)
    [ -n "$KALAMDB_URL" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$data/server.err" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$KALAMDB_URL" ] || { echo "server did not start" >&2; exit 1; }
  export KALAMDB_URL
  echo "run-example: kalamdb-server at $KALAMDB_URL (root password: $ROOT_PASSWORD)"
  sql() {
    curl -sf -u "root:$ROOT_PASSWORD" "$KALAMDB_URL/v1/api/sql" -H 'content-type: application/json' -d "{\"sql\": \"$1\"}" > /dev/null
  }
  sql "CREATE NAMESPACE IF NOT EXISTS app"
  sql "CREATE USER TABLE IF NOT EXISTS app.todos (id TEXT PRIMARY KEY DEFAULT UUID_V7(), title TEXT, done BOOLEAN DEFAULT FALSE, body CRDT_TEXT, list_id TEXT)"
  sql "CREATE USER TABLE IF NOT EXISTS app.lists (id TEXT PRIMARY KEY DEFAULT UUID_V7(), name TEXT)"
  sql "CREATE USER 'alice' WITH PASSWORD 'alice-password' ROLE user"
  sql "CREATE USER 'bob' WITH PASSWORD 'bob-password' ROLE user"
  echo "run-example: created app.todos, app.lists and the users alice / alice-password, bob / bob-password"
fi

cd "examples/$example"
[ -d node_modules ] || npm ci --no-audit --no-fund
case "$example" in
  todo-react) npx vite --host 127.0.0.1 ;;
  node-backend) node index.mjs ;;
esac
