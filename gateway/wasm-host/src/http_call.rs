//! `proxy_http_call`: sending a plugin's request to a named upstream cluster.
//!
//! The host validates the call when the plugin makes it (a known cluster, the required
//! pseudo-headers) and runs it in the background; the response comes back to the plugin in
//! `proxy_on_http_call_response`. The gateway supplies the [`HttpCallDispatcher`]; the
//! [`ClusterDispatcher`] here speaks HTTP/1.1 to a static list of endpoints per cluster.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

use crate::headers::HeaderMap;

/// A plugin's outbound request, as it gave it.
#[derive(Debug, Clone)]
pub struct HttpCallRequest {
    /// The cluster to send it to.
    pub cluster: String,
    /// Headers, with the `:method`, `:path` and `:authority` pseudo-headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
    /// Trailers (sent only over protocols that have them).
    pub trailers: HeaderMap,
    /// How long the whole call may take.
    pub timeout: Duration,
}

/// The response handed back to the plugin.
#[derive(Debug, Clone, Default)]
pub struct HttpCallResponse {
    /// Headers, with `:status`.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
    /// Trailers.
    pub trailers: HeaderMap,
}

/// Why a call produced no response; the plugin then sees a response with no headers.
#[derive(Debug, thiserror::Error)]
pub enum HttpCallError {
    /// No cluster of that name.
    #[error("unknown cluster {0:?}")]
    UnknownCluster(String),
    /// The request lacked `:method`, `:path` or `:authority`, or had an invalid one.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The call did not finish within its timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The cluster could not be reached.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The endpoint tried.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// The exchange failed after connecting, or the response was too large.
    #[error("http exchange failed: {0}")]
    Exchange(String),
}

/// The boxed future a dispatch returns.
pub type DispatchFuture =
    Pin<Box<dyn Future<Output = Result<HttpCallResponse, HttpCallError>> + Send>>;

/// Sends plugins' HTTP calls; implemented by the gateway over its clusters.
pub trait HttpCallDispatcher: Send + Sync + 'static {
    /// Whether a cluster of this name exists (checked when the plugin makes the call).
    fn has_cluster(&self, name: &str) -> bool;
    /// Sends the request and returns the response.
    fn dispatch(&self, request: HttpCallRequest) -> DispatchFuture;
}

/// Checks the pseudo-headers every call must carry and builds the HTTP request.
pub fn build_request(call: &HttpCallRequest) -> Result<http::Request<Full<Bytes>>, HttpCallError> {
    let pseudo = |name: &str| {
        call.headers
            .get_str(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| HttpCallError::InvalidRequest(format!("missing {name}")))
    };
    let mut builder = http::Request::builder()
        .method(pseudo(":method")?)
        .uri(pseudo(":path")?)
        .header(http::header::HOST, pseudo(":authority")?);
    for (name, value) in call.headers.iter().filter(|(n, _)| !n.starts_with(':')) {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(call.body.clone())))
        .map_err(|e| HttpCallError::InvalidRequest(e.to_string()))
}

/// A dispatcher over a static map of cluster names to endpoints, HTTP/1.1, one connection a
/// call, round-robin over endpoints, response bodies bounded.
#[derive(Debug)]
pub struct ClusterDispatcher {
    clusters: RwLock<HashMap<String, Vec<SocketAddr>>>,
    next: AtomicUsize,
    max_response_bytes: usize,
}

impl ClusterDispatcher {
    /// A dispatcher over these clusters; responses over `max_response_bytes` fail the call.
    pub fn new(clusters: HashMap<String, Vec<SocketAddr>>, max_response_bytes: usize) -> Self {
        Self {
            clusters: RwLock::new(clusters),
            next: AtomicUsize::new(0),
            max_response_bytes,
        }
    }

    /// Replaces the clusters (on a configuration change).
    pub fn set_clusters(&self, clusters: HashMap<String, Vec<SocketAddr>>) {
        if let Ok(mut current) = self.clusters.write() {
            *current = clusters;
        }
    }

    fn pick(&self, cluster: &str) -> Option<SocketAddr> {
        let clusters = self.clusters.read().ok()?;
        let endpoints = clusters.get(cluster).filter(|e| !e.is_empty())?;
        Some(endpoints[self.next.fetch_add(1, Ordering::Relaxed) % endpoints.len()])
    }
}

impl HttpCallDispatcher for ClusterDispatcher {
    fn has_cluster(&self, name: &str) -> bool {
        self.clusters.read().is_ok_and(|c| c.contains_key(name))
    }

    fn dispatch(&self, call: HttpCallRequest) -> DispatchFuture {
        let addr = self.pick(&call.cluster);
        let limit = self.max_response_bytes;
        Box::pin(async move {
            let addr = addr.ok_or_else(|| HttpCallError::UnknownCluster(call.cluster.clone()))?;
            let request = build_request(&call)?;
            let timeout = call.timeout;
            tokio::time::timeout(timeout, exchange(addr, request, limit))
                .await
                .map_err(|_| HttpCallError::Timeout(timeout))?
        })
    }
}

async fn exchange(
    addr: SocketAddr,
    request: http::Request<Full<Bytes>>,
    limit: usize,
) -> Result<HttpCallResponse, HttpCallError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|source| HttpCallError::Connect { addr, source })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| HttpCallError::Exchange(e.to_string()))?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| HttpCallError::Exchange(e.to_string()))?;
    let (parts, body) = response.into_parts();
    let collected = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| HttpCallError::Exchange(format!("response body: {e}")))?;
    driver.abort();
    let mut headers = HeaderMap::new();
    headers.add(":status", parts.status.as_str());
    for (name, value) in &parts.headers {
        headers.add(name.as_str(), value.as_bytes());
    }
    let mut trailers = HeaderMap::new();
    if let Some(map) = collected.trailers() {
        for (name, value) in map {
            trailers.add(name.as_str(), value.as_bytes());
        }
    }
    Ok(HttpCallResponse {
        headers,
        body: collected.to_bytes().to_vec(),
        trailers,
    })
}
