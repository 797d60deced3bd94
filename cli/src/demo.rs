//! The demo upstream of `paved up`: a tiny app that shows who the gateway says you are.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// Serves the demo app on `addr` until the process ends.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("the demo upstream cannot listen on {addr}: {e}"))?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(html_escape)
                            .unwrap_or_else(|| "(none)".into())
                    };
                    let page = format!(
                        "<!doctype html><html><head><title>Paved demo</title></head><body>\
                         <h1>Hello from the demo app</h1>\
                         <p>The gateway says you are <b>{}</b> ({}), groups: {}.</p>\
                         <p>Request ID {} for {}.</p>\
                         <p><a href=\"/.paved/logout\">Log out</a></p></body></html>\n",
                        header("x-paved-user"),
                        header("x-paved-email"),
                        header("x-paved-groups"),
                        header("x-request-id"),
                        html_escape(req.uri().path()),
                    );
                    let response = hyper::Response::builder()
                        .header("content-type", "text/html; charset=utf-8")
                        .body(Full::new(Bytes::from(page)))
                        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())));
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
