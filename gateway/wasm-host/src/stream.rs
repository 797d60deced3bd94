//! The state of one HTTP stream as plugins see it: headers, buffered bodies, trailers and
//! the facts about the connection that properties expose.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
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
///
/// A handle on a boxed [`StreamState`], whose fields it gives access to (`stream.request_body`)
/// through `Deref`: moving a stream into an instance and back, twice per callback, copies a
/// pointer rather than the whole state. An empty stream (`HttpStream::default()`, or what
/// `std::mem::take` leaves behind) allocates nothing until it is written to, and reads as an
/// empty state.
#[derive(Default)]
pub struct HttpStream {
    state: Option<Box<StreamState>>,
}

/// The state of one HTTP stream as plugins see it.
#[derive(Debug)]
pub struct StreamState {
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

impl Default for StreamState {
    fn default() -> Self {
        Self::new(HeaderMap::new(), Arc::new(StreamInfo::default()))
    }
}

impl StreamState {
    fn new(request_headers: HeaderMap, info: Arc<StreamInfo>) -> Self {
        Self {
            request_headers,
            request_body: Vec::new(),
            request_trailers: HeaderMap::new(),
            response_headers: HeaderMap::new(),
            response_body: Vec::new(),
            response_trailers: HeaderMap::new(),
            info,
            properties: HashMap::new(),
        }
    }
}

impl HttpStream {
    /// A stream with the given request headers and facts.
    pub fn new(request_headers: HeaderMap, info: Arc<StreamInfo>) -> Self {
        Self {
            state: Some(Box::new(StreamState::new(request_headers, info))),
        }
    }
}

impl std::ops::Deref for HttpStream {
    type Target = StreamState;

    fn deref(&self) -> &StreamState {
        /// What an empty stream reads as.
        static EMPTY: LazyLock<StreamState> = LazyLock::new(StreamState::default);
        self.state.as_deref().unwrap_or(&EMPTY)
    }
}

impl std::ops::DerefMut for HttpStream {
    fn deref_mut(&mut self) -> &mut StreamState {
        self.state.get_or_insert_with(Box::default)
    }
}

impl fmt::Debug for HttpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        StreamState::fmt(self, f)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_stream_reads_as_empty_and_comes_back_whole() {
        let headers = HeaderMap::from_pairs([(":path", "/a")]);
        let info = Arc::new(StreamInfo {
            request_id: "r-1".into(),
            ..StreamInfo::default()
        });
        let mut stream = HttpStream::new(headers, info);
        stream.request_body.extend_from_slice(b"body");

        let parked = std::mem::take(&mut stream);
        assert!(
            stream.request_headers.is_empty(),
            "what take leaves is empty"
        );
        assert!(stream.request_body.is_empty());
        assert_eq!(stream.info.request_id, "");
        stream
            .response_body
            .extend_from_slice(b"written to the empty one");
        assert_eq!(stream.response_body, b"written to the empty one");

        stream = parked;
        assert_eq!(stream.request_headers.get_str(":path"), Some("/a"));
        assert_eq!(stream.request_body, b"body");
        assert_eq!(stream.info.request_id, "r-1");
        assert!(stream.response_body.is_empty());
    }
}
