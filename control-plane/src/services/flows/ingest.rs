//! Received batches into storage, acknowledged only once stored.
//!
//! One batch is one transaction: its id (`flow_batches`, so a redelivered batch is stored
//! once), its raw flows, its edge contributions summed into the hourly edges, and the
//! leases of addresses its host reported flows from for the first time. The transports
//! acknowledge a batch only after [`ControlPlane::ingest_flow_batch`] returned `Ok`; a
//! storage failure leaves it to be delivered again, a batch that breaks the rules is refused
//! for good.
//!
//! Batches are ingested one at a time per control plane (the collector's lease table and
//! edge sums are one state); across replicas on PostgreSQL a transaction-scoped advisory
//! lock serializes the edge sums, which are read, merged (RTT histograms) and written.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use paved_flow_collector::{
    AppId, AttributedFlow, BatchValidator, Collector, Edge, EdgeStats, FlowRepository, IpPrefix,
    Lease, LeaseSource, Peer, ProcessTable, RepositoryFuture, ValidationError,
};
use paved_flow_proto::{BatchId, Direction, FlowBatch, RttHistogram};
use paved_flow_transport::channel::ChannelReceiver;
use paved_flow_transport::nats::{self, ConsumerSettings, NatsConsumer, StreamSettings};
use paved_flow_transport::{BatchStore, StoreError, StoreFuture};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, Set, Statement, TryInsertResult,
};

use super::leases::{self, HOST_APP_PREFIX, lease_source_name};
use super::queries::address_scope;
use super::{FlowSettings, now_ms, to_i64, to_u64};
use crate::services::ControlPlane;
use crate::storage::entities::{address_lease, flow_batch, flow_edge, flow_record};
use crate::{Error, Result};

/// Advisory lock of flow writers on PostgreSQL (distinct from the snapshot writers' lock, so
/// flows do not queue behind intent changes of other replicas).
const FLOW_LOCK_KEY: i64 = 0x7061_7665_6466; // "pavedf"

