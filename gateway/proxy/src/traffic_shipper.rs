//! Shipping access-log records to the control plane, for its traffic dashboards.
//!
//! The access-log sink ([`crate::accesslog`]) hands every record it drains to a
//! [`TrafficBacklog`] (besides writing it to the local JSONL file, which stays the complete
//! record). When the gateway runs against a control plane, [`run`] (started by
//! [`crate::distribution::watch`]) sends the backlog in batches to
//! `POST /v1/gateways/{id}/traffic` with the gateway token, and removes records only once the
//! control plane acknowledged them (2xx). While the control plane is away, records wait in the
//! backlog and the shipper retries with exponential backoff; the backlog is bounded in records
//! and bytes, and when it is full the oldest records not in flight are dropped and counted
//! (`paved_gateway_traffic_dropped_total{reason="backlog_full"}`). A batch the control plane
//! refuses as invalid (400, 413) is dropped and counted (`reason="rejected"`): sending it again
//! would be refused again and hold everything behind it.
//!
//! Each record is reduced to the fields the control plane reads and cut to its limits (see
//! docs/config-distribution.md), so an unusual request (a very long path) cannot make a whole
//! batch invalid.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use serde_json::{Map, Value};

use crate::distribution::{Backoff, ControlPlane, WatchError};

/// Limits of the shipper: batch sizes, backlog bounds, timing.
#[derive(Debug, Clone)]
pub struct ShipperOptions {
    /// Most records in one batch (the control plane accepts up to 1000).
    pub batch_records: usize,
    /// Largest batch body in bytes (the control plane accepts up to 4 MiB).
    pub batch_bytes: usize,
    /// Most records waiting for the control plane.
    pub backlog_records: usize,
    /// Most bytes waiting for the control plane.
    pub backlog_bytes: usize,
    /// How long a partial batch waits for more records before it is sent.
    pub linger: Duration,
    /// Time allowed for one batch to be answered.
    pub timeout: Duration,
}

impl Default for ShipperOptions {
    fn default() -> Self {
        ShipperOptions {
            batch_records: 500,
            batch_bytes: 1 << 20,
            backlog_records: 100_000,
            backlog_bytes: 32 << 20,
            linger: Duration::from_millis(500),
            timeout: Duration::from_secs(15),
        }
    }
}

/// Limits of the control plane's traffic endpoint (control-plane/src/services/traffic.rs):
/// longer values are cut here rather than refused there.
mod limits {
    pub const APP: usize = 63;
    pub const REQUEST_ID: usize = 128;
    pub const ROUTE: usize = 1024;
    pub const METHOD: usize = 32;
    pub const PATH: usize = 4096;
    pub const CLIENT_IP: usize = 64;
    pub const SUBJECT: usize = 512;
    pub const DECISIONS: usize = 32;
    pub const FILTER: usize = 64;
    pub const DECISION: usize = 256;
    pub const WAF_RULES: usize = 64;
    pub const WAF_RULE: usize = 64;
}

/// Counters of the shipper, in a registry of their own (rendered with the gateway's metrics).
struct ShipperMetrics {
    registry: Registry,
    shipped: IntCounter,
    dropped: IntCounterVec,
    backlog: IntGauge,
    failures: IntCounter,
}

