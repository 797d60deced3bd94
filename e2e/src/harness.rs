//! A real upstream, a real gateway in this process, and a plain HTTP/1.1 client: what the
//! gateway's integration tests and the benchmarks are built from.

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use paved_gateway::{Gateway, GatewayOptions, ShutdownHandle};
use paved_model::snapshot::Snapshot;

/// Ports [`free_port`] has handed out in this process.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A free port on loopback (bound and released; good enough for tests on one machine),
/// never one this process was given before: the kernel can hand the same free port to
/// two binds in a row, and a gateway given it for its listener and its admin endpoint
/// refuses the configuration.
pub fn free_port() -> u16 {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..100 {
        let port = StdListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if handed_out.insert(port) {
            return port;
        }
    }
    panic!("the kernel kept handing out ports this process already uses");
}

/// An upstream that echoes what it received as JSON: method, path, headers, body.
pub struct EchoUpstream {
    /// Its address.
    pub addr: SocketAddr,
}

/// Starts an echo upstream on a runtime of its own thread, so it outlives test runtimes.
pub fn start_echo_upstream() -> EchoUpstream {
    let addr = serve_upstream(|req: hyper::Request<hyper::body::Incoming>| async move {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let headers: HashMap<String, String> = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let echo = serde_json::json!({
            "method": parts.method.as_str(),
            "path": parts.uri.to_string(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        });
        let response = hyper::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("server", "echo-upstream")
            .header("x-powered-by", "tests")
            .body(Full::new(Bytes::from(echo.to_string())))
            .expect("response");
        Ok::<_, std::convert::Infallible>(response)
    });
    EchoUpstream { addr }
}

/// Serves HTTP/1.1 on a fresh loopback port, answering every request with `handle`, from a
/// runtime on a thread of its own: the server outlives the tests' runtimes and runs until
/// the test process ends. Returns its address.
fn serve_upstream<F, Fut, B>(handle: F) -> SocketAddr
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<hyper::Response<B>, std::convert::Infallible>>
        + Send
        + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = StdListener::bind("127.0.0.1:0").expect("bind upstream");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handle = handle.clone();
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(handle))
                        .await;
                });
            }
        });
    });
    addr
}

/// An upstream that answers every request with the same small body, as fast as it can: the
/// benchmarks' upstream, so that they measure the proxy rather than the app.
pub fn start_static_upstream(body: &'static str) -> SocketAddr {
    serve_upstream(
        move |_req: hyper::Request<hyper::body::Incoming>| async move {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                body.as_bytes(),
            ))))
        },
    )
}