/// Rows per INSERT: under SQLite's 32,766 bound parameters at 32 columns per flow.
const INSERT_CHUNK: usize = 500;

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
pub enum FlowIngestError {
    /// The batch breaks the format or the collector's policy (clock skew, age): it is
    /// refused for good.
    #[error("the flow batch was refused: {0}")]
    Invalid(#[from] ValidationError),
    /// Storing failed (the database is away): deliver it again later.
    #[error("storing the flow batch failed: {0}")]
    Storage(#[from] Error),
}

impl From<sea_orm::DbErr> for FlowIngestError {
    fn from(e: sea_orm::DbErr) -> Self {
        FlowIngestError::Storage(Error::Database(e))
    }
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredBatch {
    /// The batch was stored before (a redelivery): nothing changed.
    pub duplicate: bool,
    /// Aggregates stored.
    pub flows: usize,
    /// Of those, with the reporting host's side attributed to an app.
    pub local_attributed: usize,
    /// Of those, with the peer attributed to an app.
    pub remote_attributed: usize,
    /// Edge rows created or summed into.
    pub edges: usize,
    /// Addresses newly leased to the reporting agent's host.
    pub host_addresses: usize,
}

/// The collector's state: its lease table as last loaded and its process rules.
pub(crate) struct IngestState {
    collector: Collector,
    /// (row count, highest revision) of `address_leases` when the table was loaded; `None`
    /// forces a reload.
    loaded: Option<(i64, Option<i64>)>,
    /// Open agent-host leases: address → the host's app id.
    hosts: HashMap<IpAddr, AppId>,
}

impl IngestState {
    pub(crate) fn new(settings: &FlowSettings) -> Self {
        let mut state = IngestState {
            collector: Collector::new(),
            loaded: None,
            hosts: HashMap::new(),
        };
        state.apply_settings(settings);
        state
    }

    pub(crate) fn apply_settings(&mut self, settings: &FlowSettings) {
        let mut processes = ProcessTable::new();
        for rule in &settings.process_rules {
            processes.insert(rule.host.as_deref(), rule.matcher.clone(), rule.app.clone());
        }
        self.collector.processes = processes;
        // A batch older than the raw flows' retention would be pruned at once.
        self.collector.validator = BatchValidator {
            max_age: settings.retention,
            ..BatchValidator::default()
        };
    }
}

/// A new lease of an address to the reporting agent's host.
struct HostLease {
    addr: IpAddr,
    app: AppId,
    from_ms: u64,
}

/// The stored form of an edge end: (`app` | `address`, app id or address).
pub(crate) fn peer_key(peer: &Peer) -> (&'static str, String) {
    match peer {
        Peer::App(app) => ("app", app.as_str().to_string()),
        Peer::Address(addr) => ("address", addr.to_string()),
    }
}

/// An edge's sums from its row (an undecodable histogram counts as empty, logged).
pub(crate) fn stats_from_row(row: &flow_edge::Model) -> EdgeStats {
    let rtt = serde_json::from_value::<RttHistogram>(row.rtt.clone()).unwrap_or_else(|e| {
        tracing::warn!(edge = row.id, error = %e, "stored RTT histogram does not decode");
        RttHistogram::default()
    });
    let service_ports = serde_json::from_value::<Vec<u16>>(row.service_ports.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    EdgeStats {
        connections: to_u64(row.connections),
        bytes_to_server: to_u64(row.bytes_to_server),
        bytes_to_client: to_u64(row.bytes_to_client),
        retransmits: to_u64(row.retransmits),
        rtt,
        service_ports,
        flows: to_u64(row.flows),
        first_seen_ms: to_u64(row.first_seen_ms),
        last_seen_ms: to_u64(row.last_seen_ms),
    }
}

fn histogram_json(rtt: &RttHistogram) -> serde_json::Value {
    serde_json::to_value(rtt).unwrap_or(serde_json::Value::Null)
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Outbound => "outbound",
        Direction::Inbound => "inbound",
        Direction::Unknown => "unknown",
    }
}

fn flow_row(f: &AttributedFlow) -> flow_record::ActiveModel {
    let a = &f.flow;
    let port = Some(i32::from(a.service_port));
    // The client's ephemeral port is not reported: only the server's side has a port.
    let (local_port, remote_port) = match a.direction {
        Direction::Inbound => (port, None),
        Direction::Outbound | Direction::Unknown => (None, port),
    };
    flow_record::ActiveModel {
        agent_id: Set(f.agent_id.as_str().to_string()),
        host: Set(f.host.clone()),
        epoch_ms: Set(to_i64(f.epoch_ms)),
        sequence: Set(to_i64(f.sequence)),
        at_ms: Set(to_i64(f.at_ms)),
        last_seen_ms: Set(to_i64(a.last_seen_ms)),
        direction: Set(direction_name(a.direction).to_string()),
        local_addr: Set(a.local_addr.to_string()),
        local_port: Set(local_port),
        remote_addr: Set(a.remote_addr.to_string()),
        remote_port: Set(remote_port),
        service_port: Set(i32::from(a.service_port)),
        pid: Set(i64::from(a.process.pid)),
        comm: Set(a.process.comm.clone()),
        exe: Set(a.process.exe.clone()),
        cgroup_id: Set(to_i64(a.cgroup_id)),
        container_id: Set(a.container.as_ref().map(|c| c.id.clone())),
        pod_uid: Set(a.container.as_ref().and_then(|c| c.pod_uid.clone())),
        connections: Set(to_i64(a.connections)),
        closed: Set(to_i64(a.closed)),
        bytes_sent: Set(to_i64(a.bytes_sent)),
        bytes_received: Set(to_i64(a.bytes_received)),
        segments_sent: Set(to_i64(a.segments_sent)),
        segments_received: Set(to_i64(a.segments_received)),
        retransmits: Set(to_i64(a.retransmits)),
        rtt: Set(histogram_json(&a.rtt)),
        rtt_p50_us: Set(a.rtt.p50().map(i64::from)),
        local_app: Set(f.local_app.as_ref().map(|a| a.as_str().to_string())),
        remote_app: Set(f.remote_app.as_ref().map(|a| a.as_str().to_string())),
        remote_scope: Set(address_scope(a.remote_addr).as_str().to_string()),
        ..Default::default()
    }
}

/// Inserts a batch's id; `false` when it is already stored. The first statement of the
/// transaction is this write, so on SQLite it takes the write lock before anything is read
/// (a read first would make the upgrade fail when another writer got in between).
async fn insert_marker(tx: &DatabaseTransaction, marker: flow_batch::ActiveModel) -> Result<bool> {
    let result = flow_batch::Entity::insert(marker)
        .on_conflict_do_nothing_on([
            flow_batch::Column::AgentId,
            flow_batch::Column::EpochMs,
            flow_batch::Column::Sequence,
        ])
        .exec_without_returning(tx)
        .await?;
    Ok(matches!(result, TryInsertResult::Inserted(n) if n > 0))
}

fn marker_of(batch: &FlowBatch) -> flow_batch::ActiveModel {
    flow_batch::ActiveModel {
        agent_id: Set(batch.agent_id.as_str().to_string()),
        epoch_ms: Set(to_i64(batch.epoch_ms)),
        sequence: Set(to_i64(batch.sequence)),
        host: Set(batch.host.clone()),
        interval_start_ms: Set(to_i64(batch.interval_start_ms)),
        interval_end_ms: Set(to_i64(batch.interval_end_ms)),
        sampling_rate: Set(batch.sampling_rate),
        flows: Set(i32::try_from(batch.flows.len()).unwrap_or(i32::MAX)),
        stats: Set(serde_json::to_value(&batch.stats).unwrap_or(serde_json::Value::Null)),
        received_ms: Set(to_i64(now_ms())),
        ..Default::default()
    }
}

async fn insert_flows(tx: &DatabaseTransaction, flows: &[AttributedFlow]) -> Result<()> {
    for chunk in flows.chunks(INSERT_CHUNK) {
        flow_record::Entity::insert_many(chunk.iter().map(flow_row))
            .exec_without_returning(tx)
            .await?;
    }
    Ok(())
}

/// Sums `edges` into the stored hourly edges (creating the missing ones). Keys come sorted
/// (the aggregator is ordered), which keeps row locks in one order across writers.
async fn upsert_edges(tx: &DatabaseTransaction, edges: &[Edge]) -> Result<usize> {
    for edge in edges {
        let (client_kind, client) = peer_key(&edge.key.client);
        let (server_kind, server) = peer_key(&edge.key.server);
        let hour = to_i64(edge.key.hour_start_ms);
        let existing = flow_edge::Entity::find()
            .filter(flow_edge::Column::HourMs.eq(hour))
            .filter(flow_edge::Column::ClientKind.eq(client_kind))
            .filter(flow_edge::Column::Client.eq(client.as_str()))
            .filter(flow_edge::Column::ServerKind.eq(server_kind))
            .filter(flow_edge::Column::Server.eq(server.as_str()))
            .one(tx)
            .await?;
        let (stats, row) = match existing {
            Some(row) => {
                let mut stats = stats_from_row(&row);
                stats.merge(&edge.stats);
                (stats, Some(row))
            }
            None => (edge.stats.clone(), None),
        };
        let ports: Vec<u16> = stats.service_ports.iter().copied().collect();
        let mut am = match row {
            Some(row) => row.into(),
            None => flow_edge::ActiveModel {
                hour_ms: Set(hour),
                client_kind: Set(client_kind.to_string()),
                client: Set(client),
                server_kind: Set(server_kind.to_string()),
                server: Set(server),
                ..Default::default()
            },
        };
        am.connections = Set(to_i64(stats.connections));
        am.bytes_to_server = Set(to_i64(stats.bytes_to_server));
        am.bytes_to_client = Set(to_i64(stats.bytes_to_client));
        am.retransmits = Set(to_i64(stats.retransmits));
        am.flows = Set(to_i64(stats.flows));
        am.rtt = Set(histogram_json(&stats.rtt));
        am.rtt_p50_us = Set(stats.rtt_p50_us().map(i64::from));
        am.rtt_p99_us = Set(stats.rtt_p99_us().map(i64::from));
        am.service_ports = Set(serde_json::json!(ports));
        am.first_seen_ms = Set(to_i64(stats.first_seen_ms));
        am.last_seen_ms = Set(to_i64(stats.last_seen_ms));
        am.save(tx).await?;
    }
    Ok(edges.len())
}

/// Ends other hosts' open leases of each address and starts this host's.
async fn write_host_leases(tx: &DatabaseTransaction, hosts: &[HostLease]) -> Result<()> {
    if hosts.is_empty() {
        return Ok(());
    }
    let revision = leases::next_revision(tx).await?;
    for h in hosts {
        let prefix = IpPrefix::host(h.addr);
        let open = address_lease::Entity::find()
            .filter(address_lease::Column::Source.eq(lease_source_name(LeaseSource::AgentHost)))
            .filter(address_lease::Column::Prefix.eq(prefix.to_string()))
            .filter(address_lease::Column::Port.is_null())
            .filter(address_lease::Column::ValidToMs.is_null())
            .all(tx)
            .await?;
        if open.iter().any(|row| row.app == h.app.as_str()) {
            // Another replica leased it already.
            continue;
        }
        for row in open {
            leases::end_row(tx, row, h.from_ms, revision).await?;
        }
        leases::start_row(
            tx,
            LeaseSource::AgentHost,
            &(prefix, None, h.app.clone()),
            h.from_ms,
            revision,
        )
        .await?;
    }
    Ok(())
}

impl ControlPlane {
    /// Begins a flow write: the process's writers' mutex (SQLite has one writer), and on
    /// PostgreSQL the flow writers' advisory lock shared by replicas.
    async fn begin_flow_write(&self) -> Result<DatabaseTransaction> {
        let tx = self.store().begin().await?;
        if tx.get_database_backend() == DbBackend::Postgres {
            tx.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [FLOW_LOCK_KEY.into()],
            ))
            .await?;
        }
        Ok(tx)
    }

    /// Reloads the lease table when the stored leases changed since it was loaded.
    async fn refresh_leases(&self, state: &mut IngestState) -> Result<()> {
        let db = self.store().db();
        let current = leases::fingerprint(db).await?;
        if state.loaded == Some(current) {
            return Ok(());
        }
        let (table, fingerprint) = leases::load_table(db).await?;
        let now = now_ms();
        state.hosts.clear();
        for row in address_lease::Entity::find()
            .filter(address_lease::Column::Source.eq(lease_source_name(LeaseSource::AgentHost)))
            .filter(address_lease::Column::ValidToMs.is_null())
            .all(db)
            .await?
        {
            if let Some(lease) = leases::lease_from_row(&row)
                && lease.holds_at(now)
                && lease.prefix.len()
                    == if lease.prefix.addr().is_ipv4() {
                        32
                    } else {
                        128
                    }
            {
                state.hosts.insert(lease.prefix.addr(), lease.app);
            }
        }
        tracing::debug!(leases = table.len(), "address lease table loaded");
        state.collector.leases = table;
        state.loaded = Some(fingerprint);
        Ok(())
    }

    /// Validates, attributes and stores one batch (see the module documentation). Stores
    /// nothing when the batch id was stored before. Transports acknowledge the batch only
    /// after this returned `Ok`.
    pub async fn ingest_flow_batch(
        &self,
        batch: &FlowBatch,
    ) -> std::result::Result<StoredBatch, FlowIngestError> {
        let mut state = self.inner.flows.ingest.lock().await;
        let now = now_ms();
        state.collector.validator.check(batch, now)?;
        self.refresh_leases(&mut state).await?;

        // The addresses this host reports flows from are its own: leased to it from their
        // first sighting, before attribution, so this batch's inbound flows from other
        // monitored hosts already count as reported by their clients.
        let host_app = AppId::new(format!("{HOST_APP_PREFIX}{}", batch.agent_id))
            .map_err(|e| Error::Internal(format!("agent id as app id: {e}")))?;
        let mut hosts: Vec<HostLease> = Vec::new();
        for flow in &batch.flows {
            let addr = flow.local_addr;
            if !leases::is_host_address(addr) || state.hosts.get(&addr) == Some(&host_app) {
                continue;
            }
            match hosts.iter_mut().find(|h| h.addr == addr) {
                Some(h) => h.from_ms = h.from_ms.min(flow.first_seen_ms),
                None => hosts.push(HostLease {
                    addr,
                    app: host_app.clone(),
                    from_ms: flow.first_seen_ms,
                }),
            }
        }
        for h in &hosts {
            let prefix = IpPrefix::host(h.addr);
            if let Some(previous) = state.hosts.insert(h.addr, h.app.clone()) {
                state.collector.leases.end(
                    prefix,
                    None,
                    &previous,
                    LeaseSource::AgentHost,
                    h.from_ms,
                );
            }
            // A lease from its first sighting with no end is never empty.
            let _ = state.collector.leases.insert(Lease {
                prefix,
                port: None,
                app: h.app.clone(),
                source: LeaseSource::AgentHost,
                valid_from_ms: h.from_ms,
                valid_until_ms: None,
            });
        }
        if !hosts.is_empty() {
            // The rows get their ids and revision on commit: reload next time.
            state.loaded = None;
        }

        let (flows, report) = state.collector.ingest(batch, now)?;
        // Every hour's sums go to storage with the batch: edges in memory would be lost
        // with the process while the batch is acknowledged.
        let edges = state.collector.edges.drain_before(u64::MAX);
        let written = async {
            let _guard = self.write_guard().await;
            let tx = self.begin_flow_write().await?;
            if !insert_marker(&tx, marker_of(batch)).await? {
                tx.rollback().await?;
                return Ok::<_, Error>(None);
            }
            write_host_leases(&tx, &hosts).await?;
            insert_flows(&tx, &flows).await?;
            let edge_rows = upsert_edges(&tx, &edges).await?;
            tx.commit().await?;
            Ok(Some(edge_rows))
        }
        .await;
        let edge_rows = match written {
            Ok(Some(rows)) => rows,
            Ok(None) => {
                tracing::debug!(batch = %batch.id(), "flow batch stored before; skipped");
                return Ok(StoredBatch {
                    duplicate: true,
                    ..StoredBatch::default()
                });
            }
            Err(e) => {
                // The table may hold host leases that were not stored.
                state.loaded = None;
                return Err(e.into());
            }
        };
        tracing::debug!(
            batch = %batch.id(),
            host = %batch.host,
            flows = report.flows,
            local_attributed = report.local_attributed,
            remote_attributed = report.remote_attributed,
            edges = edge_rows,
            new_host_addresses = hosts.len(),
            "flow batch stored"
        );
        Ok(StoredBatch {
            duplicate: false,
            flows: report.flows,
            local_attributed: report.local_attributed,
            remote_attributed: report.remote_attributed,
            edges: edge_rows,
            host_addresses: hosts.len(),
        })
    }

    /// The flow settings in force.
    pub fn flow_settings(&self) -> FlowSettings {
        self.inner.flows.settings()
    }

    /// Changes the flow settings (retention, process rules); the next batch uses them.
    pub async fn configure_flows(&self, settings: FlowSettings) {
        self.inner
            .flows
            .ingest
            .lock()
            .await
            .apply_settings(&settings);
        match self.inner.flows.settings.write() {
            Ok(mut s) => *s = settings,
            Err(poisoned) => *poisoned.into_inner() = settings,
        }
    }

    /// The store the transports hand batches to.
    pub fn flow_store(&self) -> FlowStore {
        FlowStore { cp: self.clone() }
    }

    /// Stores the batches of an in-process channel (`paved up`) until every sink is gone.
    pub fn spawn_flow_channel(&self, receiver: ChannelReceiver) -> tokio::task::JoinHandle<()> {
        let store = self.flow_store();
        tokio::spawn(async move {
            receiver.serve(&store).await;
            tracing::info!("flow channel closed");
        })
    }

    /// Consumes batches from NATS JetStream until `shutdown` completes: binds (creating if
    /// needed) the durable pull consumer every replica shares — the queue group — retrying
    /// while NATS is away, then stores each batch and acknowledges it once stored.
    pub fn spawn_flow_consumer(
        &self,
        url: String,
        stream: StreamSettings,
        consumer: ConsumerSettings,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.flow_store();
        tokio::spawn(async move {
            let mut shutdown = Box::pin(shutdown);
            let retry = consumer.retry_delay.max(Duration::from_millis(100));
            let bound = loop {
                let attempt = async {
                    let client = nats::connect(&url, "paved-control-plane").await?;
                    NatsConsumer::bind(client, &stream, consumer.clone()).await
                };
                tokio::select! {
                    () = &mut shutdown => return,
                    result = attempt => match result {
                        Ok(bound) => break bound,
                        Err(e) => {
                            tracing::warn!(url = %url, error = %e, source = %e.source, "binding the flow consumer failed; retrying");
                        }
                    },
                }
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(retry) => {}
                }
            };
            tracing::info!(url = %url, stream = %stream.stream, durable = %consumer.durable, "consuming flow batches from NATS");
            bound.run(&store, &mut shutdown).await;
            tracing::info!("flow consumer stopped");
        })
    }

