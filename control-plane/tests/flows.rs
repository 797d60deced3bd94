//! Flow telemetry in the control plane, on SQLite and PostgreSQL: batches ingested and
//! attributed at the flow's time, then read through GraphQL (dependencies, graph, top
//! talkers, new edges, unowned destinations) with read permissions; address leases that
//! follow intents and the inventory; acknowledgement only after storage, through the
//! in-process channel and a real NATS JetStream (`PAVED_NATS_URL`, default
//! `nats://127.0.0.1:4222`) with a queue group of consumers; retention; the agents' HTTP
//! endpoint.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{Backend, TestEnv, env, person, serve, token};
use paved_control_plane::graphql::{build_schema, execute};
use paved_control_plane::services::flows::FlowIngestError;
use paved_control_plane::storage::entities::{flow_batch, flow_edge, flow_record};
use paved_control_plane::{Principal, Role, Scope};
use paved_flow_proto::{
    AgentId, BatchStats, Direction, FlowAggregate, FlowBatch, ProcessInfo, RttHistogram,
    SCHEMA_VERSION,
};
use paved_flow_transport::FlowSink;
use paved_flow_transport::channel::channel;
use paved_flow_transport::nats::{ConsumerSettings, NatsSink, StreamSettings};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).expect("after 1970")
}

fn iso(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// One aggregate: `direction` from `local` to `remote` on `port`, at `at`.
fn flow(
    direction: Direction,
    local: &str,
    remote: &str,
    port: u16,
    at: u64,
    (sent, received, connections): (u64, u64, u64),
) -> FlowAggregate {
    let mut rtt = RttHistogram::default();
    rtt.record(400);
    rtt.record(2_000);
    FlowAggregate {
        direction,
        local_addr: local.parse().expect("local address"),
        remote_addr: remote.parse().expect("remote address"),
        service_port: port,
        process: ProcessInfo {
            pid: 4242,
            comm: "svc".into(),
            exe: Some("/usr/bin/svc".into()),
        },
        cgroup_id: 7,
        container: None,
        connections,
        closed: connections,
        bytes_sent: sent,
        bytes_received: received,
        segments_sent: 10,
        segments_received: 10,
        retransmits: 1,
        rtt,
        first_seen_ms: at,
        last_seen_ms: at + 500,
    }
}

/// A batch of `agent` (host of the same name) covering its flows.
fn batch(agent: &str, sequence: u64, flows: Vec<FlowAggregate>) -> FlowBatch {
    let start = flows
        .iter()
        .map(|f| f.first_seen_ms)
        .min()
        .unwrap_or(now_ms());
    let end = flows
        .iter()
        .map(|f| f.last_seen_ms + 1)
        .max()
        .unwrap_or(start + 10_000);
    FlowBatch {
        version: SCHEMA_VERSION,
        agent_id: AgentId::new(agent).expect("agent id"),
        host: agent.into(),
        epoch_ms: 1_700_000_000_000,
        sequence,
        interval_start_ms: start,
        interval_end_ms: end.max(start + 1),
        sampling_rate: 1.0,
        stats: BatchStats::default(),
        flows,
    }
}

fn intent(name: &str, team: &str, upstream: &str) -> String {
    format!(
        "apiVersion: paved.dev/v1\nname: {name}\nowners: [owner@example.com]\nteam: {team}\ndomains: [{name}.example.com]\nupstream: {upstream}\n"
    )
}

async fn apply(t: &TestEnv, name: &str, team: &str, upstream: &str) {
    t.cp.apply_intent(&t.admin, &intent(name, team, upstream), "paved.yaml")
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

async fn gql(t: &TestEnv, who: &Principal, query: &str) -> Value {
    let schema = build_schema(t.config.graphql);
    let response = execute(&schema, &t.cp, Some(who.clone()), query).await;
    serde_json::to_value(&response).expect("response as JSON")
}

/// The data of a query that must succeed.
async fn data(t: &TestEnv, who: &Principal, query: &str) -> Value {
    let v = gql(t, who, query).await;
    assert!(v["errors"].is_null(), "{query}: {v}");
    v["data"].clone()
}

fn error_code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

async fn ingest(t: &TestEnv, b: &FlowBatch) {
    let stored =
        t.cp.ingest_flow_batch(b)
            .await
            .unwrap_or_else(|e| panic!("ingest {}: {e}", b.id()));
    assert!(!stored.duplicate, "{} stored before", b.id());
}

/// `(label, bytes, connections)` of each edge end on `side` (`client` or `server`).
fn ends(edges: &Value, side: &str) -> Vec<(String, i64, i64)> {
    edges
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e[side]["id"].as_str().expect("id").to_string(),
                e["bytes"].as_i64().expect("bytes"),
                e["connections"].as_i64().expect("connections"),
            )
        })
        .collect()
}

