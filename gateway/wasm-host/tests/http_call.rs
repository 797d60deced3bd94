//! `proxy_http_call` conformance: the `conformance` plugin's `http_call` scenario (and the
//! `http_call_response` phase of `local_response`) against a real HTTP/1.1 upstream started by
//! the test, through the host's `ClusterDispatcher`.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use paved_wasm_host::Plugin;

fn load(
    runtime: &paved_wasm_host::Runtime,
    name: &str,
    config: &str,
    cluster: Option<std::net::SocketAddr>,
) -> Plugin {
    let dispatcher = match cluster {
        Some(addr) => clusters([("echo", addr)]),
        None => no_clusters(),
    };
    runtime
        .load(spec("conformance", name, config), dispatcher)
        .expect("loads")
}

const CALL: &str = r#"{"cluster": "echo", "method": "POST", "path": "/callout", "authority": "callout.test",
    "headers": {"x-from-plugin": "1"}, "body": "ping", "timeout_ms": 5000}"#;

fn call_config(phase: &str) -> String {
    format!(
        r#"{{"scenario": "http_call", "phase": "{phase}", "echo_header": "content-type", "call": {CALL}}}"#
    )
}

/// What the plugin copied from the call's response into `headers`.
fn assert_call_report(message: &Message, expected_body: &str, trailers: usize) {
    assert_header(message.header("x-call-status"), "200", "the call's :status");
    let headers: usize = message.must("x-call-headers").parse().expect("a number");
    assert_header(
        message.header("x-call-num-headers"),
        &headers.to_string(),
        "num_headers = pairs read",
    );
    // :status, x-upstream, x-echo-method, x-echo-path, content-type, connection, and the framing.
    assert!(
        headers >= 7,
        "only {headers} response headers reached the plugin"
    );
    assert_header(
        message.header("x-call-body"),
        expected_body,
        "the call's body",
    );
    assert_header(
        message.header("x-call-body-size"),
        &expected_body.len().to_string(),
        "body_size",
    );
    assert_header(
        message.header("x-call-trailers"),
        &trailers.to_string(),
        "trailers read",
    );
    assert_header(
        message.header("x-call-num-trailers"),
        &trailers.to_string(),
        "num_trailers",
    );
    assert_header(
        message.header("x-call-header"),
        "text/x-echo",
        "echo_header from the call's response",
    );
}

fn assert_callout_received(upstream: &Upstream) {
    let received = upstream.received();
    assert_eq!(received.len(), 1, "one call: {received:?}");
    let call = &received[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.path, "/callout");
    assert_eq!(
        call.header("host"),
        Some("callout.test"),
        ":authority becomes Host"
    );
    assert_eq!(call.header("x-from-plugin"), Some("1"));
    assert_eq!(call.body, b"ping");
}

#[tokio::test]
async fn http_call_response_reaches_the_plugin_and_resumes_the_request() {
    let upstream = Upstream::start(Mode::Echo).await;
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "call-request",
        &call_config("request_headers"),
        Some(upstream.addr),
    );
    let out = pass(
        &plugin,
        &Req::get("/r").header("x-client", "c"),
        &Resp::ok(),
    )
    .await;
    let forwarded = out.upstream();
    assert_call_report(forwarded, "echo:POST /callout ping", 0);
    assert_header(
        forwarded.header(":path"),
        "/r",
        "the paused request's own headers are kept",
    );
    assert_header(
        forwarded.header("x-client"),
        "c",
        "the paused request's own headers are kept",
    );
    assert_callout_received(&upstream);
    assert_eq!(plugin.stats().failures.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn http_call_from_response_headers_resumes_the_response() {
    let upstream = Upstream::start(Mode::Echo).await;
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "call-response",
        &call_config("response_headers"),
        Some(upstream.addr),
    );
    let out = pass(
        &plugin,
        &Req::get("/r"),
        &Resp::ok().header("x-from-upstream", "u").body(["body"]),
    )
    .await;
    assert!(
        out.upstream().header("x-call-status").is_none(),
        "the request was not paused"
    );
    let client = out.client();
    assert_call_report(client, "echo:POST /callout ping", 0);
    assert_header(client.header(":status"), "200", "the upstream's response");
    assert_header(
        client.header("x-from-upstream"),
        "u",
        "the upstream's response headers are kept",
    );
    assert_eq!(client.body, b"body");
    assert_callout_received(&upstream);
}

