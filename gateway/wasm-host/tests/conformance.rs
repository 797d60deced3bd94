//! Host-level Proxy-Wasm conformance suite: every scenario of the SDK-built `conformance`
//! plugin (plugins/conformance/README.md) driven through the host API as a proxy would.
//! `proxy_http_call` scenarios are in `http_call.rs`, failure modes in `faulty.rs`.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use paved_wasm_host::abi::LogLevel;
use paved_wasm_host::{BodyVerdict, LoadError, PluginFailure, TlsInfo, Verdict};

// ---------------------------------------------------------------------------------------------
// headers

const HEADERS_CONFIG: &str = r#"{"scenario": "headers", "read": "x-probe",
    "add": {"x-added": "1", "x-multi": "b"}, "replace": {"x-replace": "new"}, "remove": ["x-remove"],
    "path": "/rewritten"}"#;

fn headers_request() -> Req {
    Req::get("/orig?q=1")
        .header("x-probe", "probe-value")
        .header("x-multi", "a")
        .header("x-replace", "old")
        .header("x-remove", "gone")
        // A client must not be able to fake the plugin's report.
        .header("x-seen-method", "spoof")
}

fn assert_request_header_edits(upstream: &Message) {
    assert_eq!(
        upstream.all("x-seen-method"),
        ["GET"],
        "the report replaces the client's value"
    );
    assert_header(
        upstream.header("x-seen-path"),
        "/orig?q=1",
        "path as read, query included",
    );
    assert_header(
        upstream.header("x-seen-authority"),
        "app.test",
        ":authority",
    );
    assert_header(upstream.header("x-seen-scheme"), "http", ":scheme");
    assert_header(
        upstream.header("x-seen-header"),
        "probe-value",
        "the `read` header",
    );
    // 4 pseudo-headers and 5 others.
    assert_header(
        upstream.header("x-seen-count"),
        "9",
        "pairs returned by get_header_map_pairs",
    );
    assert_header(
        upstream.header("x-seen-num-headers"),
        "9",
        "num_headers argument",
    );
    assert_header(
        upstream.header("x-seen-pseudo"),
        ":authority,:method,:path,:scheme",
        "pseudo-headers",
    );
    assert_header(
        upstream.header("x-seen-eos"),
        "true",
        "a GET without body ends with its headers",
    );
    assert_eq!(
        upstream.all("x-multi"),
        ["a", "b"],
        "add keeps the existing value"
    );
    assert_eq!(
        upstream.all("x-replace"),
        ["new"],
        "replace leaves one value"
    );
    assert_header(upstream.header("x-added"), "1", "added header");
    assert_eq!(upstream.header("x-remove"), None, "removed header");
    assert_header(upstream.header(":path"), "/rewritten", ":path rewritten");
    assert_header(upstream.header(":method"), "GET", ":method untouched");
    assert_header(
        upstream.header(":authority"),
        "app.test",
        ":authority untouched",
    );
}

#[tokio::test]
async fn headers_are_read_and_edited_one_by_one_including_pseudo_headers() {
    let runtime = runtime();
    let plugin = load_conformance(&runtime, "headers", HEADERS_CONFIG);
    let out = pass(&plugin, &headers_request(), &Resp::ok()).await;
    assert_request_header_edits(out.upstream());
    assert_eq!(out.upstream().header("x-set-all"), None);
}

#[tokio::test]
async fn headers_are_replaced_whole_with_set_header_map_pairs() {
    let runtime = runtime();
    let config = HEADERS_CONFIG.replace(
        r#""path": "/rewritten""#,
        r#""path": "/rewritten", "set_all": true"#,
    );
    let plugin = load_conformance(&runtime, "headers-set-all", &config);
    let out = pass(&plugin, &headers_request(), &Resp::ok()).await;
    assert_request_header_edits(out.upstream());
    assert_header(
        out.upstream().header("x-set-all"),
        "1",
        "written with one set_header_map_pairs",
    );
}

#[tokio::test]
async fn headers_report_end_of_stream_false_when_a_body_follows() {
    let runtime = runtime();
    let plugin = load_conformance(&runtime, "headers-eos", r#"{"scenario": "headers"}"#);
    let req = Req::new("POST", "/upload").body(["payload"]);
    let out = pass(&plugin, &req, &Resp::ok()).await;
    let upstream = out.upstream();
    assert_header(
        upstream.header("x-seen-eos"),
        "false",
        "a body follows the headers",
    );
    assert_header(upstream.header("x-seen-method"), "POST", ":method");
    assert_header(
        upstream.header("x-seen-header"),
        "<absent>",
        "x-probe was not sent",
    );
    assert_eq!(upstream.body, b"payload");
}

#[tokio::test]
async fn response_headers_are_read_and_edited_including_status() {
    let runtime = runtime();
    let config = r#"{"scenario": "headers", "response_add": {"x-resp-added": "1"},
        "response_replace": {"content-type": "text/x-replaced"}, "response_remove": ["x-upstream-remove"]}"#;
    let plugin = load_conformance(&runtime, "response-headers", config);
    let resp = Resp::ok()
        .header("x-upstream-remove", "x")
        .header("x-other", "keep");
    let out = pass(&plugin, &Req::get("/"), &resp).await;
    let client = out.client();
    assert_header(client.header(":status"), "200", ":status kept");
    assert_header(client.header("x-seen-status"), "200", ":status as read");
    assert_header(
        client.header("x-seen-response-count"),
        "4",
        "pairs before the edits, :status included",
    );
    assert_header(client.header("x-resp-added"), "1", "added");
    assert_eq!(client.all("content-type"), ["text/x-replaced"], "replaced");
    assert_eq!(client.header("x-upstream-remove"), None, "removed");
    assert_header(client.header("x-other"), "keep", "untouched");
}