impl ShipperMetrics {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let shipped = IntCounter::new(
            "paved_gateway_traffic_shipped_total",
            "Access-log records acknowledged by the control plane",
        )?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "paved_gateway_traffic_dropped_total",
                "Access-log records not shipped to the control plane, by reason",
            ),
            &["reason"],
        )?;
        let backlog = IntGauge::new(
            "paved_gateway_traffic_backlog_records",
            "Access-log records waiting for the control plane",
        )?;
        let failures = IntCounter::new(
            "paved_gateway_traffic_ship_failures_total",
            "Failed attempts to ship a batch (retried)",
        )?;
        registry.register(Box::new(shipped.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        registry.register(Box::new(backlog.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        Ok(ShipperMetrics {
            registry,
            shipped,
            dropped,
            backlog,
            failures,
        })
    }
}

#[derive(Default)]
struct State {
    records: VecDeque<Vec<u8>>,
    bytes: usize,
    /// The first `in_flight` records are in the batch being sent.
    in_flight: usize,
}

/// A batch taken from the backlog: a JSON array of records.
struct Batch {
    body: Vec<u8>,
    count: usize,
}

/// Records waiting for the control plane: bounded, filled by the access-log sink, emptied by
/// one shipper.
pub struct TrafficBacklog {
    options: ShipperOptions,
    enabled: AtomicBool,
    state: Mutex<State>,
    ready: tokio::sync::Notify,
    metrics: ShipperMetrics,
}

impl std::fmt::Debug for TrafficBacklog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficBacklog")
            .field("options", &self.options)
            .field("enabled", &self.enabled.load(Ordering::Relaxed))
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl TrafficBacklog {
    /// An empty backlog that takes nothing until [`TrafficBacklog::enable`] (shipping is on
    /// only when the gateway runs against a control plane).
    pub fn new(options: ShipperOptions) -> Result<Self, prometheus::Error> {
        Ok(TrafficBacklog {
            options,
            enabled: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            ready: tokio::sync::Notify::new(),
            metrics: ShipperMetrics::new()?,
        })
    }

    /// Starts taking records.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Release);
    }

    /// Whether records are taken.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every update is one step).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one access-log record (a JSON line) when shipping is on: reduced to what the
    /// control plane reads, or dropped and counted when it is not a record.
    pub fn offer(&self, line: &[u8]) {
        if !self.is_enabled() {
            return;
        }
        match wire_record(line) {
            Some(record) => self.push(record),
            None => {
                tracing::debug!(
                    "access-log record without time, app, method, path or status; not shipped"
                );
                self.metrics.dropped.with_label_values(&["malformed"]).inc();
            }
        }
    }

    fn push(&self, record: Vec<u8>) {
        let mut dropped = 0u64;
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            let full = |s: &State| {
                s.records.len() >= self.options.backlog_records
                    || s.bytes + record.len() > self.options.backlog_bytes
            };
            // Make room by dropping the oldest records that are not being sent (those are
            // acknowledged or retried as a whole).
            while full(state) && state.records.len() > state.in_flight {
                let index = state.in_flight;
                if let Some(old) = state.records.remove(index) {
                    state.bytes -= old.len();
                    dropped += 1;
                }
            }
            if full(state) {
                dropped += 1;
            } else {
                state.bytes += record.len();
                state.records.push_back(record);
            }
            self.metrics.backlog.set(state.records.len() as i64);
        }
        if dropped > 0 {
            self.metrics
                .dropped
                .with_label_values(&["backlog_full"])
                .inc_by(dropped);
            tracing::warn!(
                dropped,
                bound = self.options.backlog_records,
                "traffic backlog full; oldest records dropped (the local access log keeps them)"
            );
        }
        self.ready.notify_one();
    }

    /// The next batch (the oldest records), marked in flight.
    fn take_batch(&self) -> Option<Batch> {
        let mut state = self.lock();
        if state.records.is_empty() {
            return None;
        }
        let mut body = Vec::with_capacity(self.options.batch_bytes.min(state.bytes + 2));
        body.push(b'[');
        let mut count = 0;
        for record in &state.records {
            let grown = body.len() + record.len() + 2;
            if count > 0
                && (count >= self.options.batch_records || grown > self.options.batch_bytes)
            {
                break;
            }
            if count > 0 {
                body.push(b',');
            }
            body.extend_from_slice(record);
            count += 1;
        }
        body.push(b']');
        state.in_flight = count;
        Some(Batch { body, count })
    }

    /// The batch in flight was acknowledged (or refused for good): it leaves the backlog.
    fn settle(&self) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let n = state.in_flight.min(state.records.len());
        for record in state.records.drain(..n) {
            state.bytes -= record.len();
        }
        state.in_flight = 0;
        self.metrics.backlog.set(state.records.len() as i64);
    }

    /// The batch in flight failed: it stays, first in line.
    fn retry_later(&self) {
        self.lock().in_flight = 0;
    }

    /// The shipper's metrics in Prometheus' text format.
    pub fn render_metrics(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for these metric types.
        let _ = TextEncoder::new().encode(&self.metrics.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// `s` cut to `max` characters.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => s[..end].to_string(),
        None => s.to_string(),
    }
}

