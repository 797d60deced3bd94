//! Upstream endpoints given by DNS names, leased at the addresses they resolve to
//! (`RESOLVED_UPSTREAM`), against a real Knot DNS server (Debian's `knot`, started per test
//! on a free 127.0.0.1 port, records changed through the project's RFC 2136 provider), on
//! SQLite and PostgreSQL: leases follow the answers, flows are attributed with the address
//! of their own time, an unreachable nameserver keeps the leases, names gone from the
//! intents end theirs, and truncated answers are asked again over TCP.

mod common;
#[path = "common/knot.rs"]
mod knot;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{Backend, TestEnv, env};
use knot::Knot;
use paved_control_plane::graphql::{build_schema, execute};
use paved_control_plane::services::flows::{HostResolver, SystemResolver};
use paved_control_plane::storage::entities::flow_record;
use paved_control_plane::tls::DnsProvider;
use paved_flow_proto::{
    AgentId, BatchStats, Direction, FlowAggregate, FlowBatch, ProcessInfo, RttHistogram,
    SCHEMA_VERSION,
};
use sea_orm::EntityTrait;
use serde_json::Value;

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).expect("after 1970")
}

async fn pause() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

fn intent(name: &str, upstream: &str) -> String {
    format!(
        "apiVersion: paved.dev/v1\nname: {name}\nowners: [owner@example.com]\nteam: t\ndomains: [{name}.example.com]\nupstream: {upstream}\n"
    )
}

