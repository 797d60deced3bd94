//! Gateways long-poll for snapshots and report ACK or NACK; the control plane records which
//! version each serves. Over HTTP, on SQLite and PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, env_with, intent, serve, token};
use paved_control_plane::Scope;
use serde_json::{Value, json};

async fn long_poll_returns_a_new_snapshot_after_an_apply_and_304_on_timeout(backend: Backend) {
    let t = env_with(backend, |c| c.max_long_poll = Duration::from_secs(5)).await;
    let cp = t.cp.clone();
    let base = serve(&cp).await;
    let gw = token(&cp, &[Scope::Gateway], &[], &[]).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/v1/gateways/gw-1/snapshot");

    // Without `after`: the current snapshot at once.
    let r = http.get(&url).bearer_auth(&gw).send().await.expect("get");
    assert_eq!(r.status(), 200);
    let current: i64 = r.headers()["x-paved-version"]
        .to_str()
        .expect("h")
        .parse()
        .expect("n");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["version"], current);

    // Up to date: 304 after the wait, with the latest version in the header.
    let started = Instant::now();
    let r = http
        .get(&url)
        .query(&[("after", current), ("wait", 1)])
        .bearer_auth(&gw)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["x-paved-version"], current.to_string().as_str());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    // A wait above the bound is cut to it (5 s here).
    let started = Instant::now();
    let r = http
        .get(&url)
        .query(&[("after", current), ("wait", 3600)])
        .bearer_auth(&gw)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 304);
    assert!(started.elapsed() < Duration::from_secs(8));

    // A poll waiting when an intent is applied returns the new snapshot at once.
    let poll = {
        let (http, url, gw) = (http.clone(), url.clone(), gw.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = http
                .get(&url)
                .query(&[("after", current), ("wait", 5)])
                .bearer_auth(&gw)
                .send()
                .await
                .expect("poll");
            (
                r.status(),
                r.headers().get("x-paved-version").cloned(),
                r.text().await.expect("body"),
                started.elapsed(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let applied = cp
        .apply_intent(
            &t.admin,
            &intent("alpha", "a", "alpha.example.com"),
            "paved.yaml",
        )
        .await
        .expect("apply");
    let (status, version, body, elapsed) = poll.await.expect("join");
    assert_eq!(status, 200);
    assert_eq!(
        version.expect("header").to_str().expect("h"),
        applied.snapshot_version.expect("v").to_string()
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "returned after the apply, not the timeout: {elapsed:?}"
    );
    let snapshot =
        paved_model::Snapshot::from_json_slice(body.as_bytes(), "push").expect("a valid snapshot");
    assert!(
        snapshot
            .routes
            .iter()
            .any(|r| r.host == "alpha.example.com")
    );

    let gateways = cp.list_gateways(&t.admin).await.expect("gateways");
    assert_eq!(gateways.len(), 1);
    assert_eq!(gateways[0].version_delivered, applied.snapshot_version);
}

async fn acks_and_nacks_are_recorded(backend: Backend) {
    let t = env_with(backend, |_| {}).await;
    let cp = t.cp.clone();
    let base = serve(&cp).await;
    let gw = token(&cp, &[Scope::Gateway], &[], &[]).await;
    let http = reqwest::Client::new();
    let status = format!("{base}/v1/gateways/gw-1/status");
    let v1 = cp.latest_snapshot().expect("s").version;

    let r = http
        .post(&status)
        .bearer_auth(&gw)
        .json(&json!({"version": v1, "ok": true}))
        .send()
        .await
        .expect("ack");
    assert_eq!(r.status(), 204);
    let applied = cp
        .apply_intent(
            &t.admin,
            &intent("alpha", "a", "alpha.example.com"),
            "paved.yaml",
        )
        .await
        .expect("apply");
    let v2 = applied.snapshot_version.expect("v2");
    let r = http
        .post(&status)
        .bearer_auth(&gw)
        .json(&json!({"version": v2, "ok": false, "error": "plugin waf: config rejected"}))
        .send()
        .await
        .expect("nack");
    assert_eq!(r.status(), 204);

    let g = &cp.list_gateways(&t.admin).await.expect("gateways")[0];
    assert_eq!(g.state, "nack");
    assert_eq!(
        g.version_served,
        Some(v1),
        "a NACK leaves the served version"
    );
    assert_eq!(g.last_reported_version, Some(v2));
    assert_eq!(g.error.as_deref(), Some("plugin waf: config rejected"));

    // GraphQL shows it.
    let admin_token = token(&cp, &[Scope::Admin], &[], &[]).await;
    let v: Value = http
        .post(format!("{base}/graphql"))
        .bearer_auth(&admin_token)
        .json(&json!({"query": "{ gateways { id state versionServed lastReportedVersion error upToDate } snapshotVersion }"}))
        .send()
        .await
        .expect("gql")
        .json()
        .await
        .expect("json");
    assert_eq!(
        v["data"]["gateways"],
        json!([{"id": "gw-1", "state": "NACK", "versionServed": v1, "lastReportedVersion": v2, "error": "plugin waf: config rejected", "upToDate": false}])
    );
    assert_eq!(v["data"]["snapshotVersion"], v2);

    // Bad reports change nothing and say why.
    for (body, code) in [
        (json!({"version": v2 + 10, "ok": true}), 400),
        (json!({"version": v2, "ok": "yes"}), 400),
        (json!({"version": v2, "ok": true, "extra": 1}), 400),
    ] {
        let r = http
            .post(&status)
            .bearer_auth(&gw)
            .json(&body)
            .send()
            .await
            .expect("bad");
        assert_eq!(r.status(), code, "{body}");
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["error"]["code"], "BAD_REQUEST");
    }
    let r = http
        .post(format!("{base}/v1/gateways/bad%20id/status"))
        .bearer_auth(&gw)
        .json(&json!({"version": v2, "ok": true}))
        .send()
        .await
        .expect("bad id");
    assert_eq!(r.status(), 400);
    let r = http
        .post(&status)
        .json(&json!({"version": v2, "ok": true}))
        .send()
        .await
        .expect("anonymous");
    assert_eq!(r.status(), 401);
    let read = token(&cp, &[Scope::AppsRead], &[], &[]).await;
    let r = http
        .post(&status)
        .bearer_auth(&read)
        .json(&json!({"version": v2, "ok": true}))
        .send()
        .await
        .expect("read token");
    assert_eq!(r.status(), 403);
    let r = http
        .get(format!("{base}/v1/gateways/gw-1/snapshot"))
        .bearer_auth(&read)
        .send()
        .await
        .expect("read token");
    assert_eq!(r.status(), 403);
    assert_eq!(
        cp.list_gateways(&t.admin).await.expect("g")[0].state,
        "nack"
    );

    // The ACK of the new version makes it the served one.
    let r = http
        .post(&status)
        .bearer_auth(&gw)
        .json(&json!({"version": v2, "ok": true}))
        .send()
        .await
        .expect("ack");
    assert_eq!(r.status(), 204);
    let g = &cp.list_gateways(&t.admin).await.expect("gateways")[0];
    assert_eq!(
        (g.state.as_str(), g.version_served, g.error.as_deref()),
        ("ack", Some(v2), None)
    );
}

on_both_backends!(
    long_poll_returns_a_new_snapshot_after_an_apply_and_304_on_timeout,
    acks_and_nacks_are_recorded,
);