    /// Deletes raw flows (and batch ids) older than `before_ms`; returns how many flows.
    pub async fn prune_flows_before(&self, before_ms: u64) -> Result<u64> {
        let before = to_i64(before_ms);
        let _guard = self.write_guard().await;
        let tx = self.begin_flow_write().await?;
        let deleted = flow_record::Entity::delete_many()
            .filter(flow_record::Column::AtMs.lt(before))
            .exec(&tx)
            .await?
            .rows_affected;
        flow_batch::Entity::delete_many()
            .filter(flow_batch::Column::IntervalEndMs.lt(before))
            .exec(&tx)
            .await?;
        tx.commit().await?;
        if deleted > 0 {
            tracing::info!(deleted, before_ms, "pruned raw flows");
        }
        Ok(deleted)
    }

    /// Deletes hourly edges of hours before `before_ms`, and leases that ended before it;
    /// returns how many edges.
    pub async fn prune_edges_before(&self, before_ms: u64) -> Result<u64> {
        let before = to_i64(before_ms);
        let _guard = self.write_guard().await;
        let tx = self.begin_flow_write().await?;
        let deleted = flow_edge::Entity::delete_many()
            .filter(flow_edge::Column::HourMs.lt(before))
            .exec(&tx)
            .await?
            .rows_affected;
        let leases = address_lease::Entity::delete_many()
            .filter(address_lease::Column::ValidToMs.lt(before))
            .exec(&tx)
            .await?
            .rows_affected;
        tx.commit().await?;
        if deleted + leases > 0 {
            tracing::info!(
                edges = deleted,
                leases,
                before_ms,
                "pruned flow edges and ended leases"
            );
        }
        Ok(deleted)
    }