const EDGE: &str = "id source target client { id kind label app host address scope } server { id kind label app host address scope } connections bytesToServer bytesToClient bytes retransmits flows rttP50Us rttP99Us servicePorts firstSeen lastSeen";

async fn ingested_flows_answer_dependencies_graph_talkers_new_edges_and_unowned(backend: Backend) {
    let t = env(backend).await;
    apply(&t, "web", "web", "10.10.0.5:8080").await;
    apply(&t, "api", "api", "10.20.0.5:9000").await;
    // The hosts' own addresses (their outbound sides), and a database subnet.
    t.cp.upload_inventory(
        &t.admin,
        &paved_control_plane::services::flows::InventoryUpload::Text(
            "10.10.0.5 web\n10.20.0.5 api\n10.30.0.0/24 db\n".into(),
        ),
    )
    .await
    .expect("inventory");
    // Leases hold from their start: the flows come after.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let base = now_ms();
    let out = Direction::Outbound;
    let web_host = batch(
        "node-web",
        0,
        vec![
            flow(out, "10.10.0.5", "10.20.0.5", 9000, base, (1_000, 5_000, 3)),
            flow(out, "10.10.0.5", "10.30.0.9", 5432, base + 1, (200, 800, 2)),
            flow(
                out,
                "10.10.0.5",
                "203.0.113.9",
                443,
                base + 2,
                (300, 30_000, 1),
            ),
            flow(out, "10.10.0.5", "10.99.0.1", 6379, base + 3, (50, 60, 1)),
        ],
    );
    ingest(&t, &web_host).await;
    // The api host reports the same connections from its side, plus a client on the
    // internet that no agent watches.
    let inb = Direction::Inbound;
    let api_host = batch(
        "node-api",
        0,
        vec![
            flow(
                inb,
                "10.20.0.5",
                "10.10.0.5",
                9000,
                base + 5,
                (5_000, 1_000, 3),
            ),
            flow(
                inb,
                "10.20.0.5",
                "198.51.100.7",
                9000,
                base + 6,
                (700, 90, 4),
            ),
        ],
    );
    ingest(&t, &api_host).await;
    // Delivered again (a lost acknowledgement): stored once.
    let again = t.cp.ingest_flow_batch(&api_host).await.expect("redelivery");
    assert!(again.duplicate);

    let db = t.cp.store().db();
    let rows = flow_record::Entity::find()
        .filter(flow_record::Column::AgentId.eq("node-web"))
        .all(db)
        .await
        .expect("flows");
    assert_eq!(rows.len(), 4);
    let to = |remote: &str| rows.iter().find(|r| r.remote_addr == remote).expect("row");
    assert_eq!(to("10.20.0.5").local_app.as_deref(), Some("web"));
    assert_eq!(to("10.20.0.5").remote_app.as_deref(), Some("api"));
    assert_eq!(to("10.20.0.5").remote_port, Some(9000));
    assert_eq!(to("10.30.0.9").remote_app.as_deref(), Some("db"));
    assert_eq!(to("203.0.113.9").remote_app, None, "unknown stays unknown");
    assert_eq!(to("203.0.113.9").remote_scope, "internet");
    assert_eq!(to("10.99.0.1").remote_scope, "internal");
    assert_eq!(
        flow_batch::Entity::find().count(db).await.expect("count"),
        2
    );

    let admin = t.admin.clone();
    let d = data(
        &t,
        &admin,
        &format!("{{ appDependencies(app: \"web\") {{ app inbound {{ {EDGE} }} outbound {{ {EDGE} }} }} }}"),
    )
    .await;
    assert_eq!(
        ends(&d["appDependencies"]["outbound"], "server"),
        [
            ("address:203.0.113.9".to_string(), 30_300, 1),
            ("app:api".to_string(), 6_000, 3),
            ("app:db".to_string(), 1_000, 2),
            ("address:10.99.0.1".to_string(), 110, 1),
        ]
    );
    let api_edge = &d["appDependencies"]["outbound"][1];
    assert_eq!(api_edge["source"], "app:web");
    assert_eq!(api_edge["target"], "app:api");
    assert_eq!(api_edge["servicePorts"], json!([9000]));
    // The histogram's buckets are within 1/32 of the value.
    let p50 = api_edge["rttP50Us"].as_i64().expect("p50");
    assert!((390..=413).contains(&p50), "{p50}");
    assert!(api_edge["rttP99Us"].as_i64().expect("p99") >= 1_900);
    assert_eq!(
        d["appDependencies"]["outbound"][0]["server"]["scope"],
        "INTERNET"
    );

    // The connection reported by both hosts counts once; the unwatched client counts.
    let d = data(
        &t,
        &admin,
        &format!(
            "{{ appDependencies(app: \"api\") {{ inbound {{ {EDGE} }} outbound {{ id }} }} }}"
        ),
    )
    .await;
    assert_eq!(
        ends(&d["appDependencies"]["inbound"], "client"),
        [
            ("app:web".to_string(), 6_000, 3),
            ("address:198.51.100.7".to_string(), 790, 4),
        ]
    );
    assert_eq!(d["appDependencies"]["outbound"], json!([]));

    let d = data(
        &t,
        &admin,
        "{ flowGraph { nodes { id kind label bytesIn bytesOut connectionsIn connectionsOut } edges { source target bytes } truncated } }",
    )
    .await;
    let g = &d["flowGraph"];
    let ids: Vec<&str> = g["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].as_str().expect("id"))
        .collect();
    for id in [
        "app:web",
        "app:api",
        "app:db",
        "address:203.0.113.9",
        "address:10.99.0.1",
        "address:198.51.100.7",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert_eq!(g["edges"].as_array().expect("edges").len(), 5);
    assert_eq!(g["truncated"], false);
    let api = g["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["id"] == "app:api")
        .expect("api node");
    assert_eq!(api["connectionsIn"], 7);
    assert_eq!(api["bytesOut"], 5_700);

    let d = data(
        &t,
        &admin,
        "{ flowGraph(collapseAddresses: true) { nodes { id kind scope } edges { source target } } }",
    )
    .await;
    let ids: Vec<&str> = d["flowGraph"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].as_str().expect("id"))
        .collect();
    assert!(
        ids.contains(&"network:internet") && ids.contains(&"network:internal"),
        "{ids:?}"
    );
    assert!(!ids.iter().any(|id| id.starts_with("address:")), "{ids:?}");
    let d = data(
        &t,
        &admin,
        "{ flowGraph(includeAddresses: false) { edges { id } } }",
    )
    .await;
    assert_eq!(d["flowGraph"]["edges"].as_array().expect("edges").len(), 2);

    let d = data(&t, &admin, "{ topTalkers(first: 2) { id bytes } byConn: topTalkers(first: 1, by: CONNECTIONS) { id connections } }").await;
    assert_eq!(
        d["topTalkers"],
        json!([
            {"id": "app:web->address:203.0.113.9", "bytes": 30_300},
            {"id": "app:web->app:api", "bytes": 6_000},
        ])
    );
    assert_eq!(
        d["byConn"],
        json!([{"id": "address:198.51.100.7->app:api", "connections": 4}])
    );

    let d = data(
        &t,
        &admin,
        "{ internet: unownedFlows(scope: INTERNET) { address scope servicePorts bytesToServer bytesToClient clients { id } } internal: unownedFlows(scope: INTERNAL) { address } }",
    )
    .await;
    assert_eq!(
        d["internet"],
        json!([{"address": "203.0.113.9", "scope": "INTERNET", "servicePorts": [443],
                "bytesToServer": 300, "bytesToClient": 30_000, "clients": [{"id": "app:web"}]}])
    );
    assert_eq!(d["internal"], json!([{"address": "10.99.0.1"}]));

    // Later: a known pair again and a pair never seen before.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let later = now_ms();
    let web_later = batch(
        "node-web",
        1,
        vec![flow(
            out,
            "10.10.0.5",
            "10.20.0.5",
            9000,
            later,
            (10, 10, 1),
        )],
    );
    let api_later = batch(
        "node-api",
        1,
        vec![flow(
            out,
            "10.20.0.5",
            "10.30.0.7",
            5432,
            later + 1,
            (40, 40, 1),
        )],
    );
    ingest(&t, &web_later).await;
    ingest(&t, &api_later).await;
    let d = data(
        &t,
        &admin,
        &format!(
            "{{ newFlowEdges(since: \"{}\") {{ id connections firstSeen }} }}",
            iso(since)
        ),
    )
    .await;
    assert_eq!(
        d["newFlowEdges"],
        json!([{"id": "app:api->app:db", "connections": 1, "firstSeen": iso(later + 1)}])
    );
    let d = data(
        &t,
        &admin,
        &format!(
            "{{ newFlowEdges(since: \"{}\") {{ id }} }}",
            iso(base - 60_000)
        ),
    )
    .await;
    assert_eq!(d["newFlowEdges"].as_array().expect("edges").len(), 6);

    // Read permissions: an owner of `web` sees web's edges (with the peers' names), not
    // api's other clients, and not apps of other teams.
    let alice = person(&t.cp, "alice", Role::AppOwner, &["web"]).await;
    let d = data(
        &t,
        &alice,
        "{ flowGraph { edges { id } } unownedFlows { address } }",
    )
    .await;
    let mut seen: Vec<&str> = d["flowGraph"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "app:web->address:10.99.0.1",
            "app:web->address:203.0.113.9",
            "app:web->app:api",
            "app:web->app:db",
        ]
    );
    assert_eq!(
        d["unownedFlows"],
        json!([{"address": "203.0.113.9"}, {"address": "10.99.0.1"}])
    );
    let v = gql(&t, &alice, "{ appDependencies(app: \"api\") { app } }").await;
    assert_eq!(error_code(&v), "NOT_FOUND", "{v}");
    let v = gql(&t, &alice, "{ appDependencies(app: \"db\") { app } }").await;
    assert_eq!(
        error_code(&v),
        "NOT_FOUND",
        "inventory apps are for readers of all: {v}"
    );
    let bob = person(&t.cp, "bob", Role::AppOwner, &["elsewhere"]).await;
    let d = data(
        &t,
        &bob,
        "{ flowGraph { nodes { id } edges { id } } topTalkers { id } unownedFlows { address } }",
    )
    .await;
    assert_eq!(
        d,
        json!({"flowGraph": {"nodes": [], "edges": []}, "topTalkers": [], "unownedFlows": []})
    );
    let reviewer = person(&t.cp, "rita", Role::SecurityReviewer, &[]).await;
    let d = data(&t, &reviewer, "{ topTalkers(first: 500) { id } }").await;
    assert_eq!(d["topTalkers"].as_array().expect("edges").len(), 6);
    let v = gql(&t, &admin, "{ flowGraph(range: {from: \"2020-01-01T00:00:00Z\", to: \"2020-03-01T00:00:00Z\"}) { truncated } }").await;
    assert_eq!(error_code(&v), "BAD_REQUEST", "a range over 31 days: {v}");
}

async fn an_address_that_changed_owner_is_attributed_by_the_flows_time(backend: Backend) {
    let t = env(backend).await;
    let pause = || tokio::time::sleep(Duration::from_millis(15));
    apply(&t, "alpha", "a", "10.50.0.1:80").await;
    pause().await;
    let alpha_time = now_ms();
    pause().await;
    // The address moves: alpha to a new endpoint, beta onto alpha's old one.
    apply(&t, "alpha", "a", "10.50.0.2:80").await;
    apply(&t, "beta", "b", "10.50.0.1:80").await;
    pause().await;
    let beta_time = now_ms();
    // And an inventory prefix that changes hands.
    let upload =
        |text: &str| paved_control_plane::services::flows::InventoryUpload::Text(text.to_string());
    t.cp.upload_inventory(&t.admin, &upload("10.60.0.0/24 gamma\n"))
        .await
        .expect("inventory");
    pause().await;
    let gamma_time = now_ms();
    pause().await;
    let applied =
        t.cp.upload_inventory(&t.admin, &upload("10.60.0.0/24 delta\n"))
            .await
            .expect("inventory");
    assert_eq!((applied.started, applied.ended), (1, 1));
    pause().await;
    let delta_time = now_ms();

    let out = Direction::Outbound;
    let b = batch(
        "node-1",
        0,
        vec![
            flow(out, "10.70.0.1", "10.50.0.1", 80, alpha_time, (1, 1, 1)),
            flow(out, "10.70.0.1", "10.50.0.1", 80, beta_time, (2, 2, 1)),
            flow(out, "10.70.0.1", "10.60.0.8", 443, gamma_time, (3, 3, 1)),
            flow(out, "10.70.0.1", "10.60.0.8", 443, delta_time, (4, 4, 1)),
        ],
    );
    ingest(&t, &b).await;
    let rows = flow_record::Entity::find()
        .all(t.cp.store().db())
        .await
        .expect("flows");
    let owner = |at: u64| {
        rows.iter()
            .find(|r| r.at_ms == at as i64)
            .and_then(|r| r.remote_app.clone())
    };
    assert_eq!(owner(alpha_time).as_deref(), Some("alpha"));
    assert_eq!(owner(beta_time).as_deref(), Some("beta"));
    assert_eq!(owner(gamma_time).as_deref(), Some("gamma"));
    assert_eq!(owner(delta_time).as_deref(), Some("delta"));
    let servers: Vec<String> = flow_edge::Entity::find()
        .all(t.cp.store().db())
        .await
        .expect("edges")
        .into_iter()
        .map(|e| e.server)
        .collect();
    for app in ["alpha", "beta", "gamma", "delta"] {
        assert!(servers.iter().any(|s| s == app), "{app} in {servers:?}");
    }

    // The leases' history: alpha's first endpoint ended when beta took it.
    let admin = t.admin.clone();
    let d = data(
        &t,
        &admin,
        "{ addressLeases(app: \"alpha\", includeEnded: true) { source prefix port app validFrom validTo } }",
    )
    .await;
    let leases = d["addressLeases"].as_array().expect("leases");
    assert_eq!(leases.len(), 2, "{leases:?}");
    assert_eq!(leases[0]["prefix"], "10.50.0.2/32");
    assert!(leases[0]["validTo"].is_null());
    assert_eq!(leases[1]["prefix"], "10.50.0.1/32");
    assert_eq!(leases[1]["port"], 80);
    assert_eq!(leases[1]["source"], "GATEWAY_UPSTREAM");
    assert!(leases[1]["validTo"].is_string());

    // Deleting beta ends its lease; rolling alpha back to version 1 leases it again.
    t.cp.delete_app(&t.admin, "beta").await.expect("delete");
    t.cp.rollback_app(&t.admin, "alpha", 1)
        .await
        .expect("rollback");
    let d = data(
        &t,
        &admin,
        "{ addressLeases(source: GATEWAY_UPSTREAM) { prefix app } }",
    )
    .await;
    assert_eq!(
        d["addressLeases"],
        json!([{"prefix": "10.50.0.1/32", "app": "alpha"}])
    );
}

async fn the_inventory_is_validated_whole_and_admin_only(backend: Backend) {
    let t = env(backend).await;
    let admin = t.admin.clone();
    let v = gql(
        &t,
        &admin,
        r#"mutation { uploadInventory(text: "10.0.0.0/8 corp\n10.1.0.0/33 data\n10.2.0.0/16 x 99999\n") { entries } }"#,
    )
    .await;
    assert_eq!(error_code(&v), "BAD_REQUEST", "{v}");
    let message = v["errors"][0]["message"].as_str().expect("message");
    assert!(message.contains("line 2: prefix"), "{message}");
    assert!(message.contains("line 3: port"), "{message}");
    assert!(!message.contains("line 1"), "{message}");
    let d = data(
        &t,
        &admin,
        "{ addressLeases(source: STATIC_INVENTORY) { id } }",
    )
    .await;
    assert_eq!(
        d["addressLeases"],
        json!([]),
        "nothing stored from a bad upload"
    );

    let v = gql(
        &t,
        &admin,
        r#"mutation { uploadInventory(entries: [{prefix: "10.0.0.0/8", app: "corp"}, {prefix: "10.9.9.9", port: 70000, app: "x"}]) { entries } }"#,
    )
    .await;
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("entries[1].port"),
        "{v}"
    );

    let d = data(
        &t,
        &admin,
        r##"mutation { uploadInventory(text: "# office\n10.0.0.0/8 corp\n10.1.2.3 postgres 5432\n") { entries leasesStarted leasesEnded } }"##,
    )
    .await;
    assert_eq!(
        d["uploadInventory"],
        json!({"entries": 2, "leasesStarted": 2, "leasesEnded": 0})
    );
    let d = data(
        &t,
        &admin,
        r#"mutation { uploadInventory(entries: [{prefix: "10.0.0.0/8", app: "corp"}]) { entries leasesStarted leasesEnded } }"#,
    )
    .await;
    assert_eq!(
        d["uploadInventory"],
        json!({"entries": 1, "leasesStarted": 0, "leasesEnded": 1})
    );

    let owner = person(&t.cp, "olga", Role::AppOwner, &["web"]).await;
    let v = gql(
        &t,
        &owner,
        r#"mutation { uploadInventory(text: "10.0.0.0/8 mine\n") { entries } }"#,
    )
    .await;
    assert_eq!(error_code(&v), "FORBIDDEN", "{v}");
    let audit =
        t.cp.audit_log(&t.admin, &Default::default(), Some(50), None)
            .await
            .expect("audit");
    assert_eq!(
        audit
            .items
            .iter()
            .filter(|e| e.action == "inventory.upload")
            .count(),
        2
    );
}

