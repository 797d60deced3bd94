//! One received batch in, attributed flows and edge updates out.
//!
//! Attribution happens at each aggregate's first sighting (`first_seen_ms`): with
//! 10-second intervals that is within seconds of the connection's traffic, which is the
//! precision leases can have anyway.
//!
//! Each connection between two monitored hosts is reported twice: outbound by the
//! client's agent, inbound by the server's. Edges count the outbound side; an inbound
//! aggregate adds to edges only when its client is not monitored (not loopback, not the
//! reporting host itself, not under an [`LeaseSource::AgentHost`] lease), so nothing is
//! counted twice. Aggregates whose direction is unknown (connections older than the
//! agent) are kept as raw flows but make no edge: who is the client would be a guess.
//!
//! [`LeaseSource::AgentHost`]: crate::LeaseSource::AgentHost

use std::{future::Future, net::IpAddr, pin::Pin};

use paved_flow_proto::{AgentId, BatchId, Direction, FlowAggregate, FlowBatch};
use serde::{Deserialize, Serialize};

use crate::{
    AppId, BatchValidator, Edge, EdgeAggregator, EdgeKey, EdgeStats, LeaseTable, Peer,
    ProcessTable, ValidationError, edge::hour_of,
};

/// A stored flow: the aggregate, who reported it, and who its ends were at the time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributedFlow {
    /// The reporting agent.
    pub agent_id: AgentId,
    /// Its host.
    pub host: String,
    /// The batch's agent epoch (with `sequence`, the batch id).
    pub epoch_ms: u64,
    /// The batch's sequence number.
    pub sequence: u64,
    /// The instant the ends were attributed at (unix ms).
    pub at_ms: u64,
    /// The app on the reporting host's side, if known.
    pub local_app: Option<AppId>,
    /// The app on the peer's side, if known.
    pub remote_app: Option<AppId>,
    /// The aggregate as reported.
    pub flow: FlowAggregate,
}

/// What one ingest did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Aggregates in the batch.
    pub flows: usize,
    /// Of those, with the local side attributed.
    pub local_attributed: usize,
    /// Of those, with the remote side attributed.
    pub remote_attributed: usize,
    /// Edge contributions added.
    pub edge_updates: usize,
    /// Inbound aggregates left out of edges because the client's agent reports them.
    pub duplicates_skipped: usize,
    /// Aggregates of unknown direction (no edge).
    pub undirected: usize,
}

/// What [`FlowRepository`] methods return.
pub type RepositoryFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + 'a>>;

/// Storage of the collector's results, implemented by the control plane.
pub trait FlowRepository: Send + Sync {
    /// Stores a batch's attributed flows. Must be idempotent by batch id: a batch can be
    /// delivered twice (an acknowledgement lost).
    fn store_flows<'a>(
        &'a self,
        batch: &'a BatchId,
        flows: &'a [AttributedFlow],
    ) -> RepositoryFuture<'a>;

    /// Adds edge sums (summing with what is stored for the same key).
    fn add_edges<'a>(&'a self, edges: &'a [Edge]) -> RepositoryFuture<'a>;

    /// Removes raw flows older than `before_ms` (the retention window).
    fn prune_flows(&self, before_ms: u64) -> RepositoryFuture<'_>;
}

/// Attribution state and edge sums of a collector.
#[derive(Debug, Default)]
pub struct Collector {
    /// Address leases.
    pub leases: LeaseTable,
    /// Process rules for the reporting hosts' own side.
    pub processes: ProcessTable,
    /// Edges being summed.
    pub edges: EdgeAggregator,
    /// Acceptance policy.
    pub validator: BatchValidator,
}

