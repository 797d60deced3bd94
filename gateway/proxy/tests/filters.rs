//! Filter chains on real traffic: SDK plugins change requests and responses, answer
//! locally, and fail closed (or open, when marked so) without affecting other routes.

use paved_e2e::harness::{get, send, start_echo_upstream, start_gateway};

const CHAINS: &str = r#"
listeners: [{address: "{listen}"}]
admin: {address: "{admin}"}
clusters: [{name: app, endpoints: ["{upstream}"]}]
routes:
  - host: "*"
    path_prefix: /noop
    cluster: app
    plugins: [{name: noop, builtin: noop}]
  - host: "*"
    path_prefix: /headers
    cluster: app
    plugins:
      - name: conformance
        wasm: "{artifacts}/conformance.wasm"
        config: {scenario: headers, add: {x-added: "yes"}, remove: ["x-remove-me"], response_add: {x-from-filter: "1"}}
  - host: "*"
    path_prefix: /deny
    cluster: app
    plugins:
      - name: conformance
        wasm: "{artifacts}/conformance.wasm"
        config: {scenario: local_response, phase: request_headers, status: 401, headers: {www-authenticate: "Bearer"}, body: "no entry"}
  - host: "*"
    path_prefix: /body
    cluster: app
    plugins:
      - name: conformance
        wasm: "{artifacts}/conformance.wasm"
        config: {scenario: request_body}
  - host: "*"
    path_prefix: /trap
    cluster: app
    plugins:
      - {name: faulty, wasm: "{artifacts}/faulty.wasm", config: {scenario: trap}}
  - host: "*"
    path_prefix: /trap-open
    cluster: app
    plugins:
      - {name: faulty, wasm: "{artifacts}/faulty.wasm", config: {scenario: trap}, fail_open: true}
  - host: "*"
    path_prefix: /loop
    cluster: app
    plugins:
      - {name: faulty, wasm: "{artifacts}/faulty.wasm", config: {scenario: loop}, limits: {call_timeout_ms: 50}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noop_sdk_plugin_passes_requests_through_unchanged() {
    let upstream = start_echo_upstream();
    let gw = start_gateway(CHAINS, upstream.addr);
    let reply = send(gw.addr, "GET", "/noop/a", &[("x-keep", "1")], b"").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["headers"]["x-keep"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_edit_request_and_response_headers() {
    let upstream = start_echo_upstream();
    let gw = start_gateway(CHAINS, upstream.addr);
    let reply = send(
        gw.addr,
        "GET",
        "/headers/x?y=1",
        &[("x-remove-me", "gone")],
        b"",
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let upstream_saw = &reply.json()["headers"];
    assert_eq!(upstream_saw["x-added"], "yes");
    assert!(upstream_saw.get("x-remove-me").is_none(), "{upstream_saw}");
    assert_eq!(upstream_saw["x-seen-method"], "GET");
    assert_eq!(upstream_saw["x-seen-path"], "/headers/x?y=1");
    assert_eq!(reply.header("x-from-filter"), Some("1"));
    assert_eq!(reply.header("x-seen-status"), Some("200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_answer_locally_without_reaching_the_upstream() {
    let upstream = start_echo_upstream();
    let gw = start_gateway(CHAINS, upstream.addr);
    let reply = get(gw.addr, "/deny/secret").await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    assert_eq!(reply.body, b"no entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_plugins_deny_unless_fail_open_and_other_routes_keep_working() {
    let upstream = start_echo_upstream();
    let gw = start_gateway(CHAINS, upstream.addr);
    let trapped = get(gw.addr, "/trap/x").await;
    assert_eq!(trapped.status, 403, "a security filter that traps denies");
    assert_eq!(trapped.json()["filter"], "faulty");

    let looped = get(gw.addr, "/loop/x").await;
    assert_eq!(
        looped.status, 403,
        "an endless loop is interrupted and denied"
    );

    let open = get(gw.addr, "/trap-open/x").await;
    assert_eq!(open.status, 200, "fail_open lets the request through");

    assert_eq!(
        get(gw.addr, "/noop/x").await.status,
        200,
        "other routes are unaffected"
    );
    // The pool replaces the poisoned instance: the same route fails again the same way.
    assert_eq!(get(gw.addr, "/trap/y").await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_callbacks_run_only_for_requests_with_a_body_as_in_envoy() {
    let upstream = start_echo_upstream();
    let gw = start_gateway(CHAINS, upstream.addr);
    // A GET ends with its headers: Envoy calls no `proxy_on_request_body` for it.
    let bodiless = get(gw.addr, "/body/get").await;
    assert_eq!(bodiless.status, 200);
    assert_eq!(bodiless.header("x-request-body-calls"), Some("0"));
    assert_eq!(bodiless.header("x-request-body-size"), Some("none"));

    let with_body = send(gw.addr, "POST", "/body/post", &[], b"hello world").await;
    assert_eq!(with_body.status, 200);
    assert_eq!(with_body.json()["body"], "HELLO WORLD");
    assert_eq!(with_body.header("x-request-body-size"), Some("11"));
    assert_ne!(with_body.header("x-request-body-calls"), Some("0"));
}