    /// Prunes what is past the retention windows of [`ControlPlane::flow_settings`].
    pub async fn prune_expired_flows(&self) -> Result<()> {
        let settings = self.flow_settings();
        let now = now_ms();
        let age = |d: Duration| now.saturating_sub(u64::try_from(d.as_millis()).unwrap_or(0));
        self.prune_flows_before(age(settings.retention)).await?;
        // Leases ending before the oldest acceptable batch cannot attribute anything; they
        // are kept as long as the edges for the history they explain.
        self.prune_edges_before(age(settings.edge_retention.max(settings.retention)))
            .await?;
        Ok(())
    }

    /// Prunes expired flows every `FlowSettings::prune_every`, the first time after `first`,
    /// for as long as the control plane exists (the task holds no strong reference to it).
    pub(crate) fn spawn_flow_retention(&self, first: Duration) -> tokio::task::JoinHandle<()> {
        self.spawn_periodic(first, |cp| async move {
            if let Err(e) = cp.prune_expired_flows().await {
                tracing::warn!(error = %e, "pruning flows failed; retrying later");
            }
            cp.flow_settings().prune_every
        })
    }
}

/// The control plane's flow storage, for the transports ([`BatchStore`]: the batch is
/// acknowledged once `store` returned `Ok`) and the collector ([`FlowRepository`]).
#[derive(Clone, Debug)]
pub struct FlowStore {
    cp: ControlPlane,
}

