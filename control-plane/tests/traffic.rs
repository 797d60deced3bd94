//! Traffic records shipped by gateways and adoption of the paved road: ingestion over HTTP,
//! validation, retention, summaries and lists through GraphQL, adoption over the version
//! history, and visibility by team, on SQLite and PostgreSQL.

mod common;

use chrono::{DateTime, Duration as Days, Utc};
use common::{Backend, env, intent, person, serve, token};
use paved_control_plane::graphql::{build_schema, execute};
use paved_control_plane::storage::entities::{app, intent_version};
use paved_control_plane::{Principal, Role, Scope};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde_json::{Value, json};

/// An access-log record as the gateway's `accesslog` filter writes it.
fn record(app: &str, id: &str, at: DateTime<Utc>, status: i64, decisions: Value) -> Value {
    json!({
        "time": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "request_id": id,
        "app": app,
        "route": "/",
        "method": "GET",
        "host": format!("{app}.example.com"),
        "path": format!("/items/{id}"),
        "status": status,
        "latency_ms": 2.5,
        "client_ip": "203.0.113.7",
        "headers": {"user-agent": "curl/8"},
        "decisions": decisions,
    })
}

/// Ships `batch` as gateway `gw-1` with `token`, as the gateway's traffic shipper does; the
/// answer's status and JSON body.
async fn ship(base: &str, token: &str, batch: &Value) -> (reqwest::StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/gateways/gw-1/traffic"))
        .bearer_auth(token)
        .json(batch)
        .send()
        .await
        .expect("post");
    let status = r.status();
    (status, r.json().await.expect("json"))
}

fn allowed(app: &str, id: &str, at: DateTime<Utc>) -> Value {
    record(
        app,
        id,
        at,
        200,
        json!({"authn": "allow", "authz": "allow:any", "waf": "allow"}),
    )
}

fn authn_denied(app: &str, id: &str, at: DateTime<Utc>) -> Value {
    record(app, id, at, 401, json!({"authn": "deny:no_credentials"}))
}

fn waf_blocked(app: &str, id: &str, at: DateTime<Utc>) -> Value {
    let mut r = record(
        app,
        id,
        at,
        403,
        json!({"authn": "allow", "authz": "allow:any", "waf": "deny"}),
    );
    r["details"] = json!({"waf": {"rules": "942100,942190", "score": 10}});
    r
}

fn waf_detected(app: &str, id: &str, at: DateTime<Utc>) -> Value {
    let mut r = record(
        app,
        id,
        at,
        200,
        json!({"authn": "allow", "authz": "allow:any", "waf": "detect"}),
    );
    // One rule id alone arrives as a number (the filter keeps numbers numeric).
    r["details"] = json!({"waf": {"rules": 941100, "score": 3}});
    r
}

async fn gql(t: &common::TestEnv, who: &Principal, query: &str) -> Value {
    let schema = build_schema(t.config.graphql);
    let response = execute(&schema, &t.cp, Some(who.clone()), query).await;
    serde_json::to_value(&response).expect("response as JSON")
}

