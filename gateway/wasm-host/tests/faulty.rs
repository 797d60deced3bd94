//! Failure modes of the Proxy-Wasm host, with the SDK-built `faulty` plugin
//! (plugins/faulty/README.md): traps, endless loops, memory exhaustion, bad pointers, oversized
//! headers and rejected configurations are contained, reported as the right failure, and the
//! plugin (and every other plugin) keeps serving.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use paved_wasm_host::{LoadError, Plugin, PluginFailure, PluginSpec, Runtime, Verdict};

fn faulty(name: &str, config: &str) -> PluginSpec {
    spec("faulty", name, config)
}

fn load(runtime: &Runtime, spec: PluginSpec) -> Plugin {
    let name = spec.name.clone();
    runtime
        .load(spec, no_clusters())
        .unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

fn post() -> Req {
    Req::new("POST", "/upload").body(["some ", "body"])
}

fn response_with_body() -> Resp {
    Resp::ok().body(["response ", "body"])
}

fn assert_trap(failed: &Failed, plugin: &str, function: &str) {
    match &failed.failure {
        PluginFailure::Trap {
            plugin: p,
            function: f,
            ..
        } => {
            assert_eq!(p, plugin);
            assert_eq!(*f, function);
        }
        other => panic!("expected a trap in {function}, got {other:?}"),
    }
}

/// A request that the plugin lets through: a GET without body (the fault is in a body phase).
async fn assert_serves(plugin: &Plugin) {
    let out = pass(plugin, &Req::get("/healthy"), &Resp::ok()).await;
    assert_header(
        out.upstream().header(":path"),
        "/healthy",
        "the request went through",
    );
    assert!(out.client.is_some(), "and its response came back");
}

// ---------------------------------------------------------------------------------------------
// trap

#[tokio::test]
async fn trap_in_request_headers_fails_the_request_and_is_logged_with_the_plugin_name() {
    let capture = Capture::default();
    let _guard = capture.install();
    let runtime = runtime();
    let plugin = load(
        &runtime,
        faulty(
            "trap",
            r#"{"scenario": "trap", "phase": "request_headers"}"#,
        ),
    );
    let failed = failure(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert_eq!(failed.phase, Phase::RequestHeaders);
    assert_trap(&failed, "trap", "proxy_on_request_headers");
    assert_eq!(plugin.stats().failures.load(Ordering::Relaxed), 1);

    let events = capture.events();
    let panic_logged = events.iter().any(|e| {
        e.level == tracing::Level::ERROR
            && e.field("plugin") == ["trap"]
            && e.field("message")
                .iter()
                .any(|m| m.contains("faulty: trap in RequestHeaders, on purpose"))
    });
    assert!(
        panic_logged,
        "the SDK's panic message (critical) is logged with the plugin's name: {events:#?}"
    );
    let failure_logged = events.iter().any(|e| {
        e.level == tracing::Level::WARN
            && e.field("plugin") == ["trap"]
            && e.field("function") == ["proxy_on_request_headers"]
    });
    assert!(
        failure_logged,
        "the host logs the failure with the plugin's name: {events:#?}"
    );
}

#[tokio::test]
async fn trap_is_reported_for_the_phase_it_happens_in() {
    let runtime = runtime();
    for (phase, expected_phase, function) in [
        (
            "request_headers",
            Phase::RequestHeaders,
            "proxy_on_request_headers",
        ),
        ("request_body", Phase::RequestBody, "proxy_on_request_body"),
        (
            "response_headers",
            Phase::ResponseHeaders,
            "proxy_on_response_headers",
        ),
        (
            "response_body",
            Phase::ResponseBody,
            "proxy_on_response_body",
        ),
    ] {
        let name = format!("trap-{phase}");
        let plugin = load(
            &runtime,
            faulty(
                &name,
                &format!(r#"{{"scenario": "trap", "phase": "{phase}"}}"#),
            ),
        );
        let failed = failure(&plugin, &post(), &response_with_body()).await;
        assert_eq!(failed.phase, expected_phase, "{phase}");
        assert_trap(&failed, &name, function);
    }
}

#[tokio::test]
async fn a_new_request_works_after_a_trap_on_a_replaced_instance() {
    let runtime = runtime();
    let plugin = load(
        &runtime,
        faulty(
            "trap-recover",
            r#"{"scenario": "trap", "phase": "request_body"}"#,
        ),
    );
    for round in 1..=3u64 {
        let failed = failure(&plugin, &post(), &Resp::ok()).await;
        assert_trap(&failed, "trap-recover", "proxy_on_request_body");
        assert_serves(&plugin).await;
        assert_eq!(
            plugin.stats().instances_started.load(Ordering::Relaxed),
            round + 1,
            "the poisoned instance was replaced"
        );
    }
    assert_eq!(plugin.stats().failures.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn other_streams_of_a_failed_instance_fail_as_unavailable() {
    let runtime = runtime();
    let plugin = load(
        &runtime,
        faulty(
            "trap-shared",
            r#"{"scenario": "trap", "phase": "request_body"}"#,
        ),
    );
    let req = post();
    let (mut a_stream, mut b_stream) = (req.stream(), req.stream());
    let mut a = plugin.new_http_context().expect("context");
    let mut b = plugin.new_http_context().expect("context");
    assert_eq!(
        bounded("a headers", a.on_request_headers(&mut a_stream, false)).await,
        Ok(Verdict::Continue)
    );
    assert_eq!(
        bounded("b headers", b.on_request_headers(&mut b_stream, false)).await,
        Ok(Verdict::Continue)
    );
    a_stream.request_body = b"body".to_vec();
    let trapped = bounded("a body", a.on_request_body(&mut a_stream, true)).await;
    assert!(
        matches!(trapped, Err(PluginFailure::Trap { .. })),
        "{trapped:?}"
    );
    b_stream.request_body = b"body".to_vec();
    let unavailable = bounded("b body", b.on_request_body(&mut b_stream, true)).await;
    assert!(
        matches!(&unavailable, Err(PluginFailure::Unavailable { plugin, .. }) if plugin == "trap-shared"),
        "a stream whose instance failed cannot go on: {unavailable:?}"
    );
    drop((a, b));
    assert_serves(&plugin).await;
}

#[tokio::test]
async fn a_failure_poisons_only_its_own_instance_of_the_pool() {
    let runtime = runtime();
    let mut spec = faulty(
        "trap-pool",
        r#"{"scenario": "trap", "phase": "request_body"}"#,
    );
    spec.instances = 2;
    let plugin = load(&runtime, spec);
    let req = post();
    let (mut a_stream, mut b_stream) = (req.stream(), req.stream());
    // Round robin: the two contexts live in the two instances.
    let mut a = plugin.new_http_context().expect("context");
    let mut b = plugin.new_http_context().expect("context");
    assert_eq!(plugin.stats().instances_started.load(Ordering::Relaxed), 2);
    assert_eq!(
        bounded("a headers", a.on_request_headers(&mut a_stream, false)).await,
        Ok(Verdict::Continue)
    );
    assert_eq!(
        bounded("b headers", b.on_request_headers(&mut b_stream, true)).await,
        Ok(Verdict::Continue)
    );
    a_stream.request_body = b"body".to_vec();
    let trapped = bounded("a body", a.on_request_body(&mut a_stream, true)).await;
    assert!(
        matches!(trapped, Err(PluginFailure::Trap { .. })),
        "{trapped:?}"
    );
    // b has no body: it goes on to its response in the healthy instance.
    b_stream.response_headers = paved_wasm_host::HeaderMap::from_pairs([(":status", "200")]);
    assert_eq!(
        bounded("b response", b.on_response_headers(&mut b_stream, true)).await,
        Ok(Verdict::Continue)
    );
    b.finish(&mut b_stream);
    drop(a);
}

// ---------------------------------------------------------------------------------------------
// loop

fn looping(name: &str, phase: &str) -> PluginSpec {
    let mut spec = faulty(
        name,
        &format!(r#"{{"scenario": "loop", "phase": "{phase}"}}"#),
    );
    spec.limits.call_timeout = Duration::from_millis(50);
    spec
}

#[tokio::test]
async fn an_endless_loop_is_interrupted_by_the_call_timeout() {
    let runtime = runtime();
    let plugin = load(&runtime, looping("loop", "request_headers"));
    let started = Instant::now();
    let failed = failure(&plugin, &Req::get("/"), &Resp::ok()).await;
    let elapsed = started.elapsed();
    assert_eq!(failed.phase, Phase::RequestHeaders);
    assert_eq!(
        failed.failure,
        PluginFailure::Timeout {
            plugin: "loop".into(),
            function: "proxy_on_request_headers",
            limit: Duration::from_millis(50),
        }
    );
    assert!(
        elapsed >= Duration::from_millis(50),
        "interrupted after {elapsed:?}, before its limit"
    );
    assert!(
        elapsed < Duration::from_secs(1),
        "interrupted only after {elapsed:?} (limit 50 ms, epoch 5 ms)"
    );
}

#[tokio::test]
async fn a_new_request_works_after_a_timeout() {
    let runtime = runtime();
    let plugin = load(&runtime, looping("loop-recover", "request_body"));
    let failed = failure(&plugin, &post(), &Resp::ok()).await;
    assert!(
        matches!(
            failed.failure,
            PluginFailure::Timeout {
                function: "proxy_on_request_body",
                ..
            }
        ),
        "{failed:?}"
    );
    assert_serves(&plugin).await;
    assert_eq!(plugin.stats().instances_started.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_loop_in_the_response_body_is_interrupted_too() {
    let runtime = runtime();
    let plugin = load(&runtime, looping("loop-response", "response_body"));
    let failed = failure(&plugin, &Req::get("/"), &response_with_body()).await;
    assert_eq!(failed.phase, Phase::ResponseBody);
    assert!(
        matches!(
            failed.failure,
            PluginFailure::Timeout {
                function: "proxy_on_response_body",
                ..
            }
        ),
        "{failed:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// oom

const MEMORY_LIMIT: usize = 8 << 20;

fn oom(name: &str, phase: &str) -> PluginSpec {
    let mut spec = faulty(
        name,
        &format!(r#"{{"scenario": "oom", "phase": "{phase}"}}"#),
    );
    spec.limits.memory_bytes = MEMORY_LIMIT;
    spec
}

#[tokio::test]
async fn memory_exhaustion_stops_at_the_memory_limit() {
    let runtime = runtime();
    let plugin = load(&runtime, oom("oom", "request_headers"));
    let failed = failure(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert_eq!(
        failed.failure,
        PluginFailure::MemoryLimit {
            plugin: "oom".into(),
            function: "proxy_on_request_headers",
            limit: MEMORY_LIMIT,
        }
    );
}

#[tokio::test]
async fn a_new_request_works_after_memory_exhaustion() {
    let runtime = runtime();
    let plugin = load(&runtime, oom("oom-recover", "request_body"));
    let failed = failure(&plugin, &post(), &Resp::ok()).await;
    assert!(
        matches!(
            failed.failure,
            PluginFailure::MemoryLimit {
                function: "proxy_on_request_body",
                ..
            }
        ),
        "{failed:?}"
    );
    assert_serves(&plugin).await;
    assert_eq!(
        plugin.stats().instances_started.load(Ordering::Relaxed),
        2,
        "the exhausted instance is not reused"
    );
}

// ---------------------------------------------------------------------------------------------
// bad_pointer

#[tokio::test]
async fn bad_pointers_lengths_and_enums_get_the_abi_error_statuses() {
    let runtime = runtime();
    let plugin = load(
        &runtime,
        faulty("bad-pointer", r#"{"scenario": "bad_pointer"}"#),
    );
    let req = Req::get("/probe").header("x-keep", "1");
    let out = pass(&plugin, &req, &Resp::ok()).await;
    let (phase, response) = out
        .local
        .as_ref()
        .expect("the plugin answers with its report");
    assert_eq!(*phase, Phase::RequestHeaders);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"bad_pointer probes done\n");
    let status = |name: &str| local_header(response, name);
    assert_header(status("x-status"), "6", "the default probe, log_oob");
    for (probe, expected) in [
        ("log-oob", "6"),
        ("log-overflow", "6"),
        ("log-level", "2"),
        ("header-key-oob", "6"),
        ("header-return-oob", "6"),
        ("header-map-type", "2"),
        ("buffer-type", "2"),
        ("shared-key-oob", "6"),
        ("http-call-oob", "6"),
        ("local-response-oob", "6"),
        ("set-map-malformed", "2"),
    ] {
        assert_header(status(&format!("x-status-{probe}")), expected, probe);
    }
    assert_eq!(
        out.stream.request_headers,
        req.stream().request_headers,
        "the malformed map changed nothing"
    );
    assert_eq!(
        plugin.stats().failures.load(Ordering::Relaxed),
        0,
        "no bad call trapped"
    );
    // The instance is still the first one, and fine.
    let out = pass(&plugin, &req, &Resp::ok()).await;
    assert_eq!(out.local().status, 200);
    assert_eq!(plugin.stats().instances_started.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn bad_pointer_x_status_is_the_chosen_probe() {
    let runtime = runtime();
    for (call, expected) in [
        ("set_map_malformed", "2"),
        ("header_return_oob", "6"),
        ("buffer_type", "2"),
    ] {
        let plugin = load(
            &runtime,
            faulty(
                "bad-pointer-call",
                &format!(r#"{{"scenario": "bad_pointer", "call": "{call}"}}"#),
            ),
        );
        let out = pass(&plugin, &Req::get("/"), &Resp::ok()).await;
        assert_header(out.local_header("x-status"), expected, call);
    }
}

// ---------------------------------------------------------------------------------------------
// huge_header

#[tokio::test]
async fn a_one_mebibyte_request_header_is_refused() {
    let runtime = runtime();
    let plugin = load(
        &runtime,
        faulty("huge-request", r#"{"scenario": "huge_header"}"#),
    );
    let failed = failure(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert_eq!(
        failed.phase,
        Phase::RequestHeaders,
        "the request fails rather than carrying 1 MiB upstream"
    );
    assert!(
        matches!(failed.failure, PluginFailure::Trap { .. }),
        "{:?}",
        failed.failure
    );
    fails_again_on_a_fresh_instance(&plugin).await;
}

async fn fails_again_on_a_fresh_instance(plugin: &Plugin) {
    // Every request of this plugin adds the header: the next one fails the same way, but on a
    // fresh instance, cleanly.
    let failed = failure(plugin, &Req::get("/"), &Resp::ok()).await;
    assert!(
        matches!(failed.failure, PluginFailure::Trap { .. }),
        "{:?}",
        failed.failure
    );
    assert_eq!(plugin.stats().instances_started.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_one_mebibyte_response_header_is_refused() {
    let runtime = runtime();
    let plugin = load(
        &runtime,
        faulty(
            "huge-response",
            r#"{"scenario": "huge_header", "target": "response"}"#,
        ),
    );
    let failed = failure(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert_eq!(failed.phase, Phase::ResponseHeaders);
    assert!(
        matches!(failed.failure, PluginFailure::Trap { .. }),
        "{:?}",
        failed.failure
    );
}

#[tokio::test]
async fn headers_within_max_header_bytes_are_accepted() {
    let runtime = runtime();
    let plugin = load(
        &runtime,
        faulty(
            "big-header",
            r#"{"scenario": "huge_header", "bytes": 65536}"#,
        ),
    );
    let out = pass(&plugin, &Req::get("/"), &Resp::ok()).await;
    let huge = out.upstream().must("x-huge");
    assert_eq!(
        huge.len(),
        65536,
        "the header arrives whole, never truncated"
    );
    assert!(huge.bytes().all(|b| b == b'a'));
}

#[tokio::test]
async fn max_header_bytes_is_configurable() {
    let runtime = runtime();
    let mut spec = faulty(
        "header-limit",
        r#"{"scenario": "huge_header", "bytes": 2048}"#,
    );
    spec.limits.max_header_bytes = 1024;
    let plugin = load(&runtime, spec);
    let failed = failure(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert_eq!(failed.phase, Phase::RequestHeaders);
}

// ---------------------------------------------------------------------------------------------
// oversized bodies (set by the plugin)

#[tokio::test]
async fn a_body_set_past_max_body_bytes_fails_the_request() {
    let runtime = runtime();
    let mut spec = spec(
        "conformance",
        "body-limit",
        r#"{"scenario": "request_body", "transform": "append"}"#,
    );
    spec.limits.max_body_bytes = 16;
    let plugin = load(&runtime, spec);
    // 2 + 13 bytes of marker: within the limit.
    let out = pass(&plugin, &Req::new("POST", "/").body(["hi"]), &Resp::ok()).await;
    assert_eq!(out.upstream().body, b"hi[conformance]");
    // 11 + 13 bytes: over it.
    let failed = failure(
        &plugin,
        &Req::new("POST", "/").body(["hello world"]),
        &Resp::ok(),
    )
    .await;
    assert_eq!(failed.phase, Phase::RequestBody);
    assert_trap(&failed, "body-limit", "proxy_on_request_body");
}

#[tokio::test]
async fn a_local_response_body_past_max_body_bytes_fails_the_request() {
    let runtime = runtime();
    let body = "x".repeat(40);
    let mut spec = spec(
        "conformance",
        "local-body-limit",
        &format!(r#"{{"scenario": "local_response", "body": "{body}"}}"#),
    );
    spec.limits.max_body_bytes = 16;
    let plugin = load(&runtime, spec);
    let failed = failure(&plugin, &Req::get("/"), &Resp::ok()).await;
    assert_eq!(failed.phase, Phase::RequestHeaders);
    assert_trap(&failed, "local-body-limit", "proxy_on_request_headers");
}

// ---------------------------------------------------------------------------------------------
// configuration

#[tokio::test]
async fn a_plugin_whose_configure_fails_is_rejected_at_load() {
    let runtime = runtime();
    match load_error(
        &runtime,
        faulty("configure-fails", r#"{"scenario": "configure_fails"}"#),
    ) {
        LoadError::ConfigureRejected { plugin } => assert_eq!(plugin, "configure-fails"),
        other => panic!("expected ConfigureRejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_plugin_that_traps_in_configure_is_rejected_at_load() {
    let runtime = runtime();
    let error = load_error(
        &runtime,
        faulty("configure-trap", r#"{"scenario": "configure_trap"}"#),
    );
    assert!(
        error.to_string().contains("configure-trap"),
        "the error names the plugin: {error}"
    );
    match error {
        LoadError::Failed {
            plugin,
            failure: PluginFailure::Trap { function, .. },
        } => {
            assert_eq!(plugin, "configure-trap");
            assert_eq!(function, "proxy_on_configure");
        }
        other => panic!("expected a trap in proxy_on_configure, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_faults_are_rejected_at_load() {
    let runtime = runtime();
    for config in [
        r#"{"scenario": "nope"}"#,
        r#"{"scenario": "trap", "extra": 1}"#,
        "{",
    ] {
        let error = load_error(&runtime, faulty("unknown-fault", config));
        assert!(
            matches!(error, LoadError::ConfigureRejected { .. }),
            "{config}: {error:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// isolation

#[tokio::test]
async fn a_failing_plugin_does_not_affect_other_plugins_in_the_runtime() {
    let runtime = runtime();
    let trap = load(&runtime, faulty("isolated-trap", r#"{"scenario": "trap"}"#));
    let spin = load(&runtime, looping("isolated-loop", "request_headers"));
    let hog = load(&runtime, oom("isolated-oom", "request_headers"));
    let healthy = load_conformance(
        &runtime,
        "healthy",
        r#"{"scenario": "shared_data", "key": "isolation"}"#,
    );
    for round in 1..=3u64 {
        assert!(matches!(
            failure(&trap, &Req::get("/"), &Resp::ok()).await.failure,
            PluginFailure::Trap { .. }
        ));
        let out = pass(&healthy, &Req::get("/"), &Resp::ok()).await;
        assert_header(
            out.client().header("x-counter"),
            &(2 * round - 1).to_string(),
            "healthy after a trap",
        );
        assert!(matches!(
            failure(&spin, &Req::get("/"), &Resp::ok()).await.failure,
            PluginFailure::Timeout { .. }
        ));
        assert!(matches!(
            failure(&hog, &Req::get("/"), &Resp::ok()).await.failure,
            PluginFailure::MemoryLimit { .. }
        ));
        let out = pass(&healthy, &Req::get("/"), &Resp::ok()).await;
        assert_header(
            out.client().header("x-counter"),
            &(2 * round).to_string(),
            "healthy after a timeout and an oom",
        );
    }
    assert_eq!(healthy.stats().failures.load(Ordering::Relaxed), 0);
    assert_eq!(
        healthy.stats().instances_started.load(Ordering::Relaxed),
        1,
        "the healthy instance was never replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_looping_plugin_does_not_hold_up_requests_of_another_plugin() {
    let runtime = runtime();
    let mut spec = looping("slow-loop", "request_headers");
    spec.limits.call_timeout = Duration::from_secs(1);
    let spin = load(&runtime, spec);
    let healthy = load_conformance(&runtime, "fast", r#"{"scenario": "headers"}"#);
    let looping =
        tokio::spawn(async move { failure(&spin, &Req::get("/"), &Resp::ok()).await.failure });
    // Give the loop a head start: it now occupies one worker thread inside wasm.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..5 {
        pass(&healthy, &Req::get("/"), &Resp::ok()).await;
    }
    assert!(
        !looping.is_finished(),
        "the healthy plugin's requests waited for the looping one"
    );
    let failure = bounded("the loop", looping).await.expect("task");
    assert!(
        matches!(failure, PluginFailure::Timeout { .. }),
        "{failure:?}"
    );
}
