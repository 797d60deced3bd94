//! The Pingora `ProxyHttp` service: route lookup, the filter chain at each phase, upstream
//! selection with retries, forwarding headers, static sites, and local responses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use paved_model::routing::normalize_path;
use paved_model::snapshot::RouteTarget;
use paved_wasm_host::{HttpStream, LocalResponse, StreamInfo, TlsInfo};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorType, Result};

use crate::active::ActiveConfig;
use crate::chain::{ChainDecision, RequestChain};
use crate::headers::{apply_request, apply_response, build_response, request_map, response_map};
use crate::metrics::GatewayMetrics;
use crate::static_files;
use crate::upstream::InFlight;

/// The gateway's proxy logic; one per listener service, sharing the configuration.
pub struct GatewayProxy {
    /// The configuration in force; swapped on reload.
    pub config: Arc<ArcSwap<ActiveConfig>>,
    /// Request metrics.
    pub metrics: Arc<GatewayMetrics>,
    /// Whether this listener terminates TLS (for `:scheme` and `X-Forwarded-Proto`).
    pub tls: bool,
    /// Responses wait on it until the access-log records made for them are on disk (when the
    /// gateway writes an access log).
    pub durability: Option<Arc<crate::accesslog::Durability>>,
}

/// What one request carries through the phases.
pub struct RequestCtx {
    config: Arc<ActiveConfig>,
    route: Option<usize>,
    request_id: String,
    started: Instant,
    chain: Option<RequestChain>,
    /// A response that replaces the upstream's (decided in a later phase).
    replacement: Option<Bytes>,
    replacement_sent: bool,
    /// A local response to send from `fail_to_proxy` (decided in the request body phase).
    pending_local: Option<LocalResponse>,
    tried: Vec<SocketAddr>,
    in_flight: Option<InFlight>,
    status: u16,
    max_body: usize,
}

fn error_body(error: &str, request_id: &str) -> Vec<u8> {
    serde_json::json!({ "error": error, "request_id": request_id })
        .to_string()
        .into_bytes()
}

fn json_response(status: u16, error: &str, request_id: &str) -> LocalResponse {
    LocalResponse {
        status,
        details: error.to_owned(),
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: error_body(error, request_id),
    }
}

