#!/usr/bin/env bash
# The README's test command: installs what is missing, builds host, wasm and BPF code, and
# runs every test of the workspace. Extra arguments go to `cargo test` (e.g. `-p paved-model`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# A target directory outside the clone: later runs (and CI on this machine) start warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/paved/target}"
echo "test: cargo test --workspace (target dir $CARGO_TARGET_DIR)"
exec cargo test --workspace --locked "$@"