#[tokio::test]
async fn http_call_response_trailers_reach_the_plugin() {
    let upstream = Upstream::start(Mode::ChunkedWithTrailers).await;
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "call-trailers",
        &call_config("request_headers"),
        Some(upstream.addr),
    );
    let out = pass(&plugin, &Req::get("/r"), &Resp::ok()).await;
    assert_call_report(out.upstream(), "echo:POST /callout ping", 2);
}

#[tokio::test]
async fn http_call_to_a_refused_endpoint_yields_call_failed() {
    let refused = refused_addr().await;
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "call-refused",
        &call_config("request_headers"),
        Some(refused),
    );
    let out = pass(&plugin, &Req::get("/r"), &Resp::ok()).await;
    assert!(out.upstream.is_none(), "the request never goes on");
    assert_eq!(out.local().status, 503);
    assert_eq!(out.local().body, b"call failed");
    assert_header(out.local_header("x-call-failed"), "1", "num_headers was 0");
}

#[tokio::test]
async fn http_call_that_times_out_yields_call_failed() {
    let silent = Upstream::start(Mode::Silent).await;
    let runtime = runtime();
    let config = r#"{"scenario": "http_call", "call": {"cluster": "echo", "timeout_ms": 200}}"#;
    let plugin = load(&runtime, "call-timeout", config, Some(silent.addr));
    let started = Instant::now();
    let out = pass(&plugin, &Req::get("/r"), &Resp::ok()).await;
    let elapsed = started.elapsed();
    assert_eq!(out.local().status, 503);
    assert_eq!(out.local().body, b"call failed");
    assert!(
        elapsed >= Duration::from_millis(200),
        "failed after {elapsed:?}, before its timeout"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "the call's 200 ms timeout took {elapsed:?}"
    );
}

#[tokio::test]
async fn http_call_to_an_unknown_cluster_is_a_bad_argument() {
    let upstream = Upstream::start(Mode::Echo).await;
    let runtime = runtime();
    let config = r#"{"scenario": "http_call", "call": {"cluster": "no-such-cluster"}}"#;
    let plugin = load(&runtime, "call-unknown", config, Some(upstream.addr));
    let out = pass(&plugin, &Req::get("/r"), &Resp::ok()).await;
    assert_eq!(
        out.local.as_ref().map(|(phase, _)| *phase),
        Some(Phase::RequestHeaders)
    );
    assert_eq!(out.local().status, 503);
    assert_eq!(out.local().body, b"dispatch failed");
    assert_header(
        out.local_header("x-dispatch-status"),
        "bad-argument",
        "proxy_http_call's status",
    );
    assert!(upstream.received().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn http_call_without_clusters_is_a_bad_argument() {
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "call-no-clusters",
        &call_config("request_headers"),
        None,
    );
    let out = pass(&plugin, &Req::get("/r"), &Resp::ok()).await;
    assert_eq!(out.local().status, 503);
    assert_header(
        out.local_header("x-dispatch-status"),
        "bad-argument",
        "proxy_http_call's status",
    );
}

#[tokio::test]
async fn local_response_from_http_call_response_carries_the_call_status() {
    let upstream = Upstream::start(Mode::Echo).await;
    let runtime = runtime();
    let config = r#"{"scenario": "local_response", "phase": "http_call_response", "status": 401,
        "headers": {"x-local": "1"}, "body": "after call", "call": {"cluster": "echo", "path": "/auth"}}"#;
    let plugin = load(&runtime, "local-after-call", config, Some(upstream.addr));
    let out = pass(&plugin, &Req::get("/r"), &Resp::ok()).await;
    assert!(out.upstream.is_none(), "the upstream is never contacted");
    assert_eq!(
        out.local.as_ref().map(|(phase, _)| *phase),
        Some(Phase::RequestHeaders),
        "sent while paused there"
    );
    assert_eq!(out.local().status, 401);
    assert_eq!(out.local().body, b"after call");
    assert_header(out.local_header("x-local"), "1", "configured header");
    assert_header(
        out.local_header("x-call-status"),
        "200",
        "the call's :status",
    );
    let received = upstream.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "GET");
    assert_eq!(received[0].path, "/auth");
    assert_eq!(
        received[0].header("host"),
        Some("callout.conformance"),
        "default authority"
    );
}

