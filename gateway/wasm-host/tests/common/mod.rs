//! Helpers shared by the host's conformance tests: loading the SDK-built test plugins, driving
//! a request through a plugin as a proxy would, a real HTTP/1.1 upstream for `proxy_http_call`,
//! and capturing the host's `tracing` output.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paved_wasm_host::{
    BodyVerdict, ClusterDispatcher, HeaderMap, HttpContext, HttpStream, LoadError, LocalResponse,
    Plugin, PluginFailure, PluginSpec, Runtime, RuntimeOptions, StreamInfo, Verdict,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The bound on every wait in these tests: far above what any step needs.
pub const WAIT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than [`WAIT`].
pub async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: no result within {WAIT:?}"),
    }
}

/// A runtime with default options, except that compiled modules are cached on disk (in
/// Cargo's temporary directory for tests), so each test does not compile the plugins again.
pub fn runtime() -> Runtime {
    let options = RuntimeOptions {
        cache_dir: Some(
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("paved-wasm-host-cache"),
        ),
        ..RuntimeOptions::default()
    };
    Runtime::new(options).expect("the wasm engine starts")
}

/// The module built from `plugins/<name>`.
pub fn wasm(name: &str) -> Arc<[u8]> {
    let path = paved_builtin_plugins::artifact_path(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    bytes.into()
}

/// A spec for the module `module` (`conformance` or `faulty`) named `name`, configured with
/// `config` (JSON), with one instance unless the test asks for more.
pub fn spec(module: &str, name: &str, config: &str) -> PluginSpec {
    let mut spec = PluginSpec::new(name, wasm(module), config.as_bytes().to_vec());
    spec.instances = 1;
    spec
}

/// A dispatcher without clusters.
pub fn no_clusters() -> Arc<ClusterDispatcher> {
    Arc::new(ClusterDispatcher::new(HashMap::new(), 1 << 20))
}

/// A dispatcher with the given clusters.
pub fn clusters<'a>(
    list: impl IntoIterator<Item = (&'a str, SocketAddr)>,
) -> Arc<ClusterDispatcher> {
    let map = list
        .into_iter()
        .map(|(name, addr)| (name.to_owned(), vec![addr]))
        .collect();
    Arc::new(ClusterDispatcher::new(map, 1 << 20))
}

/// Loads the conformance plugin with `config`.
pub fn load_conformance(runtime: &Runtime, name: &str, config: &str) -> Plugin {
    runtime
        .load(spec("conformance", name, config), no_clusters())
        .unwrap_or_else(|e| panic!("conformance {config} loads: {e}"))
}

/// Loads a plugin and expects it to fail with a [`LoadError`].
pub fn load_error(runtime: &Runtime, spec: PluginSpec) -> LoadError {
    match runtime.load(spec, no_clusters()) {
        Ok(_) => panic!("the plugin was expected to be refused"),
        Err(e) => e,
    }
}

/// A request as a client sends it.
#[derive(Debug, Clone)]
pub struct Req {
    /// Headers, pseudo-headers first.
    pub headers: Vec<(String, String)>,
    /// The body in the chunks it arrives in.
    pub body: Vec<Vec<u8>>,
    /// Trailers (none: the stream ends with the body or the headers).
    pub trailers: Vec<(String, String)>,
    /// Facts about the connection.
    pub info: StreamInfo,
}

impl Req {
    /// `method path` to authority `app.test` over http, without body.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            headers: vec![
                (":method".into(), method.into()),
                (":path".into(), path.into()),
                (":authority".into(), "app.test".into()),
                (":scheme".into(), "http".into()),
            ],
            body: Vec::new(),
            trailers: Vec::new(),
            info: StreamInfo {
                request_id: "req-1".into(),
                ..StreamInfo::default()
            },
        }
    }

    /// `GET path`.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// One more header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The body, in these chunks (a `content-length` header is added).
    pub fn body<I: IntoIterator<Item = C>, C: AsRef<[u8]>>(mut self, chunks: I) -> Self {
        self.body = chunks.into_iter().map(|c| c.as_ref().to_vec()).collect();
        let length: usize = self.body.iter().map(Vec::len).sum();
        self.headers
            .push(("content-length".into(), length.to_string()));
        self
    }

    /// Trailers.
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.into(), value.into()));
        self
    }

    /// The stream a proxy builds for it.
    pub fn stream(&self) -> HttpStream {
        HttpStream::new(
            HeaderMap::from_pairs(self.headers.clone()),
            Arc::new(self.info.clone()),
        )
    }
}

