//! The business rules of the control plane, as methods of [`ControlPlane`]: plain Rust used by
//! the GraphQL API, the HTTP endpoints and (later) the command line.
//!
//! Every mutation runs in one database transaction that also writes its audit row; every change
//! of an app recompiles every current intent into a new snapshot (versions 1, 2, 3, ...),
//! stored in the same transaction and published to watching gateways after commit.

mod adoption;
mod apps;
mod audit;
mod clients;
pub mod flows;
mod gateway_keys;
mod gateways;
mod tokens;
mod traffic;
mod upstream_check;
mod users;

pub use adoption::{
    Adoption, AdoptionDay, MAX_TREND_DAYS, PAVED_MAX_ANOMALY_THRESHOLD, PavedStatus, paved_status,
};
pub(crate) use apps::require_reader;
pub use apps::{
    AppFilter, Applied, ChangeKind, Deleted, FieldChange, IntentDiff, MAX_INTENT_BYTES, Plan,
    json_diff,
};
pub use audit::AuditFilter;
pub use clients::{NewClient, redirect_uri_matches};
pub use gateways::{GatewayReport, GatewayState, MAX_ERROR_CHARS, check_gateway_id};
pub use tokens::{CreatedToken, NewToken, TOKEN_PREFIX};
pub use traffic::{
    DEFAULT_TRAFFIC_RETENTION, HourBucket, Ingested, MAX_TRAFFIC_BATCH, MAX_TRAFFIC_BODY_BYTES,
    RecordError, TrafficRecordInput, TrafficSummary, parse_traffic_batch, parse_traffic_record,
};
pub use upstream_check::{UPSTREAM_CHECK_TIMEOUT, UpstreamCheck, may_check_upstreams};
pub use users::{ExternalPerson, NewUser};

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use paved_model::Intent;
use paved_model::compile::{self, CompileOptions};
use paved_model::snapshot::{Certificate, ListenerTls, SnapshotVersion};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use tokio::sync::{Mutex, broadcast, watch};

use crate::auth::Principal;
use crate::config::ControlPlaneConfig;
use crate::oidc::keys::KeySet;
use crate::storage::Store;
use crate::storage::entities::{app, audit_log, intent_version, snapshot};
use crate::tls::CertificateManager;
use crate::{Error, Result};

/// A snapshot as served to gateways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedSnapshot {
    /// Its version.
    pub version: i64,
    /// Its JSON text.
    pub json: Arc<str>,
}

/// Something that happened, for subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An app was applied, rolled back or deleted.
    AppChanged {
        /// The app.
        app: String,
        /// `app.apply`, `app.rollback` or `app.delete`.
        action: String,
        /// Its current intent version (`None` once deleted).
        version: Option<i32>,
        /// The snapshot that carries the change.
        snapshot_version: i64,
    },
    /// A new snapshot was published.
    SnapshotPublished {
        /// Its version.
        version: i64,
    },
    /// A gateway ACKed or NACKed a version.
    GatewayReported {
        /// The gateway.
        gateway_id: String,
        /// The version it reported on.
        version: i64,
        /// ACK (`true`) or NACK.
        ok: bool,
        /// The NACK's error.
        error: Option<String>,
    },
}

/// The control plane: storage, services, publication of snapshots, events. Cheap to clone.
#[derive(Clone)]
pub struct ControlPlane {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("public_url", &self.inner.config.public_url)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ControlPlaneConfig,
    store: Store,
    /// Serializes this process's writers (SQLite allows one writer; on PostgreSQL the advisory
    /// lock of `Store::begin_write` extends this across replicas).
    write_lock: Mutex<()>,
    snapshots: watch::Sender<Option<Arc<PublishedSnapshot>>>,
    events: broadcast::Sender<Event>,
    certificates: Option<CertificateManager>,
    ca_pem: Option<String>,
    keys: KeySet,
    /// How long traffic records are kept, in seconds (see `traffic`).
    traffic_retention_secs: std::sync::atomic::AtomicU64,
    /// Flow telemetry: settings and the collector's lease table (see `flows`).
    flows: flows::FlowState,
    /// True once the server is stopping: long polls answer at once instead of holding it up.
    stopping: watch::Sender<bool>,
}

