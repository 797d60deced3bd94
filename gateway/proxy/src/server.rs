//! Assembling and running the gateway: the Pingora server with one proxy service per
//! listener and the admin service; configuration reloads; shutdown.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use paved_model::snapshot::{Snapshot, SnapshotVersion};
use paved_wasm_host::{ClusterDispatcher, Runtime, RuntimeOptions};
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::proxy::http_proxy_service_with_name;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignalWatch};
use pingora::services::listening::Service;

use crate::accesslog::{self, AccessLogOptions};
use crate::active::{ActiveConfig, ConfigBuilder, listener_set};
use crate::admin::AdminApp;
use crate::error::ConfigError;
use crate::internal::{GatewayDispatcher, RedisRateLimiter};
use crate::metrics::GatewayMetrics;
use crate::proxy::GatewayProxy;
use crate::tls::{CertificateSet, SniResolver};
use crate::traffic_shipper::{ShipperOptions, TrafficBacklog};

/// How to run a gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Relative paths in the configuration (wasm modules, certificates) are resolved here.
    pub base_dir: PathBuf,
    /// Where compiled plugin modules are cached across restarts.
    pub cache_dir: Option<PathBuf>,
    /// Worker threads per listener service (0: one per core).
    pub threads: usize,
    /// Redis for the cluster-wide rate limiter (`redis://host:port`); none: local limits only.
    pub redis_url: Option<String>,
    /// Where the access log is written; none: records stay unconsumed in memory (bounded).
    pub access_log: Option<AccessLogOptions>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            base_dir: PathBuf::from("."),
            cache_dir: None,
            threads: 0,
            redis_url: None,
            access_log: None,
        }
    }
}

/// A gateway: its configuration in force and what it takes to change it.
pub struct Gateway {
    config: Arc<ArcSwap<ActiveConfig>>,
    builder: Mutex<ConfigBuilder>,
    metrics: Arc<GatewayMetrics>,
    runtime: Runtime,
    resolvers: HashMap<String, Arc<SniResolver>>,
    listeners: HashSet<String>,
    ready: Arc<AtomicBool>,
    options: GatewayOptions,
    background: Option<tokio::runtime::Runtime>,
    traffic: Arc<TrafficBacklog>,
    /// Stops the access-log sink (after it wrote what is queued) and its task.
    access_log_stop: Mutex<Option<AccessLogStop>>,
    /// What responses wait on for their access-log record to be on disk.
    durability: Option<Arc<accesslog::Durability>>,
}

/// Tells the sink to finish; the receiver hears when it has (or was dropped).
type AccessLogStop = (
    tokio::sync::oneshot::Sender<()>,
    std::sync::mpsc::Receiver<()>,
);

impl Drop for Gateway {
    fn drop(&mut self) {
        // Dropping a runtime from async code panics; the background one need not wait.
        if let Some(background) = self.background.take() {
            background.shutdown_background();
        }
    }
}