/// The response the upstream gives.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Headers, `:status` first.
    pub headers: Vec<(String, String)>,
    /// The body in chunks.
    pub body: Vec<Vec<u8>>,
    /// Trailers.
    pub trailers: Vec<(String, String)>,
}

impl Resp {
    /// `status` with a `content-type` and no body.
    pub fn new(status: u16) -> Self {
        Self {
            headers: vec![
                (":status".into(), status.to_string()),
                ("content-type".into(), "text/plain".into()),
            ],
            body: Vec::new(),
            trailers: Vec::new(),
        }
    }

    /// 200 with a `content-type` and no body.
    pub fn ok() -> Self {
        Self::new(200)
    }

    /// One more header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The body, in these chunks (a `content-length` header is added).
    pub fn body<I: IntoIterator<Item = C>, C: AsRef<[u8]>>(mut self, chunks: I) -> Self {
        self.body = chunks.into_iter().map(|c| c.as_ref().to_vec()).collect();
        let length: usize = self.body.iter().map(Vec::len).sum();
        self.headers
            .push(("content-length".into(), length.to_string()));
        self
    }

    /// Trailers.
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.into(), value.into()));
        self
    }
}

/// A message (request or response) as it left the proxy.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// Its headers.
    pub headers: HeaderMap,
    /// Its whole body.
    pub body: Vec<u8>,
    /// Its trailers.
    pub trailers: HeaderMap,
}

impl Message {
    /// The first value of `name` as a string.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The first value of `name`, which the test requires.
    pub fn must(&self, name: &str) -> String {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }
}

/// Where a plugin decided the outcome of a stream itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `proxy_on_request_headers`.
    RequestHeaders,
    /// `proxy_on_request_body`.
    RequestBody,
    /// `proxy_on_request_trailers`.
    RequestTrailers,
    /// `proxy_on_response_headers`.
    ResponseHeaders,
    /// `proxy_on_response_body`.
    ResponseBody,
    /// `proxy_on_response_trailers`.
    ResponseTrailers,
}

/// What happened to one request driven through one plugin.
#[derive(Debug, Default)]
pub struct Exchange {
    /// What the upstream received, if the request got that far.
    pub upstream: Option<Message>,
    /// What the client received from the upstream (after the plugin's edits), if it did.
    pub client: Option<Message>,
    /// A local response the plugin sent instead, and the phase it came from.
    pub local: Option<(Phase, LocalResponse)>,
    /// The phase in which the plugin reset the stream.
    pub closed: Option<Phase>,
    /// The verdicts of the request body callbacks, in order.
    pub request_body_verdicts: Vec<BodyVerdict>,
    /// The verdicts of the response body callbacks, in order.
    pub response_body_verdicts: Vec<BodyVerdict>,
    /// The stream after `finish`.
    pub stream: HttpStream,
}

impl Exchange {
    /// What the upstream received; the test requires that it did.
    pub fn upstream(&self) -> &Message {
        self.upstream
            .as_ref()
            .expect("the request reached the upstream")
    }

    /// What the client received from the upstream; the test requires that it did.
    pub fn client(&self) -> &Message {
        self.client
            .as_ref()
            .expect("the client received the upstream's response")
    }

    /// The local response; the test requires one.
    pub fn local(&self) -> &LocalResponse {
        &self
            .local
            .as_ref()
            .expect("the plugin sent a local response")
            .1
    }

    /// A header of the local response.
    pub fn local_header(&self, name: &str) -> Option<String> {
        local_header(self.local(), name)
    }
}

