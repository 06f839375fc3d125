#!/usr/bin/env bash
# Single-row INSERTs from an outside load generator (wrk): the engine issue's bar "INSERT c1
# p99 <= 1 ms over a 60 s run with the default flush policy". Starts a release server on a
# temp dir (or uses KALAMDB_SERVER=<binary>), makes a USER table with the default flush policy
# (rows:10000, interval:300), runs `wrk -t1 -c1` for DURATION seconds (default 60) posting
# INSERTs with increasing ids, then prints wrk's latency distribution and the policy flushes
# that ran meanwhile. Needs `wrk` (apt install wrk). A measurement, not a test.
#   scripts/wrk-insert.sh [DURATION] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-60}"
connections="${2:-1}"
command -v wrk >/dev/null || { echo "wrk is not installed (apt install wrk)" >&2; exit 2; }
server="${KALAMDB_SERVER:-}"
if [ -z "$server" ]; then
    cargo build --release -q -p kalamdb-server
    server="${CARGO_TARGET_DIR:-target}/release/kalamdb-server"
fi
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
password="wrk-bench-root-password"
KALAMDB_ROOT_PASSWORD="$password" "$server" --listen 127.0.0.1:0 --data-dir "$work/data" \
    >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do
    url=$(sed -n 's/^kalamdb-server listening on //p' "$work/out")
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start:" >&2; cat "$work/err" >&2; exit 1; }
token=$(curl -sf "$url/v1/api/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"root\",\"password\":\"$password\"}" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
sql() {
    curl -sf "$url/v1/api/sql" -H "authorization: Bearer $token" -H 'content-type: application/json' \
        -d "{\"sql\": \"$1\"}"
}
sql "CREATE NAMESPACE bench; CREATE USER TABLE bench.t (id BIGINT PRIMARY KEY, v INT, note TEXT)" >/dev/null
cat >"$work/insert.lua" <<LUA
local id = 0
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $token"
request = function()
  id = id + 1
  local body = '{"sql": "INSERT INTO bench.t (id, v, note) VALUES (' .. id .. ', 1, \'a row written by wrk\')"}'
  return wrk.format(nil, "/v1/api/sql", nil, body)
end
response = function(status, headers, body)
  if status ~= 200 then
    io.stderr:write("status " .. status .. ": " .. body .. "\n")
  end
end
LUA
# With several connections each thread's counter would collide: one thread per connection,
# each starting its ids in its own range.
if [ "$connections" -gt 1 ]; then
    sed -i 's/^local id = 0$/local id = math.random(1, 1000000) * 1000000/' "$work/insert.lua"
fi
wrk -t"$connections" -c"$connections" -d"${duration}s" --latency -s "$work/insert.lua" "$url"
sql "SELECT count(*) AS flushes, sum(rows) AS rows_flushed FROM system.jobs WHERE job_type = 'flush' AND status = 'completed'"
echo
sql "SELECT count(*) AS rows_written FROM bench.t"
echo
