#!/usr/bin/env bash
# Fuzzes KalamDB's untrusted inputs with cargo-fuzz (libFuzzer): the SQL front end
# (statements and subscription SQL), WebSocket frames and backup manifests.
#
#   scripts/fuzz.sh [seconds per target, default 600] [target ...]
#
# An input that panics, or takes more than 1 s (-timeout=1), is a failure: libFuzzer saves it
# under server/fuzz/artifacts/<target>/. Copy it to server/fuzz/regressions/<target>/ once
# fixed: `cargo test` replays every file there (src/fuzzing.rs). The corpus grows in
# $HOME/.cache/kalamdb-fuzz/corpus/<target>, seeded from server/fuzz/seeds/<target>.
# Record runs in RELIABILITY.md. Needs no nightly toolchain: RUSTC_BOOTSTRAP lets the stable
# compiler take cargo-fuzz's flags. The first build compiles the server's dependencies with
# coverage instrumentation (about 30 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sql_front ws_frame backup_manifest)
export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${KALAMDB_FUZZ_TARGET_DIR:-$HOME/.cache/kalamdb-fuzz-target}"
command -v cargo-fuzz >/dev/null || cargo install -q cargo-fuzz --locked
cache="$HOME/.cache/kalamdb-fuzz/corpus"
cd server
cargo fuzz build --sanitizer none
for t in "${targets[@]}"; do
  mkdir -p "$cache/$t" "fuzz/artifacts/$t"
  cp -n fuzz/seeds/"$t"/* "$cache/$t/" 2>/dev/null || true
  echo "== $t: ${seconds}s"
  cargo fuzz run --sanitizer none "$t" "$cache/$t" -- \
    -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" 2>&1 | tee "/tmp/kalamdb-fuzz-$t.log" | grep -E "^#[0-9]+ +(DONE|INITED)|stat::|ERROR|Timeout|panicked" || true
  echo "corpus: $(ls "$cache/$t" | wc -l) inputs; artifacts: $(ls "fuzz/artifacts/$t" | wc -l)"
done