/// A header of a local response.
pub fn local_header(response: &LocalResponse, name: &str) -> Option<String> {
    response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// A failure together with the phase it happened in.
#[derive(Debug)]
pub struct Failed {
    /// The phase whose callback failed.
    pub phase: Phase,
    /// How.
    pub failure: PluginFailure,
}

fn fail(phase: Phase) -> impl FnOnce(PluginFailure) -> Failed {
    move |failure| Failed { phase, failure }
}

/// Drives `req` through a new context of `plugin` as a proxy would, with `resp` as the
/// upstream's answer, and finishes the context.
pub async fn exchange(plugin: &Plugin, req: &Req, resp: &Resp) -> Result<Exchange, Failed> {
    let mut context = plugin
        .new_http_context()
        .map_err(fail(Phase::RequestHeaders))?;
    let mut stream = req.stream();
    let mut out = drive(&mut context, &mut stream, req, resp).await?;
    context.finish(&mut stream);
    out.stream = stream;
    Ok(out)
}

/// Drives `req` and `resp` through `context` without finishing it.
pub async fn drive(
    context: &mut HttpContext,
    stream: &mut HttpStream,
    req: &Req,
    resp: &Resp,
) -> Result<Exchange, Failed> {
    let mut out = Exchange::default();
    let request_ends_with_headers = req.body.is_empty() && req.trailers.is_empty();
    let verdict = bounded(
        "request headers",
        context.on_request_headers(stream, request_ends_with_headers),
    )
    .await
    .map_err(fail(Phase::RequestHeaders))?;
    if decided(&mut out, Phase::RequestHeaders, verdict) {
        return Ok(out);
    }
    let mut forwarded = Vec::new();
    for (i, chunk) in req.body.iter().enumerate() {
        let last = i + 1 == req.body.len() && req.trailers.is_empty();
        stream.request_body.extend_from_slice(chunk);
        let verdict = bounded("request body", context.on_request_body(stream, last))
            .await
            .map_err(fail(Phase::RequestBody))?;
        out.request_body_verdicts.push(verdict.clone());
        match verdict {
            BodyVerdict::Buffer => {}
            BodyVerdict::Continue => forwarded.append(&mut stream.request_body),
            BodyVerdict::Respond(r) => {
                out.local = Some((Phase::RequestBody, r));
                return Ok(out);
            }
            BodyVerdict::Close => {
                out.closed = Some(Phase::RequestBody);
                return Ok(out);
            }
        }
    }
    if !req.trailers.is_empty() {
        stream.request_trailers = HeaderMap::from_pairs(req.trailers.clone());
        let verdict = bounded("request trailers", context.on_request_trailers(stream))
            .await
            .map_err(fail(Phase::RequestTrailers))?;
        if decided(&mut out, Phase::RequestTrailers, verdict) {
            return Ok(out);
        }
    }
    forwarded.append(&mut stream.request_body);
    out.upstream = Some(Message {
        headers: stream.request_headers.clone(),
        body: forwarded,
        trailers: stream.request_trailers.clone(),
    });

    stream.response_headers = HeaderMap::from_pairs(resp.headers.clone());
    let response_ends_with_headers = resp.body.is_empty() && resp.trailers.is_empty();
    let verdict = bounded(
        "response headers",
        context.on_response_headers(stream, response_ends_with_headers),
    )
    .await
    .map_err(fail(Phase::ResponseHeaders))?;
    if decided(&mut out, Phase::ResponseHeaders, verdict) {
        return Ok(out);
    }
    let mut delivered = Vec::new();
    for (i, chunk) in resp.body.iter().enumerate() {
        let last = i + 1 == resp.body.len() && resp.trailers.is_empty();
        stream.response_body.extend_from_slice(chunk);
        let verdict = context
            .on_response_body(stream, last)
            .map_err(fail(Phase::ResponseBody))?;
        out.response_body_verdicts.push(verdict.clone());
        match verdict {
            BodyVerdict::Buffer => {}
            BodyVerdict::Continue => delivered.append(&mut stream.response_body),
            BodyVerdict::Respond(r) => {
                out.local = Some((Phase::ResponseBody, r));
                return Ok(out);
            }
            BodyVerdict::Close => {
                out.closed = Some(Phase::ResponseBody);
                return Ok(out);
            }
        }
    }
    if !resp.trailers.is_empty() {
        stream.response_trailers = HeaderMap::from_pairs(resp.trailers.clone());
        let verdict = context
            .on_response_trailers(stream)
            .map_err(fail(Phase::ResponseTrailers))?;
        if decided(&mut out, Phase::ResponseTrailers, verdict) {
            return Ok(out);
        }
    }
    delivered.append(&mut stream.response_body);
    out.client = Some(Message {
        headers: stream.response_headers.clone(),
        body: delivered,
        trailers: stream.response_trailers.clone(),
    });
    Ok(out)
}

/// Records a header or trailer verdict; true when the plugin ended the stream.
fn decided(out: &mut Exchange, phase: Phase, verdict: Verdict) -> bool {
    match verdict {
        Verdict::Continue => false,
        Verdict::Respond(response) => {
            out.local = Some((phase, response));
            true
        }
        Verdict::Close => {
            out.closed = Some(phase);
            true
        }
    }
}

/// Runs `req` through `plugin` and expects it to get through without failing.
pub async fn pass(plugin: &Plugin, req: &Req, resp: &Resp) -> Exchange {
    match exchange(plugin, req, resp).await {
        Ok(out) => out,
        Err(failed) => panic!(
            "plugin {} failed in {:?}: {}",
            plugin.name(),
            failed.phase,
            failed.failure
        ),
    }
}

/// Runs `req` through `plugin` and expects it to fail.
pub async fn failure(plugin: &Plugin, req: &Req, resp: &Resp) -> Failed {
    match exchange(plugin, req, resp).await {
        Ok(out) => panic!("plugin {} was expected to fail, got {out:?}", plugin.name()),
        Err(failed) => failed,
    }
}

/// Asserts that `value` is `Some(expected)`, naming `what`.
pub fn assert_header<T: AsRef<str> + Debug>(value: Option<T>, expected: &str, what: &str) {
    assert_eq!(value.as_ref().map(AsRef::as_ref), Some(expected), "{what}");
}

// ---------------------------------------------------------------------------------------------
// A real HTTP/1.1 upstream.

/// A request the test upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The method.
    pub method: String,
    /// The request target.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Received {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the test upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 with `x-upstream: echo`, `x-echo-method`, `x-echo-path`, `content-type:
    /// text/x-echo`, and the body `echo:<method> <path> <body>`.
    Echo,
    /// The same, but chunked with two trailers (`x-trailer-a`, `x-trailer-b`).
    ChunkedWithTrailers,
    /// Reads the request and never answers.
    Silent,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that records what it receives.
pub struct Upstream {
    /// Its address.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Starts a server answering in `mode`.
    pub async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test upstream");
        let addr = listener.local_addr().expect("its address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, mode, log).await;
                });
            }
        });
        Self {
            addr,
            received,
            task,
        }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("upstream log").clone()
    }
}

