//! The GraphQL surface: the exported SDL, limits, GraphiQL, subscriptions over
//! graphql-transport-ws.

mod common;

use std::time::Duration;

use common::{Backend, env, env_with, intent, serve, token};
use futures_util::{SinkExt, StreamExt};
use paved_control_plane::Scope;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[test]
fn the_exported_schema_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let sdl = paved_control_plane::graphql::sdl();
    if std::env::var_os("PAVED_BLESS").is_some() {
        std::fs::write(&path, &sdl).expect("write schema.graphql");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sdl,
        "control-plane/schema.graphql is out of date: run `PAVED_BLESS=1 cargo test -p paved-control-plane --test graphql_api` and commit it"
    );
    for needle in [
        "planIntent",
        "applyIntent",
        "rollbackApp",
        "deleteApp",
        "createToken",
        "revokeToken",
        "appStatus",
        "gatewayRollout",
        "auditLog",
    ] {
        assert!(sdl.contains(needle), "{needle}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_and_complex_queries_are_refused() {
    let t = env(Backend::Sqlite).await;
    let base = serve(&t.cp).await;
    let admin = token(&t.cp, &[Scope::Admin], &[], &[]).await;
    let http = reqwest::Client::new();
    let mut deep = String::from("{ __schema { types { fields { type { ");
    for _ in 0..20 {
        deep.push_str("ofType { ");
    }
    deep.push_str("name");
    deep.push_str(&" }".repeat(25));
    let v: Value = http
        .post(format!("{base}/graphql"))
        .bearer_auth(&admin)
        .json(&json!({"query": deep}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .expect("error")
            .contains("nested too deep"),
        "{v}"
    );
    // GraphiQL's introspection query (TypeRef nested seven times) stays within the limits.
    let type_ref = "kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }";
    let introspection = format!(
        "query IntrospectionQuery {{ __schema {{ queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }} types {{ kind name description fields(includeDeprecated: true) {{ name description args {{ name description type {{ {type_ref} }} defaultValue }} type {{ {type_ref} }} isDeprecated deprecationReason }} inputFields {{ name description type {{ {type_ref} }} defaultValue }} interfaces {{ {type_ref} }} enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }} possibleTypes {{ {type_ref} }} }} directives {{ name description locations args {{ name description type {{ {type_ref} }} defaultValue }} }} }} }}"
    );
    let v: Value = http
        .post(format!("{base}/graphql"))
        .bearer_auth(&admin)
        .json(&json!({"query": introspection}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(v.get("errors").is_none(), "{v}");
    assert_eq!(v["data"]["__schema"]["queryType"]["name"], "Query");
    let wide = "{ apps(first: 500) { nodes { versions(first: 500) { version text } } } }";
    let v: Value = http
        .post(format!("{base}/graphql"))
        .bearer_auth(&admin)
        .json(&json!({"query": wide}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .expect("error")
            .contains("too complex"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_is_served_in_development_only() {
    let dev = env_with(Backend::Sqlite, |c| c.development = true).await;
    let base = serve(&dev.cp).await;
    let r = reqwest::get(format!("{base}/graphql")).await.expect("get");
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("html")
            .to_lowercase()
            .contains("graphiql")
    );
    let prod = env(Backend::Sqlite).await;
    let base = serve(&prod.cp).await;
    assert_eq!(
        reqwest::get(format!("{base}/graphql"))
            .await
            .expect("get")
            .status(),
        404
    );
}

async fn next_json(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("open")
            .expect("message");
        if let Message::Text(text) = msg {
            let v: Value = serde_json::from_str(&text).expect("json");
            if v["type"] != "ping" && v["type"] != "pong" {
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_status_subscription_streams_changes_over_graphql_transport_ws() {
    let t = env(Backend::Sqlite).await;
    let cp = t.cp.clone();
    cp.apply_intent(
        &t.admin,
        &intent("alpha", "a", "alpha.example.com"),
        "paved.yaml",
    )
    .await
    .expect("apply");
    let base = serve(&cp).await;
    let admin = token(&cp, &[Scope::Admin], &[], &[]).await;
    let mut req = format!("{}/graphql/ws", base.replace("http://", "ws://"))
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "graphql-transport-ws"
    );
    ws.send(Message::text(
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {admin}")}})
            .to_string(),
    ))
    .await
    .expect("init");
    assert_eq!(next_json(&mut ws).await["type"], "connection_ack");
    ws.send(Message::text(json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { appStatus(name: \"alpha\") { event currentVersion deleted rollout { snapshotVersion } } }"}}).to_string())).await.expect("subscribe");
    let first = next_json(&mut ws).await;
    assert_eq!(first["type"], "next", "{first}");
    assert_eq!(first["payload"]["data"]["appStatus"]["event"], "current");
    assert_eq!(first["payload"]["data"]["appStatus"]["currentVersion"], 1);

    let v2 = format!(
        "{}waf: {{mode: detect}}\n",
        intent("alpha", "a", "alpha.example.com")
    );
    let applied = cp
        .apply_intent(&t.admin, &v2, "paved.yaml")
        .await
        .expect("apply v2");
    let update = next_json(&mut ws).await;
    assert_eq!(
        update["payload"]["data"]["appStatus"]["event"], "app.apply",
        "{update}"
    );
    assert_eq!(update["payload"]["data"]["appStatus"]["currentVersion"], 2);
    assert_eq!(
        update["payload"]["data"]["appStatus"]["rollout"]["snapshotVersion"],
        applied.snapshot_version.expect("v")
    );

    cp.delete_app(&t.admin, "alpha").await.expect("delete");
    let gone = next_json(&mut ws).await;
    assert_eq!(
        gone["payload"]["data"]["appStatus"]["deleted"], true,
        "{gone}"
    );

    // Without credentials, the subscription is refused with UNAUTHENTICATED.
    let mut req = format!("{}/graphql/ws", base.replace("http://", "ws://"))
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    ws.send(Message::text(
        json!({"type": "connection_init"}).to_string(),
    ))
    .await
    .expect("init");
    assert_eq!(next_json(&mut ws).await["type"], "connection_ack");
    ws.send(Message::text(json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { gatewayRollout { event } }"}}).to_string())).await.expect("subscribe");
    let refused = next_json(&mut ws).await;
    // A resolver error of a subscription comes as a `next` with errors, then `complete`.
    assert_eq!(refused["type"], "next", "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
}