impl Gateway {
    /// Loads `snapshot` (plugins, clusters, certificates); fails without serving anything when
    /// it is invalid.
    pub fn new(snapshot: Snapshot, options: GatewayOptions) -> Result<Self, ConfigError> {
        let background = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("paved-gw-bg")
            .enable_all()
            .build()
            .map_err(|e| ConfigError::Runtime(e.to_string()))?;
        let runtime = Runtime::new(RuntimeOptions {
            cache_dir: options.cache_dir.clone(),
            ..RuntimeOptions::default()
        })
        .map_err(|e| ConfigError::Runtime(e.to_string()))?;
        let clusters = Arc::new(ClusterDispatcher::new(HashMap::new(), 4 << 20));
        let ratelimit = match &options.redis_url {
            Some(url) => match background.block_on(RedisRateLimiter::connect(url)) {
                Ok(limiter) => Some(limiter),
                // Redis may come later: until it does, the plugins' local limits apply.
                Err(error) => match RedisRateLimiter::lazy(url) {
                    Ok(limiter) => {
                        tracing::warn!(error = %error, "Redis unreachable at start; local rate limits until it answers");
                        Some(limiter)
                    }
                    Err(error) => {
                        tracing::error!(error = %error, "invalid Redis URL; cluster-wide rate limits off");
                        None
                    }
                },
            },
            None => None,
        };
        let dispatcher = Arc::new(GatewayDispatcher {
            clusters: clusters.clone(),
            ratelimit,
        });
        let mut builder = ConfigBuilder::new(
            runtime.clone(),
            clusters,
            dispatcher,
            background.handle().clone(),
            &options.base_dir,
        );
        let mut resolvers = HashMap::new();
        for listener in &snapshot.listeners {
            if let Some(tls) = &listener.tls {
                let name = listener.address.to_string();
                let set = CertificateSet::load(&name, &tls.certificates, &options.base_dir)?;
                resolvers.insert(
                    name,
                    Arc::new(SniResolver {
                        certificates: ArcSwap::from_pointee(set),
                    }),
                );
            }
        }
        let listeners = listener_set(&snapshot);
        let access_log_queue = options
            .access_log
            .as_ref()
            .and_then(|_| accesslog::register(&runtime));
        let active = builder.build(snapshot)?;
        let metrics =
            Arc::new(GatewayMetrics::new().map_err(|e| ConfigError::Runtime(e.to_string()))?);
        // Filled by the access-log sink once the gateway ships traffic to a control plane.
        let traffic = Arc::new(
            TrafficBacklog::new(ShipperOptions::default())
                .map_err(|e| ConfigError::Runtime(e.to_string()))?,
        );
        let mut access_log_stop = None;
        let durability = access_log_queue.as_ref().map(|queue| {
            Arc::new(queue.durability(&runtime, metrics.access_log.unsynced_responses.clone()))
        });
        if let (Some(access_log), Some(queue)) = (options.access_log.clone(), access_log_queue) {
            let (stop, stopped) = tokio::sync::oneshot::channel();
            let (done, finished) = std::sync::mpsc::channel();
            let sink = accesslog::run(
                runtime.clone(),
                queue,
                access_log,
                metrics.access_log.clone(),
                traffic.clone(),
                stopped,
            );
            background.spawn(async move {
                sink.await;
                let _ = done.send(());
            });
            access_log_stop = Some((stop, finished));
        }
        metrics
            .config_version
            .set(numeric_version(&active.snapshot.version));
        Ok(Self {
            config: Arc::new(ArcSwap::from_pointee(active)),
            builder: Mutex::new(builder),
            metrics,
            runtime,
            resolvers,
            listeners,
            ready: Arc::new(AtomicBool::new(false)),
            options,
            background: Some(background),
            traffic,
            access_log_stop: Mutex::new(access_log_stop),
            durability,
        })
    }

    /// The access-log records waiting to be shipped to the control plane (taken only once
    /// [`crate::traffic_shipper::run`] started; the access log must be on).
    pub fn traffic(&self) -> Arc<TrafficBacklog> {
        self.traffic.clone()
    }

    /// The version in force.
    pub fn version(&self) -> SnapshotVersion {
        self.config.load().snapshot.version.clone()
    }

    /// A handle on the gateway's background runtime (health checks, control-plane client).
    pub fn background(&self) -> tokio::runtime::Handle {
        match &self.background {
            Some(runtime) => runtime.handle().clone(),
            None => unreachable!("the background runtime lives as long as the gateway"),
        }
    }

    /// Builds the new configuration off to the side and swaps it in; requests in flight finish
    /// on the configuration they started with. On error the old configuration keeps serving.
    /// Listener addresses cannot change without a restart (a warning says so).
    pub fn reload(&self, snapshot: Snapshot) -> Result<(), ConfigError> {
        let started = Instant::now();
        let result = self.try_reload(snapshot);
        self.metrics
            .reload_seconds
            .observe(started.elapsed().as_secs_f64());
        let outcome = if result.is_ok() {
            "applied"
        } else {
            "rejected"
        };
        self.metrics.reloads.with_label_values(&[outcome]).inc();
        result
    }

    fn try_reload(&self, snapshot: Snapshot) -> Result<(), ConfigError> {
        if listener_set(&snapshot) != self.listeners {
            tracing::warn!("listener addresses changed; they take effect on restart");
        }
        let mut certificate_sets = Vec::new();
        for listener in &snapshot.listeners {
            let name = listener.address.to_string();
            if let (Some(tls), Some(resolver)) = (&listener.tls, self.resolvers.get(&name)) {
                let set = CertificateSet::load(&name, &tls.certificates, &self.options.base_dir)?;
                certificate_sets.push((resolver.clone(), set));
            }
        }
        let mut builder = self.builder.lock().unwrap_or_else(|p| p.into_inner());
        let active = builder.build(snapshot)?;
        for (resolver, set) in certificate_sets {
            resolver.certificates.store(Arc::new(set));
        }
        self.metrics
            .config_version
            .set(numeric_version(&active.snapshot.version));
        let version = active.snapshot.version.to_string();
        self.config.store(Arc::new(active));
        tracing::info!(version = %version, "configuration applied");
        Ok(())
    }

