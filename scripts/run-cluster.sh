#!/usr/bin/env bash
# Starts a 3-node KalamDB cluster on 127.0.0.1 (release build): clients on ports 8081-8083,
# nodes talk to each other on 9081-9083, data under ./data/cluster/node-{1,2,3}. Node 1
# creates the cluster on its first start. Ctrl-C stops all three.
#
# Environment: KALAMDB_CLUSTER_SECRET (default: generated once into ./data/cluster/secret)
# and KALAMDB_ROOT_PASSWORD (default: generated once into ./data/cluster/root-password);
# both must be the same on every node. Extra arguments go to every kalamdb-server.
# See docs/cluster.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prerequisites.sh --server-only
cargo build --release -p kalamdb-server
target="${CARGO_TARGET_DIR:-target}"
bin="$target/release/kalamdb-server"
dir=data/cluster
mkdir -p "$dir"
secret_file() { # name → a random secret kept in $dir/name (mode 0600)
  if [ ! -s "$dir/$1" ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/$1")
  fi
  cat "$dir/$1"
}
export KALAMDB_CLUSTER_SECRET="${KALAMDB_CLUSTER_SECRET:-$(secret_file secret)}"
export KALAMDB_ROOT_PASSWORD="${KALAMDB_ROOT_PASSWORD:-$(secret_file root-password)}"
peers="1=127.0.0.1:9081,2=127.0.0.1:9082,3=127.0.0.1:9083"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for n in 1 2 3; do
  extra=()
  [ "$n" = 1 ] && extra+=(--cluster-bootstrap)
  "$bin" --node-id "$n" --listen "127.0.0.1:808$n" --cluster-listen "127.0.0.1:908$n" \
    --cluster-peers "$peers" --data-dir "$dir/node-$n" "${extra[@]}" "$@" &
  pids+=($!)
done
echo "3 nodes: http://127.0.0.1:8081 http://127.0.0.1:8082 http://127.0.0.1:8083 (root password in $dir/root-password unless set)"
echo "cluster state: curl http://127.0.0.1:8081/v1/api/cluster/health"
wait
