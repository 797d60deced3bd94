//! Traffic shipping end to end: a gateway's access-log records reach a real control plane
//! (`paved up`'s) and show in its GraphQL API, and records made while the control plane cannot
//! be reached wait in the gateway and arrive once it can.
//!
//! The gateway reaches the control plane through a relay this test can cut: from the gateway's
//! side, a cut relay is a control plane that is down (connections refused), while the test
//! still reads the control plane's database through the API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paved::up::{UpArgs, gateway_options, start_platform};
use paved_e2e::harness::{free_port, send};
use paved_e2e::relay::Relay;
use paved_gateway::{Gateway, ShutdownHandle, distribution};
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// `app(name) { recentRequests }` through GraphQL, as the UI asks it.
async fn recent(control_plane: SocketAddr, token: &str, app: &str) -> Vec<Value> {
    let body = json!({
        "query": "query($app: String!) { app(name: $app) { recentRequests(limit: 200) { requestId path status deniedBy wafRules gateway } } }",
        "variables": { "app": app },
    });
    let reply = paved::apply_cmd::post_graphql(&control_plane.to_string(), token, body)
        .await
        .expect("GraphQL answers");
    assert!(reply.get("errors").is_none(), "{reply}");
    reply["data"]["app"]["recentRequests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until `app` has records for every path in `paths`; returns them.
async fn wait_for_paths(
    control_plane: SocketAddr,
    token: &str,
    app: &str,
    paths: &[String],
    within: Duration,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let records = recent(control_plane, token, app).await;
        let has = |p: &String| records.iter().any(|r| r["path"] == p.as_str());
        if paths.iter().all(has) {
            return records;
        }
        assert!(
            started.elapsed() < within,
            "records of {paths:?} did not reach the control plane within {within:?}; it has {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_records_reach_the_control_plane_and_survive_its_outage() {
    let data_dir = std::env::temp_dir().join(format!("paved-traffic-ship-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let addr = || SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args = UpArgs {
        data_dir: data_dir.clone(),
        listen: addr(),
        control_plane: addr(),
        admin: addr(),
        demo_upstream: addr(),
    };
    let mut platform = start_platform(&args, &data_dir)
        .await
        .expect("platform starts");
    let api_token = platform.credentials.api_token.clone();
    let mut relay = Relay::start_on(addr(), args.control_plane).await;
    let mut client = platform.gateway_client.clone();
    client.address = relay.addr.to_string();
    client.gateway_id = "gw-traffic".into();

    // A second app with a public route: no sign-in, so its requests reach the WAF.
    let intent = format!(
        "apiVersion: paved.dev/v1\nname: open\nowners: [demo@paved.localhost]\nteam: platform\ndomains: [open.localhost]\nupstream: {}\nroutes: [{{path: /, public: true}}]\n",
        args.demo_upstream
    );
    let reply = paved::apply_cmd::post_graphql(
        &args.control_plane.to_string(),
        &api_token,
        json!({
            "query": "mutation($yaml: String!) { applyIntent(yaml: $yaml) { created } }",
            "variables": { "yaml": intent },
        }),
    )
    .await
    .expect("GraphQL answers");
    assert_eq!(reply["data"]["applyIntent"]["created"], true, "{reply}");

    let snapshot = tokio::time::timeout(
        Duration::from_secs(30),
        distribution::initial_snapshot(&client),
    )
    .await
    .expect("a snapshot within 30 s");
    let gateway = Arc::new(
        Gateway::new(snapshot, gateway_options(&data_dir)).expect("the compiled chain loads"),
    );
    gateway
        .background()
        .spawn(distribution::watch(gateway.clone(), client.clone()));
    let shutdown = ShutdownHandle::new();
    let (runner, stopper) = (gateway.clone(), shutdown.clone());
    let thread = std::thread::spawn(move || runner.run(stopper.watch()).expect("gateway runs"));
    for _ in 0..200 {
        if TcpStream::connect(args.listen).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let get = |host: &'static str, path: String| {
        let listen = args.listen;
        async move {
            let host = format!("{host}:{}", listen.port());
            send(listen, "GET", &path, &[("host", host.as_str())], b"")
                .await
                .status
        }
    };

    // Connected: an anonymous call to the SSO app, a normal and an attacking call to the open
    // app.
    assert_eq!(get("demo.localhost", "/private".into()).await, 401);
    assert_eq!(get("open.localhost", "/hello".into()).await, 200);
    let attack = "/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E".to_string();
    assert_eq!(get("open.localhost", attack.clone()).await, 403);
    let demo = wait_for_paths(
        args.control_plane,
        &api_token,
        "demo",
        &["/private".into()],
        Duration::from_secs(20),
    )
    .await;
    let private = demo
        .iter()
        .find(|r| r["path"] == "/private")
        .expect("the record");
    assert_eq!(private["deniedBy"], "authn", "{private}");
    assert_eq!(private["status"], 401);
    assert_eq!(private["gateway"], "gw-traffic");
    let open = wait_for_paths(
        args.control_plane,
        &api_token,
        "open",
        &["/hello".into(), attack.clone()],
        Duration::from_secs(20),
    )
    .await;
    let blocked = open
        .iter()
        .find(|r| r["path"] == attack.as_str())
        .expect("attack");
    assert_eq!(blocked["deniedBy"], "waf", "{blocked}");
    assert!(
        !blocked["wafRules"].as_array().expect("rules").is_empty(),
        "{blocked}"
    );

    // The control plane goes away: requests are still served and logged.
    relay.cut().await;
    let outage: Vec<String> = (0..5).map(|i| format!("/during-outage-{i}")).collect();
    for path in &outage {
        assert_eq!(get("open.localhost", path.clone()).await, 200);
    }
    // Long enough for the shipper to try and fail.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = recent(args.control_plane, &api_token, "open").await;
    assert!(
        !during.iter().any(|r| r["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/during-outage"))),
        "nothing can arrive while the control plane is unreachable: {during:?}"
    );
    let metrics = gateway.render_metrics();
    let value = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        value("paved_gateway_traffic_ship_failures_total") >= 1.0,
        "{metrics}"
    );
    assert!(
        value("paved_gateway_traffic_backlog_records") >= 5.0,
        "{metrics}"
    );

    // Back: every record made during the outage arrives, once.
    relay.restore().await;
    let after = wait_for_paths(
        args.control_plane,
        &api_token,
        "open",
        &outage,
        Duration::from_secs(45),
    )
    .await;
    for path in &outage {
        assert_eq!(
            after.iter().filter(|r| r["path"] == path.as_str()).count(),
            1,
            "{path} stored once"
        );
    }
    assert_eq!(
        gateway
            .render_metrics()
            .lines()
            .find(|l| l.starts_with("paved_gateway_traffic_dropped_total"))
            .map(str::to_string),
        None,
        "nothing was dropped"
    );
    // The local access log has every record too.
    let log = std::fs::read_to_string(data_dir.join("gateway/access.log")).expect("access log");
    assert!(outage.iter().all(|p| log.contains(p.as_str())));

    shutdown.shutdown();
    thread.join().expect("gateway stops");
    relay.cut().await;
    platform.stop().await;
    std::fs::remove_dir_all(&data_dir).ok();
}
