//! Plan, apply, roll back, diff and delete intents, through the services and through GraphQL,
//! on SQLite and PostgreSQL.

mod common;

use common::{Backend, env, intent};
use paved_control_plane::config::GraphqlLimits;
use paved_control_plane::graphql::{build_schema, execute};
use paved_control_plane::services::ChangeKind;
use paved_control_plane::storage::entities::{app, audit_log, intent_version};
use sea_orm::{EntityTrait, PaginatorTrait};

const HELLO: &str = "apiVersion: paved.dev/v1\nname: hello\nowners: [alice@example.com]\nteam: web\ndomains: [hello.example.com]\nupstream: 127.0.0.1:9000\n";

fn hello_detect() -> String {
    format!("{HELLO}waf:\n  mode: detect\n")
}

async fn plan_apply_rollback_round_trip(backend: Backend) {
    let t = env(backend).await;
    let (cp, admin) = (&t.cp, &t.admin);
    let start = cp.latest_snapshot().map(|s| s.version).unwrap_or_default();
    assert!(start >= 1, "a snapshot exists from startup");

    let plan = cp
        .plan_intent(admin, HELLO, "paved.yaml")
        .await
        .expect("plan");
    assert!(plan.new_app && plan.changed && plan.current_version.is_none());
    assert!(plan.changes.iter().any(|c| c.path == "name"));
    assert_eq!(
        cp.list_apps(admin, &Default::default(), None, None)
            .await
            .expect("list")
            .total,
        0,
        "planning stores nothing"
    );

    let v1 = cp
        .apply_intent(admin, HELLO, "paved.yaml")
        .await
        .expect("apply v1");
    assert!(v1.created);
    assert_eq!(v1.version.version, 1);
    assert_eq!(v1.snapshot_version, Some(start + 1));
    let snap = cp.latest_snapshot().expect("snapshot");
    assert_eq!(snap.version, start + 1);
    assert!(snap.json.contains("\"hello.example.com\""));
    assert!(snap.json.contains("\"block\""), "the WAF blocks by default");

    let same = cp
        .plan_intent(admin, HELLO, "paved.yaml")
        .await
        .expect("plan same");
    assert!(!same.changed && same.changes.is_empty() && same.text_diff.is_empty());

    let detect = hello_detect();
    let plan2 = cp
        .plan_intent(admin, &detect, "paved.yaml")
        .await
        .expect("plan v2");
    assert!(plan2.changed && !plan2.new_app);
    let waf = plan2
        .changes
        .iter()
        .find(|c| c.path == "waf.mode")
        .expect("waf.mode change");
    assert_eq!(waf.kind(), ChangeKind::Changed);
    assert_eq!(waf.before, Some(serde_json::json!("block")));
    assert_eq!(waf.after, Some(serde_json::json!("detect")));
    assert!(plan2.text_diff.contains("+waf:"), "{}", plan2.text_diff);

    let v2 = cp
        .apply_intent(admin, &detect, "paved.yaml")
        .await
        .expect("apply v2");
    assert_eq!(v2.version.version, 2);
    assert!(cp.latest_snapshot().expect("s").json.contains("\"detect\""));

    let diff = cp.diff_versions(admin, "hello", 1, 2).await.expect("diff");
    assert_eq!(diff.changes.len(), 1);
    assert_eq!(diff.changes[0].path, "waf.mode");

    let back = cp.rollback_app(admin, "hello", 1).await.expect("rollback");
    assert!(back.created);
    assert_eq!(back.version.version, 3);
    assert_eq!(back.version.rolled_back_from, Some(1));
    assert_eq!(back.version.content_hash, v1.version.content_hash);
    assert_eq!(back.version.text, HELLO);
    let snap = cp.latest_snapshot().expect("s");
    assert!(
        !snap.json.contains("\"detect\""),
        "the rollback is what gateways get"
    );
    assert_eq!(snap.version, start + 3);

    // Rolling back to the content that is already current changes nothing.
    let again = cp
        .rollback_app(admin, "hello", 1)
        .await
        .expect("rollback again");
    assert!(!again.created);
    assert_eq!(again.version.version, 3);

    let versions: Vec<i32> = cp
        .intent_versions(admin, "hello", None, None)
        .await
        .expect("versions")
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, [3, 2, 1]);
    let e = cp
        .rollback_app(admin, "hello", 9)
        .await
        .expect_err("no version 9");
    assert_eq!(e.code(), "NOT_FOUND");
}

