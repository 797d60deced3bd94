//! GraphQL types of flow telemetry: an app's dependencies, the dependency graph (nodes and
//! edges with stable ids, for drawing), top talkers, new edges, flows to addresses no app
//! owns, address leases and the inventory upload (fields of `Query` and `Mutation`).

use async_graphql::{Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use paved_flow_collector::{EdgeStats, LeaseSource};

use crate::services::flows::{
    AddressScope, AppDependencies, FlowEdgeSummary, FlowGraph, FlowNode, FlowPeer, FlowRange,
    InventoryApplied, InventoryEntry, StoredLease, TalkerOrder, UnownedDestination,
};

fn time(ms: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What a node of the flow graph is.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "FlowPeerKind")]
pub enum GqlFlowPeerKind {
    /// An app (from an intent or the static inventory).
    App,
    /// A host running a flow agent, for its flows no app claims.
    Host,
    /// An address no app owned at the time.
    Address,
    /// Addresses no app owned, collapsed by scope (`collapseAddresses`).
    Network,
}

/// Where an address no app owns lies.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "AddressScope")]
pub enum GqlAddressScope {
    /// A global address: egress to the internet.
    Internet,
    /// A private, loopback, link-local, shared or unique-local address.
    Internal,
}

impl From<AddressScope> for GqlAddressScope {
    fn from(s: AddressScope) -> Self {
        match s {
            AddressScope::Internet => GqlAddressScope::Internet,
            AddressScope::Internal => GqlAddressScope::Internal,
        }
    }
}

impl From<GqlAddressScope> for AddressScope {
    fn from(s: GqlAddressScope) -> Self {
        match s {
            GqlAddressScope::Internet => AddressScope::Internet,
            GqlAddressScope::Internal => AddressScope::Internal,
        }
    }
}

/// How top talkers are ranked.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
#[graphql(name = "TalkerOrder")]
pub enum GqlTalkerOrder {
    /// Bytes both ways.
    #[default]
    Bytes,
    /// Connections opened.
    Connections,
}

impl From<GqlTalkerOrder> for TalkerOrder {
    fn from(o: GqlTalkerOrder) -> Self {
        match o {
            GqlTalkerOrder::Bytes => TalkerOrder::Bytes,
            GqlTalkerOrder::Connections => TalkerOrder::Connections,
        }
    }
}

/// Where an address lease comes from.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "LeaseSource")]
pub enum GqlLeaseSource {
    /// An upstream endpoint of an app's intent.
    GatewayUpstream,
    /// The static inventory (`uploadInventory`).
    StaticInventory,
    /// An address a flow agent's host reported flows from.
    AgentHost,
    /// A Kubernetes pod's address.
    KubernetesPod,
    /// An upstream endpoint of an app's intent given by a DNS name, at an address it
    /// resolved to.
    ResolvedUpstream,
}

impl From<LeaseSource> for GqlLeaseSource {
    fn from(s: LeaseSource) -> Self {
        match s {
            LeaseSource::GatewayUpstream => GqlLeaseSource::GatewayUpstream,
            LeaseSource::StaticInventory => GqlLeaseSource::StaticInventory,
            LeaseSource::AgentHost => GqlLeaseSource::AgentHost,
            LeaseSource::KubernetesPod => GqlLeaseSource::KubernetesPod,
            LeaseSource::ResolvedUpstream => GqlLeaseSource::ResolvedUpstream,
        }
    }
}

impl From<GqlLeaseSource> for LeaseSource {
    fn from(s: GqlLeaseSource) -> Self {
        match s {
            GqlLeaseSource::GatewayUpstream => LeaseSource::GatewayUpstream,
            GqlLeaseSource::StaticInventory => LeaseSource::StaticInventory,
            GqlLeaseSource::AgentHost => LeaseSource::AgentHost,
            GqlLeaseSource::KubernetesPod => LeaseSource::KubernetesPod,
            GqlLeaseSource::ResolvedUpstream => LeaseSource::ResolvedUpstream,
        }
    }
}

