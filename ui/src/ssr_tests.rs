//! Server rendering of every page against a fake GraphQL backend: each read-only page must
//! arrive complete (no "Loading…": the server waited for its data), with the hooks the
//! end-to-end tests use; errors and signed-out sessions must be shown, not crash the page.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::api::GraphqlRequest;
use crate::server::{Backend, GraphqlFuture, UiSettings, router};

/// The requests a fake backend received.
type Seen = Arc<Mutex<Vec<GraphqlRequest>>>;

fn me() -> Value {
    json!({"me": {"name": "ada", "kind": "PERSON", "role": "app-owner", "teams": ["platform"]}})
}

fn record(app: &str, denied_by: Option<&str>, rules: &[&str]) -> Value {
    json!({
        "time": "2025-03-01T10:15:00Z", "gateway": "gw-1", "app": app, "route": "/",
        "method": "GET", "path": "/login?user=x", "status": 403, "latencyMs": 1.5,
        "deniedBy": denied_by, "wafRules": rules, "requestId": "r-1"
    })
}

fn gateway() -> Value {
    json!({"id": "gw-1", "state": "ACK", "versionServed": 7, "versionDelivered": 7,
           "lastReportedVersion": 7, "error": null, "upToDate": true,
           "lastSeen": "2025-03-01T10:16:00Z"})
}

fn app_summary(name: &str, paved: bool) -> Value {
    json!({"name": name, "team": "platform", "owners": ["ada"], "domains": [format!("{name}.example.com")],
           "currentVersion": 2, "updatedAt": "2025-03-01T09:00:00Z",
           "paved": {"paved": paved, "gaps": if paved { json!([]) } else { json!(["app.example.com/: WAF detects only"]) }}})
}

/// Canned answers by operation name.
fn answer(request: &GraphqlRequest, apps: usize) -> Value {
    let op = request
        .query
        .split(['(', '{'])
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let data = match op.as_str() {
        "query Me" => me(),
        "query Dashboard" => json!({
            "adoption": {"apps": apps, "paved": apps / 2, "rate": if apps == 0 { 0.0 } else { 0.5 },
                "trend": [
                    {"day": "2025-02-27", "apps": 1, "paved": 0, "rate": 0.0},
                    {"day": "2025-02-28", "apps": 2, "paved": 1, "rate": 0.5},
                    {"day": "2025-03-01", "apps": 2, "paved": 1, "rate": 0.5}
                ]},
            "recentDenials": if apps == 0 { json!([]) } else { json!([record("orders", Some("authn"), &[]), record("orders", Some("waf"), &["942100"])]) },
            "wafHits": if apps == 0 { json!([]) } else { json!([record("orders", Some("waf"), &["942100"])]) },
            "gateways": [gateway()],
            "snapshotVersion": 7
        }),
        "query Catalog" => json!({"apps": {
            "totalCount": apps,
            "pageInfo": {"hasNextPage": false, "endCursor": null},
            "nodes": (0..apps).map(|i| app_summary(&format!("app{i}"), i % 2 == 0)).collect::<Vec<_>>()
        }}),
        "query AppPage" => json!({
            "app": {
                "name": "orders", "team": "platform", "owners": ["ada"], "domains": ["orders.example.com"],
                "currentVersion": 2, "snapshotVersion": 7, "createdAt": "2025-02-27T09:00:00Z",
                "updatedAt": "2025-03-01T09:00:00Z", "deletedAt": null, "versionCount": 2,
                "current": {"version": 2, "text": "apiVersion: paved.dev/v1\nname: orders\n", "author": "ada",
                    "actorKind": "PERSON", "action": "apply", "rolledBackFrom": null, "createdAt": "2025-03-01T09:00:00Z",
                    "intent": {"name": "orders", "waf": {"mode": "block", "paranoia": 1, "anomalyThreshold": 5}}},
                "versions": [
                    {"version": 2, "author": "ada", "actorKind": "PERSON", "action": "apply", "rolledBackFrom": null, "createdAt": "2025-03-01T09:00:00Z"},
                    {"version": 1, "author": "ci", "actorKind": "TOOL", "action": "apply", "rolledBackFrom": null, "createdAt": "2025-02-27T09:00:00Z"}
                ],
                "rollout": {"snapshotVersion": 7, "gatewaysTotal": 1, "gatewaysUpToDate": 1, "gatewaysFailed": 0},
                "paved": {"paved": true, "gaps": []},
                "traffic": {"since": "2025-02-28T10:00:00Z", "until": "2025-03-01T10:00:00Z", "requests": 12, "denied": 3, "wafHits": 1,
                    "deniedByFilter": [{"filter": "authn", "count": 2}, {"filter": "waf", "count": 1}],
                    "byHour": [{"hour": "2025-03-01T08:00:00Z", "requests": 5, "denied": 1, "wafHits": 0},
                               {"hour": "2025-03-01T09:00:00Z", "requests": 7, "denied": 2, "wafHits": 1}]},
                "recentRequests": [record("orders", None, &[])]
            },
            "wafHits": [record("orders", Some("waf"), &["942100"])],
            "gateways": [gateway()]
        }),
        "query Diff" => json!({"diff": {"app": "orders", "from": 1, "to": 2,
            "textDiff": "--- version 1\n+++ version 2\n@@ -1,2 +1,2 @@\n apiVersion: paved.dev/v1\n-name: old\n+name: orders\n",
            "changes": [{"path": "description", "kind": "CHANGED", "before": "a", "after": "b"}]}}),
        other => return json!({"errors": [{"message": format!("unexpected operation {other}")}]}),
    };
    json!({"data": data})
}