impl ControlPlane {
    /// Runs `step` the first time after `first`, then again after the pause each run
    /// returns, for as long as the control plane exists: the task keeps only a weak
    /// reference between runs, so it never keeps a dropped control plane alive.
    pub(crate) fn spawn_periodic<F, Fut>(
        &self,
        first: Duration,
        step: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Fn(ControlPlane) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Duration> + Send,
    {
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            tokio::time::sleep(first).await;
            loop {
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                let pause = step(ControlPlane { inner }).await;
                tokio::time::sleep(pause.max(Duration::from_secs(1))).await;
            }
        })
    }

    /// Connects to the database (migrating it), loads or creates the CA and the signing key,
    /// registers the configured OpenID clients, and publishes the current snapshot (compiling a
    /// new version when the configuration changed since the last one).
    pub async fn start(config: ControlPlaneConfig) -> Result<ControlPlane> {
        let store = Store::connect(&config.database_url, config.database_schema.as_deref()).await?;
        ControlPlane::with_store(config, store).await
    }

    /// Like [`ControlPlane::start`], on an existing store.
    pub async fn with_store(mut config: ControlPlaneConfig, store: Store) -> Result<ControlPlane> {
        // A sign-in setting that cannot work is refused here, naming it, not at the first login.
        if let Some(external) = &config.oidc.external {
            external
                .validate()
                .map_err(|e| Error::BadRequest(e.to_string()))?;
        }
        // Every gateway seals sessions and signs assertions with the same stored keys.
        gateway_keys::supply(store.db(), &mut config.compile.identity).await?;
        let (certificates, ca_pem) = if config.certificates.enabled {
            // The internal CA by default; ACME when configured.
            let (manager, ca_pem) =
                crate::tls::build_manager(store.db(), &config.certificates).await?;
            (Some(manager), ca_pem)
        } else {
            (None, None)
        };
        let keys = KeySet::load_or_create(store.db(), config.oidc.key_file.as_deref()).await?;
        let (snapshots, _) = watch::channel(None);
        let (events, _) = broadcast::channel(1024);
        let cp = ControlPlane {
            inner: Arc::new(Inner {
                config,
                store,
                write_lock: Mutex::new(()),
                snapshots,
                events,
                certificates,
                ca_pem,
                keys,
                traffic_retention_secs: std::sync::atomic::AtomicU64::new(
                    traffic::DEFAULT_TRAFFIC_RETENTION.as_secs(),
                ),
                flows: flows::FlowState::default(),
                stopping: watch::Sender::new(false),
            }),
        };
        cp.register_configured_clients().await?;
        cp.refresh_snapshot("startup").await?;
        // Traffic records past the retention window go hourly; the task ends with `cp`.
        cp.spawn_traffic_retention(Duration::from_secs(60), traffic::TRAFFIC_PRUNE_EVERY);
        // Leases of upstreams applied before flow telemetry existed; then expired flows go
        // every `FlowSettings::prune_every` (the task ends with `cp`).
        cp.sync_upstream_leases_now().await?;
        cp.spawn_flow_retention(Duration::from_secs(60));
        // Upstreams given by DNS names are leased at what they resolve to, every
        // `FlowSettings::resolve_every`; the first pass waits a little so that a caller's
        // `configure_flows` (a nameserver) comes first, and never delays the start.
        cp.spawn_upstream_resolver(Duration::from_secs(5));
        // Pods' addresses, when `FlowSettings::kubernetes` is set (by the caller, after the
        // start), every `KubernetesPods::poll_every`.
        cp.spawn_kubernetes_pod_sync(Duration::from_secs(5));
        Ok(cp)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ControlPlaneConfig {
        &self.inner.config
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The OpenID provider's signing keys.
    pub fn keys(&self) -> &KeySet {
        &self.inner.keys
    }

    /// The internal CA's certificate (PEM), for clients that must trust the gateway.
    pub fn ca_certificate_pem(&self) -> Option<&str> {
        self.inner.ca_pem.as_deref()
    }

    /// Events for subscriptions (apps changed, snapshots published, gateway reports).
    pub fn subscribe_events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Marks the server as stopping: requests that wait for something (gateways' long polls)
    /// answer at once, so that a graceful shutdown does not wait for them.
    pub fn begin_shutdown(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Whether (and when) the server starts stopping; see [`ControlPlane::begin_shutdown`].
    pub fn watch_shutdown(&self) -> watch::Receiver<bool> {
        self.inner.stopping.subscribe()
    }

    /// The latest published snapshot and its changes.
    pub fn watch_snapshots(&self) -> watch::Receiver<Option<Arc<PublishedSnapshot>>> {
        self.inner.snapshots.subscribe()
    }

    /// The latest published snapshot.
    pub fn latest_snapshot(&self) -> Option<Arc<PublishedSnapshot>> {
        self.inner.snapshots.borrow().clone()
    }

    pub(crate) fn emit(&self, event: Event) {
        // No subscriber is not an error.
        let _ = self.inner.events.send(event);
    }

    pub(crate) async fn write_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.write_lock.lock().await
    }

    /// Compiles the current intents and stores a new snapshot when it differs from the latest
    /// (other than by version), then publishes the latest. Returns the latest version.
    pub async fn refresh_snapshot(&self, reason: &str) -> Result<i64> {
        let _guard = self.write_guard().await;
        let tx = self.store().begin_write().await?;
        let latest = snapshot::Entity::find()
            .order_by_desc(snapshot::Column::Version)
            .one(&tx)
            .await?;
        let intents = current_intents(&tx).await?;
        let mut changed = true;
        if let Some(latest) = &latest {
            // A candidate that does not compile (a TLS listener whose certificates are not
            // issued yet) needs a new snapshot as much as one that differs.
            changed = match self
                .compile_intents(&tx, &intents, latest.version, false)
                .await
            {
                Ok((candidate, _)) => candidate != latest.snapshot,
                Err(_) => true,
            };
        }
        let published = if changed {
            let (version, json) = self.compile_and_store(&tx, reason).await?;
            tx.commit().await?;
            tracing::info!(version, reason, "published a new snapshot");
            PublishedSnapshot {
                version,
                json: Arc::from(json),
            }
        } else {
            tx.commit().await?;
            let Some(latest) = latest else {
                return Err(Error::Internal("no snapshot after startup".into()));
            };
            PublishedSnapshot {
                version: latest.version,
                json: Arc::from(latest.snapshot),
            }
        };
        let version = published.version;
        self.publish(published);
        Ok(version)
    }

    /// Renews certificates close to expiry; a renewal publishes a new snapshot. Returns the new
    /// snapshot's version when there was one.
    pub async fn renew_certificates(&self) -> Result<Option<i64>> {
        let Some(manager) = &self.inner.certificates else {
            return Ok(None);
        };
        let intents = current_intents(self.store().db()).await?;
        let domains = self.managed_domains(&intents);
        if !manager.needs_renewal(self.store().db(), &domains).await? {
            return Ok(None);
        }
        let before = self.latest_snapshot().map(|s| s.version);
        let version = self.refresh_snapshot("certificate renewal").await?;
        Ok((Some(version) != before).then_some(version))
    }

    /// Runs [`ControlPlane::renew_certificates`] every `every`, until the runtime stops.
    pub fn spawn_certificate_renewal(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let cp = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match cp.renew_certificates().await {
                    Ok(Some(version)) => {
                        tracing::info!(version, "renewed certificates")
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "certificate renewal failed"),
                }
            }
        })
    }

    pub(crate) fn publish(&self, published: PublishedSnapshot) {
        let version = published.version;
        let newer = self
            .inner
            .snapshots
            .borrow()
            .as_ref()
            .is_none_or(|current| current.version < version);
        if newer {
            self.inner.snapshots.send_replace(Some(Arc::new(published)));
            self.emit(Event::SnapshotPublished { version });
        }
    }

    fn managed_domains(&self, intents: &[Intent]) -> Vec<String> {
        let mut domains = compile::domains(intents);
        if domains.is_empty() {
            // A TLS listener needs at least one certificate, even before the first app.
            domains.push("localhost".into());
        }
        domains
    }

    /// The compile options of a snapshot at `version`, with managed certificates on TLS
    /// listeners (issued through `db` when `issue` is true; otherwise TLS listeners get
    /// whatever is stored, which is enough to validate a plan).
    async fn options_for<C: ConnectionTrait>(
        &self,
        db: &C,
        intents: &[Intent],
        version: i64,
        issue: bool,
    ) -> Result<CompileOptions> {
        let mut options = self.inner.config.compile.clone();
        options.version = SnapshotVersion::Number(u64::try_from(version).unwrap_or(0));
        let has_tls = options.listeners.iter().any(|l| l.tls.is_some());
        if let (Some(manager), true) = (&self.inner.certificates, has_tls) {
            let domains = self.managed_domains(intents);
            let certs = if issue {
                manager.certificates_for(db, &domains).await?.0
            } else {
                manager.certificates_for_preview(db, &domains).await?
            };
            for listener in &mut options.listeners {
                let Some(tls) = &mut listener.tls else {
                    continue;
                };
                add_managed_certificates(tls, &certs);
            }
        }
        Ok(options)
    }

    /// Compiles `intents` at `version` into snapshot JSON.
    async fn compile_intents<C: ConnectionTrait>(
        &self,
        db: &C,
        intents: &[Intent],
        version: i64,
        issue: bool,
    ) -> Result<(String, Vec<String>)> {
        let options = self.options_for(db, intents, version, issue).await?;
        let snapshot = compile::compile(intents, &options)?;
        Ok((snapshot.to_json_pretty(), compile::domains(intents)))
    }

    /// Compiles every current intent (as seen by `tx`) into the next snapshot version, stores
    /// it, and keeps the gateway's OpenID client in step with the app domains. The caller
    /// commits, then calls [`ControlPlane::publish`].
    pub(crate) async fn compile_and_store<C: ConnectionTrait>(
        &self,
        tx: &C,
        reason: &str,
    ) -> Result<(i64, String)> {
        let intents = current_intents(tx).await?;
        // The gateway's upstream endpoints lease their addresses to the apps: they change
        // with the intents, in the same transaction.
        flows::sync_upstream_leases(tx, &intents, flows::now_ms()).await?;
        let next = snapshot::Entity::find()
            .order_by_desc(snapshot::Column::Version)
            .one(tx)
            .await?
            .map_or(1, |s| s.version + 1);
        let (json, domains) = self.compile_intents(tx, &intents, next, true).await?;
        snapshot::ActiveModel {
            version: Set(next),
            snapshot: Set(json.clone()),
            reason: Set(reason.chars().take(500).collect()),
            created_at: Set(Utc::now()),
        }
        .insert(tx)
        .await?;
        self.sync_gateway_client(tx, &domains).await?;
        Ok((next, json))
    }
}

