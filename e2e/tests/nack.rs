//! A snapshot a running gateway cannot apply: the control plane compiles an intent whose
//! upstream is a host name that does not resolve (it cannot know; names are resolved where the
//! gateway runs), the gateway refuses that snapshot, the control plane records the NACK with
//! the gateway's error, and the gateway goes on serving the version it had.

mod common;

use std::time::{Duration, Instant};

use paved_e2e::harness::send;
use serde_json::{Value, json};

/// `.invalid` never resolves (RFC 6761), so the gateway cannot build the cluster.
const UNRESOLVABLE: &str = "upstream.paved-nack.invalid:8080";

/// Generous: the wait is for the gateway's long poll and report, and only guards against hanging.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn intent(upstream: &str) -> String {
    format!(
        "apiVersion: paved.dev/v1\nname: unlucky\nowners: [demo@paved.localhost]\nteam: platform\ndomains: [unlucky.localhost]\nupstream: {upstream}\n"
    )
}

async fn graphql(up: &common::RunningUp, body: Value) -> Value {
    paved::apply_cmd::post_graphql(
        &up.args.control_plane.to_string(),
        &up.platform.credentials.api_token,
        body,
    )
    .await
    .expect("GraphQL answers")
}

/// Applies `yaml` through GraphQL; returns the new snapshot version.
async fn apply(up: &common::RunningUp, yaml: &str) -> i64 {
    let reply = graphql(
        up,
        json!({
            "query": "mutation($yaml: String!) { applyIntent(yaml: $yaml) { created snapshotVersion } }",
            "variables": { "yaml": yaml },
        }),
    )
    .await;
    assert_eq!(reply["data"]["applyIntent"]["created"], true, "{reply}");
    reply["data"]["applyIntent"]["snapshotVersion"]
        .as_i64()
        .expect("a snapshot version")
}

/// Waits until the control plane has the gateway's report on `version`; returns the gateway.
async fn reported(up: &common::RunningUp, version: i64) -> Value {
    let started = Instant::now();
    loop {
        let reply = graphql(
            up,
            json!({"query": "{ gateways { id state versionServed lastReportedVersion error upToDate } }"}),
        )
        .await;
        let gateways = reply["data"]["gateways"]
            .as_array()
            .unwrap_or_else(|| panic!("a list of gateways: {reply}"));
        if let Some(gateway) = gateways
            .iter()
            .find(|g| g["lastReportedVersion"].as_i64() == Some(version))
        {
            return gateway.clone();
        }
        assert!(
            started.elapsed() < HANG_GUARD,
            "no report on version {version} within {HANG_GUARD:?}: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_the_gateway_cannot_load_is_nacked_and_the_old_version_keeps_serving() {
    let up = common::start("nack").await;
    let listen = up.args.listen;
    let status = |name: &'static str| async move {
        let host = format!("{name}.localhost:{}", listen.port());
        send(listen, "GET", "/", &[("host", host.as_str())], b"")
            .await
            .status
    };
    // The version the gateway started with is acknowledged.
    let good: i64 = up
        .gateway
        .version()
        .to_string()
        .parse()
        .expect("a numbered version");
    let before = reported(&up, good).await;
    assert_eq!(before["state"], "ACK", "{before}");
    assert_eq!(
        status("demo").await,
        401,
        "the demo app is served, behind SSO"
    );

    // The control plane accepts the intent: the name is well formed.
    let bad = apply(&up, &intent(UNRESOLVABLE)).await;
    assert!(bad > good);

    // The gateway refuses it, and the control plane records why.
    let gateway = reported(&up, bad).await;
    assert_eq!(gateway["id"], "paved-up");
    assert_eq!(gateway["state"], "NACK", "{gateway}");
    assert_eq!(
        gateway["versionServed"], good,
        "a NACK leaves the served version"
    );
    assert_eq!(gateway["upToDate"], false);
    let error = gateway["error"].as_str().expect("the NACK's error");
    assert!(
        error.starts_with("clusters[unlucky.default] endpoint upstream.paved-nack.invalid:8080: "),
        "the gateway's own error: {error}"
    );

    // The gateway still serves the version it had: the demo app as before, no unlucky app.
    assert_eq!(up.gateway.version().to_string(), good.to_string());
    assert_eq!(status("demo").await, 401);
    assert_eq!(status("unlucky").await, 404);
    // And it did not save the refused snapshot as the one to start from.
    let saved = std::fs::read_to_string(up.args.data_dir.join("gateway/last-good-snapshot.json"))
        .expect("saved snapshot");
    assert!(!saved.contains("unlucky.localhost"));

    // Fixing the intent publishes a newer version that the gateway applies.
    let fixed = apply(&up, &intent(&up.args.demo_upstream.to_string())).await;
    let gateway = reported(&up, fixed).await;
    assert_eq!(gateway["state"], "ACK", "{gateway}");
    assert_eq!(gateway["versionServed"], fixed);
    assert_eq!(gateway["error"], Value::Null);
    assert_eq!(up.gateway.version().to_string(), fixed.to_string());
    assert_eq!(
        status("unlucky").await,
        401,
        "the fixed app is served, behind SSO"
    );

    up.stop_gateway();
}
