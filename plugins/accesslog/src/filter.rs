//! The request context: gather the facts and enqueue the record, once per request.
//!
//! The record is made when the response's headers pass this filter, so that the gateway can
//! have it on disk before the client has the response (its durability promise); `on_log`
//! makes it for requests whose response this filter never saw (answered by an earlier filter,
//! which the gateway logs before it sends, or abandoned by the client). Latency is therefore
//! the time to the response's headers.

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use log::warn;
use paved_model::plugin_config::AccesslogConfig;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MetricType};

use crate::queue::Queue;
use crate::record::{Record, redact_path};
use crate::time::rfc3339_millis;

/// Filters whose decisions are read (`paved.decision.<name>`), besides those listed in the
/// `paved.decisions` property (comma-separated filter names a filter may append itself to).
pub const KNOWN_FILTERS: &[&str] = &["authn", "authz", "waf", "ratelimit", "headers", "cors"];
/// Detail properties read for the record's `details`.
pub const KNOWN_DETAILS: &[&str] = &[
    "paved.waf.rules",
    "paved.waf.score",
    "paved.ratelimit.rule",
    "paved.ratelimit.backend",
    "paved.authn.method",
    "paved.authn.reason",
    "paved.authz.reason",
    "paved.authz.population",
];

/// Records the queue refused (full, or no queue): the gateway's back-pressure signal.
pub const DROPPED_METRIC: &str = "paved_accesslog_dropped_total";

/// One request's record.
pub struct AccesslogFilter {
    config: Rc<AccesslogConfig>,
    queue: Rc<Queue>,
    /// Whether this request's record was made.
    logged: bool,
}

impl AccesslogFilter {
    /// A context for one request.
    pub fn new(config: Rc<AccesslogConfig>, queue: Rc<Queue>) -> AccesslogFilter {
        AccesslogFilter {
            config,
            queue,
            logged: false,
        }
    }

    fn text(&self, path: &[&str]) -> Option<String> {
        self.get_property(path.to_vec())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .filter(|v| !v.is_empty())
    }

    /// An Envoy integer property: 8 bytes, little-endian.
    fn int(&self, path: &[&str]) -> Option<i64> {
        let bytes = self.get_property(path.to_vec())?;
        Some(i64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
    }

    fn record(&self) -> Record {
        let now_ns = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let start_ns = self
            .int(&["request", "time"])
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(now_ns);
        let header = |name: &str| self.get_http_request_header(name);
        let source = self.text(&["source", "address"]).unwrap_or_default();
        let mut record = Record {
            time: rfc3339_millis(start_ns),
            request_id: self.text(&["request", "id"]).unwrap_or_default(),
            app: self.config.app.clone(),
            route: self.config.route.clone(),
            route_name: self.text(&["route_name"]).unwrap_or_default(),
            method: self
                .text(&["request", "method"])
                .or_else(|| header(":method"))
                .unwrap_or_default(),
            host: self
                .text(&["request", "host"])
                .or_else(|| header(":authority"))
                .unwrap_or_default(),
            path: redact_path(
                &self
                    .text(&["request", "path"])
                    .or_else(|| header(":path"))
                    .unwrap_or_default(),
            ),
            status: self.int(&["response", "code"]).unwrap_or(0),
            latency_ms: now_ns.saturating_sub(start_ns) as f64 / 1e6,
            bytes_in: header("content-length").and_then(|v| v.trim().parse().ok()),
            bytes_out: self
                .get_http_response_header("content-length")
                .and_then(|v| v.trim().parse().ok()),
            client_ip: paved_client_ip(&source),
            identity: self.text(&["paved", "identity", "subject"]),
            ..Record::default()
        };
        for name in &self.config.request_headers {
            if let Some(value) = header(&name.to_ascii_lowercase()) {
                record
                    .headers
                    .insert(name.to_ascii_lowercase(), value.into());
            }
        }
        let listed = self.text(&["paved", "decisions"]).unwrap_or_default();
        let filters = KNOWN_FILTERS
            .iter()
            .copied()
            .chain(listed.split(',').map(str::trim).filter(|f| !f.is_empty()));
        for filter in filters {
            if let Some(decision) = self.text(&["paved", "decision", filter]) {
                record.add_property(&format!("paved.decision.{filter}"), &decision);
            }
        }
        for name in KNOWN_DETAILS {
            let path: Vec<&str> = name.split('.').collect();
            if let Some(value) = self.text(&path) {
                record.add_property(name, &value);
            }
        }
        record
    }
}

/// The client address without its port.
fn paved_client_ip(source: &str) -> String {
    if let Some(rest) = source.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_string();
    }
    match source.rsplit_once(':') {
        Some((ip, port)) if !ip.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            ip.to_string()
        }
        _ => source.to_string(),
    }
}

impl Context for AccesslogFilter {}

impl AccesslogFilter {
    /// Makes and enqueues the record, once.
    fn log_once(&mut self) {
        if std::mem::replace(&mut self.logged, true) {
            return;
        }
        let record = self.record();
        if !self.queue.push(self, &record.to_json()) {
            warn!(
                "accesslog: record of request {} dropped (queue unavailable or full)",
                record.request_id
            );
            if let Ok(id) = hostcalls::define_metric(MetricType::Counter, DROPPED_METRIC) {
                let _ = hostcalls::increment_metric(id, 1);
            }
        }
    }
}

impl HttpContext for AccesslogFilter {
    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.log_once();
        Action::Continue
    }

    fn on_log(&mut self) {
        self.log_once();
    }
}