async fn apply(t: &common::TestEnv, name: &str, team: &str) {
    t.cp.apply_intent(
        &t.admin,
        &intent(name, team, &format!("{name}.example.com")),
        "paved.yaml",
    )
    .await
    .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

async fn a_shipped_batch_is_counted_in_the_app_summary_once(backend: Backend) {
    let t = env(backend).await;
    apply(&t, "alpha", "team-a").await;
    let base = serve(&t.cp).await;
    let gw = token(&t.cp, &[Scope::Gateway], &[], &[]).await;
    let now = Utc::now();
    let earlier = now - Days::hours(2);
    let batch = json!([
        allowed("alpha", "r1", earlier),
        allowed("alpha", "r2", now),
        allowed("alpha", "r3", now),
        authn_denied("alpha", "r4", earlier),
        authn_denied("alpha", "r5", now),
        waf_blocked("alpha", "r6", now),
        waf_detected("alpha", "r7", now),
    ]);
    let (status, body) = ship(&base, &gw, &batch).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"stored": 7, "duplicates": 0}));
    // The gateway lost the answer and sends the batch again: nothing is counted twice.
    let (_, body) = ship(&base, &gw, &batch).await;
    assert_eq!(body, json!({"stored": 0, "duplicates": 7}));

    let v = gql(
        &t,
        &t.admin,
        r#"{ app(name: "alpha") {
            traffic { requests denied wafHits deniedByFilter { filter count }
                      statusClasses { statusClass count } byHour { hour requests denied wafHits } }
            recentRequests(limit: 2) { requestId status deniedBy wafRules subject gateway latencyMs clientIp path }
        } }"#,
    )
    .await;
    assert!(v.get("errors").is_none(), "{v}");
    let traffic = &v["data"]["app"]["traffic"];
    assert_eq!(traffic["requests"], 7, "{traffic}");
    assert_eq!(traffic["denied"], 3);
    assert_eq!(traffic["wafHits"], 2);
    assert_eq!(
        traffic["deniedByFilter"],
        json!([{"filter": "authn", "count": 2}, {"filter": "waf", "count": 1}])
    );
    assert_eq!(
        traffic["statusClasses"],
        json!([{"statusClass": "2xx", "count": 4}, {"statusClass": "4xx", "count": 3}])
    );
    let hours = traffic["byHour"].as_array().expect("buckets");
    assert!(
        (24..=26).contains(&hours.len()),
        "one bucket per hour: {}",
        hours.len()
    );
    let sum = |field: &str| {
        hours
            .iter()
            .map(|h| h[field].as_i64().expect("n"))
            .sum::<i64>()
    };
    assert_eq!((sum("requests"), sum("denied"), sum("wafHits")), (7, 3, 2));
    // Two hours apart: two buckets, in order.
    let busy: Vec<i64> = hours
        .iter()
        .map(|h| h["requests"].as_i64().expect("n"))
        .filter(|n| *n > 0)
        .collect();
    assert_eq!(busy, [2, 5]);
    // Newest first; records of the same instant by arrival, latest first.
    let recent = v["data"]["app"]["recentRequests"].as_array().expect("list");
    let ids: Vec<&str> = recent
        .iter()
        .map(|r| r["requestId"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["r7", "r6"]);
    assert_eq!(recent[1]["deniedBy"], "waf");
    assert_eq!(recent[1]["wafRules"], json!(["942100", "942190"]));
    assert_eq!(recent[1]["path"], "/items/r6");
    assert_eq!(recent[1]["clientIp"], "203.0.113.7");
    assert_eq!(recent[1]["latencyMs"], 2.5);
    assert!(recent[0]["deniedBy"].is_null());
    assert!(recent.iter().all(|r| r["gateway"] == "gw-1"));

    // The latest WAF detections across apps, blocked and detected.
    let v = gql(
        &t,
        &t.admin,
        "{ wafHits(limit: 10) { requestId deniedBy wafRules } recentDenials { requestId deniedBy } }",
    )
    .await;
    let hits = v["data"]["wafHits"].as_array().expect("hits");
    let mut ids: Vec<&str> = hits
        .iter()
        .map(|h| h["requestId"].as_str().expect("id"))
        .collect();
    ids.sort();
    assert_eq!(ids, ["r6", "r7"]);
    assert!(
        hits.iter()
            .any(|h| h["wafRules"] == json!(["941100"]) && h["deniedBy"].is_null())
    );
    let denials = v["data"]["recentDenials"].as_array().expect("denials");
    assert_eq!(denials.len(), 3);
    assert_eq!(
        denials.last().expect("oldest")["requestId"],
        "r4",
        "newest first"
    );
}

async fn a_bad_record_refuses_the_whole_batch_naming_index_and_field(backend: Backend) {
    let t = env(backend).await;
    apply(&t, "alpha", "team-a").await;
    let base = serve(&t.cp).await;
    let gw = token(&t.cp, &[Scope::Gateway], &[], &[]).await;
    let reader = token(&t.cp, &[Scope::AppsRead], &[], &[]).await;
    let now = Utc::now();
    let mut bad = allowed("alpha", "r3", now);
    bad["status"] = json!("200");
    let batch = json!([
        allowed("alpha", "r1", now),
        allowed("alpha", "r2", now),
        bad
    ]);
    let (status, body) = ship(&base, &gw, &batch).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "BAD_REQUEST");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("records[2].status: expected an integer from 0 to 999"),
        "{message}"
    );
    let alpha = t.cp.get_app(&t.admin, "alpha").await.expect("alpha");
    let stored =
        t.cp.recent_requests(&t.admin, &alpha, Some(10))
            .await
            .expect("list");
    assert!(
        stored.is_empty(),
        "nothing of the batch is stored: {stored:?}"
    );

    // Not an array, a token without the gateway scope, no token.
    let http = reqwest::Client::new();
    let url = format!("{base}/v1/gateways/gw-1/traffic");
    let r = http
        .post(&url)
        .bearer_auth(&gw)
        .body("{\"time\": 1}")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let r = http
        .post(&url)
        .bearer_auth(&reader)
        .json(&json!([]))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let r = http.post(&url).json(&json!([])).send().await.expect("post");
    assert_eq!(r.status(), 401);
}

