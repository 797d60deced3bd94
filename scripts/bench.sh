#!/usr/bin/env bash
# Benchmarks (not tests), results in docs/benchmarks.md:
#   `scripts/bench.sh gateway [seconds-per-round] [rounds]`: throughput and latency of the gateway
#     against nginx (installs the load generator and the reference proxy);
#   `scripts/bench.sh apply [applies] [pause-ms]`: time from `applyIntent` until a running gateway
#     enforces the change (default 100 applies, back to back).
# Builds in release mode; PAVED_BENCH_PROFILE=dev builds the debug profile instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/paved/target}"
profile="${PAVED_BENCH_PROFILE:-release}"
case "${1:-}" in
  gateway)
    shift
    for p in wrk nginx-light; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p"
    done
    cargo run --profile "$profile" --locked -p paved-e2e --bin bench_gateway -- "$@" ;;
  apply)
    shift
    cargo run --profile "$profile" --locked -p paved-e2e --features apply-bench --bin bench_apply -- "$@" ;;
  *)
    echo "usage: scripts/bench.sh gateway [seconds-per-round] [rounds] | apply [applies] [pause-ms]" >&2
    exit 2 ;;
esac
