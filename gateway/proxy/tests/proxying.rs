//! The gateway proxies to real upstreams: routing, forwarding headers, errors, reloads.

use paved_e2e::harness::{get, send, start_echo_upstream, start_gateway};

const BASIC: &str = r#"
listeners: [{address: "{listen}"}]
admin: {address: "{admin}"}
clusters:
  - name: app
    endpoints: ["{upstream}"]
  - name: dead
    endpoints: ["127.0.0.1:1"]
    retries: 0
routes:
  - host: "*"
    path_prefix: /
    cluster: app
  - host: "*"
    path_prefix: /dead
    cluster: dead
  - host: "only.test"
    path_prefix: /
    cluster: app
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_the_upstream_with_forwarding_headers_and_a_request_id() {
    let upstream = start_echo_upstream();
    let gw = start_gateway(BASIC, upstream.addr);
    let reply = send(
        gw.addr,
        "POST",
        "/orders?id=7",
        &[("x-forwarded-for", "6.6.6.6")],
        b"hello",
    )
    .await;
    assert_eq!(reply.status, 200);
    let echo = reply.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/orders?id=7");
    assert_eq!(echo["body"], "hello");
    let headers = &echo["headers"];
    assert_eq!(
        headers["x-forwarded-for"], "127.0.0.1",
        "client-supplied XFF is replaced"
    );
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(
        headers["forwarded"],
        "for=127.0.0.1;proto=http;host=\"app.test\""
    );
    let request_id = headers["x-request-id"]
        .as_str()
        .expect("request id upstream");
    assert_eq!(
        reply.header("x-request-id"),
        Some(request_id),
        "the same id is returned to the client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_hosts_paths_and_dead_upstreams_get_clear_errors() {
    let upstream = start_echo_upstream();
    let gw = start_gateway(BASIC, upstream.addr);
    let dead = get(gw.addr, "/dead/x").await;
    assert_eq!(
        dead.status,
        502,
        "{:?}",
        String::from_utf8_lossy(&dead.body)
    );
    assert_eq!(dead.json()["error"], "upstream_unavailable");

    let bad = get(gw.addr, "/a/%2e%2e/b").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "bad_path");

    // The most specific host wins and has no fallback to "*".
    let only = send(gw.addr, "GET", "/anything", &[("host", "only.test")], b"").await;
    assert_eq!(only.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoint_reports_health_readiness_and_metrics() {
    let upstream = start_echo_upstream();
    let gw = start_gateway(BASIC, upstream.addr);
    assert_eq!(get(gw.addr, "/x").await.status, 200);
    assert_eq!(get(gw.admin, "/healthz").await.status, 200);
    let ready = get(gw.admin, "/readyz").await;
    assert_eq!(ready.status, 200);
    let metrics = String::from_utf8(get(gw.admin, "/metrics").await.body).expect("text");
    assert!(
        metrics.contains("paved_gateway_requests_total{route=\"*/\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("paved_gateway_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_swap_routes_and_invalid_configs_keep_the_old_one() {
    let upstream = start_echo_upstream();
    let gw = start_gateway(BASIC, upstream.addr);
    assert_eq!(get(gw.addr, "/x").await.status, 200);

    let changed = paved_e2e::harness::render(
        r#"
version: 2
listeners: [{address: "{listen}"}]
admin: {address: "{admin}"}
clusters: [{name: app, endpoints: ["{upstream}"]}]
routes:
  - {host: "*", path_prefix: /v2, cluster: app}
"#,
        gw.addr,
        gw.admin,
        upstream.addr,
    );
    let snapshot =
        paved_model::snapshot::Snapshot::from_yaml_str(&changed, "v2.yaml").expect("valid");
    gw.gateway.reload(snapshot).expect("reload");
    assert_eq!(gw.gateway.version().to_string(), "2");
    assert_eq!(get(gw.addr, "/x").await.status, 404);
    assert_eq!(get(gw.addr, "/v2/x").await.status, 200);

    let broken = changed.replace("cluster: app}", "cluster: missing}");
    let error = paved_model::snapshot::Snapshot::from_yaml_str(&broken, "broken.yaml")
        .expect_err("a route to a missing cluster is invalid");
    assert!(error.to_string().contains("routes[0].cluster"), "{error}");
    // A snapshot that parses but whose plugin cannot load is rejected by the gateway.
    let bad_plugin = changed.replace(
        "cluster: app}",
        "cluster: app, plugins: [{name: nope, builtin: no-such-plugin}]}",
    );
    let snapshot =
        paved_model::snapshot::Snapshot::from_yaml_str(&bad_plugin, "bad.yaml").expect("parses");
    let error = gw.gateway.reload(snapshot).expect_err("unknown builtin");
    assert!(
        error
            .to_string()
            .contains("no built-in plugin \"no-such-plugin\""),
        "{error}"
    );
    assert_eq!(
        gw.gateway.version().to_string(),
        "2",
        "the old version keeps serving"
    );
    assert_eq!(get(gw.addr, "/v2/x").await.status, 200);
}