    /// The metrics plugins define, and the gateway's own.
    pub fn render_metrics(&self) -> String {
        let mut text = self.metrics.render(
            &self.config.load(),
            &self.runtime.metrics().render_prometheus("paved_wasm_"),
        );
        text.push_str(&self.traffic.render_metrics());
        text
    }

    /// Serves until `shutdown` says to stop. Blocks the calling thread.
    pub fn run(self: Arc<Self>, shutdown: Box<dyn ShutdownSignalWatch>) -> Result<(), ConfigError> {
        let threads = if self.options.threads == 0 {
            std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2)
        } else {
            self.options.threads
        };
        let conf = ServerConf {
            threads,
            grace_period_seconds: Some(0),
            graceful_shutdown_timeout_seconds: Some(5),
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        server.bootstrap();
        let snapshot = self.config.load().snapshot.clone();
        for listener in &snapshot.listeners {
            let address = listener.address.to_string();
            let proxy = GatewayProxy {
                config: self.config.clone(),
                metrics: self.metrics.clone(),
                tls: listener.tls.is_some(),
                durability: self.durability.clone(),
            };
            let mut service = http_proxy_service_with_name(
                &server.configuration,
                proxy,
                &format!("paved gateway {address}"),
            );
            if let Some(resolver) = self.resolvers.get(&address) {
                let mut settings =
                    TlsSettings::intermediate("", "").map_err(|e| ConfigError::Tls {
                        listener: address.clone(),
                        message: e.to_string(),
                    })?;
                settings.set_cert_resolver(resolver.clone());
                if listener.http2 {
                    settings.enable_h2();
                }
                service.add_tls_with_settings(&address, None, settings);
            } else {
                if listener.http2
                    && let Some(app) = service.app_logic_mut()
                {
                    let mut options = HttpServerOptions::default();
                    options.h2c = true;
                    app.server_options = Some(options);
                }
                service.add_tcp(&address);
            }
            server.add_service(service);
        }
        let admin = AdminApp {
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            plugin_metrics: self.runtime.metrics(),
            ready: self.ready.clone(),
        };
        let mut admin_service = Service::new(
            "paved gateway admin".to_owned(),
            pingora::apps::http_app::HttpServer::new_app(admin),
        );
        admin_service.add_tcp(&snapshot.admin.address.to_string());
        server.add_service(admin_service);
        self.ready.store(true, Ordering::Relaxed);
        server.run(RunArgs {
            shutdown_signal: shutdown,
        });
        self.ready.store(false, Ordering::Relaxed);
        self.flush_access_log();
        Ok(())
    }

    /// Has the access-log sink write every record still queued, then stop: called once the
    /// server stopped, when no request can make a record any more.
    fn flush_access_log(&self) {
        let stop = self
            .access_log_stop
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some((stop, finished)) = stop else {
            return;
        };
        let _ = stop.send(());
        // A plain wait: `run` may be called from any thread, in a runtime's context or not.
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            finished.recv_timeout(std::time::Duration::from_secs(10))
        {
            tracing::error!(
                "the access log did not finish writing within 10 s; records may be lost"
            );
        }
    }
}

fn numeric_version(version: &SnapshotVersion) -> i64 {
    match version {
        SnapshotVersion::Number(n) => i64::try_from(*n).unwrap_or(i64::MAX),
        SnapshotVersion::Id(_) => 0,
    }
}

/// Stops a gateway from another thread or task: the shutdown watch handed to [`Gateway::run`].
#[derive(Clone, Default)]
pub struct ShutdownHandle {
    notify: Arc<tokio::sync::Notify>,
    requested: Arc<AtomicBool>,
}

impl ShutdownHandle {
    /// A handle; [`Self::watch`] gives the watch to pass to `run`.
    pub fn new() -> Self {
        Self {
            notify: Arc::new(tokio::sync::Notify::new()),
            requested: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The watch `run` waits on: this handle's `shutdown`, SIGTERM or SIGINT.
    pub fn watch(&self) -> Box<dyn ShutdownSignalWatch> {
        Box::new(self.clone())
    }

    /// Asks the gateway to stop (gracefully: requests in flight finish).
    pub fn shutdown(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
}

#[async_trait::async_trait]
impl ShutdownSignalWatch for ShutdownHandle {
    async fn recv(&self) -> pingora::server::ShutdownSignal {
        let signals = async {
            use tokio::signal::unix::{SignalKind, signal};
            match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            () = async {
                while !self.requested.load(Ordering::SeqCst) {
                    self.notify.notified().await;
                }
            } => {}
            () = signals => {}
        }
        pingora::server::ShutdownSignal::GracefulTerminate
    }
}