// ---------------------------------------------------------------------------------------------
// local_response

#[tokio::test]
async fn local_response_from_request_headers_never_reaches_the_upstream() {
    let runtime = runtime();
    let config = r#"{"scenario": "local_response", "phase": "request_headers", "status": 418,
        "headers": {"x-local": "1"}, "body": "teapot"}"#;
    let plugin = load_conformance(&runtime, "local-request-headers", config);
    let out = pass(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert!(out.upstream.is_none(), "the upstream is never contacted");
    let (phase, response) = out.local.as_ref().expect("a local response");
    assert_eq!(*phase, Phase::RequestHeaders);
    assert_eq!(response.status, 418);
    assert_eq!(response.body, b"teapot");
    assert_header(
        local_header(response, "x-local"),
        "1",
        "local response header",
    );
}

#[tokio::test]
async fn local_response_without_body_has_an_empty_body() {
    let runtime = runtime();
    let plugin = load_conformance(
        &runtime,
        "local-default",
        r#"{"scenario": "local_response"}"#,
    );
    let out = pass(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert_eq!(out.local().status, 403, "the default status");
    assert!(out.local().body.is_empty());
    assert!(out.local().headers.is_empty());
}

#[tokio::test]
async fn local_response_from_the_first_request_body_chunk() {
    let runtime = runtime();
    let config = r#"{"scenario": "local_response", "phase": "request_body", "status": 413, "body": "too much"}"#;
    let plugin = load_conformance(&runtime, "local-request-body", config);
    let req = Req::new("POST", "/upload").body(["first", "second", "third"]);
    let out = pass(&plugin, &req, &Resp::ok()).await;
    let (phase, response) = out.local.as_ref().expect("a local response");
    assert_eq!(*phase, Phase::RequestBody);
    assert_eq!(
        out.request_body_verdicts.len(),
        1,
        "sent from the first chunk, before the end of the body"
    );
    assert_eq!(response.status, 413);
    assert_eq!(response.body, b"too much");
    assert!(out.upstream.is_none(), "never a complete request upstream");
}

#[tokio::test]
async fn local_request_body_response_leaves_bodiless_requests_alone() {
    let runtime = runtime();
    let config = r#"{"scenario": "local_response", "phase": "request_body"}"#;
    let plugin = load_conformance(&runtime, "local-request-body-get", config);
    let out = pass(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert!(out.local.is_none());
    assert!(out.client.is_some(), "a GET without body passes through");
}

#[tokio::test]
async fn local_response_from_response_headers_replaces_the_upstream_response() {
    let runtime = runtime();
    let config = r#"{"scenario": "local_response", "phase": "response_headers", "status": 502,
        "headers": {"x-local": "response"}, "body": "replaced"}"#;
    let plugin = load_conformance(&runtime, "local-response-headers", config);
    let out = pass(&plugin, &Req::get("/"), &Resp::ok().body(["upstream body"])).await;
    assert!(
        out.upstream.is_some(),
        "the upstream did receive the request"
    );
    assert!(
        out.client.is_none(),
        "nothing of the upstream's response reaches the client"
    );
    let (phase, response) = out.local.as_ref().expect("a local response");
    assert_eq!(*phase, Phase::ResponseHeaders);
    assert_eq!(response.status, 502);
    assert_eq!(response.body, b"replaced");
    assert_header(
        local_header(response, "x-local"),
        "response",
        "local response header",
    );
}

// ---------------------------------------------------------------------------------------------
// request_body

#[tokio::test]
async fn request_body_in_one_chunk_is_read_and_uppercased() {
    let runtime = runtime();
    let plugin = load_conformance(
        &runtime,
        "request-body-one",
        r#"{"scenario": "request_body"}"#,
    );
    let req = Req::new("POST", "/upload").body(["hello world"]);
    let out = pass(&plugin, &req, &Resp::ok()).await;
    assert_eq!(out.request_body_verdicts, [BodyVerdict::Continue]);
    assert_eq!(out.upstream().body, b"HELLO WORLD");
    assert_header(
        out.client().header("x-request-body-size"),
        "11",
        "body size read at the end",
    );
    assert_header(
        out.client().header("x-request-body-calls"),
        "1",
        "body callbacks",
    );
}

#[tokio::test]
async fn request_body_is_buffered_across_chunks_until_end_of_stream() {
    let runtime = runtime();
    let plugin = load_conformance(
        &runtime,
        "request-body-chunks",
        r#"{"scenario": "request_body"}"#,
    );
    let req = Req::new("POST", "/upload").body(["hello ", "wor", "ld"]);
    let out = pass(&plugin, &req, &Resp::ok()).await;
    assert_eq!(
        out.request_body_verdicts,
        [
            BodyVerdict::Buffer,
            BodyVerdict::Buffer,
            BodyVerdict::Continue
        ],
        "StopIterationAndBuffer until the end of the stream"
    );
    let upstream = out.upstream();
    assert_eq!(
        String::from_utf8_lossy(&upstream.body),
        "HELLO WORLD",
        "the whole body, transformed"
    );
    assert_header(
        upstream.header(":method"),
        "POST",
        "request headers survive buffering",
    );
    assert_header(
        upstream.header(":path"),
        "/upload",
        "request headers survive buffering",
    );
    assert_header(
        out.client().header("x-request-body-size"),
        "11",
        "the plugin read the whole body",
    );
    assert_header(
        out.client().header("x-request-body-calls"),
        "3",
        "one callback per chunk",
    );
}

#[tokio::test]
async fn request_body_append_adds_the_marker_and_drops_content_length() {
    let runtime = runtime();
    let plugin = load_conformance(
        &runtime,
        "request-body-append",
        r#"{"scenario": "request_body", "transform": "append"}"#,
    );
    let req = Req::new("POST", "/upload").body(["hello world"]);
    let out = pass(&plugin, &req, &Resp::ok()).await;
    let upstream = out.upstream();
    assert_eq!(
        String::from_utf8_lossy(&upstream.body),
        "hello world[conformance]"
    );
    assert_eq!(
        upstream.header("content-length"),
        None,
        "the host frames the changed body itself"
    );
}

#[tokio::test]
async fn request_body_containing_the_deny_string_gets_403() {
    let runtime = runtime();
    let config = r#"{"scenario": "request_body", "transform": "none", "deny_if_contains": "evil"}"#;
    let plugin = load_conformance(&runtime, "request-body-deny", config);
    let req = Req::new("POST", "/upload").body(["some evil payload"]);
    let out = pass(&plugin, &req, &Resp::ok()).await;
    let (phase, response) = out.local.as_ref().expect("denied");
    assert_eq!(*phase, Phase::RequestBody);
    assert_eq!(response.status, 403);
    assert_eq!(response.body, b"denied");
    assert_header(
        local_header(response, "x-denied-by"),
        "conformance",
        "deny header",
    );
    assert!(
        out.upstream.is_none(),
        "the upstream never receives the body"
    );

    // A clean body with the same plugin goes through unchanged (`transform: none`).
    let out = pass(
        &plugin,
        &Req::new("POST", "/upload").body(["all good"]),
        &Resp::ok(),
    )
    .await;
    assert_eq!(out.upstream().body, b"all good");
}

#[tokio::test]
async fn request_without_body_reports_no_body_size() {
    let runtime = runtime();
    let plugin = load_conformance(
        &runtime,
        "request-body-none",
        r#"{"scenario": "request_body"}"#,
    );
    let out = pass(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert_header(
        out.client().header("x-request-body-size"),
        "none",
        "no body callback saw the end",
    );
    assert_header(
        out.client().header("x-request-body-calls"),
        "0",
        "no body callback",
    );
}

// ---------------------------------------------------------------------------------------------
// response_body

#[tokio::test]
async fn response_body_in_one_chunk_is_uppercased() {
    let runtime = runtime();
    let plugin = load_conformance(
        &runtime,
        "response-body-one",
        r#"{"scenario": "response_body"}"#,
    );
    let out = pass(&plugin, &Req::get("/"), &Resp::ok().body(["hello world"])).await;
    assert_eq!(out.response_body_verdicts, [BodyVerdict::Continue]);
    assert_eq!(out.client().body, b"HELLO WORLD");
    assert_header(
        out.client().header("content-length"),
        "11",
        "same length: content-length kept",
    );
}

#[tokio::test]
async fn response_body_is_buffered_across_chunks_until_end_of_stream() {
    let runtime = runtime();
    let plugin = load_conformance(
        &runtime,
        "response-body-chunks",
        r#"{"scenario": "response_body"}"#,
    );
    let out = pass(
        &plugin,
        &Req::get("/"),
        &Resp::ok().body(["hello ", "wor", "ld"]),
    )
    .await;
    assert_eq!(
        out.response_body_verdicts,
        [
            BodyVerdict::Buffer,
            BodyVerdict::Buffer,
            BodyVerdict::Continue
        ],
        "StopIterationAndBuffer until the end of the stream"
    );
    let client = out.client();
    assert_eq!(
        String::from_utf8_lossy(&client.body),
        "HELLO WORLD",
        "the whole body, transformed"
    );
    assert_header(
        client.header(":status"),
        "200",
        "response headers survive buffering",
    );
}

#[tokio::test]
async fn response_body_append_adds_the_marker_and_drops_content_length() {
    let runtime = runtime();
    let plugin = load_conformance(
        &runtime,
        "response-body-append",
        r#"{"scenario": "response_body", "transform": "append", "marker": "[m]"}"#,
    );
    let out = pass(&plugin, &Req::get("/"), &Resp::ok().body(["hello world"])).await;
    assert_eq!(
        String::from_utf8_lossy(&out.client().body),
        "hello world[m]"
    );
    assert_eq!(
        out.client().header("content-length"),
        None,
        "the host must frame the body itself"
    );
}

#[tokio::test]
async fn response_body_transform_none_leaves_it_unchanged() {
    let runtime = runtime();
    let plugin = load_conformance(
        &runtime,
        "response-body-none",
        r#"{"scenario": "response_body", "transform": "none"}"#,
    );
    let out = pass(&plugin, &Req::get("/"), &Resp::ok().body(["hello world"])).await;
    assert_eq!(out.client().body, b"hello world");
    assert_header(
        out.client().header("content-length"),
        "11",
        "content-length kept",
    );
}

// ---------------------------------------------------------------------------------------------
// trailers

#[tokio::test]
async fn trailers_are_read_and_extended_in_both_directions() {
    let runtime = runtime();
    let plugin = load_conformance(&runtime, "trailers", r#"{"scenario": "trailers"}"#);
    let req = Req::new("POST", "/t")
        .body(["data"])
        .trailer("x-t1", "1")
        .trailer("a-t", "2");
    let resp = Resp::ok().body(["resp"]).trailer("x-rt", "1");
    let out = pass(&plugin, &req, &resp).await;
    let upstream = out.upstream();
    assert_eq!(upstream.body, b"data");
    assert_eq!(
        upstream.trailers.get("x-t1"),
        Some(&b"1"[..]),
        "the client's trailers stay"
    );
    assert_eq!(upstream.trailers.get("a-t"), Some(&b"2"[..]));
    assert_eq!(
        upstream.trailers.get("x-conformance-trailer"),
        Some(&b"request"[..]),
        "added trailer"
    );
    let client = out.client();
    assert_header(
        client.header("x-request-trailers"),
        "2",
        "request trailers read",
    );
    assert_header(
        client.header("x-request-trailer-names"),
        "a-t,x-t1",
        "their names, sorted",
    );
    assert_eq!(client.body, b"resp");
    assert_eq!(client.trailers.get("x-rt"), Some(&b"1"[..]));
    assert_eq!(
        client.trailers.get("x-conformance-trailer"),
        Some(&b"response"[..]),
        "added response trailer"
    );
}

#[tokio::test]
async fn requests_without_trailers_report_none() {
    let runtime = runtime();
    let plugin = load_conformance(&runtime, "no-trailers", r#"{"scenario": "trailers"}"#);
    let out = pass(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert_header(
        out.client().header("x-request-trailers"),
        "none",
        "on_request_trailers not called",
    );
    assert_header(
        out.client().header("x-request-trailer-names"),
        "",
        "no names",
    );
}

// ---------------------------------------------------------------------------------------------
// shared_data

#[tokio::test]
async fn shared_data_counter_counts_sequential_requests_with_cas() {
    let runtime = runtime();
    let plugin = load_conformance(
        &runtime,
        "shared-seq",
        r#"{"scenario": "shared_data", "key": "seq-counter"}"#,
    );
    for n in 1..=5 {
        let out = pass(&plugin, &Req::get("/"), &Resp::ok()).await;
        let client = out.client();
        assert_header(
            client.header("x-counter"),
            &n.to_string(),
            "counter after this request",
        );
        assert_header(client.header("x-cas-retries"), "0", "no contention");
        assert_header(
            client.header("x-cas-stale"),
            "mismatch",
            "a stale CAS is refused",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_data_cas_gives_concurrent_requests_on_two_instances_distinct_values() {
    const REQUESTS: u64 = 48;
    let runtime = runtime();
    let mut spec = spec(
        "conformance",
        "shared-concurrent",
        r#"{"scenario": "shared_data", "key": "concurrent-counter"}"#,
    );
    spec.instances = 2;
    let plugin = runtime.load(spec, no_clusters()).expect("loads");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let plugin = plugin.clone();
        tasks.spawn(async move {
            let out = pass(&plugin, &Req::get(&format!("/c{i}")), &Resp::ok()).await;
            let client = out.client();
            let counter: u64 = client.must("x-counter").parse().expect("a number");
            let retries: u64 = client.must("x-cas-retries").parse().expect("a number");
            // Not checked here: the plugin's stale-CAS probe key is named after the context
            // ID, which is per instance, so probes of two instances can share a key.
            (counter, retries)
        });
    }
    let mut values = BTreeSet::new();
    let mut retries = 0;
    while let Some(joined) = bounded("concurrent requests", tasks.join_next()).await {
        let (counter, r) = joined.expect("request task");
        assert!(
            values.insert(counter),
            "counter value {counter} seen twice: a lost update"
        );
        retries += r;
    }
    assert_eq!(
        values,
        (1..=REQUESTS).collect::<BTreeSet<_>>(),
        "exactly 1..=N, no lost update"
    );
    assert_eq!(
        plugin.stats().instances_started.load(Ordering::Relaxed),
        2,
        "both instances served requests"
    );
    assert_eq!(plugin.stats().failures.load(Ordering::Relaxed), 0);
    // Informational: CAS mismatches resolved by retrying.
    println!("CAS retries under contention: {retries}");
}

#[tokio::test]
async fn shared_data_is_shared_by_vm_id_and_separate_between_vm_ids() {
    let runtime = runtime();
    let config = r#"{"scenario": "shared_data", "key": "vm-counter"}"#;
    let load = |name: &str, vm_id: &str| {
        let mut spec = spec("conformance", name, config);
        spec.vm_id = vm_id.into();
        runtime.load(spec, no_clusters()).expect("loads")
    };
    let a = load("vm-a", "vm-one");
    let b = load("vm-b", "vm-one");
    let c = load("vm-c", "vm-two");
    let counter = |out: Exchange| out.client().must("x-counter");
    assert_eq!(counter(pass(&a, &Req::get("/"), &Resp::ok()).await), "1");
    assert_eq!(
        counter(pass(&b, &Req::get("/"), &Resp::ok()).await),
        "2",
        "same VM ID: same data"
    );
    assert_eq!(
        counter(pass(&c, &Req::get("/"), &Resp::ok()).await),
        "1",
        "another VM ID: its own data"
    );
    assert_eq!(counter(pass(&a, &Req::get("/"), &Resp::ok()).await), "3");
}

// ---------------------------------------------------------------------------------------------
// queue

#[tokio::test]
async fn queue_items_reach_on_queue_ready_of_the_root() {
    const FIRST: usize = 5;
    let runtime = runtime();
    let config = r#"{"scenario": "queue", "name": "test_queue", "count_key": "q_count", "last_key": "q_last"}"#;
    let mut spec = spec("conformance", "queue", config);
    spec.instances = 2;
    let plugin = runtime.load(spec, no_clusters()).expect("loads");
    let mut last_count = 0;
    let check = |out: &Exchange, sent: usize, last_count: &mut usize| -> usize {
        let client = out.client();
        assert_header(client.header("x-queue-enqueue"), "ok", "enqueue status");
        assert_header(
            client.header("x-queue-resolved"),
            "same",
            "resolve finds the registered queue",
        );
        let count: usize = client.must("x-queue-count").parse().expect("a number");
        assert!(count <= sent, "{count} items dequeued but only {sent} sent");
        assert!(
            count >= *last_count,
            "the count went down from {last_count} to {count}"
        );
        *last_count = count;
        count
    };
    for i in 1..=FIRST {
        let out = pass(&plugin, &Req::get(&format!("/q{i}")), &Resp::ok()).await;
        check(&out, i, &mut last_count);
    }
    // Dequeuing is asynchronous: more requests until one sees every earlier item counted.
    let started = Instant::now();
    let mut sent = FIRST;
    loop {
        sent += 1;
        let path = format!("/q{sent}");
        let out = pass(&plugin, &Req::get(&path), &Resp::ok()).await;
        let count = check(&out, sent, &mut last_count);
        if count >= sent - 1 {
            let last = out.client().must("x-queue-last");
            let previous = format!("/q{}", sent - 1);
            assert!(
                last == previous || last == path,
                "x-queue-last {last}: expected {previous} or {path}"
            );
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "queued items were not delivered to on_queue_ready in {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(plugin.stats().failures.load(Ordering::Relaxed), 0);
}

// ---------------------------------------------------------------------------------------------
// tick

#[tokio::test]
async fn ticks_run_on_the_root_context_at_the_set_period() {
    let runtime = runtime();
    let plugin = load_conformance(
        &runtime,
        "tick",
        r#"{"scenario": "tick", "period_ms": 10, "key": "tick-count"}"#,
    );
    let ticks = |out: &Exchange| -> (u64, u64) {
        let shared = out.client().must("x-ticks").parse().expect("a number");
        let local = out
            .client()
            .must("x-ticks-local")
            .parse()
            .expect("a number");
        (shared, local)
    };
    let (first, _) = ticks(&pass(&plugin, &Req::get("/"), &Resp::ok()).await);
    let waited = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (second, local) = ticks(&pass(&plugin, &Req::get("/"), &Resp::ok()).await);
    let elapsed = waited.elapsed().as_millis() as u64;
    // ~30 ticks expected; a loaded machine may delay some, never add any.
    assert!(
        second >= first + 10,
        "only {} ticks in {elapsed} ms at a 10 ms period",
        second - first
    );
    assert!(
        second - first <= elapsed / 10 + 2,
        "{} ticks in {elapsed} ms: faster than the period",
        second - first
    );
    assert!(
        local >= 10 && local <= second,
        "local ticks {local}, shared {second}"
    );
}

// ---------------------------------------------------------------------------------------------
// root_pause

const ROOT_PAUSE: &str = r#"{"scenario": "root_pause", "ticks": 5, "period_ms": 20}"#;

#[tokio::test]
async fn requests_paused_before_the_root_is_ready_are_resumed_by_the_root() {
    let runtime = runtime();
    let loaded = Instant::now();
    let plugin = load_conformance(&runtime, "root-pause", ROOT_PAUSE);
    let (ra, rb, rc, resp) = (Req::get("/a"), Req::get("/b"), Req::get("/c"), Resp::ok());
    let (a, b, c) = tokio::join!(
        pass(&plugin, &ra, &resp),
        pass(&plugin, &rb, &resp),
        pass(&plugin, &rc, &resp)
    );
    let resumed_after = loaded.elapsed();
    for out in [&a, &b, &c] {
        assert_header(
            out.upstream().header("x-resumed-by-root"),
            "1",
            "resumed by the root after it got ready",
        );
    }
    assert_header(
        a.upstream().header(":path"),
        "/a",
        "each request keeps its own headers",
    );
    assert_header(
        c.upstream().header(":path"),
        "/c",
        "each request keeps its own headers",
    );
    assert!(
        resumed_after >= Duration::from_millis(95),
        "resumed after {resumed_after:?}, before 5 ticks of 20 ms"
    );
    // Once ready, requests go on at once.
    let out = pass(&plugin, &Req::get("/later"), &Resp::ok()).await;
    assert_header(
        out.upstream().header("x-resumed-by-root"),
        "0",
        "did not wait",
    );
    assert_eq!(plugin.stats().failures.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_paused_request_whose_client_left_is_never_resumed() {
    let runtime = runtime();
    let plugin = load_conformance(&runtime, "root-pause-gone", ROOT_PAUSE);
    let req = Req::get("/gone");
    let mut stream = req.stream();
    let mut gone = plugin.new_http_context().expect("context");
    let waited = tokio::time::timeout(
        Duration::from_millis(20),
        gone.on_request_headers(&mut stream, true),
    )
    .await;
    assert!(
        waited.is_err(),
        "the request is paused while the root is not ready"
    );
    drop(gone); // the client gave up: on_done forgets the request
    let out = pass(&plugin, &Req::get("/stays"), &Resp::ok()).await;
    assert_header(
        out.upstream().header("x-resumed-by-root"),
        "1",
        "the waiting request is resumed",
    );
    assert_eq!(
        plugin.stats().failures.load(Ordering::Relaxed),
        0,
        "resuming skipped the gone request"
    );
    let out = pass(&plugin, &Req::get("/after"), &Resp::ok()).await;
    assert_header(out.upstream().header("x-resumed-by-root"), "0", "ready");
}

fn never_ready(name: &str, pause_timeout: Duration) -> paved_wasm_host::PluginSpec {
    let mut spec = spec(
        "conformance",
        name,
        r#"{"scenario": "root_pause", "ticks": 1000000, "period_ms": 1000}"#,
    );
    spec.limits.pause_timeout = pause_timeout;
    spec
}

#[tokio::test]
async fn a_pause_never_resumed_ends_with_pause_timeout() {
    let runtime = runtime();
    let limit = Duration::from_millis(100);
    let plugin = runtime
        .load(never_ready("never-ready", limit), no_clusters())
        .expect("loads");
    let started = Instant::now();
    let failed = failure(&plugin, &Req::get("/"), &Resp::ok()).await;
    let elapsed = started.elapsed();
    assert_eq!(failed.phase, Phase::RequestHeaders);
    assert_eq!(
        failed.failure,
        PluginFailure::PauseTimeout {
            plugin: "never-ready".into(),
            limit
        }
    );
    assert!(
        elapsed >= limit,
        "gave up after {elapsed:?}, before the {limit:?} limit"
    );
    assert!(elapsed < limit * 20, "gave up only after {elapsed:?}");
    assert_eq!(
        plugin.stats().failures.load(Ordering::Relaxed),
        1,
        "counted as a failure"
    );
}

#[tokio::test]
async fn a_pause_timeout_hands_the_request_back_for_fail_open() {
    let runtime = runtime();
    let plugin = runtime
        .load(
            never_ready("never-ready-fail-open", Duration::from_millis(50)),
            no_clusters(),
        )
        .expect("loads");
    let req = Req::get("/keep").header("x-mine", "1");
    let mut stream = req.stream();
    let mut context = plugin.new_http_context().expect("context");
    let result = bounded(
        "pause timeout",
        context.on_request_headers(&mut stream, true),
    )
    .await;
    assert!(
        matches!(result, Err(PluginFailure::PauseTimeout { .. })),
        "{result:?}"
    );
    // A fail-open plugin lets the request through: the gateway needs its headers for that.
    assert_eq!(
        stream.request_headers.get(":path"),
        Some(&b"/keep"[..]),
        "{:?}",
        stream.request_headers
    );
    assert_eq!(stream.request_headers.get("x-mine"), Some(&b"1"[..]));
}

// ---------------------------------------------------------------------------------------------
// metrics

#[tokio::test]
async fn metrics_are_defined_updated_read_and_exported() {
    let runtime = runtime();
    let config = r#"{"scenario": "metrics", "counter": "conf_test_requests_total",
        "gauge": "conf_test_active", "histogram": "conf_test_path_len"}"#;
    let mut spec = spec("conformance", "metrics", config);
    spec.instances = 2;
    let plugin = runtime.load(spec, no_clusters()).expect("loads");
    for n in 1..=3 {
        let out = pass(&plugin, &Req::get("/metrics-test"), &Resp::ok()).await;
        let client = out.client();
        assert_header(
            client.header("x-metric-counter"),
            &n.to_string(),
            "counter across both instances",
        );
        assert_header(
            client.header("x-metric-gauge"),
            "1",
            "this request is in flight; earlier ones logged",
        );
        assert_header(
            client.header("x-metric-histogram"),
            "bad-argument",
            "histograms have no single value",
        );
        assert_header(
            client.header("x-metric-unknown"),
            "not-found",
            "unknown metric id",
        );
        assert_header(
            client.header("x-metric-counter-decrement"),
            "bad-argument",
            "counters only go up",
        );
        assert_header(
            client.header("x-metric-redefine"),
            "same",
            "defining again returns the same id",
        );
    }
    let text = runtime.metrics().render_prometheus("wasm_");
    for line in [
        "# TYPE wasm_conf_test_requests_total counter",
        "wasm_conf_test_requests_total 3",
        "# TYPE wasm_conf_test_active gauge",
        "wasm_conf_test_active 0",
        "# TYPE wasm_conf_test_path_len histogram",
        "wasm_conf_test_path_len_bucket{le=\"4\"} 0",
        "wasm_conf_test_path_len_bucket{le=\"16\"} 3",
        "wasm_conf_test_path_len_bucket{le=\"+Inf\"} 3",
        "wasm_conf_test_path_len_count 3",
        // `/metrics-test` is 13 bytes.
        "wasm_conf_test_path_len_sum 39",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// properties

fn properties_request() -> Req {
    let mut req = Req::get("/p/q?x=1").header("x-probe", "hello");
    req.info.request_id = "req-props-1".into();
    req.info.source = Some("10.0.0.7:41000".parse::<SocketAddr>().expect("addr"));
    req.info.destination = Some("127.0.0.1:8080".parse::<SocketAddr>().expect("addr"));
    req
}

#[tokio::test]
async fn properties_use_envoy_attribute_names_and_encodings() {
    let runtime = runtime();
    let mut spec = spec("conformance", "props", r#"{"scenario": "properties"}"#);
    spec.root_id = "props-root".into();
    spec.vm_id = "props-vm".into();
    let plugin = runtime.load(spec, no_clusters()).expect("loads");
    let out = pass(&plugin, &properties_request(), &Resp::ok()).await;
    let client = out.client();
    for (header, expected) in [
        ("x-prop-request-path", "/p/q?x=1"),
        ("x-prop-request-url-path", "/p/q"),
        ("x-prop-request-host", "app.test"),
        ("x-prop-request-scheme", "http"),
        ("x-prop-request-method", "GET"),
        ("x-prop-request-protocol", "HTTP/1.1"),
        ("x-prop-request-id", "req-props-1"),
        ("x-prop-request-headers", "5"),
        ("x-prop-source-address", "10.0.0.7:41000"),
        ("x-prop-source-port", "41000"),
        ("x-prop-destination-address", "127.0.0.1:8080"),
        ("x-prop-destination-port", "8080"),
        ("x-prop-connection-mtls", "false"),
        ("x-prop-plugin-name", "props"),
        ("x-prop-plugin-root-id", "props-root"),
        ("x-prop-plugin-vm-id", "props-vm"),
        ("x-prop-request-header", "hello"),
        ("x-prop-custom", "custom-value"),
        ("x-prop-response-code", "200"),
        ("x-prop-custom-later", "custom-value"),
    ] {
        assert_header(client.header(header), expected, header);
    }
    // Read after the plugin set its report headers and `x-prop-response-code`, before
    // `x-prop-response-headers` and `x-prop-custom-later`.
    let expected_entries = client.headers.len() - 2;
    assert_header(
        client.header("x-prop-response-headers"),
        &expected_entries.to_string(),
        "response.headers",
    );
}

#[tokio::test]
async fn connection_mtls_is_true_with_a_verified_client_certificate() {
    let runtime = runtime();
    let plugin = load_conformance(&runtime, "props-mtls", r#"{"scenario": "properties"}"#);
    let mut req = properties_request();
    req.headers[3].1 = "https".into();
    req.info.tls = Some(TlsInfo {
        server_name: Some("app.test".into()),
        version: "TLSv1.3".into(),
        mtls: true,
    });
    let out = pass(&plugin, &req, &Resp::ok()).await;
    assert_header(
        out.client().header("x-prop-connection-mtls"),
        "true",
        "connection.mtls",
    );
    assert_header(
        out.client().header("x-prop-request-scheme"),
        "https",
        "request.scheme",
    );
}

#[tokio::test]
async fn attributes_without_a_value_are_not_found() {
    let runtime = runtime();
    let plugin = load_conformance(
        &runtime,
        "props-absent",
        r#"{"scenario": "properties", "header": "x-not-sent"}"#,
    );
    let mut req = properties_request();
    req.info.source = None;
    req.info.destination = None;
    let out = pass(&plugin, &req, &Resp::ok()).await;
    for header in [
        "x-prop-source-address",
        "x-prop-source-port",
        "x-prop-destination-address",
        "x-prop-destination-port",
        "x-prop-request-header",
    ] {
        assert_header(out.client().header(header), "<absent>", header);
    }
}

#[tokio::test]
async fn a_plugin_cannot_spoof_built_in_attributes_for_the_next_plugin() {
    let runtime = runtime();
    let spoofer = load_conformance(
        &runtime,
        "spoofer",
        r#"{"scenario": "properties", "set_path": "source.address", "set_value": "6.6.6.6:666"}"#,
    );
    let reader = load_conformance(&runtime, "reader", r#"{"scenario": "properties"}"#);
    // One stream through a chain of two plugins: request phases in order, response in reverse.
    let req = properties_request();
    let mut stream = req.stream();
    let mut first = spoofer.new_http_context().expect("context");
    let mut second = reader.new_http_context().expect("context");
    assert_eq!(
        bounded("first", first.on_request_headers(&mut stream, true)).await,
        Ok(Verdict::Continue)
    );
    assert_eq!(
        bounded("second", second.on_request_headers(&mut stream, true)).await,
        Ok(Verdict::Continue)
    );
    stream.response_headers = paved_wasm_host::HeaderMap::from_pairs([(":status", "200")]);
    assert_eq!(
        bounded("second", second.on_response_headers(&mut stream, true)).await,
        Ok(Verdict::Continue)
    );
    let seen = stream
        .response_headers
        .get_str("x-prop-source-address")
        .map(str::to_owned);
    second.finish(&mut stream);
    first.finish(&mut stream);
    // On Envoy, proxy_set_property stores plugin values apart (filter state `wasm.<path>`):
    // attributes of the connection cannot be overwritten by a plugin.
    assert_header(
        seen,
        "10.0.0.7:41000",
        "source.address as the next plugin sees it",
    );
}

// ---------------------------------------------------------------------------------------------
// log

#[tokio::test]
async fn logs_reach_tracing_at_their_levels_with_the_plugin_name() {
    let capture = Capture::default();
    let _guard = capture.install();
    let runtime = runtime();
    let mut spec = spec("conformance", "logger", r#"{"scenario": "log"}"#);
    spec.log_level = LogLevel::Trace;
    let plugin = runtime.load(spec, no_clusters()).expect("loads");
    let out = pass(&plugin, &Req::get("/log"), &Resp::ok()).await;
    assert_header(out.client().header("x-logged"), "6", "messages logged");
    assert_header(
        out.client().header("x-log-level"),
        "0",
        "proxy_get_log_level returns the plugin's level",
    );
    let events = capture.events();
    for (word, level) in [
        ("trace", tracing::Level::TRACE),
        ("debug", tracing::Level::DEBUG),
        ("info", tracing::Level::INFO),
        ("warn", tracing::Level::WARN),
        ("error", tracing::Level::ERROR),
        ("critical", tracing::Level::ERROR),
    ] {
        let message = format!("conformance log {word} /log");
        let found = events
            .iter()
            .find(|e| e.field("message").iter().any(|m| m.contains(&message)));
        let event = found.unwrap_or_else(|| panic!("no `{message}` in {events:#?}"));
        assert_eq!(event.level, level, "{message}");
        assert_eq!(
            event.field("plugin"),
            ["logger"],
            "{message} names the plugin"
        );
    }
}

#[tokio::test]
async fn get_log_level_returns_the_configured_level() {
    let runtime = runtime();
    let mut spec = spec("conformance", "log-level", r#"{"scenario": "log"}"#);
    spec.log_level = LogLevel::Warn;
    let plugin = runtime.load(spec, no_clusters()).expect("loads");
    let out = pass(&plugin, &Req::get("/log"), &Resp::ok()).await;
    assert_header(out.client().header("x-log-level"), "3", "warn");
}

#[tokio::test]
async fn logs_below_the_plugin_log_level_are_dropped() {
    let capture = Capture::default();
    let _guard = capture.install();
    let runtime = runtime();
    let mut spec = spec("conformance", "quiet-logger", r#"{"scenario": "log"}"#);
    spec.log_level = LogLevel::Warn;
    let plugin = runtime.load(spec, no_clusters()).expect("loads");
    pass(&plugin, &Req::get("/quiet"), &Resp::ok()).await;
    let logged = |word: &str| {
        let message = format!("conformance log {word} /quiet");
        capture
            .events()
            .iter()
            .any(|e| e.field("message").iter().any(|m| m.contains(&message)))
    };
    for kept in ["warn", "error", "critical"] {
        assert!(logged(kept), "{kept} is at or above the level: kept");
    }
    for dropped in ["trace", "debug", "info"] {
        assert!(
            !logged(dropped),
            "{dropped} is below the plugin's log level (warn): dropped"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// time, vm_config

#[tokio::test]
async fn current_time_is_unix_nanoseconds_through_the_abi_and_wasi() {
    let runtime = runtime();
    let plugin = load_conformance(&runtime, "time", r#"{"scenario": "time"}"#);
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after the epoch")
            .as_nanos()
    };
    let before = now();
    let out = pass(&plugin, &Req::get("/"), &Resp::ok()).await;
    let after = now();
    let slack = Duration::from_secs(2).as_nanos();
    for header in ["x-time-ns", "x-time-wasi-ns"] {
        let value: u128 = out
            .client()
            .must(header)
            .parse()
            .expect("decimal nanoseconds");
        assert!(
            value + slack >= before && value <= after + slack,
            "{header} {value} not within {before}..{after}"
        );
    }
}

#[tokio::test]
async fn vm_configuration_is_handed_to_on_vm_start() {
    let runtime = runtime();
    let mut spec = spec("conformance", "vm-config", r#"{"scenario": "vm_config"}"#);
    spec.vm_configuration = b"vm-settings".to_vec();
    let plugin = runtime.load(spec, no_clusters()).expect("loads");
    let out = pass(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert_header(
        out.client().header("x-vm-config-size"),
        "11",
        "vm_configuration_size",
    );
    assert_header(
        out.client().header("x-vm-config"),
        "vm-settings",
        "VM_CONFIGURATION buffer",
    );
}

#[tokio::test]
async fn empty_vm_configuration_is_size_zero_and_absent() {
    let runtime = runtime();
    let plugin = load_conformance(&runtime, "vm-config-empty", r#"{"scenario": "vm_config"}"#);
    let out = pass(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert_header(
        out.client().header("x-vm-config-size"),
        "0",
        "vm_configuration_size",
    );
    assert_header(out.client().header("x-vm-config"), "<absent>", "no bytes");
}

// ---------------------------------------------------------------------------------------------
// lifecycle

#[tokio::test]
async fn on_done_and_on_log_run_once_per_finished_context() {
    const N: u64 = 4;
    let runtime = runtime();
    let plugin = load_conformance(
        &runtime,
        "lifecycle",
        r#"{"scenario": "lifecycle", "log_key": "l-log", "done_key": "l-done"}"#,
    );
    let mut ids = BTreeSet::new();
    for n in 0..=N {
        let out = pass(&plugin, &Req::get("/"), &Resp::ok()).await;
        let client = out.client();
        assert_header(
            client.header("x-log-calls"),
            &n.to_string(),
            "on_log of every earlier request, once",
        );
        assert_header(
            client.header("x-done-calls"),
            &n.to_string(),
            "on_done of every earlier request, once",
        );
        assert_header(
            client.header("x-root-context-id"),
            "1",
            "the root context's id",
        );
        let id = client.must("x-context-id");
        assert_ne!(id, "1", "a request context is not the root");
        assert!(ids.insert(id.clone()), "context id {id} reused");
    }
}

#[tokio::test]
async fn contexts_dropped_without_finish_still_get_on_done_and_on_log() {
    let runtime = runtime();
    let plugin = load_conformance(
        &runtime,
        "lifecycle-drop",
        r#"{"scenario": "lifecycle", "log_key": "d-log", "done_key": "d-done"}"#,
    );
    // A request whose client went away mid-way: the gateway drops the context.
    let req = Req::get("/");
    let mut stream = req.stream();
    let mut context = plugin.new_http_context().expect("context");
    let verdict = bounded(
        "request headers",
        context.on_request_headers(&mut stream, true),
    )
    .await;
    assert_eq!(verdict, Ok(Verdict::Continue));
    drop(context);
    // A context created and never called.
    drop(plugin.new_http_context().expect("context"));
    let out = pass(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert_header(
        out.client().header("x-log-calls"),
        "2",
        "on_log of both dropped contexts",
    );
    assert_header(
        out.client().header("x-done-calls"),
        "2",
        "on_done of both dropped contexts",
    );
}

// ---------------------------------------------------------------------------------------------
// reset, configuration

#[tokio::test]
async fn close_stream_resets_the_request() {
    let runtime = runtime();
    let plugin = load_conformance(&runtime, "reset", r#"{"scenario": "reset"}"#);
    let out = pass(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert_eq!(out.closed, Some(Phase::RequestHeaders), "{out:?}");
    assert!(out.upstream.is_none() && out.local.is_none());
}

#[tokio::test]
async fn configurations_the_plugin_rejects_fail_the_load() {
    let runtime = runtime();
    for config in [
        "",
        "not json",
        r#"{"scenario": "nope"}"#,
        r#"{"no_scenario": 1}"#,
        r#"{"scenario": "log", "x": 1}"#,
        r#"{"scenario": "headers", "add": "not a map"}"#,
    ] {
        match load_error(&runtime, spec("conformance", "rejected", config)) {
            LoadError::ConfigureRejected { plugin } => assert_eq!(plugin, "rejected"),
            other => panic!("{config:?}: expected ConfigureRejected, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn one_plugin_serves_many_sequential_requests_on_a_reused_instance() {
    let runtime = runtime();
    let plugin = load_conformance(&runtime, "reuse", HEADERS_CONFIG);
    for i in 0..50 {
        let out = pass(
            &plugin,
            &headers_request().header("x-i", &i.to_string()),
            &Resp::ok(),
        )
        .await;
        assert_header(
            out.upstream().header(":path"),
            "/rewritten",
            "each request edited",
        );
        assert_header(
            out.upstream().header("x-i"),
            &i.to_string(),
            "its own headers",
        );
    }
    assert_eq!(plugin.stats().instances_started.load(Ordering::Relaxed), 1);
    assert_eq!(plugin.stats().failures.load(Ordering::Relaxed), 0);
    assert!(
        plugin.stats().calls.load(Ordering::Relaxed) >= 100,
        "request and response headers of each"
    );
}
