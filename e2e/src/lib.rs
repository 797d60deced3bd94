//! The end-to-end harness: real upstreams, gateways run in-process, a plain HTTP client,
//! and the benchmark drivers. Used by the gateway's integration tests, `e2e/tests/` and the
//! benchmark binaries in `src/bin/`; a real headless browser for the UI tests ([`browser`]);
//! an independent OpenID provider for the sign-in tests ([`oidc_provider`]); a static
//! OpenID issuer that signs bearer tokens for benchmarks and tests ([`issuer`]).

pub mod browser;
pub mod harness;
pub mod issuer;
pub mod loadgen;
pub mod oidc_provider;
pub mod relay;
