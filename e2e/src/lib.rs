//! The end-to-end harness: real upstreams, gateways run in-process, a plain HTTP client,
//! and the benchmark drivers. Used by the gateway's integration tests, `e2e/tests/` and the
//! benchmark binaries in `src/bin/`; a real headless browser for the UI tests ([`browser`]).

pub mod browser;
pub mod harness;
pub mod loadgen;
pub mod relay;