/// Renames the raw flows' table away (every store fails) or back.
async fn break_storage(t: &TestEnv, broken: bool) {
    let (from, to) = if broken {
        ("flow_records", "flow_records_away")
    } else {
        ("flow_records_away", "flow_records")
    };
    t.cp.store()
        .db()
        .execute_unprepared(&format!("ALTER TABLE {from} RENAME TO {to}"))
        .await
        .expect("rename");
}

async fn stored_batches(t: &TestEnv) -> u64 {
    flow_batch::Entity::find()
        .count(t.cp.store().db())
        .await
        .expect("count")
}

async fn a_batch_is_acknowledged_over_the_channel_only_once_stored(backend: Backend) {
    let t = env(backend).await;
    let (sink, receiver) = channel(4);
    let server = t.cp.spawn_flow_channel(receiver);
    let at = now_ms() - 60_000;
    let b = batch(
        "node-c",
        0,
        vec![flow(
            Direction::Outbound,
            "10.1.1.1",
            "10.2.2.2",
            80,
            at,
            (5, 5, 1),
        )],
    );
    break_storage(&t, true).await;
    let err = sink.send(&b).await.expect_err("the store fails");
    assert!(err.is_retryable(), "the agent keeps the batch: {err}");
    assert_eq!(stored_batches(&t).await, 0, "nothing half-stored");
    break_storage(&t, false).await;
    sink.send(&b).await.expect("stored");
    sink.send(&b).await.expect("a resend is acknowledged");
    assert_eq!(stored_batches(&t).await, 1);
    assert_eq!(
        flow_record::Entity::find()
            .count(t.cp.store().db())
            .await
            .expect("count"),
        1
    );
    let mut bad = b.clone();
    bad.sequence = 1;
    bad.interval_end_ms = now_ms() + 3_600_000;
    bad.interval_start_ms = bad.interval_end_ms - 1_000;
    bad.flows.clear();
    let err = sink.send(&bad).await.expect_err("from the future");
    assert!(!err.is_retryable(), "refused for good: {err}");
    drop(sink);
    server.await.expect("the channel task ends with its sinks");
}