async fn applying_twice_makes_one_version(backend: Backend) {
    let t = env(backend).await;
    let (cp, admin) = (&t.cp, &t.admin);
    let first = cp
        .apply_intent(admin, HELLO, "paved.yaml")
        .await
        .expect("apply");
    let snapshot = cp.latest_snapshot().expect("s").version;
    let second = cp
        .apply_intent(admin, HELLO, "paved.yaml")
        .await
        .expect("apply again");
    assert!(!second.created);
    assert_eq!(second.snapshot_version, None);
    assert_eq!(second.version.id, first.version.id);
    // Same content in another layout (comments, flow style, key order) is the same intent.
    let reformatted = "# the hello app\nname: hello\napiVersion: paved.dev/v1\nteam: web\nowners:\n  - alice@example.com\ndomains: [hello.example.com]\nupstream: 127.0.0.1:9000\n";
    let third = cp
        .apply_intent(admin, reformatted, "paved.yaml")
        .await
        .expect("apply reformatted");
    assert!(!third.created);
    let db = cp.store().db();
    assert_eq!(
        intent_version::Entity::find()
            .count(db)
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        cp.latest_snapshot().expect("s").version,
        snapshot,
        "no new snapshot"
    );
    let applies = audit_log::Entity::find().all(db).await.expect("audit");
    assert_eq!(
        applies.iter().filter(|r| r.action == "app.apply").count(),
        1
    );
}

async fn invalid_intents_are_refused_with_positions_and_store_nothing(backend: Backend) {
    let t = env(backend).await;
    let (cp, admin) = (&t.cp, &t.admin);
    let bad = "apiVersion: paved.dev/v1\nname: hello\nowners: [a@example.com]\ndomains: [hello.example.com]\nupstream: 127.0.0.1:9000\nwaf:\n  paranoia: 5\n";
    let e = cp
        .apply_intent(admin, bad, "apps/hello/paved.yaml")
        .await
        .expect_err("invalid");
    assert_eq!(e.code(), "INVALID_INTENT");
    let d = &e.diagnostics()[0];
    assert_eq!(d.source, "apps/hello/paved.yaml");
    assert_eq!(d.field, "waf.paranoia");
    let loc = d.location.expect("location");
    assert_eq!((loc.line, loc.column), (7, 13));
    let unknown = format!("{HELLO}colour: red\n");
    let e = cp
        .plan_intent(admin, &unknown, "paved.yaml")
        .await
        .expect_err("unknown field");
    assert_eq!(e.code(), "INVALID_INTENT");
    assert_eq!(e.diagnostics()[0].field, "colour");
    let db = cp.store().db();
    assert_eq!(app::Entity::find().count(db).await.expect("count"), 0);
    assert_eq!(
        intent_version::Entity::find()
            .count(db)
            .await
            .expect("count"),
        0
    );
    assert_eq!(
        audit_log::Entity::find()
            .all(db)
            .await
            .expect("audit")
            .iter()
            .filter(|r| r.action.starts_with("app."))
            .count(),
        0
    );
    let huge = "#".repeat(300 * 1024);
    assert_eq!(
        cp.apply_intent(admin, &huge, "paved.yaml")
            .await
            .expect_err("huge")
            .code(),
        "BAD_REQUEST"
    );
}

async fn conflicting_routes_are_refused(backend: Backend) {
    let t = env(backend).await;
    let (cp, admin) = (&t.cp, &t.admin);
    cp.apply_intent(
        admin,
        &intent("alpha", "a", "shared.example.com"),
        "paved.yaml",
    )
    .await
    .expect("alpha");
    let before = cp.latest_snapshot().expect("s").version;
    let clash = intent("beta", "b", "shared.example.com");
    let e = cp
        .plan_intent(admin, &clash, "paved.yaml")
        .await
        .expect_err("plan conflict");
    assert_eq!(e.code(), "CONFLICT");
    let e = cp
        .apply_intent(admin, &clash, "paved.yaml")
        .await
        .expect_err("apply conflict");
    assert_eq!(e.code(), "CONFLICT");
    assert!(
        e.to_string().contains("alpha") && e.to_string().contains("beta"),
        "{e}"
    );
    assert_eq!(cp.latest_snapshot().expect("s").version, before);
    assert!(
        cp.get_app(admin, "beta").await.is_err(),
        "nothing of beta is stored"
    );
}