fn backend(apps: usize, seen: Seen) -> Backend {
    Backend {
        execute: Arc::new(move |request: GraphqlRequest| -> GraphqlFuture {
            let response = answer(&request, apps);
            if let Ok(mut list) = seen.lock() {
                list.push(request);
            }
            Box::pin(async move { response })
        }),
    }
}

fn failing_backend() -> Backend {
    Backend {
        execute: Arc::new(|_request: GraphqlRequest| -> GraphqlFuture {
            Box::pin(async {
                json!({"errors": [{"message": "you may not read this", "extensions": {"code": "FORBIDDEN"}}]})
            })
        }),
    }
}

async fn get(
    path: &str,
    backend: Option<Backend>,
    settings: Option<UiSettings>,
) -> (StatusCode, String) {
    let mut request = Request::builder()
        .uri(path)
        .header("accept", "text/html")
        .body(Body::empty())
        .expect("request");
    if let Some(b) = backend {
        request.extensions_mut().insert(b);
    }
    if let Some(s) = settings {
        request.extensions_mut().insert(s);
    }
    let response = router().oneshot(request).await.expect("the router answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn page(path: &str, apps: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let (status, html) = get(path, Some(backend(apps, seen.clone())), None).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        !html.contains("Loading…"),
        "the server waited for the data: {html}"
    );
    (html, seen)
}

#[tokio::test]
async fn dashboard_renders_adoption_chart_denials_and_gateways_on_the_server() {
    let (html, _) = page("/", 4).await;
    for needle in [
        "Security dashboard",
        "Signed in as",
        "id=\"adoption-chart\"",
        "<svg",
        "id=\"adoption-rate\"",
        "50%",
        "id=\"denials-chart\"",
        "id=\"recent-denials\"",
        "942100",
        "id=\"gateways\"",
        "gw-1",
        "<meta name=\"paved-gateway-url\" content=\"http://{domain}:8080/\"",
    ] {
        assert!(html.contains(needle), "{needle} missing in {html}");
    }
}

