#!/usr/bin/env bash
# The README's run command: installs what is missing, builds `paved`, and runs `paved up` —
# the control plane (SQLite), a gateway connected to it, a demo upstream and the demo app
# onboarded. Extra arguments go to `paved up` (see `paved up --help`). Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/paved/target}"
echo "up: building paved (the first build takes a while on 2 cores)"
cargo build --locked -p paved
exec "$CARGO_TARGET_DIR/debug/paved" up "$@"
