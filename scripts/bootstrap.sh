#!/usr/bin/env bash
# Installs everything Paved's build and tests need on a fresh Debian machine.
# Idempotent: each step checks first and does nothing when its tool is already there,
# so a second run takes seconds. Called by scripts/up.sh and scripts/test.sh.
set -euo pipefail

say()  { printf '\033[1mbootstrap:\033[0m %s\n' "$*"; }
fail() {
  printf '\033[31mbootstrap failed at step "%s"\033[0m\n%s\n' "$1" "$2" >&2
  exit 1
}

# Debian packages, grouped by what needs them (see docs/DEVELOPING.md).
APT_PACKAGES=(
  # pingora's zlib-ng build
  cmake pkg-config
  # tests: a real HTTP/2 and TLS client
  curl
  # wasm32-wasip1 guest builds (plugins): rustc/cargo 1.96 with std sources, and libc.a
  rustc-web cargo-web rust-web-src wasi-libc
  # rust-lld (the wasm linker rustc calls) comes from rust-web-llvm and lld-22
  rust-web-llvm lld-22
  # BPF guest build (flow agent): core for bpfel-unknown-none, LLVM 22 for bpf-linker
  libstd-rust-web-dev-bpf llvm-22-dev libpolly-22-dev
  # UI tests: a real headless browser driven over WebDriver
  chromium chromium-driver
  # TLS tests (control-plane/tests/acme_dns.rs): Let's Encrypt's ACME test server and an
  # authoritative DNS server accepting TSIG-signed updates
  pebble knot
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq || fail "apt-get update" "Check that Debian's package mirror is reachable."
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || fail "apt-get install" "Try by hand: apt-get install ${missing[*]}"
else
  say "Debian packages present"
fi

# bpf-linker, linked against the same LLVM (22) as Debian's rustc 1.96.
if ! command -v bpf-linker >/dev/null 2>&1; then
  say "installing bpf-linker (cargo install, takes a few minutes once)"
  LLVM_PREFIX=/usr/lib/llvm-22 LLVM_SYS_221_PREFIX=/usr/lib/llvm-22 PATH=/usr/lib/llvm-22/bin:$PATH \
    cargo install --locked bpf-linker --no-default-features --features llvm-22 \
    || fail "bpf-linker" "Needs llvm-22-dev and libpolly-22-dev; see docs/DEVELOPING.md."
else
  say "bpf-linker present"
fi

# wasm-bindgen's CLI generates the UI's JS glue; it must be exactly the version of the
# `wasm-bindgen` crate pinned in ui/Cargo.toml.
WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = { version = "=\([0-9.]*\)".*/\1/p' "$(dirname "$0")/../ui/Cargo.toml")
[ -n "$WASM_BINDGEN_VERSION" ] || fail "wasm-bindgen" "ui/Cargo.toml must pin wasm-bindgen with =X.Y.Z"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (cargo install, takes a few minutes once)"
  cargo install --locked --force wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" \
    || fail "wasm-bindgen-cli" "cargo install wasm-bindgen-cli --version $WASM_BINDGEN_VERSION"
else
  say "wasm-bindgen $WASM_BINDGEN_VERSION present"
fi

# The authn tests sign in at a real, independently written OpenID provider: panva's
# oidc-provider on Node.js (e2e/oidc-provider). `npm ci` runs only when node_modules is
# missing or package-lock.json changed since the last install (a stamp records its hash).
OIDC_DIR="$(cd "$(dirname "$0")/.." && pwd)/e2e/oidc-provider"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "installing Node.js and npm (the test OpenID provider runs on them)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq || fail "apt-get update" "Check that Debian's package mirror is reachable."
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm \
    || fail "nodejs" "Install Node.js >= 20 and npm, then run scripts/bootstrap.sh again."
fi
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$NODE_MAJOR" -ge 20 ] || fail "nodejs" "e2e/oidc-provider needs Node.js >= 20 (found $(node --version 2>/dev/null || echo none))."
LOCK_HASH=$(sha256sum "$OIDC_DIR/package-lock.json" | cut -d' ' -f1)
if [ ! -d "$OIDC_DIR/node_modules" ] || [ "$(cat "$OIDC_DIR/node_modules/.paved-lock-sha256" 2>/dev/null)" != "$LOCK_HASH" ]; then
  say "installing the test OpenID provider's npm packages (npm ci in e2e/oidc-provider)"
  (cd "$OIDC_DIR" && npm ci --no-audit --no-fund --loglevel=error) \
    || fail "npm ci" "npm ci failed in e2e/oidc-provider: check that the npm registry is reachable (npm config get registry) and retry."
  echo "$LOCK_HASH" > "$OIDC_DIR/node_modules/.paved-lock-sha256"
else
  say "test OpenID provider's npm packages present"
fi

# BPF tracepoints are attached through tracefs.
if [ ! -e /sys/kernel/tracing/events ] && [ "$(id -u)" -eq 0 ]; then
  say "mounting tracefs at /sys/kernel/tracing"
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || say "could not mount tracefs (BPF tests will say why they skip)"
fi

say "ready"