#[tokio::test]
async fn dashboard_without_apps_invites_to_onboard_one() {
    let (html, _) = page("/", 0).await;
    assert!(html.contains("No apps yet"), "{html}");
    assert!(html.contains("href=\"/onboard\""), "{html}");
    assert!(html.contains("No denied requests yet."), "{html}");
}

#[tokio::test]
async fn catalog_sends_name_and_team_filters_and_applies_the_paved_one() {
    let (html, seen) = page("/apps?q=app&team=platform&paved=no", 4).await;
    assert!(html.contains("href=\"/apps/app1\""), "{html}");
    assert!(
        !html.contains("href=\"/apps/app0\""),
        "paved apps are filtered out: {html}"
    );
    assert!(html.contains("2 of 4 apps"), "{html}");
    let seen = seen.lock().expect("lock");
    let catalog = seen
        .iter()
        .find(|r| r.query.starts_with("query Catalog"))
        .expect("the catalog asked for apps");
    assert_eq!(
        catalog.variables["filter"],
        json!({"nameContains": "app", "team": "platform"})
    );
}

#[tokio::test]
async fn empty_catalog_invites_to_onboard_one() {
    let (html, _) = page("/apps", 0).await;
    assert!(html.contains("No apps yet"), "{html}");
}

#[tokio::test]
async fn app_page_shows_intent_history_diff_chain_and_traffic() {
    let (html, _) = page("/apps/orders", 1).await;
    for needle in [
        "id=\"current-intent\"",
        "class=\"y-key\"",
        "Roll back to version 1",
        "Changes in version 2",
        "id=\"version-diff\"",
        "d-add",
        "id=\"filter-chain\"",
        "single sign-on required",
        "id=\"gateway-status\"",
        "served by 1 of 1 gateways",
        "id=\"traffic-chart\"",
        "id=\"denials-by-filter\"",
        "id=\"live-url\"",
        "http://orders.example.com:8080/",
    ] {
        assert!(html.contains(needle), "{needle} missing in {html}");
    }
}

#[tokio::test]
async fn live_links_follow_the_hosts_settings() {
    let seen: Seen = Arc::default();
    let (_, html) = get(
        "/apps/orders",
        Some(backend(1, seen)),
        Some(UiSettings::for_listener(true, 443)),
    )
    .await;
    assert!(html.contains("https://orders.example.com/"), "{html}");
}

#[tokio::test]
async fn wizard_renders_its_first_step_with_labelled_fields() {
    let (html, _) = page("/onboard", 0).await;
    for needle in [
        "id=\"app-name\"",
        "name=\"app-name\"",
        "for=\"app-name\"",
        "id=\"team\"",
        "id=\"owners\"",
        "value=\"ada\"",
        "value=\"platform\"",
        "aria-describedby=\"app-name-hint app-name-error\"",
        "Step 1 of 7",
        ">Next<",
    ] {
        assert!(html.contains(needle), "{needle} missing in {html}");
    }
    assert!(!html.contains(">Back<"), "no Back on the first step");
}

#[tokio::test]
async fn wizard_takes_values_from_the_query_string() {
    let (html, _) = page("/onboard?app-name=orders&team=web", 0).await;
    assert!(html.contains("value=\"orders\""), "{html}");
    assert!(html.contains("value=\"web\""), "{html}");
}

#[tokio::test]
async fn signed_out_pages_offer_to_sign_in_again() {
    let (status, html) = get("/apps/orders", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("You are signed out."), "{html}");
    assert!(html.contains("/ui/login?next=/apps/orders"), "{html}");
}

#[tokio::test]
async fn api_errors_are_announced_with_their_code() {
    let (status, html) = get("/", Some(failing_backend()), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("role=\"alert\""), "{html}");
    assert!(html.contains("you may not read this"), "{html}");
    assert!(html.contains("(FORBIDDEN)"), "{html}");
}

#[tokio::test]
async fn only_the_ui_pages_are_routed_other_paths_are_the_hosts() {
    let (status, _) = get("/nothing/here", Some(failing_backend()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