async fn records_past_the_retention_window_are_pruned(backend: Backend) {
    let t = env(backend).await;
    apply(&t, "alpha", "team-a").await;
    let now = Utc::now();
    let gateway = Principal::system();
    t.cp.ingest_traffic(
        &gateway,
        "gw-1",
        &[
            allowed("alpha", "old", now - Days::days(8)),
            allowed("alpha", "middle", now - Days::days(3)),
            allowed("alpha", "new", now - Days::hours(1)),
        ],
    )
    .await
    .expect("ingest");
    let alpha = t.cp.get_app(&t.admin, "alpha").await.expect("alpha");
    let ids = |list: Vec<paved_control_plane::storage::entities::traffic_record::Model>| {
        list.into_iter().map(|r| r.request_id).collect::<Vec<_>>()
    };
    assert_eq!(
        t.cp.traffic_retention(),
        std::time::Duration::from_secs(7 * 86_400),
        "7 days by default"
    );
    assert_eq!(t.cp.prune_expired_traffic().await.expect("prune"), 1);
    assert_eq!(
        ids(t
            .cp
            .recent_requests(&t.admin, &alpha, None)
            .await
            .expect("list")),
        ["new", "middle"]
    );
    t.cp.set_traffic_retention(std::time::Duration::from_secs(2 * 86_400));
    assert_eq!(t.cp.prune_expired_traffic().await.expect("prune"), 1);
    assert_eq!(
        ids(t
            .cp
            .recent_requests(&t.admin, &alpha, None)
            .await
            .expect("list")),
        ["new"]
    );
}

/// Moves an app's version back in time (as if it had been applied `days` ago).
async fn backdate(t: &common::TestEnv, app_name: &str, version: i32, days: i64) {
    let db = t.cp.store().db();
    let a = app::Entity::find()
        .filter(app::Column::Name.eq(app_name))
        .one(db)
        .await
        .expect("query")
        .expect("app");
    let v = intent_version::Entity::find()
        .filter(intent_version::Column::AppId.eq(a.id))
        .filter(intent_version::Column::Version.eq(version))
        .one(db)
        .await
        .expect("query")
        .expect("version");
    let at = v.created_at - Days::days(days);
    let mut am = v.into_active_model();
    am.created_at = Set(at);
    am.update(db).await.expect("backdate");
}