/// A gateway running on its own thread until dropped.
pub struct RunningGateway {
    /// The gateway (for reloads).
    pub gateway: Arc<Gateway>,
    /// The proxy listener.
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    shutdown: ShutdownHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.shutdown.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Renders `yaml` with `{listen}`, `{admin}` and `{upstream}` filled in, loads it and serves it.
pub fn start_gateway(yaml: &str, upstream: SocketAddr) -> RunningGateway {
    start_gateway_with_threads(yaml, upstream, 1)
}

/// [`start_gateway`] with `threads` worker threads.
pub fn start_gateway_with_threads(
    yaml: &str,
    upstream: SocketAddr,
    threads: usize,
) -> RunningGateway {
    let options = GatewayOptions {
        threads,
        ..GatewayOptions::default()
    };
    start_gateway_with_options(yaml, upstream, options)
}

/// [`start_gateway`] with the given options (worker threads, access log, ...).
pub fn start_gateway_with_options(
    yaml: &str,
    upstream: SocketAddr,
    options: GatewayOptions,
) -> RunningGateway {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let text = render(yaml, addr, admin, upstream);
    let snapshot =
        Snapshot::from_yaml_str(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    let gateway = Arc::new(Gateway::new(snapshot, options).expect("gateway loads"));
    let shutdown = ShutdownHandle::new();
    let runner = gateway.clone();
    let stopper = shutdown.clone();
    let thread = std::thread::spawn(move || {
        runner.run(stopper.watch()).expect("gateway runs");
    });
    wait_for_port(addr);
    wait_for_port(admin);
    RunningGateway {
        gateway,
        addr,
        admin,
        shutdown,
        thread: Some(thread),
    }
}

/// Fills the placeholders of a test configuration.
pub fn render(yaml: &str, addr: SocketAddr, admin: SocketAddr, upstream: SocketAddr) -> String {
    yaml.replace("{listen}", &addr.to_string())
        .replace("{admin}", &admin.to_string())
        .replace("{upstream}", &upstream.to_string())
        .replace("{artifacts}", paved_builtin_plugins::ARTIFACT_DIR)
}

fn wait_for_port(addr: SocketAddr) {
    for _ in 0..200 {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on {addr}");
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers (lower-case names; the last value wins).
    pub headers: HashMap<String, String>,
    /// Body.
    pub body: Vec<u8>,
    /// Every `set-cookie` value, in order.
    pub set_cookies: Vec<String>,
}

/// A client's cookies for one site, as a browser keeps them: set by `Set-Cookie`, removed
/// when expired or emptied, sent back as one `Cookie` header.
#[derive(Debug, Default, Clone)]
pub struct CookieJar(std::collections::BTreeMap<String, String>);

impl CookieJar {
    /// Takes the cookies a response sets (and drops those it deletes).
    pub fn take(&mut self, reply: &Reply) {
        for set in &reply.set_cookies {
            let mut parts = set.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let deleted = value.trim().is_empty()
                || parts.any(|a| {
                    let a = a.trim().to_ascii_lowercase();
                    a == "max-age=0" || a.starts_with("expires=thu, 01 jan 1970")
                });
            if deleted {
                self.0.remove(name.trim());
            } else {
                self.0
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    /// The value of a cookie.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The names of the cookies kept.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The `Cookie` header value (empty when there is none).
    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The `name=value` parts of the cookies this response set, ready for a `cookie` header.
    pub fn cookies(&self) -> Vec<String> {
        self.set_cookies
            .iter()
            .filter_map(|c| c.split(';').next())
            .map(|pair| pair.trim().to_owned())
            .collect()
    }
}

/// Sends one request over a new connection, with a 10 s bound; panics on transport errors
/// (a test helper: a failure is the test's failure).
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let request = request_builder(method, path, headers);
        let response = sender
            .send_request(
                request
                    .body(Full::new(Bytes::copy_from_slice(body)))
                    .expect("request"),
            )
            .await
            .expect("response");
        let status = response.status().as_u16();
        let set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
            set_cookies,
        }
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("reply within 10 s")
}

/// GET `path`.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[], b"").await
}

/// A body fed through a channel, frame by frame, as the sender produces them: a request or
/// response body that arrives in chunks over time (chunked encoding), with trailers if the
/// last frame is one.
pub struct ChannelBody {
    frames: tokio::sync::mpsc::Receiver<hyper::body::Frame<Bytes>>,
}

impl ChannelBody {
    /// A body and the sender of its frames; the body ends when the sender is dropped.
    pub fn new() -> (tokio::sync::mpsc::Sender<hyper::body::Frame<Bytes>>, Self) {
        let (sender, frames) = tokio::sync::mpsc::channel(16);
        (sender, Self { frames })
    }

    /// A body that yields `chunks` with `gap` before each one after the first, then
    /// `trailers` (none when empty).
    pub fn paced(chunks: Vec<Bytes>, gap: Duration, trailers: &[(&str, &str)]) -> Self {
        let (sender, body) = Self::new();
        let mut trailer_map = hyper::http::HeaderMap::new();
        for (name, value) in trailers {
            trailer_map.append(
                hyper::http::HeaderName::from_bytes(name.as_bytes()).expect("trailer name"),
                hyper::http::HeaderValue::from_str(value).expect("trailer value"),
            );
        }
        tokio::spawn(async move {
            for (i, chunk) in chunks.into_iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(gap).await;
                }
                if sender.send(hyper::body::Frame::data(chunk)).await.is_err() {
                    return;
                }
            }
            if !trailer_map.is_empty() {
                tokio::time::sleep(gap).await;
                let _ = sender.send(hyper::body::Frame::trailers(trailer_map)).await;
            }
        });
        body
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.frames.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

/// An upstream that reads each request whole (trailers included), then answers 200 with
/// `chunks` as a chunked body, `gap` before each chunk after the first, and `trailers` after
/// the body (declared in a `trailer` header; HTTP/1.1 sends them only to a client that said
/// `te: trailers`). The response header `x-upstream-request-trailers` lists the request
/// trailers it received as `name=value` pairs joined by `,` (empty when there were none).
pub fn start_streaming_upstream(
    chunks: &'static [&'static str],
    gap: Duration,
    trailers: &'static [(&'static str, &'static str)],
) -> SocketAddr {
    serve_upstream(
        move |req: hyper::Request<hyper::body::Incoming>| async move {
            let received = req.into_body().collect().await.ok();
            let request_trailers = received
                .as_ref()
                .and_then(|c| c.trailers())
                .map(|t| {
                    t.iter()
                        .map(|(n, v)| format!("{n}={}", String::from_utf8_lossy(v.as_bytes())))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let body = ChannelBody::paced(
                chunks
                    .iter()
                    .map(|c| Bytes::from_static(c.as_bytes()))
                    .collect(),
                gap,
                trailers,
            );
            let mut response = hyper::Response::builder()
                .status(200)
                .header("content-type", "text/plain")
                .header("x-upstream-request-trailers", request_trailers);
            if !trailers.is_empty() {
                let names: Vec<&str> = trailers.iter().map(|(n, _)| *n).collect();
                response = response.header("trailer", names.join(", "));
            }
            Ok::<_, std::convert::Infallible>(response.body(body).expect("response"))
        },
    )
}

/// A request to `path` with `headers`, and `host: app.test` unless they name a host.
fn request_builder(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> hyper::http::request::Builder {
    let mut request = hyper::Request::builder().method(method).uri(path);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request = request.header("host", "app.test");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
}

/// What [`send_body`] got: the reply, and the trailers that came after its body.
#[derive(Debug)]
pub struct StreamedReply {
    /// The response.
    pub reply: Reply,
    /// Response trailers (lower-case names; the last value wins).
    pub trailers: HashMap<String, String>,
}

/// Sends one request with any body over a new connection, with a 10 s bound. Unlike
/// [`send`], transport errors are returned (as text): a test of a gateway that must cut a
/// response short needs to see them.
pub async fn send_body<B>(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: B,
) -> Result<StreamedReply, String>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(connection);
        let request = request_builder(method, path, headers);
        let request = request.body(body).map_err(|e| format!("request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("response: {e}"))?;
        let status = response.status().as_u16();
        let set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let to_map = |map: &hyper::http::HeaderMap| -> HashMap<String, String> {
            map.iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect()
        };
        let headers = to_map(response.headers());
        let collected = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        let trailers = collected.trailers().map(to_map).unwrap_or_default();
        Ok(StreamedReply {
            reply: Reply {
                status,
                headers,
                body: collected.to_bytes().to_vec(),
                set_cookies,
            },
            trailers,
        })
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no reply within 10 s".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_never_handed_out_twice_in_one_process() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}