impl Collector {
    /// A collector with no lease, no rule, the default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates a batch at `now_ms`, attributes its flows and adds them to the edges.
    /// A refused batch changes nothing.
    pub fn ingest(
        &mut self,
        batch: &FlowBatch,
        now_ms: u64,
    ) -> Result<(Vec<AttributedFlow>, IngestReport), ValidationError> {
        self.validator.check(batch, now_ms)?;
        let mut report = IngestReport {
            flows: batch.flows.len(),
            ..IngestReport::default()
        };
        let mut attributed = Vec::with_capacity(batch.flows.len());
        for flow in &batch.flows {
            let at_ms = flow.first_seen_ms;
            // The listening endpoint of an inbound flow names its service first: one
            // process may serve several apps on several ports (`paved up` runs the
            // gateway, the control plane and the demo app in one process).
            let listening = match flow.direction {
                Direction::Inbound => {
                    self.leases
                        .attribute_port_lease(flow.local_addr, flow.service_port, at_ms)
                }
                Direction::Outbound | Direction::Unknown => None,
            };
            let local_app = listening
                .or_else(|| self.processes.attribute(&batch.host, flow))
                .or_else(|| self.leases.attribute(flow.local_addr, at_ms));
            let remote_app = match flow.direction {
                // The peer is the server: its service port identifies the endpoint.
                Direction::Outbound | Direction::Unknown => {
                    self.leases
                        .attribute_endpoint(flow.remote_addr, flow.service_port, at_ms)
                }
                // The peer is a client on an ephemeral port: only its address counts.
                Direction::Inbound => self.leases.attribute(flow.remote_addr, at_ms),
            };
            report.local_attributed += usize::from(local_app.is_some());
            report.remote_attributed += usize::from(remote_app.is_some());

            let local = peer(local_app.as_ref(), flow.local_addr);
            let remote = peer(remote_app.as_ref(), flow.remote_addr);
            let ends = match flow.direction {
                Direction::Outbound => Some((local, remote, flow.bytes_sent, flow.bytes_received)),
                Direction::Inbound => {
                    if self.client_is_monitored(flow, at_ms) {
                        report.duplicates_skipped += 1;
                        None
                    } else {
                        Some((remote, local, flow.bytes_received, flow.bytes_sent))
                    }
                }
                Direction::Unknown => {
                    report.undirected += 1;
                    None
                }
            };
            if let Some((client, server, to_server, to_client)) = ends {
                let contribution = EdgeStats {
                    connections: flow.connections,
                    bytes_to_server: to_server,
                    bytes_to_client: to_client,
                    retransmits: flow.retransmits,
                    rtt: flow.rtt.clone(),
                    service_ports: [flow.service_port].into_iter().collect(),
                    flows: 1,
                    first_seen_ms: flow.first_seen_ms,
                    last_seen_ms: flow.last_seen_ms,
                };
                self.edges.add(
                    EdgeKey {
                        hour_start_ms: hour_of(at_ms),
                        client,
                        server,
                    },
                    &contribution,
                );
                report.edge_updates += 1;
            }
            attributed.push(AttributedFlow {
                agent_id: batch.agent_id.clone(),
                host: batch.host.clone(),
                epoch_ms: batch.epoch_ms,
                sequence: batch.sequence,
                at_ms,
                local_app,
                remote_app,
                flow: flow.clone(),
            });
        }
        tracing::debug!(batch = %batch.id(), flows = report.flows, edges = report.edge_updates, "flow batch ingested");
        Ok((attributed, report))
    }

    /// Whether the client of an inbound aggregate reports the connection itself.
    fn client_is_monitored(&self, flow: &FlowAggregate, at_ms: u64) -> bool {
        let client = flow.remote_addr;
        is_loopback(client) || client == flow.local_addr || self.leases.is_agent_host(client, at_ms)
    }
}

fn peer(app: Option<&AppId>, addr: IpAddr) -> Peer {
    match app {
        Some(app) => Peer::App(app.clone()),
        None => Peer::Address(addr),
    }
}

