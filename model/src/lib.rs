//! Shared models of Paved, compiled into both the gateway and the control plane:
//!
//! - [`snapshot`]: the gateway configuration snapshot, the one model the gateway runs from
//!   (a YAML file for `paved gateway --config FILE`, or JSON pushed by the control plane);
//! - [`routing`]: pure route matching over a snapshot's routes ([`routing::RouteTable`]);
//! - [`intent`]: the `paved.yaml` app intent written by developers, with its JSON Schema;
//! - [`compile`](mod@compile): pure, deterministic compilation of intents into a snapshot;
//! - [`plugin_config`]: the JSON configuration of each built-in plugin, shared by the plugins
//!   and the compiler;
//! - [`error`]: diagnostics that name the source, field path, line and column of a problem;
//! - [`position`]: field paths mapped back to lines and columns of YAML text.
//!
//! Features: `yaml` (YAML loading) and `intent` (the intent, its schema and the compiler; implies
//! `yaml`) are on by default. With `default-features = false` the crate has only serde and
//! serde_json behind it, for plugins built for `wasm32-wasip1`.

#[cfg(feature = "intent")]
pub mod compile;
pub mod error;
#[cfg(feature = "intent")]
pub mod intent;
mod names;
pub mod plugin_config;
pub mod position;
pub mod routing;
pub mod snapshot;

#[cfg(feature = "intent")]
pub use compile::{CompileError, CompileOptions, compile};
pub use error::{Diagnostic, Location, ModelError};
#[cfg(feature = "intent")]
pub use intent::Intent;
pub use routing::RouteTable;
pub use snapshot::Snapshot;
