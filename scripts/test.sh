#!/usr/bin/env bash
# The README's test command: installs what is missing, builds host, wasm and BPF code, and
# runs every test of the workspace. Extra arguments go to `cargo test` (e.g. `-p paved-model`).
# The last line is the total over every test binary: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# A target directory outside the clone: later runs (and CI on this machine) start warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/paved/target}"
echo "test: cargo test --workspace (target dir $CARGO_TARGET_DIR)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