#[tokio::test]
async fn local_response_from_a_failed_http_call_reports_failed() {
    let refused = refused_addr().await;
    let runtime = runtime();
    let config = r#"{"scenario": "local_response", "phase": "http_call_response", "call": {"cluster": "echo"}}"#;
    let plugin = load(&runtime, "local-after-failed-call", config, Some(refused));
    let out = pass(&plugin, &Req::get("/r"), &Resp::ok()).await;
    assert_eq!(out.local().status, 403);
    assert_header(
        out.local_header("x-call-status"),
        "failed",
        "num_headers was 0",
    );
}

#[tokio::test]
async fn local_response_after_dispatch_failure_is_503_dispatch_failed() {
    let runtime = runtime();
    let config = r#"{"scenario": "local_response", "phase": "http_call_response", "call": {"cluster": "nowhere"}}"#;
    let plugin = load(&runtime, "local-dispatch-failed", config, None);
    let out = pass(&plugin, &Req::get("/r"), &Resp::ok()).await;
    assert_eq!(out.local().status, 503);
    assert_eq!(out.local().body, b"dispatch failed");
    assert_header(
        out.local_header("x-dispatch-status"),
        "bad-argument",
        "proxy_http_call's status",
    );
}

#[tokio::test]
async fn a_call_answered_after_its_request_ended_is_dropped_harmlessly() {
    let silent = Upstream::start(Mode::Silent).await;
    let runtime = runtime();
    let config = r#"{"scenario": "http_call", "call": {"cluster": "echo", "timeout_ms": 150}}"#;
    let plugin = load(&runtime, "call-orphan", config, Some(silent.addr));
    let req = Req::get("/gone");
    let mut stream = req.stream();
    let mut context = plugin.new_http_context().expect("context");
    let waited = tokio::time::timeout(
        Duration::from_millis(20),
        context.on_request_headers(&mut stream, true),
    )
    .await;
    assert!(waited.is_err(), "the request is paused on its call");
    drop(context); // the client left; the call fails later, for a context that is gone
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        plugin.stats().failures.load(Ordering::Relaxed),
        0,
        "no callback into a gone context"
    );
    // The instance is fine: the next request makes its own call, which fails the same way.
    let out = pass(&plugin, &Req::get("/next"), &Resp::ok()).await;
    assert_eq!(out.local().body, b"call failed");
    assert_eq!(
        plugin.stats().instances_started.load(Ordering::Relaxed),
        1,
        "no instance was replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_each_get_their_own_call_response() {
    const REQUESTS: usize = 16;
    let upstream = Upstream::start(Mode::Echo).await;
    let runtime = runtime();
    let config = r#"{"scenario": "http_call", "echo_header": "x-echo-path", "call": {"cluster": "echo", "path": "/same"}}"#;
    let mut spec = spec("conformance", "call-concurrent", config);
    spec.instances = 2;
    let plugin = runtime
        .load(spec, clusters([("echo", upstream.addr)]))
        .expect("loads");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let plugin = plugin.clone();
        tasks.spawn(async move {
            let out = pass(
                &plugin,
                &Req::get(&format!("/r{i}")).header("x-i", &i.to_string()),
                &Resp::ok(),
            )
            .await;
            (i, out)
        });
    }
    let mut done = 0;
    while let Some(joined) = bounded("concurrent calls", tasks.join_next()).await {
        let (i, out) = joined.expect("request task");
        let forwarded = out.upstream();
        assert_header(
            forwarded.header(":path"),
            &format!("/r{i}"),
            "each request resumes with its own headers",
        );
        assert_header(
            forwarded.header("x-i"),
            &i.to_string(),
            "each request resumes with its own headers",
        );
        assert_header(
            forwarded.header("x-call-status"),
            "200",
            "its call's response",
        );
        assert_header(
            forwarded.header("x-call-header"),
            "/same",
            "its call's response header",
        );
        done += 1;
    }
    assert_eq!(done, REQUESTS);
    assert_eq!(upstream.received().len(), REQUESTS, "one call per request");
    assert_eq!(plugin.stats().failures.load(Ordering::Relaxed), 0);
}
