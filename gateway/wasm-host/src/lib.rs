//! A Proxy-Wasm ABI v0.2.1 host on wasmtime.
//!
//! Plugins built with the official SDKs for Envoy run unchanged: the host defines every
//! function the SDKs import, with the statuses and encodings the spec names. The gateway
//! loads a [`Plugin`] through a [`Runtime`], creates an [`HttpContext`] per request, and
//! drives it through the request's phases with an [`HttpStream`] that carries the headers
//! and bodies.
//!
//! Safety of the host: every pointer and length from a plugin is bounds-checked
//! ([`guest`] module), every call is bounded in time (epoch interruption) and memory (a
//! store limiter), and a plugin that fails poisons only its own instance, which the pool
//! replaces. The gateway decides what a failure means for the request (fail closed unless
//! the plugin is marked fail-open).

pub mod abi;
pub mod error;
mod guest;
pub mod headers;
mod host_fns;
pub mod http_call;
mod instance;
pub mod metrics;
mod plugin;
pub mod properties;
mod runtime;
pub mod shared;
mod state;
pub mod stream;

pub use error::{LoadError, PluginFailure};
pub use headers::HeaderMap;
pub use http_call::{
    ClusterDispatcher, HttpCallDispatcher, HttpCallError, HttpCallRequest, HttpCallResponse,
};
pub use plugin::{BodyVerdict, HttpContext, Plugin, PluginSpec, PluginStats, Verdict};
pub use runtime::{Runtime, RuntimeOptions};
pub use state::PluginLimits;
pub use stream::{HttpStream, LocalResponse, StreamInfo, StreamState, TlsInfo};
