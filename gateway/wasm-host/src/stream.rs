//! The state of one HTTP stream as plugins see it: headers, buffered bodies, trailers and
//! the facts about the connection that properties expose.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use crate::headers::HeaderMap;

/// Facts about a request that do not change while it is processed.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// The request ID (also sent upstream as `x-request-id`).
    pub request_id: String,
    /// The client's address.
    pub source: Option<SocketAddr>,
    /// The address the client connected to.
    pub destination: Option<SocketAddr>,
    /// TLS facts, when the downstream connection is TLS.
    pub tls: Option<TlsInfo>,
    /// The name of the route that matched.
    pub route_name: String,
    /// The upstream cluster of the route, if it has one.
    pub cluster_name: String,
    /// When the request arrived.
    pub start_time: SystemTime,
    /// The downstream protocol, e.g. `HTTP/1.1`.
    pub protocol: String,
}

impl Default for StreamInfo {
    fn default() -> Self {
        Self {
            request_id: String::new(),
            source: None,
            destination: None,
            tls: None,
            route_name: String::new(),
            cluster_name: String::new(),
            start_time: SystemTime::now(),
            protocol: "HTTP/1.1".to_owned(),
        }
    }
}

/// What the TLS handshake of the downstream connection established.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// The SNI name the client asked for.
    pub server_name: Option<String>,
    /// The negotiated version, e.g. `TLSv1.3`.
    pub version: String,
    /// Whether the client presented a verified certificate.
    pub mtls: bool,
}

/// One HTTP stream's state, moved into a plugin instance for each callback and back out.
#[derive(Debug, Default)]
pub struct HttpStream {
    /// Request headers with `:method`, `:path`, `:authority` and `:scheme`.
    pub request_headers: HeaderMap,
    /// The request body buffered so far.
    pub request_body: Vec<u8>,
    /// Request trailers.
    pub request_trailers: HeaderMap,
    /// Response headers with `:status`.
    pub response_headers: HeaderMap,
    /// The response body buffered so far.
    pub response_body: Vec<u8>,
    /// Response trailers.
    pub response_trailers: HeaderMap,
    /// Facts about the request.
    pub info: Arc<StreamInfo>,
    /// Values plugins stored with `proxy_set_property`, by path (segments joined with `.`).
    pub properties: HashMap<String, Vec<u8>>,
}

impl HttpStream {
    /// A stream with the given request headers and facts.
    pub fn new(request_headers: HeaderMap, info: Arc<StreamInfo>) -> Self {
        Self {
            request_headers,
            info,
            ..Self::default()
        }
    }
}

/// A response a plugin asked the host to send instead of the upstream's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    /// The HTTP status.
    pub status: u16,
    /// Why (the plugin's `status_code_details`), for logs.
    pub details: String,
    /// Headers to send.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl LocalResponse {
    /// Its headers as a header map (without `:status`).
    pub fn header_map(&self) -> HeaderMap {
        HeaderMap::from_pairs(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())))
    }
}