fn nats_url() -> String {
    std::env::var("PAVED_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

async fn a_nats_queue_group_stores_each_batch_once_and_redelivers_failed_stores(backend: Backend) {
    let t = env(backend).await;
    let tag = paved_control_plane::secrets::random_hex(6);
    let stream = StreamSettings {
        stream: format!("PAVED_FLOWS_TEST_{tag}"),
        subject_prefix: format!("paved.flowstest.{tag}"),
        ..StreamSettings::default()
    };
    let consumer = ConsumerSettings {
        durable: format!("paved-test-{tag}"),
        retry_delay: Duration::from_millis(200),
        fetch_expires: Duration::from_millis(300),
        ..ConsumerSettings::default()
    };
    let client = async_nats::connect(nats_url())
        .await
        .unwrap_or_else(|e| panic!("NATS with JetStream is required at {}: {e}", nats_url()));
    let js = async_nats::jetstream::new(client.clone());

    break_storage(&t, true).await;
    // Two consumers bound to one durable: the queue group of control plane replicas.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let consumers = [
        t.cp.spawn_flow_consumer(
            nats_url(),
            stream.clone(),
            consumer.clone(),
            stopped(stop_rx.clone()),
        ),
        t.cp.spawn_flow_consumer(
            nats_url(),
            stream.clone(),
            consumer.clone(),
            stopped(stop_rx.clone()),
        ),
    ];
    let agent = AgentId::new("node-q").expect("id");
    let sink = NatsSink::new(client.clone(), stream.clone(), &agent);
    let at = now_ms() - 60_000;
    for sequence in 0..12 {
        let b = batch(
            "node-q",
            sequence,
            vec![
                flow(
                    Direction::Outbound,
                    "10.5.0.1",
                    "10.6.0.1",
                    80,
                    at,
                    (1, 1, 1),
                ),
                flow(
                    Direction::Outbound,
                    "10.5.0.1",
                    "10.6.0.2",
                    80,
                    at,
                    (1, 1, 1),
                ),
            ],
        );
        sink.send(&b).await.expect("published");
    }
    // While every store fails nothing is acknowledged: the batches stay in the stream and
    // come back.
    let info = || async {
        js.get_stream(&stream.stream)
            .await
            .expect("stream")
            .consumer_info(&consumer.durable)
            .await
            .expect("consumer info")
            .clone()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let i = info().await;
        if i.num_redelivered > 0 {
            assert_eq!(i.num_pending + i.num_ack_pending as u64, 12, "{i:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no redelivery: {i:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored_batches(&t).await, 0);

    break_storage(&t, false).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let i = info().await;
        if i.num_pending == 0 && i.num_ack_pending == 0 && stored_batches(&t).await == 12 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all stored and acknowledged: {i:?}, {} stored",
            stored_batches(&t).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        flow_record::Entity::find()
            .count(t.cp.store().db())
            .await
            .expect("count"),
        24,
        "each batch stored exactly once"
    );
    let edge = flow_edge::Entity::find()
        .filter(flow_edge::Column::Server.eq("10.6.0.1"))
        .one(t.cp.store().db())
        .await
        .expect("edge")
        .expect("an edge");
    assert_eq!(edge.connections, 12);

    let _ = stop_tx.send(true);
    for c in consumers {
        tokio::time::timeout(Duration::from_secs(10), c)
            .await
            .expect("consumers stop")
            .expect("consumer task");
    }
    js.delete_stream(&stream.stream)
        .await
        .expect("delete stream");
}

async fn raw_flows_expire_after_the_retention_window_and_edges_stay(backend: Backend) {
    let t = env(backend).await;
    let now = now_ms();
    let old = batch(
        "node-r",
        0,
        vec![flow(
            Direction::Outbound,
            "10.1.0.1",
            "10.2.0.1",
            80,
            now - 3 * 3_600_000,
            (1, 1, 1),
        )],
    );
    let recent = batch(
        "node-r",
        1,
        vec![flow(
            Direction::Outbound,
            "10.1.0.1",
            "10.2.0.1",
            80,
            now - 60_000,
            (1, 1, 1),
        )],
    );
    ingest(&t, &old).await;
    ingest(&t, &recent).await;
    let mut settings = t.cp.flow_settings();
    settings.retention = Duration::from_secs(2 * 3600);
    t.cp.configure_flows(settings).await;
    t.cp.prune_expired_flows().await.expect("prune");
    let db = t.cp.store().db();
    let left: Vec<i64> = flow_record::Entity::find()
        .all(db)
        .await
        .expect("flows")
        .into_iter()
        .map(|r| r.sequence)
        .collect();
    assert_eq!(left, [1], "the old raw flow is gone");
    assert_eq!(
        flow_edge::Entity::find().count(db).await.expect("count"),
        2,
        "hourly edges are kept longer"
    );
    // A batch older than the window is refused for good.
    let mut older = old.clone();
    older.sequence = 2;
    match t.cp.ingest_flow_batch(&older).await {
        Err(FlowIngestError::Invalid(e)) => assert!(e.to_string().contains("older"), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn agents_post_batches_with_a_gateway_token(backend: Backend) {
    let t = env(backend).await;
    let base = serve(&t.cp).await;
    let gateway = token(&t.cp, &[Scope::Gateway], &[], &[]).await;
    let reader = token(&t.cp, &[Scope::AppsRead], &[], &[]).await;
    let http = reqwest::Client::new();
    let b = batch(
        "node-h",
        0,
        vec![flow(
            Direction::Outbound,
            "10.1.0.1",
            "10.2.0.1",
            80,
            now_ms() - 1_000,
            (1, 1, 1),
        )],
    );
    let body = serde_json::to_vec(&b).expect("json");
    let post = |bearer: Option<&str>, body: Vec<u8>| {
        let mut r = http
            .post(format!("{base}/v1/flows"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        r.send()
    };
    let r = post(Some(&gateway), body.clone()).await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"stored": true, "flows": 1})
    );
    let r = post(Some(&gateway), body.clone()).await.expect("send");
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"stored": false, "flows": 0})
    );
    let r = post(Some(&gateway), b"{\"version\": 1}".to_vec())
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert_eq!(post(None, body.clone()).await.expect("send").status(), 401);
    assert_eq!(post(Some(&reader), body).await.expect("send").status(), 403);
    assert_eq!(stored_batches(&t).await, 1);
}

/// An agent's host is leased from its first flows, and inbound flows from a watched
/// client are not counted twice, while the app's own lease of the address outranks the
/// host's.
async fn agent_hosts_are_leased_from_their_flows(backend: Backend) {
    let t = env(backend).await;
    let at = now_ms() - 120_000;
    let b = batch(
        "node-x",
        0,
        vec![
            flow(
                Direction::Outbound,
                "10.8.0.1",
                "10.9.0.1",
                80,
                at,
                (1, 1, 1),
            ),
            flow(
                Direction::Outbound,
                "127.0.0.1",
                "127.0.0.1",
                80,
                at,
                (1, 1, 1),
            ),
        ],
    );
    ingest(&t, &b).await;
    let admin = t.admin.clone();
    let d = data(
        &t,
        &admin,
        "{ addressLeases(source: AGENT_HOST) { prefix app } }",
    )
    .await;
    assert_eq!(
        d["addressLeases"],
        json!([{"prefix": "10.8.0.1/32", "app": "host:node-x"}]),
        "loopback is every host's"
    );
    let d = data(
        &t,
        &admin,
        "{ appDependencies(app: \"host:node-x\") { outbound { target client { kind host } } } }",
    )
    .await;
    assert_eq!(
        d["appDependencies"]["outbound"][0],
        json!({"target": "address:10.9.0.1", "client": {"kind": "HOST", "host": "node-x"}})
    );
    let addr: IpAddr = "10.8.0.1".parse().expect("ip");
    let rows = flow_record::Entity::find()
        .all(t.cp.store().db())
        .await
        .expect("flows");
    assert!(
        rows.iter()
            .all(|r| r.local_addr != addr.to_string()
                || r.local_app.as_deref() == Some("host:node-x"))
    );
    // An app's lease of the address outranks the host's.
    t.cp.upload_inventory(
        &t.admin,
        &paved_control_plane::services::flows::InventoryUpload::Text("10.8.0.1 worker\n".into()),
    )
    .await
    .expect("inventory");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let later = batch(
        "node-x",
        1,
        vec![flow(
            Direction::Outbound,
            "10.8.0.1",
            "10.9.0.1",
            80,
            now_ms(),
            (1, 1, 1),
        )],
    );
    ingest(&t, &later).await;
    let d = data(
        &t,
        &admin,
        "{ appDependencies(app: \"worker\") { outbound { target } } }",
    )
    .await;
    assert_eq!(
        d["appDependencies"]["outbound"],
        json!([{"target": "address:10.9.0.1"}])
    );
}

on_both_backends!(
    ingested_flows_answer_dependencies_graph_talkers_new_edges_and_unowned,
    an_address_that_changed_owner_is_attributed_by_the_flows_time,
    the_inventory_is_validated_whole_and_admin_only,
    a_batch_is_acknowledged_over_the_channel_only_once_stored,
    a_nats_queue_group_stores_each_batch_once_and_redelivers_failed_stores,
    raw_flows_expire_after_the_retention_window_and_edges_stay,
    agents_post_batches_with_a_gateway_token,
    agent_hosts_are_leased_from_their_flows,
);