/// A time range of a flow query: `[from, to)`, by default the last 24 hours, at most 31
/// days. Edges are hourly: `from` is rounded down to its hour.
#[derive(InputObject, Debug, Clone, Default)]
pub struct FlowRangeInput {
    /// Start (default: 24 hours before `to`).
    pub from: Option<DateTime<Utc>>,
    /// End (default: now).
    pub to: Option<DateTime<Utc>>,
}

impl FlowRangeInput {
    pub(crate) fn range(range: Option<FlowRangeInput>) -> crate::Result<FlowRange> {
        let r = range.unwrap_or_default();
        FlowRange::new(r.from, r.to)
    }
}

/// One end of a flow edge.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
#[graphql(name = "FlowPeer")]
pub struct FlowPeerObject {
    /// Stable node id: `app:<name>`, `host:<agent id>`, `address:<ip>`, `network:internet`
    /// or `network:internal`.
    pub id: ID,
    /// What it is.
    pub kind: GqlFlowPeerKind,
    /// What to write on it (the app, the host, the address, `internet`, `internal`).
    pub label: String,
    /// The app, for `APP`.
    pub app: Option<String>,
    /// The agent id of the host, for `HOST`.
    pub host: Option<String>,
    /// The address, for `ADDRESS`.
    pub address: Option<String>,
    /// Internet or internal, for `ADDRESS` and `NETWORK`.
    pub scope: Option<GqlAddressScope>,
}

impl From<&FlowPeer> for FlowPeerObject {
    fn from(p: &FlowPeer) -> Self {
        let (kind, app, host, address) = match p {
            FlowPeer::App(name) => (GqlFlowPeerKind::App, Some(name.clone()), None, None),
            FlowPeer::Host(host) => (GqlFlowPeerKind::Host, None, Some(host.clone()), None),
            FlowPeer::Address(addr) => {
                (GqlFlowPeerKind::Address, None, None, Some(addr.to_string()))
            }
            FlowPeer::Network(_) => (GqlFlowPeerKind::Network, None, None, None),
        };
        FlowPeerObject {
            id: ID(p.id()),
            kind,
            label: p.label(),
            app,
            host,
            address,
            scope: p.scope().map(Into::into),
        }
    }
}

/// Client-to-server traffic summed over a time range (from hourly edges).
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
#[graphql(name = "FlowEdge")]
pub struct FlowEdgeObject {
    /// `<source>-><target>`.
    pub id: ID,
    /// The client's node id (`client.id`).
    pub source: ID,
    /// The server's node id (`server.id`).
    pub target: ID,
    /// Who connected.
    pub client: FlowPeerObject,
    /// Who accepted.
    pub server: FlowPeerObject,
    /// Connections opened.
    pub connections: i64,
    /// Payload bytes from client to server.
    pub bytes_to_server: i64,
    /// Payload bytes from server to client.
    pub bytes_to_client: i64,
    /// Bytes both ways.
    pub bytes: i64,
    /// Retransmitted segments.
    pub retransmits: i64,
    /// Agent aggregates summed in.
    pub flows: i64,
    /// Median RTT in microseconds (from the merged histograms, not an average of medians).
    pub rtt_p50_us: Option<i64>,
    /// 99th percentile RTT in microseconds.
    pub rtt_p99_us: Option<i64>,
    /// Server ports seen (at most 64).
    pub service_ports: Vec<i32>,
    /// Earliest sighting in the range (for `newFlowEdges`: the first ever).
    pub first_seen: DateTime<Utc>,
    /// Latest sighting in the range.
    pub last_seen: DateTime<Utc>,
}