impl GatewayProxy {
    /// Sends a response from the gateway. Filters before `by` see its headers on the way out
    /// (so e.g. security headers are added to a login redirect), as on the upstream path.
    async fn respond(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        response: LocalResponse,
        by: Option<usize>,
    ) -> Result<()> {
        let mut headers = response.header_map();
        if let Some(chain) = ctx.chain.as_mut() {
            let mut map = paved_wasm_host::HeaderMap::new();
            map.add(":status", response.status.to_string());
            for (name, value) in headers.iter() {
                map.add(name, value);
            }
            chain.stream.response_headers = map;
            let mark = self.durability.as_ref().map(|d| d.mark());
            if let ChainDecision::Continue =
                chain.response_headers(response.body.is_empty(), by).await
            {
                headers = chain.stream.response_headers.clone();
            }
            // The response is final: the filters' `proxy_on_log` runs now rather than after the
            // write, so that the access log's record is durable before the client has the
            // answer (a filter cannot tell the difference: nothing about the response changes).
            chain.finish();
            self.await_durable(mark).await;
        }
        headers.replace("x-request-id", ctx.request_id.as_bytes());
        let status = headers
            .get_str(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(response.status);
        let header = build_response(status, &headers, response.body.len())
            .map_err(|e| Error::explain(ErrorType::InternalError, e))?;
        ctx.status = status;
        session
            .write_response_header(Box::new(header), response.body.is_empty())
            .await?;
        if !response.body.is_empty() {
            session
                .write_response_body(Some(Bytes::from(response.body)), true)
                .await?;
        }
        Ok(())
    }

    fn stream_info(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        route_name: &str,
        cluster: &str,
    ) -> StreamInfo {
        let inet = |addr: Option<&pingora::protocols::l4::socket::SocketAddr>| {
            addr.and_then(|a| a.as_inet()).copied()
        };
        let tls = session
            .digest()
            .and_then(|d| d.ssl_digest.as_ref())
            .map(|ssl| TlsInfo {
                server_name: None,
                version: ssl.version.to_string(),
                mtls: false,
            });
        StreamInfo {
            request_id: ctx.request_id.clone(),
            source: inet(session.client_addr()),
            destination: inet(session.server_addr()),
            tls,
            route_name: route_name.to_owned(),
            cluster_name: cluster.to_owned(),
            start_time: std::time::SystemTime::now(),
            protocol: if session.is_http2() {
                "HTTP/2".into()
            } else {
                "HTTP/1.1".into()
            },
        }
    }
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            config: self.config.load_full(),
            route: None,
            request_id: uuid::Uuid::new_v4().simple().to_string(),
            started: Instant::now(),
            chain: None,
            replacement: None,
            replacement_sent: false,
            pending_local: None,
            tried: Vec::new(),
            in_flight: None,
            status: 0,
            max_body: paved_wasm_host::PluginLimits::default().max_body_bytes,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let req = session.req_header();
        let host = req
            .uri
            .host()
            .map(str::to_owned)
            .or_else(|| {
                req.headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let path = match normalize_path(req.uri.path()) {
            Ok(path) => path,
            Err(error) => {
                tracing::debug!(request_id = %ctx.request_id, error = %error, "rejected path");
                let response = json_response(400, "bad_path", &ctx.request_id);
                self.respond(session, ctx, response, None).await?;
                return Ok(true);
            }
        };
        let config = ctx.config.clone();
        let Some(found) = config.table.lookup(&host, &path) else {
            let response = json_response(404, "no_route", &ctx.request_id);
            self.respond(session, ctx, response, None).await?;
            return Ok(true);
        };
        ctx.route = Some(found.index);
        let route = &config.routes[found.index];
        if route.chain.is_empty() {
            return self.serve_static_if_any(session, ctx).await;
        }

        let scheme = if self.tls { "https" } else { "http" };
        // Built unchanged: the map itself tells whether a filter changed it (no copy kept).
        let headers = request_map(session.req_header(), scheme);
        let cluster = route
            .cluster
            .map_or("", |i| config.clusters[i].config.name.as_str());
        let info = self.stream_info(session, ctx, &route.name, cluster);
        let mut chain = RequestChain::new(&route.chain, HttpStream::new(headers, Arc::new(info)));
        let end_of_stream = session.is_body_empty();
        let decision = chain.request_headers(end_of_stream).await;
        ctx.chain = Some(chain);
        match decision {
            ChainDecision::Continue | ChainDecision::Buffer => {}
            ChainDecision::Respond { response, by } => {
                self.respond(session, ctx, response, Some(by)).await?;
                return Ok(true);
            }
            ChainDecision::Close => {
                return Err(Error::explain(
                    ErrorType::HTTPStatus(403),
                    "closed by a filter",
                ));
            }
        }
        if let Some(chain) = ctx.chain.as_ref()
            && chain.stream.request_headers.is_changed()
            && let Err(error) =
                apply_request(&chain.stream.request_headers, session.req_header_mut())
        {
            tracing::warn!(request_id = %ctx.request_id, error = %error, "a filter produced invalid request headers");
            let response = json_response(500, "filter_produced_invalid_request", &ctx.request_id);
            self.respond(session, ctx, response, None).await?;
            return Ok(true);
        }
        self.serve_static_if_any(session, ctx).await
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let Some(chain) = ctx.chain.as_mut() else {
            return Ok(());
        };
        // As in Envoy, body callbacks get body data or the end of the body: none for a request
        // that ended with its headers (a GET), none for an empty chunk in the middle.
        let has_data = body.as_ref().is_some_and(|chunk| !chunk.is_empty());
        if !has_data && (chain.request_complete() || !end_of_stream) {
            return Ok(());
        }
        if let Some(chunk) = body.take() {
            if chain.stream.request_body.len() + chunk.len() > ctx.max_body {
                ctx.pending_local = Some(json_response(413, "body_too_large", &ctx.request_id));
                return Err(Error::explain(
                    ErrorType::HTTPStatus(413),
                    "request body over the filters' limit",
                ));
            }
            chain.stream.request_body.extend_from_slice(&chunk);
        }
        // Pingora reads a `None` body as the end of the upstream request: while the body goes
        // on, what the filters hold back is sent as an empty chunk, which it skips.
        match chain.request_body(end_of_stream).await {
            ChainDecision::Buffer => {
                *body = (!end_of_stream).then(Bytes::new);
                Ok(())
            }
            ChainDecision::Continue => {
                let buffered = std::mem::take(&mut chain.stream.request_body);
                *body = Some(Bytes::from(buffered));
                Ok(())
            }
            ChainDecision::Respond { response, .. } => {
                let status = response.status;
                ctx.pending_local = Some(response);
                Err(Error::explain(
                    ErrorType::HTTPStatus(status),
                    "denied by a filter in the request body",
                ))
            }
            ChainDecision::Close => Err(Error::explain(
                ErrorType::HTTPStatus(403),
                "closed by a filter",
            )),
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx.route.map(|i| &ctx.config.routes[i]);
        let Some(cluster) = route
            .and_then(|r| r.cluster)
            .map(|i| &ctx.config.clusters[i])
        else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                "route has no cluster",
            ));
        };
        let Some(endpoint) = cluster.pick(&ctx.tried) else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                "no endpoint left to try",
            ));
        };
        ctx.tried.push(endpoint.addr);
        ctx.in_flight = Some(endpoint.track());
        let tls = cluster.config.tls.as_ref();
        let sni = tls
            .and_then(|t| t.sni.clone())
            .unwrap_or_else(|| endpoint.host.clone());
        let mut peer = HttpPeer::new(endpoint.addr, tls.is_some(), sni);
        peer.options.connection_timeout =
            Some(Duration::from_millis(cluster.config.connect_timeout_ms));
        peer.options.read_timeout = Some(Duration::from_millis(cluster.config.read_timeout_ms));
        if let Some(tls) = tls {
            peer.options.verify_cert = tls.verify;
            peer.options.verify_hostname = tls.verify;
        }
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Self::CTX,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let retries = ctx
            .route
            .and_then(|i| ctx.config.routes[i].cluster)
            .map_or(0, |i| ctx.config.clusters[i].config.retries as usize);
        if ctx.tried.len() <= retries {
            tracing::debug!(request_id = %ctx.request_id, peer = %peer, "connect failed; retrying on another endpoint");
            e.set_retry(true);
        }
        self.metrics.upstream_connect_failures.inc();
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string());
        let proto = if self.tls { "https" } else { "http" };
        let host = upstream
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        // The gateway is the edge: what clients claim about forwarding is replaced, not trusted.
        upstream.remove_header("forwarded");
        upstream.remove_header("x-forwarded-for");
        upstream.remove_header("x-forwarded-proto");
        upstream.remove_header("x-forwarded-host");
        let mut forwarded = Vec::new();
        if let Some(ip) = &client {
            upstream.insert_header("x-forwarded-for", ip.as_str())?;
            let quoted = if ip.contains(':') {
                format!("\"[{ip}]\"")
            } else {
                ip.clone()
            };
            forwarded.push(format!("for={quoted}"));
        }
        upstream.insert_header("x-forwarded-proto", proto)?;
        forwarded.push(format!("proto={proto}"));
        if let Some(host) = host {
            forwarded.push(format!("host=\"{host}\""));
            upstream.insert_header("x-forwarded-host", host)?;
        }
        upstream.insert_header("forwarded", forwarded.join(";"))?;
        upstream.insert_header("x-request-id", ctx.request_id.as_str())?;
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        ctx.status = upstream.status.as_u16();
        upstream.insert_header("x-request-id", ctx.request_id.as_str())?;
        let Some(chain) = ctx.chain.as_mut() else {
            return Ok(());
        };
        chain.stream.response_headers = response_map(upstream);
        let mark = self.durability.as_ref().map(|d| d.mark());
        // The response ends with its headers as Envoy's codecs say it does: then there is no
        // `proxy_on_response_body`.
        let no_body = matches!(ctx.status, 204 | 304)
            || session.req_header().method == http::Method::HEAD
            || upstream
                .headers
                .get(http::header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() == b"0");
        match chain.response_headers(no_body, None).await {
            ChainDecision::Continue | ChainDecision::Buffer => {
                if chain.stream.response_headers.is_changed() {
                    apply_response(&chain.stream.response_headers, upstream)
                        .map_err(|e| Error::explain(ErrorType::InternalError, e))?;
                    ctx.status = upstream.status.as_u16();
                }
            }
            ChainDecision::Respond { response, .. } => {
                // Replace the upstream's response: its body is dropped in the body filter.
                let mut headers = response.header_map();
                headers.replace("x-request-id", ctx.request_id.as_bytes());
                *upstream = build_response(response.status, &headers, response.body.len())
                    .map_err(|e| Error::explain(ErrorType::InternalError, e))?;
                ctx.status = response.status;
                ctx.replacement = Some(Bytes::from(response.body));
            }
            ChainDecision::Close => {
                return Err(Error::explain(
                    ErrorType::HTTPStatus(502),
                    "closed by a filter",
                ));
            }
        }
        // The `accesslog` filter records the response as its headers pass it.
        self.await_durable(mark).await;
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        if let Some(replacement) = &ctx.replacement {
            *body = (!ctx.replacement_sent).then(|| replacement.clone());
            ctx.replacement_sent = true;
            return Ok(None);
        }
        let Some(chain) = ctx.chain.as_mut() else {
            return Ok(None);
        };
        // Body callbacks only for body data or its end (see `request_body_filter`).
        let has_data = body.as_ref().is_some_and(|chunk| !chunk.is_empty());
        if !has_data && (chain.response_complete() || !end_of_stream) {
            return Ok(None);
        }
        if let Some(chunk) = body.take() {
            if chain.stream.response_body.len() + chunk.len() > ctx.max_body {
                return Err(Error::explain(
                    ErrorType::HTTPStatus(502),
                    "response body over the filters' limit",
                ));
            }
            chain.stream.response_body.extend_from_slice(&chunk);
        }
        match chain.response_body(end_of_stream) {
            ChainDecision::Buffer => {}
            ChainDecision::Continue => {
                let buffered = std::mem::take(&mut chain.stream.response_body);
                if !buffered.is_empty() {
                    *body = Some(Bytes::from(buffered));
                }
            }
            ChainDecision::Respond { response, .. } => {
                // Headers are already on their way; the body is all that can still change.
                tracing::warn!(request_id = %ctx.request_id, status = response.status, "a filter replaced a response after its headers were sent");
                *body = Some(Bytes::from(response.body));
                ctx.replacement = Some(Bytes::new());
                ctx.replacement_sent = true;
            }
            ChainDecision::Close => {
                return Err(Error::explain(
                    ErrorType::HTTPStatus(502),
                    "closed by a filter",
                ));
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        let response = ctx.pending_local.take().unwrap_or_else(|| {
            let (status, error) = match e.etype() {
                ErrorType::HTTPStatus(code) => (*code, "gateway_error"),
                _ => match e.esource() {
                    pingora::ErrorSource::Upstream => (502, "upstream_unavailable"),
                    pingora::ErrorSource::Downstream => (400, "bad_request"),
                    _ => (500, "internal_error"),
                },
            };
            json_response(status, error, &ctx.request_id)
        });
        let status = response.status;
        if session.response_written().is_none()
            && let Err(error) = self.respond(session, ctx, response, None).await
        {
            tracing::debug!(request_id = %ctx.request_id, error = %error, "could not send the error response");
        }
        ctx.status = status;
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, _session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        if let Some(chain) = ctx.chain.as_mut() {
            if chain.stream.response_headers.get(":status").is_none() && ctx.status != 0 {
                chain
                    .stream
                    .response_headers
                    .add(":status", ctx.status.to_string());
            }
            chain.finish();
        }
        let route = ctx
            .route
            .map_or("none", |i| ctx.config.routes[i].name.as_str());
        let denied_by = ctx.chain.as_ref().and_then(|c| c.denied_by.as_deref());
        self.metrics
            .observe(route, ctx.status, ctx.started.elapsed(), denied_by);
        if let Some(error) = e {
            tracing::debug!(request_id = %ctx.request_id, route, status = ctx.status, error = %error, "request failed");
        }
        ctx.in_flight = None;
    }
}