async fn deleting_an_app_removes_it_from_the_snapshot(backend: Backend) {
    let t = env(backend).await;
    let (cp, admin) = (&t.cp, &t.admin);
    cp.apply_intent(admin, HELLO, "paved.yaml")
        .await
        .expect("apply");
    let d = cp.delete_app(admin, "hello").await.expect("delete");
    let snap = cp.latest_snapshot().expect("s");
    assert_eq!(snap.version, d.snapshot_version);
    assert!(!snap.json.contains("hello.example.com"));
    assert_eq!(
        cp.get_app(admin, "hello").await.expect_err("gone").code(),
        "NOT_FOUND"
    );
    assert_eq!(
        cp.delete_app(admin, "hello")
            .await
            .expect_err("twice")
            .code(),
        "NOT_FOUND"
    );
    // History stays; applying again continues it.
    let again = cp
        .apply_intent(admin, HELLO, "paved.yaml")
        .await
        .expect("apply again");
    assert!(again.created);
    assert_eq!(again.version.version, 2);
}

async fn graphql_round_trip(backend: Backend) {
    let t = env(backend).await;
    let (cp, admin) = (&t.cp, &t.admin);
    let schema = build_schema(GraphqlLimits::default());
    let run = |q: String| {
        let schema = schema.clone();
        let cp = cp.clone();
        let admin = admin.clone();
        async move { execute(&schema, &cp, Some(admin), async_graphql::Request::new(q)).await }
    };
    let yaml = serde_json::to_string(HELLO).expect("json");
    let r = run(format!("mutation {{ applyIntent(yaml: {yaml}) {{ created version {{ version author actorKind }} app {{ name currentVersion }} snapshotVersion }} }}")).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let v = r.data.into_json().expect("json");
    assert_eq!(v["applyIntent"]["created"], true);
    assert_eq!(v["applyIntent"]["version"]["version"], 1);
    assert_eq!(v["applyIntent"]["version"]["actorKind"], "TOOL");
    let detect = serde_json::to_string(&hello_detect()).expect("json");
    let r = run(format!(
        "mutation {{ applyIntent(yaml: {detect}) {{ created }} }}"
    ))
    .await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let r = run("{ apps(first: 10) { totalCount nodes { name currentVersion versionCount current { version contentHash } versions { version } rollout { gatewaysTotal } } pageInfo { hasNextPage } } diff(app: \"hello\", from: 1, to: 2) { changes { path kind before after } } }".into()).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let v = r.data.into_json().expect("json");
    assert_eq!(v["apps"]["totalCount"], 1);
    assert_eq!(v["apps"]["nodes"][0]["current"]["version"], 2);
    assert_eq!(v["apps"]["nodes"][0]["versionCount"], 2);
    assert_eq!(
        v["apps"]["nodes"][0]["versions"],
        serde_json::json!([{"version": 2}, {"version": 1}])
    );
    assert_eq!(
        v["diff"]["changes"],
        serde_json::json!([{"path": "waf.mode", "kind": "CHANGED", "before": "block", "after": "detect"}])
    );
    let r = run("mutation { rollbackApp(name: \"hello\", version: 1) { created version { version rolledBackFrom } } }".into()).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let v = r.data.into_json().expect("json");
    assert_eq!(v["rollbackApp"]["version"]["rolledBackFrom"], 1);
    let bad = serde_json::to_string("apiVersion: paved.dev/v1\nname: x\nowners: [a]\ndomains: [x.example.com]\nupstream: 127.0.0.1:9000\nwaf: {paranoia: 9}\n").expect("json");
    let r = run(format!(
        "mutation {{ planIntent(yaml: {bad}, source: \"x.yaml\") {{ changed }} }}"
    ))
    .await;
    let err = serde_json::to_value(&r.errors[0]).expect("error json");
    assert_eq!(err["extensions"]["code"], "INVALID_INTENT");
    assert_eq!(err["extensions"]["diagnostics"][0]["field"], "waf.paranoia");
    assert_eq!(err["extensions"]["diagnostics"][0]["source"], "x.yaml");
    assert_eq!(err["extensions"]["diagnostics"][0]["line"], 6);
    let r = run("mutation { deleteApp(name: \"nope\") { app } }".into()).await;
    assert_eq!(
        serde_json::to_value(&r.errors[0]).expect("json")["extensions"]["code"],
        "NOT_FOUND"
    );
}

on_both_backends!(
    plan_apply_rollback_round_trip,
    applying_twice_makes_one_version,
    invalid_intents_are_refused_with_positions_and_store_nothing,
    conflicting_routes_are_refused,
    deleting_an_app_removes_it_from_the_snapshot,
    graphql_round_trip,
);