/// The address of a port nothing listens on: connecting is refused.
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    addr
}

async fn serve(
    mut socket: TcpStream,
    mode: Mode,
    log: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > 1 << 20 {
            return Ok(());
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let text = format!("echo:{method} {path} {}", String::from_utf8_lossy(&body));
    let received = Received {
        method: method.clone(),
        path: path.clone(),
        headers,
        body,
    };
    log.lock().expect("upstream log").push(received);
    let common = format!(
        "x-upstream: echo\r\nx-echo-method: {method}\r\nx-echo-path: {path}\r\ncontent-type: text/x-echo\r\nconnection: close\r\n"
    );
    let response = match mode {
        Mode::Echo => format!(
            "HTTP/1.1 200 OK\r\n{common}content-length: {}\r\n\r\n{text}",
            text.len()
        ),
        Mode::ChunkedWithTrailers => format!(
            "HTTP/1.1 200 OK\r\n{common}transfer-encoding: chunked\r\ntrailer: x-trailer-a, x-trailer-b\r\n\r\n{:x}\r\n{text}\r\n0\r\nx-trailer-a: 1\r\nx-trailer-b: 2\r\n\r\n",
            text.len()
        ),
        Mode::Silent => {
            // Hold the connection open until the client gives up.
            let mut rest = [0u8; 64];
            while socket.read(&mut rest).await? > 0 {}
            return Ok(());
        }
    };
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}

// ---------------------------------------------------------------------------------------------
// Capturing the host's tracing events.

/// One event the host logged.
#[derive(Debug, Clone)]
pub struct LogEvent {
    /// Its level.
    pub level: tracing::Level,
    /// Its fields, rendered with `Debug` (strings unquoted); `message` may appear twice.
    pub fields: Vec<(String, String)>,
}

impl LogEvent {
    /// Every value of the field `name`.
    pub fn field(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A subscriber that records every event; install it for the current thread with
/// [`Capture::install`].
#[derive(Clone, Default)]
pub struct Capture {
    events: Arc<Mutex<Vec<LogEvent>>>,
}

impl Capture {
    /// Records events of this thread until the guard is dropped.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(self.clone())
    }

    /// Everything recorded.
    pub fn events(&self) -> Vec<LogEvent> {
        self.events.lock().expect("captured events").clone()
    }
}

struct FieldVisitor<'a>(&'a mut Vec<(String, String)>);

impl tracing::field::Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Vec::new();
        event.record(&mut FieldVisitor(&mut fields));
        let level = *event.metadata().level();
        self.events
            .lock()
            .expect("captured events")
            .push(LogEvent { level, fields });
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