impl BatchStore for FlowStore {
    fn store(&self, batch: FlowBatch) -> StoreFuture<'_> {
        Box::pin(async move {
            match self.cp.ingest_flow_batch(&batch).await {
                Ok(_) => Ok(()),
                Err(FlowIngestError::Invalid(e)) => Err(StoreError::Reject(Box::new(e))),
                Err(FlowIngestError::Storage(e)) => {
                    e.log_if_internal();
                    Err(StoreError::Retry(Box::new(e)))
                }
            }
        })
    }
}

impl FlowRepository for FlowStore {
    fn store_flows<'a>(
        &'a self,
        batch: &'a BatchId,
        flows: &'a [AttributedFlow],
    ) -> RepositoryFuture<'a> {
        Box::pin(async move {
            let _guard = self.cp.write_guard().await;
            let tx = self.cp.begin_flow_write().await?;
            let start = flows
                .iter()
                .map(|f| f.flow.first_seen_ms)
                .min()
                .unwrap_or(0);
            let end = flows
                .iter()
                .map(|f| f.flow.last_seen_ms + 1)
                .max()
                .unwrap_or(0);
            let marker = flow_batch::ActiveModel {
                agent_id: Set(batch.agent_id.as_str().to_string()),
                epoch_ms: Set(to_i64(batch.epoch_ms)),
                sequence: Set(to_i64(batch.sequence)),
                host: Set(flows.first().map(|f| f.host.clone()).unwrap_or_default()),
                interval_start_ms: Set(to_i64(start)),
                interval_end_ms: Set(to_i64(end)),
                sampling_rate: Set(1.0),
                flows: Set(i32::try_from(flows.len()).unwrap_or(i32::MAX)),
                stats: Set(serde_json::json!({})),
                received_ms: Set(to_i64(now_ms())),
                ..Default::default()
            };
            if insert_marker(&tx, marker).await? {
                insert_flows(&tx, flows).await?;
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok(())
        })
    }

    fn add_edges<'a>(&'a self, edges: &'a [Edge]) -> RepositoryFuture<'a> {
        Box::pin(async move {
            let _guard = self.cp.write_guard().await;
            let tx = self.cp.begin_flow_write().await?;
            upsert_edges(&tx, edges).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn prune_flows(&self, before_ms: u64) -> RepositoryFuture<'_> {
        Box::pin(async move {
            self.cp.prune_flows_before(before_ms).await?;
            Ok(())
        })
    }
}