/// The record as sent to the control plane: the fields it reads, cut to its limits. `None`
/// when the line is not an access-log record.
pub fn wire_record(line: &[u8]) -> Option<Vec<u8>> {
    let Ok(Value::Object(record)) = serde_json::from_slice::<Value>(line) else {
        return None;
    };
    let text = |field: &str| record.get(field).and_then(Value::as_str);
    let (time, app, method, path) = (text("time")?, text("app")?, text("method")?, text("path")?);
    let status = record.get("status").and_then(Value::as_i64)?;
    if app.is_empty() || method.is_empty() {
        return None;
    }
    let mut out = Map::new();
    out.insert("time".into(), time.into());
    let request_id = match text("request_id").filter(|id| !id.is_empty()) {
        Some(id) => cut(id, limits::REQUEST_ID),
        // The control plane keys records by request id; the gateway always sets one, but a
        // record without must still be shipped once, not merged with others.
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    out.insert("request_id".into(), request_id.into());
    out.insert("app".into(), cut(app, limits::APP).into());
    out.insert(
        "route".into(),
        cut(text("route").unwrap_or("/"), limits::ROUTE).into(),
    );
    out.insert("method".into(), cut(method, limits::METHOD).into());
    out.insert("path".into(), cut(path, limits::PATH).into());
    out.insert("status".into(), status.clamp(0, 999).into());
    if let Some(latency) = record.get("latency_ms").and_then(Value::as_f64) {
        out.insert("latency_ms".into(), latency.clamp(0.0, 86_400_000.0).into());
    }
    if let Some(ip) = text("client_ip") {
        out.insert("client_ip".into(), cut(ip, limits::CLIENT_IP).into());
    }
    if let Some(subject) = text("identity") {
        out.insert("identity".into(), cut(subject, limits::SUBJECT).into());
    }
    if let Some(Value::Object(decisions)) = record.get("decisions") {
        let kept: Map<String, Value> = decisions
            .iter()
            .filter(|(filter, _)| filter.len() <= limits::FILTER)
            .filter_map(|(filter, d)| {
                d.as_str()
                    .map(|d| (filter.clone(), Value::from(cut(d, limits::DECISION))))
            })
            .take(limits::DECISIONS)
            .collect();
        out.insert("decisions".into(), Value::Object(kept));
    }
    let rules = record
        .get("details")
        .and_then(|d| d.get("waf"))
        .and_then(|w| w.get("rules"));
    let rules: Vec<Value> = match rules {
        Some(Value::String(csv)) => csv
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| Value::from(cut(r, limits::WAF_RULE)))
            .collect(),
        // One rule id alone is written as a number.
        Some(Value::Number(n)) => vec![Value::from(n.to_string())],
        _ => Vec::new(),
    };
    if !rules.is_empty() {
        let rules: Vec<Value> = rules.into_iter().take(limits::WAF_RULES).collect();
        out.insert(
            "details".into(),
            serde_json::json!({ "waf": { "rules": rules } }),
        );
    }
    serde_json::to_vec(&Value::Object(out)).ok()
}

/// Why a batch was not shipped.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The control plane cannot be reached or failed; the batch is retried.
    #[error(transparent)]
    Unavailable(#[from] WatchError),
    /// The control plane refused the batch as invalid; sending it again would not help.
    #[error("the control plane refused the batch ({status}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The control plane's error.
        message: String,
    },
}

impl ControlPlane {
    /// Sends one batch (a JSON array of records) to `POST /v1/gateways/{id}/traffic`.
    pub async fn ship_traffic(&self, body: Vec<u8>, timeout: Duration) -> Result<(), ShipError> {
        let path = format!("/v1/gateways/{}/traffic", self.gateway_id);
        let (status, _, answer) = self
            .exchange("POST", &path, Bytes::from(body), timeout)
            .await?;
        match status {
            200..=299 => Ok(()),
            400 | 413 | 422 => Err(ShipError::Rejected {
                status,
                message: String::from_utf8_lossy(&answer)
                    .chars()
                    .take(1000)
                    .collect(),
            }),
            401 | 403 => Err(ShipError::Unavailable(WatchError::Unauthorized { status })),
            other => Err(ShipError::Unavailable(WatchError::Transport {
                address: self.address.clone(),
                message: format!("traffic batch answered {other}"),
            })),
        }
    }
}