async fn apply(t: &TestEnv, name: &str, upstream: &str) {
    t.cp.apply_intent(&t.admin, &intent(name, upstream), "paved.yaml")
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

/// Resolves upstream names through `nameserver`, each within 2 s, and only when the test
/// asks (`resolve_every` zero: no periodic pass).
async fn use_nameserver(t: &TestEnv, nameserver: SocketAddr) {
    let mut settings = t.cp.flow_settings();
    settings.upstream_nameserver = Some(nameserver);
    settings.resolve_timeout = Duration::from_secs(2);
    settings.resolve_every = Duration::ZERO;
    t.cp.configure_flows(settings).await;
}

/// The `RESOLVED_UPSTREAM` leases as `(prefix, port, app, ended)`, sorted; with `ended`,
/// the ended ones too.
async fn resolved_leases(t: &TestEnv, ended: bool) -> Vec<(String, i64, String, bool)> {
    let schema = build_schema(t.config.graphql);
    let query = format!(
        "{{ addressLeases(source: RESOLVED_UPSTREAM, includeEnded: {ended}, first: 500) {{ source prefix port app validFrom validTo }} }}"
    );
    let response = execute(&schema, &t.cp, Some(t.admin.clone()), &query).await;
    let v = serde_json::to_value(&response).expect("response as JSON");
    assert!(v["errors"].is_null(), "{v}");
    let mut leases: Vec<(String, i64, String, bool)> = v["data"]["addressLeases"]
        .as_array()
        .expect("leases")
        .iter()
        .map(|l: &Value| {
            assert_eq!(l["source"], "RESOLVED_UPSTREAM");
            (
                l["prefix"].as_str().expect("prefix").to_string(),
                l["port"].as_i64().expect("port"),
                l["app"].as_str().expect("app").to_string(),
                !l["validTo"].is_null(),
            )
        })
        .collect();
    leases.sort();
    leases
}

fn lease(prefix: &str, app: &str, ended: bool) -> (String, i64, String, bool) {
    (prefix.to_string(), 8080, app.to_string(), ended)
}

/// An outbound connection from `10.70.0.1` to `remote:8080` at `at`.
fn flow(remote: &str, at: u64) -> FlowAggregate {
    let mut rtt = RttHistogram::default();
    rtt.record(400);
    FlowAggregate {
        direction: Direction::Outbound,
        local_addr: "10.70.0.1".parse().expect("local"),
        remote_addr: remote.parse().expect("remote"),
        service_port: 8080,
        process: ProcessInfo {
            pid: 4242,
            comm: "client".into(),
            exe: Some("/usr/bin/client".into()),
        },
        cgroup_id: 7,
        container: None,
        connections: 1,
        closed: 1,
        bytes_sent: 100,
        bytes_received: 200,
        segments_sent: 2,
        segments_received: 2,
        retransmits: 0,
        rtt,
        first_seen_ms: at,
        last_seen_ms: at + 5,
    }
}

fn batch(flows: Vec<FlowAggregate>) -> FlowBatch {
    let start = flows.iter().map(|f| f.first_seen_ms).min().expect("flows");
    let end = flows
        .iter()
        .map(|f| f.last_seen_ms + 1)
        .max()
        .expect("flows");
    FlowBatch {
        version: SCHEMA_VERSION,
        agent_id: AgentId::new("node-1").expect("agent id"),
        host: "node-1".into(),
        epoch_ms: 1_700_000_000_000,
        sequence: 0,
        interval_start_ms: start,
        interval_end_ms: end,
        sampling_rate: 1.0,
        stats: BatchStats::default(),
        flows,
    }
}

async fn upstream_names_are_leased_at_their_addresses_and_follow_dns_changes(backend: Backend) {
    let knot = Knot::start().await;
    let dns = knot.provider();
    dns.point_at_gateways(
        "api.paved.test",
        &["192.0.2.10".into(), "2001:db8::10".into()],
    )
    .await
    .expect("A and AAAA of api");
    let t = env(backend).await;
    use_nameserver(&t, knot.addr).await;
    apply(&t, "shop", "api.paved.test:8080").await;
    assert!(
        resolved_leases(&t, true).await.is_empty(),
        "nothing before a pass"
    );

    let pass = t.cp.resolve_upstreams_now().await.expect("pass");
    assert_eq!(
        (pass.names, pass.resolved, pass.failed),
        (1, 1, 0),
        "{pass:?}\n{}",
        knot.log()
    );
    assert_eq!(
        resolved_leases(&t, true).await,
        [
            lease("192.0.2.10/32", "shop", false),
            lease("2001:db8::10/128", "shop", false),
        ]
    );
    let again = t.cp.resolve_upstreams_now().await.expect("pass");
    assert_eq!(
        (again.started, again.ended),
        (0, 0),
        "same answer: no change"
    );
    pause().await;
    let before_change = now_ms();
    pause().await;

    // The name moves: the old leases end, the new one starts.
    dns.point_at_gateways("api.paved.test", &["192.0.2.20".into()])
        .await
        .expect("A of api changed");
    let pass = t.cp.resolve_upstreams_now().await.expect("pass");
    assert_eq!((pass.started, pass.ended), (1, 2), "{pass:?}");
    assert_eq!(
        resolved_leases(&t, false).await,
        [lease("192.0.2.20/32", "shop", false)]
    );
    assert_eq!(
        resolved_leases(&t, true).await,
        [
            lease("192.0.2.10/32", "shop", true),
            lease("192.0.2.20/32", "shop", false),
            lease("2001:db8::10/128", "shop", true),
        ]
    );
    pause().await;
    let after_change = now_ms();

    // Flows are attributed with the address of their own time.
    let b = batch(vec![
        flow("192.0.2.10", before_change),
        flow("192.0.2.20", before_change + 1),
        flow("192.0.2.10", after_change),
        flow("192.0.2.20", after_change + 1),
    ]);
    let stored = t.cp.ingest_flow_batch(&b).await.expect("ingest");
    assert_eq!(stored.flows, 4);
    let rows = flow_record::Entity::find()
        .all(t.cp.store().db())
        .await
        .expect("flows");
    let owner = |remote: &str, at: u64| {
        rows.iter()
            .find(|r| r.at_ms == at as i64 && r.remote_addr == remote)
            .unwrap_or_else(|| panic!("flow to {remote} at {at}"))
            .remote_app
            .clone()
    };
    assert_eq!(owner("192.0.2.10", before_change).as_deref(), Some("shop"));
    assert_eq!(
        owner("192.0.2.20", before_change + 1),
        None,
        "not yet the name's address"
    );
    assert_eq!(
        owner("192.0.2.10", after_change),
        None,
        "no longer the name's address"
    );
    assert_eq!(
        owner("192.0.2.20", after_change + 1).as_deref(),
        Some("shop")
    );

    // The nameserver goes away: the pass fails the name and keeps its leases.
    let nameserver = knot.addr;
    drop(knot);
    let pass = t.cp.resolve_upstreams_now().await.expect("pass");
    assert_eq!(
        (pass.names, pass.resolved, pass.failed),
        (1, 0, 1),
        "{pass:?}"
    );
    assert_eq!((pass.started, pass.ended), (0, 0));
    assert_eq!(
        resolved_leases(&t, false).await,
        [lease("192.0.2.20/32", "shop", false)],
        "kept while {nameserver} does not answer"
    );

    // The name leaves the intent: its lease ends with the change, before any pass.
    apply(&t, "shop", "10.9.9.9:8080").await;
    assert!(resolved_leases(&t, false).await.is_empty());
    assert_eq!(resolved_leases(&t, true).await.len(), 3, "history kept");
    let pass = t.cp.resolve_upstreams_now().await.expect("pass");
    assert_eq!(pass, Default::default(), "nothing left to resolve");
}

async fn a_truncated_answer_is_asked_again_over_tcp(backend: Backend) {
    // 200 A records do not fit a UDP answer: Knot truncates it, the resolver asks over TCP.
    let records: String = (1..=200)
        .map(|i| format!("many IN A 10.77.0.{i}\n"))
        .collect();
    let knot = Knot::start_with_records(&records).await;
    let t = env(backend).await;
    use_nameserver(&t, knot.addr).await;
    apply(&t, "fleet", "many.paved.test:8080").await;
    let pass = t.cp.resolve_upstreams_now().await.expect("pass");
    assert_eq!(
        (pass.resolved, pass.started),
        (1, 200),
        "{pass:?}\n{}",
        knot.log()
    );
    let leases = resolved_leases(&t, false).await;
    assert_eq!(leases.len(), 200);
    assert!(
        leases
            .iter()
            .all(|(_, port, app, _)| *port == 8080 && app == "fleet")
    );
}

on_both_backends!(
    upstream_names_are_leased_at_their_addresses_and_follow_dns_changes,
    a_truncated_answer_is_asked_again_over_tcp,
);

#[tokio::test]
async fn the_system_resolver_answers_from_the_hosts_file() {
    let addrs = SystemResolver
        .lookup("localhost")
        .await
        .expect("localhost resolves");
    assert!(
        addrs.iter().any(IpAddr::is_loopback),
        "localhost is a loopback address: {addrs:?}"
    );
}