async fn adoption_trend_replays_the_version_history(backend: Backend) {
    let t = env(backend).await;
    let detect = |name: &str, team: &str| {
        format!(
            "{}waf: {{mode: detect}}\n",
            intent(name, team, &format!("{name}.example.com"))
        )
    };
    // alpha: paved 10 days ago, its WAF switched to detect 5 days ago.
    apply(&t, "alpha", "team-a").await;
    t.cp.apply_intent(&t.admin, &detect("alpha", "team-a"), "paved.yaml")
        .await
        .expect("alpha v2");
    backdate(&t, "alpha", 1, 10).await;
    backdate(&t, "alpha", 2, 5).await;
    // bravo: paved 3 days ago. charlie: paved 8 days ago, deleted today.
    apply(&t, "bravo", "team-b").await;
    backdate(&t, "bravo", 1, 3).await;
    apply(&t, "charlie", "team-b").await;
    backdate(&t, "charlie", 1, 8).await;
    t.cp.delete_app(&t.admin, "charlie").await.expect("delete");

    let v = gql(
        &t,
        &t.admin,
        "{ adoption(days: 12) { apps paved rate trend { day apps paved rate } } }",
    )
    .await;
    assert!(v.get("errors").is_none(), "{v}");
    let adoption = &v["data"]["adoption"];
    assert_eq!(
        (&adoption["apps"], &adoption["paved"], &adoption["rate"]),
        (&json!(2), &json!(1), &json!(0.5))
    );
    let trend = adoption["trend"].as_array().expect("trend");
    let counts: Vec<(i64, i64)> = trend
        .iter()
        .map(|d| {
            (
                d["apps"].as_i64().expect("n"),
                d["paved"].as_i64().expect("n"),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            (0, 0), // 11 days ago
            (1, 1), // alpha paved
            (1, 1),
            (2, 2), // charlie
            (2, 2),
            (2, 2),
            (2, 1), // alpha detects only
            (2, 1),
            (3, 2), // bravo
            (3, 2),
            (3, 2),
            (2, 1), // today: charlie deleted
        ]
    );
    assert_eq!(
        trend.last().expect("today")["day"],
        Utc::now().date_naive().to_string()
    );
    assert_eq!(trend[8]["rate"].as_f64().expect("rate"), 2.0 / 3.0);

    // Each app says why it is or is not paved.
    let v = gql(
        &t,
        &t.admin,
        r#"{ alpha: app(name: "alpha") { paved { paved gaps } } bravo: app(name: "bravo") { paved { paved gaps } } }"#,
    )
    .await;
    assert_eq!(
        v["data"]["bravo"]["paved"],
        json!({"paved": true, "gaps": []})
    );
    assert_eq!(v["data"]["alpha"]["paved"]["paved"], false);
    let gaps = v["data"]["alpha"]["paved"]["gaps"].to_string();
    assert!(
        gaps.contains("alpha.example.com/: WAF detects only"),
        "{gaps}"
    );

    // A team member counts only the apps they may read.
    let ann = person(&t.cp, "ann", Role::AppOwner, &["team-a"]).await;
    let mine = t.cp.adoption(&ann, Some(12)).await.expect("adoption");
    assert_eq!((mine.apps, mine.paved), (1, 0));
    assert_eq!(mine.trend[1].apps, 1);
    // Out of bounds.
    let e = t.cp.adoption(&t.admin, Some(0)).await.expect_err("0 days");
    assert_eq!(e.code(), "BAD_REQUEST");
}

async fn a_caller_without_access_sees_no_traffic_of_another_team(backend: Backend) {
    let t = env(backend).await;
    apply(&t, "alpha", "team-a").await;
    apply(&t, "bravo", "team-b").await;
    let now = Utc::now();
    t.cp.ingest_traffic(
        &Principal::system(),
        "gw-1",
        &[
            authn_denied("alpha", "a1", now),
            waf_blocked("alpha", "a2", now),
            authn_denied("bravo", "b1", now),
            waf_blocked("bravo", "b2", now),
        ],
    )
    .await
    .expect("ingest");
    let ann = person(&t.cp, "ann", Role::AppOwner, &["team-a"]).await;
    let apps_of = |list: &[paved_control_plane::storage::entities::traffic_record::Model]| {
        let mut apps: Vec<String> = list.iter().map(|r| r.app.clone()).collect();
        apps.sort();
        apps.dedup();
        apps
    };
    let denials =
        t.cp.recent_denials(&ann, None, None)
            .await
            .expect("denials");
    assert_eq!(apps_of(&denials), ["alpha"]);
    assert_eq!(denials.len(), 2);
    let hits = t.cp.waf_hits(&ann, None, None).await.expect("hits");
    assert_eq!(apps_of(&hits), ["alpha"]);
    let e =
        t.cp.recent_denials(&ann, Some("bravo"), None)
            .await
            .expect_err("bravo is not hers");
    assert_eq!(e.code(), "NOT_FOUND");
    let bravo = t.cp.get_app(&t.admin, "bravo").await.expect("bravo");
    let e =
        t.cp.traffic_summary(&ann, &bravo, None)
            .await
            .expect_err("bravo's summary");
    assert_eq!(e.code(), "NOT_FOUND");
    let e =
        t.cp.recent_requests(&ann, &bravo, None)
            .await
            .expect_err("bravo's requests");
    assert_eq!(e.code(), "NOT_FOUND");
    // Through GraphQL: bravo is not found, the lists hold alpha only.
    let v = gql(
        &t,
        &ann,
        r#"{ recentDenials { app } wafHits { app } adoption { apps } }"#,
    )
    .await;
    assert!(v.get("errors").is_none(), "{v}");
    assert!(
        v["data"]["recentDenials"]
            .as_array()
            .expect("list")
            .iter()
            .all(|r| r["app"] == "alpha"),
        "{v}"
    );
    assert_eq!(v["data"]["adoption"]["apps"], 1);
    let v = gql(
        &t,
        &ann,
        r#"{ app(name: "bravo") { traffic { requests } } }"#,
    )
    .await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "NOT_FOUND", "{v}");

    // A reviewer sees every app; a gateway token reads nothing.
    let rita = person(&t.cp, "rita", Role::SecurityReviewer, &[]).await;
    let all = t.cp.recent_denials(&rita, None, None).await.expect("all");
    assert_eq!(apps_of(&all), ["alpha", "bravo"]);
    let gateway_token =
        t.cp.authenticate_token(&token(&t.cp, &[Scope::Gateway], &[], &[]).await)
            .await
            .expect("gateway principal");
    let e =
        t.cp.recent_denials(&gateway_token, None, None)
            .await
            .expect_err("gateway tokens do not read");
    assert_eq!(e.code(), "FORBIDDEN");
    // A read token limited to bravo sees bravo only.
    let limited =
        t.cp.authenticate_token(&token(&t.cp, &[Scope::AppsRead], &["bravo"], &[]).await)
            .await
            .expect("limited principal");
    let hits = t.cp.waf_hits(&limited, None, None).await.expect("hits");
    assert_eq!(apps_of(&hits), ["bravo"]);
}

on_both_backends!(
    a_shipped_batch_is_counted_in_the_app_summary_once,
    a_bad_record_refuses_the_whole_batch_naming_index_and_field,
    records_past_the_retention_window_are_pruned,
    adoption_trend_replays_the_version_history,
    a_caller_without_access_sees_no_traffic_of_another_team,
);
