//! Config distribution end to end: an intent applied through GraphQL is enforced by a running
//! gateway, and the gateway keeps serving when the control plane goes away. How fast is
//! measured by the benchmark harness (`scripts/bench.sh apply`, docs/benchmarks.md), not here.

mod common;

use std::time::{Duration, Instant};

use paved_e2e::harness::send;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_intents_reach_the_gateway_and_it_keeps_serving_without_the_control_plane() {
    let mut up = common::start("dist").await;
    let (args, gateway) = (up.args.clone(), up.gateway.clone());
    let platform = &mut up.platform;
    let host = |name: &str| format!("{name}.localhost:{}", args.listen.port());
    let status = |name: String| async move {
        send(args.listen, "GET", "/", &[("host", name.as_str())], b"")
            .await
            .status
    };
    assert_eq!(status(host("second")).await, 404, "no such app yet");

    // Apply a second app through the same API tools use.
    let intent = format!(
        "apiVersion: paved.dev/v1\nname: second\nowners: [demo@paved.localhost]\nteam: platform\ndomains: [second.localhost]\nupstream: {}\n",
        args.demo_upstream
    );
    let body = serde_json::json!({
        "query": "mutation($yaml: String!) { applyIntent(yaml: $yaml) { created snapshotVersion } }",
        "variables": { "yaml": intent },
    });
    let applied_at = Instant::now();
    let reply = paved::apply_cmd::post_graphql(
        &args.control_plane.to_string(),
        &platform.credentials.api_token,
        body,
    )
    .await
    .expect("GraphQL answers");
    assert_eq!(reply["data"]["applyIntent"]["created"], true, "{reply}");
    let version = reply["data"]["applyIntent"]["snapshotVersion"]
        .as_u64()
        .expect("a snapshot version");
    // Only a bound against hanging: the time to enforcement is the benchmark's business.
    loop {
        if status(host("second")).await != 404 {
            break;
        }
        assert!(
            applied_at.elapsed() < Duration::from_secs(60),
            "the gateway did not enforce the new app within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gateway.version().to_string(), version.to_string());
    // The new app is paved: anonymous API calls are refused.
    assert_eq!(status(host("second")).await, 401);

    // The control plane goes away: the gateway keeps serving what it has. Stopping does not
    // wait for the gateway's long poll (up to 30 s) to run out: the poll is answered at once.
    let stopping = Instant::now();
    platform.stop().await;
    let took = stopping.elapsed();
    assert!(
        took < platform.control_plane.config().max_long_poll / 2,
        "stopping the control plane took {took:?}: it waited for the gateway's long poll"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status(host("second")).await, 401);
    assert_eq!(status(host("demo")).await, 401);
    // And it saved that snapshot to start from next time.
    let saved = std::fs::read_to_string(args.data_dir.join("gateway/last-good-snapshot.json"))
        .expect("saved snapshot");
    assert!(saved.contains("second.localhost"));

    up.stop_gateway();
}
