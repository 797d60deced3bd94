#!/usr/bin/env bash
# Benchmarks (not tests): `scripts/bench.sh gateway [seconds-per-round] [rounds]`. Installs the load generator
# and the reference proxy, builds in release mode, prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
for p in wrk nginx-light; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p"
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/paved/target}"
case "${1:-}" in
  gateway) shift; cargo run --release --locked -p paved-e2e --bin bench_gateway -- "$@" ;;
  *) echo "usage: scripts/bench.sh gateway [seconds-per-round] [rounds]" >&2; exit 2 ;;
esac