fn is_loopback(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_canonical().is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use paved_flow_proto::{BatchStats, ProcessInfo, RttHistogram, SCHEMA_VERSION};

    use super::*;
    use crate::{HOUR_MS, IpPrefix, Lease, LeaseSource, ProcessMatch};

    const T0: u64 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS;

    fn app(name: &str) -> AppId {
        AppId::new(name).expect("app id")
    }

    fn flow(
        direction: Direction,
        local: [u8; 4],
        remote: [u8; 4],
        port: u16,
        at: u64,
    ) -> FlowAggregate {
        let mut rtt = RttHistogram::default();
        rtt.record(20);
        FlowAggregate {
            direction,
            local_addr: Ipv4Addr::from(local).into(),
            remote_addr: Ipv4Addr::from(remote).into(),
            service_port: port,
            process: ProcessInfo {
                pid: 10,
                comm: "client".into(),
                exe: Some("/usr/bin/client".into()),
            },
            cgroup_id: 1,
            container: None,
            connections: 2,
            closed: 2,
            bytes_sent: 100,
            bytes_received: 1_000,
            segments_sent: 2,
            segments_received: 2,
            retransmits: 1,
            rtt,
            first_seen_ms: at,
            last_seen_ms: at,
        }
    }

    /// A batch whose interval spans its flows (or ten seconds from T0 when empty).
    fn batch(flows: Vec<FlowAggregate>) -> FlowBatch {
        let start = flows.iter().map(|f| f.first_seen_ms).min().unwrap_or(T0);
        let end = flows
            .iter()
            .map(|f| f.last_seen_ms + 1)
            .max()
            .unwrap_or(T0 + 10_000);
        FlowBatch {
            version: SCHEMA_VERSION,
            agent_id: AgentId::new("node-1").expect("id"),
            host: "node-1".into(),
            epoch_ms: T0,
            sequence: 0,
            interval_start_ms: start,
            interval_end_ms: end,
            sampling_rate: 1.0,
            stats: BatchStats::default(),
            flows,
        }
    }

    fn lease(addr: [u8; 4], port: Option<u16>, name: &str, from: u64, until: Option<u64>) -> Lease {
        Lease {
            prefix: IpPrefix::host(Ipv4Addr::from(addr).into()),
            port,
            app: app(name),
            source: LeaseSource::KubernetesPod,
            valid_from_ms: from,
            valid_until_ms: until,
        }
    }

    #[test]
    fn flows_to_a_reused_address_are_attributed_by_their_own_time() {
        let mut collector = Collector::new();
        let ip = [10, 0, 0, 9];
        let switch = T0 + HOUR_MS + 30_000;
        collector
            .leases
            .insert(lease(ip, None, "app-a", T0, Some(switch)))
            .expect("a");
        collector
            .leases
            .insert(lease(ip, None, "app-b", switch, None))
            .expect("b");
        let before = flow(Direction::Outbound, [10, 0, 0, 1], ip, 8080, switch - 1);
        let after = flow(Direction::Outbound, [10, 0, 0, 1], ip, 8080, switch);
        let (flows, report) = collector
            .ingest(&batch(vec![before, after]), T0 + 3 * HOUR_MS)
            .expect("accepted");
        assert_eq!(flows[0].remote_app, Some(app("app-a")));
        assert_eq!(flows[1].remote_app, Some(app("app-b")));
        assert_eq!((report.remote_attributed, report.local_attributed), (2, 0));
        let servers: Vec<&Peer> = collector.edges.edges().map(|(k, _)| &k.server).collect();
        assert!(
            servers.contains(&&Peer::App(app("app-a")))
                && servers.contains(&&Peer::App(app("app-b")))
        );
    }

    #[test]
    fn unknown_addresses_stay_addresses_in_the_graph() {
        let mut collector = Collector::new();
        let f = flow(
            Direction::Outbound,
            [10, 0, 0, 1],
            [203, 0, 113, 9],
            443,
            T0 + 5,
        );
        let (flows, _) = collector
            .ingest(&batch(vec![f]), T0 + HOUR_MS)
            .expect("accepted");
        assert_eq!(
            (flows[0].local_app.clone(), flows[0].remote_app.clone()),
            (None, None)
        );
        let (key, stats) = collector.edges.edges().next().expect("an edge");
        assert_eq!(
            key.server,
            Peer::Address(Ipv4Addr::new(203, 0, 113, 9).into())
        );
        assert_eq!((stats.bytes_to_server, stats.bytes_to_client), (100, 1_000));
        assert_eq!(stats.rtt_p50_us(), Some(20));
    }

    #[test]
    fn loopback_edges_use_process_rules_and_endpoint_leases_and_count_once() {
        let mut collector = Collector::new();
        let lo = [127, 0, 0, 1];
        collector.processes.insert(
            None,
            ProcessMatch::Exe("/usr/bin/client".into()),
            app("gateway"),
        );
        collector
            .leases
            .insert(Lease {
                source: LeaseSource::GatewayUpstream,
                ..lease(lo, Some(8081), "demo-upstream", T0, None)
            })
            .expect("lease");
        let out = flow(Direction::Outbound, lo, lo, 8081, T0 + 10);
        let inbound = flow(Direction::Inbound, lo, lo, 8081, T0 + 10);
        let (flows, report) = collector
            .ingest(&batch(vec![out, inbound]), T0 + HOUR_MS)
            .expect("accepted");
        assert_eq!((report.edge_updates, report.duplicates_skipped), (1, 1));
        assert_eq!(
            flows[1].local_app,
            Some(app("demo-upstream")),
            "the listening endpoint names the inbound side before the process rules"
        );
        let edges = collector.edges.drain_before(T0 + HOUR_MS);
        assert_eq!(edges.len(), 1);
        assert_eq!(edges[0].key.client, Peer::App(app("gateway")));
        assert_eq!(edges[0].key.server, Peer::App(app("demo-upstream")));
        assert_eq!(
            (edges[0].stats.connections, edges[0].stats.retransmits),
            (2, 1)
        );
        assert!(collector.edges.is_empty());
    }

    #[test]
    fn edges_sum_per_hour() {
        let mut collector = Collector::new();
        let a = flow(
            Direction::Outbound,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            80,
            T0 + 1,
        );
        let b = flow(
            Direction::Outbound,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            80,
            T0 + 2,
        );
        let c = flow(
            Direction::Outbound,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            80,
            T0 + HOUR_MS,
        );
        collector
            .ingest(&batch(vec![a, b, c]), T0 + 3 * HOUR_MS)
            .expect("accepted");
        let edges = collector.edges.drain_before(T0 + 10 * HOUR_MS);
        assert_eq!(edges.len(), 2);
        assert_eq!(edges[0].stats.connections, 4);
        assert_eq!(edges[0].stats.rtt.count(), 2);
        assert_eq!(edges[1].key.hour_start_ms, T0 + HOUR_MS);
    }

    #[test]
    fn a_refused_batch_changes_nothing() {
        let mut collector = Collector::new();
        let mut bad = batch(vec![flow(
            Direction::Outbound,
            [1, 1, 1, 1],
            [2, 2, 2, 2],
            1,
            T0,
        )]);
        bad.interval_end_ms = bad.interval_start_ms;
        assert!(collector.ingest(&bad, T0).is_err());
        let future = batch(vec![]);
        let err = collector
            .ingest(&future, T0 - HOUR_MS)
            .expect_err("from the future");
        assert!(
            matches!(err, ValidationError::FromTheFuture { .. }),
            "{err}"
        );
        assert!(collector.edges.is_empty());
    }

    #[test]
    fn an_inbound_flow_from_an_unmonitored_client_makes_an_edge_toward_the_server() {
        let mut collector = Collector::new();
        collector
            .leases
            .insert(lease([10, 0, 0, 5], None, "api", T0, None))
            .expect("lease");
        let inbound = flow(
            Direction::Inbound,
            [10, 0, 0, 5],
            [198, 51, 100, 7],
            443,
            T0 + 1,
        );
        collector
            .ingest(&batch(vec![inbound]), T0 + HOUR_MS)
            .expect("accepted");
        let (key, stats) = collector.edges.edges().next().expect("edge");
        assert_eq!(
            key.client,
            Peer::Address(Ipv4Addr::new(198, 51, 100, 7).into())
        );
        assert_eq!(key.server, Peer::App(app("api")));
        assert_eq!(stats.bytes_to_server, 1_000, "what the server received");
    }
}
