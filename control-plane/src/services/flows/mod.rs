//! Flow telemetry in the control plane: who talks to whom, from the flow agents' batches.
//!
//! - [`ingest`]: a received batch is validated, both ends of every aggregate attributed at
//!   the flow's time (`paved-flow-collector`), and the raw flows, the batch id and the hourly
//!   edge sums stored in one transaction; only then is the batch acknowledged
//!   ([`FlowStore`] is the transports' `BatchStore` and the collector's `FlowRepository`).
//! - [`leases`]: address leases with validity intervals in `address_leases`: the gateway's
//!   upstream endpoints of the current intents (synced in the transaction of every change
//!   that recompiles the snapshot), the addresses the agents' hosts report flows from, and
//!   the static inventory ([`inventory`], uploaded by admins).
//! - [`resolver`]: upstream endpoints given by DNS names, resolved every
//!   [`FlowSettings::resolve_every`] and leased at the addresses they resolve to.
//! - [`kubernetes`]: when [`FlowSettings::kubernetes`] is set, the addresses of running pods
//!   listed from the Kubernetes API every `poll_every`, leased to the app their label names.
//! - [`queries`]: an app's dependencies, the dependency graph, top talkers, new edges,
//!   flows to addresses no app owns — filtered by what the caller may read.
//! - retention: raw flows older than [`FlowSettings::retention`] (7 days) and edges older
//!   than [`FlowSettings::edge_retention`] (90 days) are pruned periodically.
//!
//! Sources of batches: the in-process channel of `paved up`
//! ([`ControlPlane::spawn_flow_channel`]), a NATS JetStream durable consumer shared by every
//! control plane replica ([`ControlPlane::spawn_flow_consumer`]), and `POST /v1/flows`
//! (agents started with `paved flow-agent --control-plane`).

mod http;
mod ingest;
mod inventory;
mod kubernetes;
mod leases;
mod queries;
mod resolver;

use std::net::SocketAddr;
use std::sync::RwLock;
use std::time::Duration;

use paved_flow_collector::{AppId, ProcessMatch};

pub use http::{MAX_FLOW_BODY_BYTES, routes};
pub use ingest::{FlowIngestError, FlowStore, StoredBatch};
pub use inventory::{
    InventoryApplied, InventoryEntry, InventoryUpload, MAX_INVENTORY_BYTES, MAX_INVENTORY_ENTRIES,
    parse_inventory_entries, parse_inventory_text,
};
pub use kubernetes::{
    DEFAULT_APP_LABEL, IN_CLUSTER_CA_FILE, IN_CLUSTER_TOKEN_FILE, KubernetesError, KubernetesPods,
    MAX_POD_LIST_BYTES,
};
pub(crate) use leases::sync_upstream_leases;
pub use leases::{HOST_APP_PREFIX, LeaseFilter, StoredLease, lease_source_name};
pub use queries::{
    AddressScope, AppDependencies, FlowEdgeSummary, FlowGraph, FlowNode, FlowPeer, FlowRange,
    MAX_FLOW_RANGE, TalkerOrder, UnownedDestination, address_scope,
};
pub use resolver::{
    HostResolver, MAX_RESOLVED_NAMES, NameserverResolver, ResolveError, ResolvePass, SystemResolver,
};

/// A process rule: the reporting host's own side of a flow by process (apps sharing a host
/// share its addresses; on loopback every app is `127.0.0.1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRule {
    /// Only flows reported by this host (its name as the agent reports it); `None`: any.
    pub host: Option<String>,
    /// What identifies the processes.
    pub matcher: ProcessMatch,
    /// Their app.
    pub app: AppId,
}

/// Flow telemetry settings (see [`ControlPlane::configure_flows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSettings {
    /// How long raw flows are kept, and how old a batch may be when it arrives (7 days).
    pub retention: Duration,
    /// How long hourly edges and ended leases are kept (90 days).
    pub edge_retention: Duration,
    /// How often expired flows, edges and leases are pruned (10 minutes).
    pub prune_every: Duration,
    /// Process rules, tried before address leases for the reporting host's side.
    pub process_rules: Vec<ProcessRule>,
    /// How often upstream endpoints given by DNS names are resolved and their leases
    /// synced (60 s; the first pass runs 5 s after start). Zero: no periodic pass
    /// ([`ControlPlane::resolve_upstreams_now`] still runs one).
    pub resolve_every: Duration,
    /// How long one name may take to resolve (A and AAAA together) before the pass counts
    /// it as failed and keeps its leases (5 s).
    pub resolve_timeout: Duration,
    /// The nameserver upstream names are asked (`ip:port`, over UDP, TCP when the answer is
    /// truncated; names are taken as absolute); `None`: the system resolver, as the gateway
    /// resolves them.
    pub upstream_nameserver: Option<SocketAddr>,
    /// Where the addresses of Kubernetes pods are listed from, every
    /// [`KubernetesPods::poll_every`], and leased to the app their label names; `None` (the
    /// default): no pod leases ([`ControlPlane::sync_kubernetes_pods_now`]).
    pub kubernetes: Option<KubernetesPods>,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings {
            retention: Duration::from_secs(7 * 24 * 3600),
            edge_retention: Duration::from_secs(90 * 24 * 3600),
            prune_every: Duration::from_secs(600),
            process_rules: Vec::new(),
            resolve_every: Duration::from_secs(60),
            resolve_timeout: Duration::from_secs(5),
            upstream_nameserver: None,
            kubernetes: None,
        }
    }
}

/// The flow telemetry state of a control plane: its settings and the collector's in-memory
/// lease table (reloaded from `address_leases` whenever the stored leases change).
pub(crate) struct FlowState {
    settings: RwLock<FlowSettings>,
    ingest: tokio::sync::Mutex<ingest::IngestState>,
}

impl Default for FlowState {
    fn default() -> Self {
        let settings = FlowSettings::default();
        FlowState {
            ingest: tokio::sync::Mutex::new(ingest::IngestState::new(&settings)),
            settings: RwLock::new(settings),
        }
    }
}

impl FlowState {
    fn settings(&self) -> FlowSettings {
        // A poisoned lock only means a panic elsewhere while writing plain data.
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Milliseconds since the Unix epoch now.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// A stored signed integer from an unsigned one (saturating: counters never reach 2^63).
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An unsigned integer from a stored signed one (negative values are not written).
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
