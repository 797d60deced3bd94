//! The plugin's counters, defined once per instance; every instance updates the same series.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// A counter this plugin increments.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    /// The cluster-wide service did not answer (or not usably): the local limit decided.
    Degraded,
    /// Requests refused with 429 by a rate limit.
    Denied,
    /// Requests refused with 429 by the in-flight cap (flood guard).
    FloodDenied,
    /// Keys that had to share a table's overflow slot (more live keys than slots).
    Overflow,
    /// Shared data failed (full, or contended beyond retries): the request was let through.
    StoreErrors,
}

impl Counter {
    /// The metric's name, as exported by the gateway.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Degraded => "paved_ratelimit_degraded_total",
            Counter::Denied => "paved_ratelimit_denied_total",
            Counter::FloodDenied => "paved_ratelimit_flood_denied_total",
            Counter::Overflow => "paved_ratelimit_overflow_total",
            Counter::StoreErrors => "paved_ratelimit_store_errors_total",
        }
    }

    /// Adds one. Defining is idempotent (same name, same ID), so it is done on use.
    pub fn increment(self) {
        if let Ok(id) = hostcalls::define_metric(MetricType::Counter, self.name()) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}