/// Ships the backlog to the control plane, forever (one shipper per backlog). Enables the
/// backlog first.
pub async fn run(backlog: Arc<TrafficBacklog>, control_plane: ControlPlane) {
    backlog.enable();
    let options = backlog.options.clone();
    let mut backoff = Backoff::default();
    loop {
        if backlog.is_empty() {
            // Woken by new records; the timeout only guards against a lost wake-up.
            let _ = tokio::time::timeout(Duration::from_secs(1), backlog.ready.notified()).await;
            continue;
        }
        if backlog.len() < options.batch_records {
            // A partial batch waits a little: fewer, larger requests.
            tokio::time::sleep(options.linger).await;
        }
        let Some(batch) = backlog.take_batch() else {
            continue;
        };
        match control_plane
            .ship_traffic(batch.body, options.timeout)
            .await
        {
            Ok(()) => {
                backlog.settle();
                backlog.metrics.shipped.inc_by(batch.count as u64);
                backoff = Backoff::default();
                tracing::debug!(records = batch.count, "traffic batch shipped");
            }
            Err(ShipError::Rejected { status, message }) => {
                backlog.settle();
                backlog
                    .metrics
                    .dropped
                    .with_label_values(&["rejected"])
                    .inc_by(batch.count as u64);
                tracing::error!(status, error = %message, records = batch.count, "the control plane refused a traffic batch; dropped");
            }
            Err(ShipError::Unavailable(error)) => {
                backlog.retry_later();
                backlog.metrics.failures.inc();
                let delay = backoff.next_delay();
                tracing::warn!(error = %error, retry_in = ?delay, waiting = backlog.len(), "cannot ship traffic; keeping it");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str) -> Vec<u8> {
        serde_json::json!({
            "time": "2025-03-01T10:00:00.000Z", "request_id": id, "app": "shop", "route": "/",
            "method": "GET", "path": "/x", "status": 200, "latency_ms": 1.0,
            "client_ip": "10.0.0.1", "headers": {"user-agent": "curl"},
            "decisions": {"waf": "detect"}, "details": {"waf": {"rules": 942100, "score": 5}}
        })
        .to_string()
        .into_bytes()
    }

    fn backlog(records: usize) -> TrafficBacklog {
        let backlog = TrafficBacklog::new(ShipperOptions {
            backlog_records: records,
            batch_records: 2,
            ..ShipperOptions::default()
        })
        .expect("metrics");
        backlog.enable();
        backlog
    }

    fn ids(batch: &Batch) -> Vec<String> {
        let records: Vec<Value> = serde_json::from_slice(&batch.body).expect("a JSON array");
        records
            .iter()
            .map(|r| r["request_id"].as_str().expect("id").to_string())
            .collect()
    }

    #[test]
    fn records_keep_what_the_control_plane_reads_and_are_cut_to_its_limits() {
        let mut record: Value = serde_json::from_slice(&line("r1")).expect("json");
        record["path"] = Value::from(format!("/{}", "é".repeat(5000)));
        let wire: Value =
            serde_json::from_slice(&wire_record(record.to_string().as_bytes()).expect("kept"))
                .expect("json");
        assert_eq!(wire["path"].as_str().expect("path").chars().count(), 4096);
        assert_eq!(
            wire["details"]["waf"]["rules"],
            serde_json::json!(["942100"])
        );
        assert!(wire.get("headers").is_none(), "headers are not shipped");
        assert!(wire_record(b"not json").is_none());
        assert!(wire_record(br#"{"app": "x"}"#).is_none());
    }

    #[test]
    fn a_failed_batch_is_sent_again_and_an_acknowledged_one_leaves() {
        let b = backlog(10);
        for id in ["a", "b", "c"] {
            b.offer(&line(id));
        }
        let first = b.take_batch().expect("batch");
        assert_eq!(ids(&first), ["a", "b"]);
        b.retry_later();
        assert_eq!(ids(&b.take_batch().expect("again")), ["a", "b"]);
        b.settle();
        assert_eq!(ids(&b.take_batch().expect("rest")), ["c"]);
        b.settle();
        assert!(b.is_empty());
    }

    #[test]
    fn a_full_backlog_drops_the_oldest_records_not_in_flight_and_counts_them() {
        let b = backlog(3);
        for id in ["a", "b", "c"] {
            b.offer(&line(id));
        }
        let in_flight = b.take_batch().expect("batch");
        assert_eq!(ids(&in_flight), ["a", "b"]);
        b.offer(&line("d"));
        b.offer(&line("e"));
        assert_eq!(b.len(), 3);
        assert!(
            b.render_metrics()
                .contains("paved_gateway_traffic_dropped_total{reason=\"backlog_full\"} 2")
        );
        // The batch in flight was untouched: it leaves on its acknowledgement.
        b.settle();
        assert_eq!(ids(&b.take_batch().expect("rest")), ["e"]);
    }

    #[test]
    fn nothing_is_taken_before_shipping_is_enabled() {
        let b = TrafficBacklog::new(ShipperOptions::default()).expect("metrics");
        b.offer(&line("a"));
        assert!(b.is_empty());
    }
}