impl GatewayProxy {
    /// Waits until the access-log records that filters made since `mark` are on disk; at
    /// once when they made none.
    async fn await_durable(&self, mark: Option<u64>) {
        let (Some(durability), Some(before)) = (&self.durability, mark) else {
            return;
        };
        let now = durability.mark();
        if now > before {
            durability.synced_through(now).await;
        }
    }

    /// Serves a static route's file (after the filters); `Ok(false)` lets proxied routes go on.
    async fn serve_static_if_any(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let config = ctx.config.clone();
        let Some(route) = ctx.route.map(|i| &config.routes[i]) else {
            return Ok(false);
        };
        let Some(RouteTarget::Static(site)) = route.config.target() else {
            return Ok(false);
        };
        let req = session.req_header();
        let relative = req
            .uri
            .path()
            .strip_prefix(route.config.path_prefix.trim_end_matches('/'))
            .unwrap_or("/");
        let accepts_html = req
            .headers
            .get(http::header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        let method_ok = matches!(req.method, http::Method::GET | http::Method::HEAD);
        let response = if !method_ok {
            json_response(405, "method_not_allowed", &ctx.request_id)
        } else {
            match static_files::resolve(site, relative, accepts_html).await {
                Some(file) => LocalResponse {
                    status: 200,
                    details: "static".into(),
                    headers: vec![("content-type".into(), file.content_type.into_bytes())],
                    body: file.body,
                },
                None => json_response(404, "not_found", &ctx.request_id),
            }
        };
        let by = ctx.chain.as_ref().map(|_| route.chain.len());
        self.respond(session, ctx, response, by).await?;
        Ok(true)
    }
}
