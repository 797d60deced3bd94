//! The admin endpoint: `/healthz` (the process is up), `/readyz` (a configuration is
//! loaded and serving) and `/metrics` (Prometheus text).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::active::ActiveConfig;
use crate::metrics::GatewayMetrics;

/// The admin HTTP app.
pub struct AdminApp {
    /// The configuration in force.
    pub config: Arc<ArcSwap<ActiveConfig>>,
    /// Gateway metrics.
    pub metrics: Arc<GatewayMetrics>,
    /// Metrics the plugins defined.
    pub plugin_metrics: Arc<paved_wasm_host::metrics::MetricsRegistry>,
    /// Set once the listeners serve a configuration.
    pub ready: Arc<AtomicBool>,
}

fn text(status: u16, content_type: &str, body: String) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body.into_bytes())
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/healthz" => text(200, "text/plain", "ok\n".into()),
            "/readyz" if self.ready.load(Ordering::Relaxed) => {
                let version = self.config.load().snapshot.version.to_string();
                text(200, "text/plain", format!("ready version={version}\n"))
            }
            "/readyz" => text(503, "text/plain", "not ready\n".into()),
            "/metrics" => {
                let config = self.config.load();
                let body = self.metrics.render(
                    &config,
                    &self.plugin_metrics.render_prometheus("paved_wasm_"),
                );
                text(200, "text/plain; version=0.0.4", body)
            }
            _ => text(404, "text/plain", "not found\n".into()),
        }
    }
}
