//! The gateway's own metrics (requests, latencies, denials, upstream failures, plugin calls),
//! in a registry of its own so that several gateways in one process do not collide.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::active::ActiveConfig;

/// Metrics of one gateway.
pub struct GatewayMetrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    denied: IntCounterVec,
    /// Connection failures to upstream endpoints.
    pub upstream_connect_failures: IntCounter,
    /// Configuration versions applied.
    pub reloads: IntCounterVec,
    /// The numeric version in force (0 when it is a string id).
    pub config_version: IntGauge,
    /// Time to build and apply a configuration.
    pub reload_seconds: Histogram,
    /// The access log sink's counters.
    pub access_log: crate::accesslog::AccessLogMetrics,
}

impl GatewayMetrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "paved_gateway_requests_total",
                "Requests by route and status",
            ),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "paved_gateway_request_duration_seconds",
                "Time from request to last byte",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )?;
        let denied = IntCounterVec::new(
            Opts::new(
                "paved_gateway_denied_total",
                "Requests denied, by route and filter",
            ),
            &["route", "filter"],
        )?;
        let upstream_connect_failures = IntCounter::new(
            "paved_gateway_upstream_connect_failures_total",
            "Failed connections to upstreams",
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "paved_gateway_config_reloads_total",
                "Configuration changes by result",
            ),
            &["result"],
        )?;
        let config_version = IntGauge::new(
            "paved_gateway_config_version",
            "The configuration version in force",
        )?;
        let reload_seconds = Histogram::with_opts(HistogramOpts::new(
            "paved_gateway_config_reload_seconds",
            "Time to build and swap in a configuration",
        ))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(denied.clone()))?;
        registry.register(Box::new(upstream_connect_failures.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(config_version.clone()))?;
        registry.register(Box::new(reload_seconds.clone()))?;
        let access_log = crate::accesslog::AccessLogMetrics {
            written: IntCounter::new(
                "paved_gateway_access_log_records_total",
                "Access log records written and synced",
            )?,
            write_errors: IntCounter::new(
                "paved_gateway_access_log_write_errors_total",
                "Failed access log writes (retried)",
            )?,
            unsynced_responses: IntCounter::new(
                "paved_gateway_access_log_unsynced_responses_total",
                "Responses sent before their access log record was synced (the sink stalled)",
            )?,
        };
        registry.register(Box::new(access_log.written.clone()))?;
        registry.register(Box::new(access_log.write_errors.clone()))?;
        registry.register(Box::new(access_log.unsynced_responses.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            denied,
            upstream_connect_failures,
            reloads,
            config_version,
            reload_seconds,
            access_log,
        })
    }

    /// Records one finished request.
    pub fn observe(&self, route: &str, status: u16, elapsed: Duration, denied_by: Option<&str>) {
        let status = status.to_string();
        self.requests
            .with_label_values(&[route, status.as_str()])
            .inc();
        self.latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
        if let Some(filter) = denied_by {
            self.denied.with_label_values(&[route, filter]).inc();
        }
    }

    /// Everything in Prometheus' text format: the gateway's metrics, each loaded plugin's
    /// call statistics, and the metrics plugins defined.
    pub fn render(&self, config: &ActiveConfig, plugin_metrics: &str) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for these metric types.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        let mut text = String::from_utf8_lossy(&out).into_owned();
        let mut seen = std::collections::HashSet::new();
        let mut lines = vec![
            "# TYPE paved_plugin_calls_total counter".to_owned(),
            "# TYPE paved_plugin_failures_total counter".to_owned(),
            "# TYPE paved_plugin_call_seconds_total counter".to_owned(),
            "# TYPE paved_plugin_instances_started_total counter".to_owned(),
        ];
        for plugin in config.routes.iter().flat_map(|r| r.chain.iter()) {
            let p = &plugin.plugin;
            let stats = p.stats();
            // One plugin may serve several routes; report it once.
            if !seen.insert(std::ptr::from_ref(stats) as usize) {
                continue;
            }
            let load =
                |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            let name = p.name();
            lines.push(format!(
                "paved_plugin_calls_total{{plugin=\"{name}\"}} {}",
                load(&stats.calls)
            ));
            lines.push(format!(
                "paved_plugin_failures_total{{plugin=\"{name}\"}} {}",
                load(&stats.failures)
            ));
            lines.push(format!(
                "paved_plugin_call_seconds_total{{plugin=\"{name}\"}} {}",
                load(&stats.call_nanos) as f64 / 1e9
            ));
            lines.push(format!(
                "paved_plugin_instances_started_total{{plugin=\"{name}\"}} {}",
                load(&stats.instances_started)
            ));
        }
        text.push_str(&lines.join("\n"));
        text.push('\n');
        text.push_str(plugin_metrics);
        text
    }
}
