#!/usr/bin/env bash
# Builds and runs the server with embedded defaults: listens on 127.0.0.1:8080, keeps
# data under ./data. Extra arguments go to kalamdb-server (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prerequisites.sh --server-only
exec cargo run --release -p kalamdb-server -- "$@"