/// Appends a managed certificate for each domain not already served by the listener's own
/// certificates.
fn add_managed_certificates(tls: &mut ListenerTls, certs: &[crate::tls::IssuedCertificate]) {
    for cert in certs {
        let taken = tls.certificates.iter().any(|c| {
            c.domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&cert.domain))
        });
        if !taken {
            tls.certificates.push(Certificate {
                domains: vec![cert.domain.clone()],
                cert_file: None,
                cert_pem: Some(cert.cert_pem.clone()),
                key_file: None,
                key_pem: Some(cert.key_pem.clone()),
            });
        }
    }
}

/// The current intent of every app that is not deleted.
pub(crate) async fn current_intents<C: ConnectionTrait>(db: &C) -> Result<Vec<Intent>> {
    let apps = app::Entity::find()
        .filter(app::Column::DeletedAt.is_null())
        .filter(app::Column::CurrentVersionId.is_not_null())
        .all(db)
        .await?;
    let ids: Vec<i64> = apps.iter().filter_map(|a| a.current_version_id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let versions = intent_version::Entity::find()
        .filter(intent_version::Column::Id.is_in(ids))
        .all(db)
        .await?;
    versions
        .into_iter()
        .map(|v| {
            serde_json::from_value::<Intent>(v.intent).map_err(|e| {
                Error::Internal(format!(
                    "stored intent version {} does not decode: {e}",
                    v.id
                ))
            })
        })
        .collect()
}

/// Writes an audit row through `db` (the transaction of the mutation it records).
// The arguments are the row's columns, in order; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn audit<C: ConnectionTrait>(
    db: &C,
    who: &Principal,
    action: &str,
    target_kind: &str,
    target: &str,
    app: Option<&str>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<()> {
    audit_log::ActiveModel {
        at: Set(Utc::now()),
        actor: Set(who.name.clone()),
        actor_kind: Set(who.kind.as_str().to_string()),
        action: Set(action.to_string()),
        target_kind: Set(target_kind.to_string()),
        target: Set(target.to_string()),
        app: Set(app.map(str::to_string)),
        before: Set(before),
        after: Set(after),
        ..Default::default()
    }
    .insert(db)
    .await?;
    tracing::info!(actor = %who.name, actor_kind = who.kind.as_str(), action, target_kind, target, "audit");
    Ok(())
}

/// A page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Items matching the filter in all pages.
    pub total: usize,
    /// Whether more items follow.
    pub has_next: bool,
    /// Cursor of the last item (pass as `after` for the next page).
    pub end_cursor: Option<String>,
}

/// Maximum page size.
pub const MAX_PAGE: usize = 500;

/// Clamps a requested page size to 1..=[`MAX_PAGE`] (default 50).
pub(crate) fn page_size(first: Option<i64>) -> Result<usize> {
    match first {
        None => Ok(50),
        Some(n) if (1..=MAX_PAGE as i64).contains(&n) => Ok(n as usize),
        Some(n) => Err(Error::BadRequest(format!(
            "`first` must be between 1 and {MAX_PAGE}, found {n}"
        ))),
    }
}
