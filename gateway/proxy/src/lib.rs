//! The Paved gateway: a Pingora proxy whose security filters are Proxy-Wasm plugins.
//!
//! A [`Gateway`] serves one configuration snapshot at a time ([`active::ActiveConfig`]):
//! routes by host and path prefix, each with a chain of filters ([`chain`]) and a cluster
//! of upstream endpoints ([`upstream`]) or a static site ([`static_files`]). Filters run in
//! the phases of [`proxy::GatewayProxy`]; a filter that fails denies the request unless it
//! is fail-open. Reloads build the new configuration off to the side and swap it in.

pub mod accesslog;
pub mod active;
pub mod admin;
pub mod chain;
pub mod distribution;
pub mod error;
pub mod headers;
pub mod internal;
pub mod metrics;
pub mod proxy;
pub mod server;
pub mod static_files;
pub mod tls;
pub mod traffic_shipper;
pub mod upstream;

pub use error::ConfigError;
pub use server::{Gateway, GatewayOptions, ShutdownHandle};