impl From<&FlowEdgeSummary> for FlowEdgeObject {
    fn from(e: &FlowEdgeSummary) -> Self {
        let client = FlowPeerObject::from(&e.client);
        let server = FlowPeerObject::from(&e.server);
        let s = &e.stats;
        FlowEdgeObject {
            id: ID(format!("{}->{}", client.id.as_str(), server.id.as_str())),
            source: client.id.clone(),
            target: server.id.clone(),
            client,
            server,
            connections: int(s.connections),
            bytes_to_server: int(s.bytes_to_server),
            bytes_to_client: int(s.bytes_to_client),
            bytes: int(e.bytes()),
            retransmits: int(s.retransmits),
            flows: int(s.flows),
            rtt_p50_us: s.rtt_p50_us().map(i64::from),
            rtt_p99_us: s.rtt_p99_us().map(i64::from),
            service_ports: ports(s),
            first_seen: time(s.first_seen_ms),
            last_seen: time(s.last_seen_ms),
        }
    }
}

fn ports(s: &EdgeStats) -> Vec<i32> {
    s.service_ports.iter().map(|p| i32::from(*p)).collect()
}

pub(crate) fn edges(edges: &[FlowEdgeSummary]) -> Vec<FlowEdgeObject> {
    edges.iter().map(Into::into).collect()
}

/// An app's dependencies over a time range.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "AppDependencies")]
pub struct AppDependenciesObject {
    /// The app.
    pub app: String,
    /// Start of the range (rounded down to the hour).
    pub from: DateTime<Utc>,
    /// End of the range.
    pub to: DateTime<Utc>,
    /// Who connected to it (it is the server), by bytes.
    pub inbound: Vec<FlowEdgeObject>,
    /// What it connected to (it is the client), by bytes.
    pub outbound: Vec<FlowEdgeObject>,
}

impl From<AppDependencies> for AppDependenciesObject {
    fn from(d: AppDependencies) -> Self {
        AppDependenciesObject {
            from: d.range.from(),
            to: d.range.to(),
            inbound: edges(&d.inbound),
            outbound: edges(&d.outbound),
            app: d.app,
        }
    }
}

/// A node of the dependency graph.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
#[graphql(name = "FlowGraphNode")]
pub struct FlowGraphNodeObject {
    /// Stable node id (what `FlowEdge.source` and `FlowEdge.target` refer to).
    pub id: ID,
    /// What it is.
    pub kind: GqlFlowPeerKind,
    /// What to write on it.
    pub label: String,
    /// The app, for `APP`.
    pub app: Option<String>,
    /// The agent id of the host, for `HOST`.
    pub host: Option<String>,
    /// The address, for `ADDRESS`.
    pub address: Option<String>,
    /// Internet or internal, for `ADDRESS` and `NETWORK`.
    pub scope: Option<GqlAddressScope>,
    /// Bytes it received over the drawn edges.
    pub bytes_in: i64,
    /// Bytes it sent over the drawn edges.
    pub bytes_out: i64,
    /// Connections it accepted.
    pub connections_in: i64,
    /// Connections it opened.
    pub connections_out: i64,
}

impl From<&FlowNode> for FlowGraphNodeObject {
    fn from(n: &FlowNode) -> Self {
        let p = FlowPeerObject::from(&n.peer);
        FlowGraphNodeObject {
            id: p.id,
            kind: p.kind,
            label: p.label,
            app: p.app,
            host: p.host,
            address: p.address,
            scope: p.scope,
            bytes_in: int(n.bytes_in),
            bytes_out: int(n.bytes_out),
            connections_in: int(n.connections_in),
            connections_out: int(n.connections_out),
        }
    }
}

/// The dependency graph over a time range: draw `nodes`, and an arrow per edge from
/// `source` to `target` (client to server).
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "FlowGraph")]
pub struct FlowGraphObject {
    /// Start of the range (rounded down to the hour).
    pub from: DateTime<Utc>,
    /// End of the range.
    pub to: DateTime<Utc>,
    /// Every end of the edges.
    pub nodes: Vec<FlowGraphNodeObject>,
    /// The edges, by bytes.
    pub edges: Vec<FlowEdgeObject>,
    /// Smaller edges beyond `first` were left out.
    pub truncated: bool,
}

impl From<FlowGraph> for FlowGraphObject {
    fn from(g: FlowGraph) -> Self {
        FlowGraphObject {
            from: g.range.from(),
            to: g.range.to(),
            nodes: g.nodes.iter().map(Into::into).collect(),
            edges: edges(&g.edges),
            truncated: g.truncated,
        }
    }
}

