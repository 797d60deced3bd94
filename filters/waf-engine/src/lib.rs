//! The detection engine of the paved WAF, in the spirit of the OWASP Core Rule Set.
//!
//! Pure Rust with no Proxy-Wasm dependency: the `waf` plugin feeds it the request and turns
//! its [`Decision`] into a response; everything here is unit-tested natively and builds for
//! `wasm32-wasip1` unchanged.
//!
//! The pipeline:
//! 1. [`inspect`] walks a [`Request`]: protocol checks on the head, then every value — the
//!    path and its segments, query and body arguments (form, JSON keys and strings,
//!    multipart fields and file names), cookies, and the headers attacks travel in.
//! 2. Each value is [normalised](normalize) (URL decoding, repeated and IIS `%u` decoding,
//!    overlong UTF-8, HTML entities, JavaScript escapes, null bytes, case, whitespace, SQL
//!    comments) and handed to the [detectors](detect) of each attack family.
//! 3. A [`Waf`] built from the route's [`WafConfig`](paved_model::plugin_config::WafConfig)
//!    keeps the rules enabled at its paranoia level, drops excluded matches, sums the
//!    anomaly scores and compares the total with the threshold: allow, detect or deny.
//!
//! Every rule has a CRS-style ID, a family, a paranoia level and a score ([`rule::RULES`]).

pub mod detect;
pub mod engine;
pub mod inspect;
pub mod normalize;
pub mod parse;
pub mod request;
pub mod rule;

pub use engine::{Action, ConfigError, Decision, Waf};
pub use inspect::{Findings, Hit, inspect};
pub use request::{Body, Location, Request, Target};
pub use rule::{Family, Rule, RuleId};