/// An address no app owned, and the traffic to it.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "UnownedDestination")]
pub struct UnownedDestinationObject {
    /// The address.
    pub address: String,
    /// Internet (egress) or internal (an unknown inside service).
    pub scope: GqlAddressScope,
    /// Ports connected to.
    pub service_ports: Vec<i32>,
    /// Connections opened to it.
    pub connections: i64,
    /// Bytes sent to it.
    pub bytes_to_server: i64,
    /// Bytes received from it.
    pub bytes_to_client: i64,
    /// Retransmitted segments.
    pub retransmits: i64,
    /// Median RTT in microseconds.
    pub rtt_p50_us: Option<i64>,
    /// Who connected to it (the callers the viewer may see).
    pub clients: Vec<FlowPeerObject>,
    /// Earliest sighting in the range.
    pub first_seen: DateTime<Utc>,
    /// Latest sighting in the range.
    pub last_seen: DateTime<Utc>,
}

impl From<&UnownedDestination> for UnownedDestinationObject {
    fn from(d: &UnownedDestination) -> Self {
        let s = &d.stats;
        UnownedDestinationObject {
            address: d.address.to_string(),
            scope: d.scope.into(),
            service_ports: ports(s),
            connections: int(s.connections),
            bytes_to_server: int(s.bytes_to_server),
            bytes_to_client: int(s.bytes_to_client),
            retransmits: int(s.retransmits),
            rtt_p50_us: s.rtt_p50_us().map(i64::from),
            clients: d.clients.iter().map(Into::into).collect(),
            first_seen: time(s.first_seen_ms),
            last_seen: time(s.last_seen_ms),
        }
    }
}

/// Which app held an address prefix (or one port of it) when.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "AddressLease")]
pub struct AddressLeaseObject {
    /// Its id.
    pub id: ID,
    /// Who said so.
    pub source: GqlLeaseSource,
    /// The prefix (`10.0.0.0/24`; one address is `/32` or `/128`).
    pub prefix: String,
    /// Only this port of it; every port when absent.
    pub port: Option<i32>,
    /// The app (`host:<agent id>` for an agent's host).
    pub app: String,
    /// Start of validity.
    pub valid_from: DateTime<Utc>,
    /// End of validity (exclusive); absent while it holds.
    pub valid_to: Option<DateTime<Utc>>,
}

impl From<StoredLease> for AddressLeaseObject {
    fn from(l: StoredLease) -> Self {
        AddressLeaseObject {
            id: ID(l.id.to_string()),
            source: l.source.into(),
            prefix: l.prefix,
            port: l.port.map(i32::from),
            app: l.app,
            valid_from: l.valid_from,
            valid_to: l.valid_to,
        }
    }
}

/// One inventory entry.
#[derive(InputObject, Debug, Clone)]
pub struct InventoryEntryInput {
    /// An address or a prefix (`10.30.1.7`, `10.20.0.0/16`, `2001:db8::/32`).
    pub prefix: String,
    /// Only this port of it.
    pub port: Option<i32>,
    /// The app.
    pub app: String,
}

impl From<InventoryEntryInput> for InventoryEntry {
    fn from(e: InventoryEntryInput) -> Self {
        InventoryEntry {
            prefix: e.prefix,
            port: e.port,
            app: e.app,
        }
    }
}

/// What an inventory upload changed.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "InventoryUploadResult")]
pub struct InventoryUploadResultObject {
    /// Entries in the inventory now.
    pub entries: i64,
    /// Leases started (new entries).
    pub leases_started: i64,
    /// Leases ended (entries no longer listed).
    pub leases_ended: i64,
}

impl From<InventoryApplied> for InventoryUploadResultObject {
    fn from(a: InventoryApplied) -> Self {
        InventoryUploadResultObject {
            entries: a.entries as i64,
            leases_started: a.started as i64,
            leases_ended: a.ended as i64,
        }
    }
}
