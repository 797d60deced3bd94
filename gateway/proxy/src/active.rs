//! The configuration a gateway serves from: a validated snapshot turned into routes with
//! loaded plugin chains and clusters with live endpoints. Built off to the side and swapped
//! in atomically; requests keep the version they started with.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use paved_model::routing::RouteTable;
use paved_model::snapshot::{PluginSource, Route, Snapshot};
use paved_wasm_host::{
    ClusterDispatcher, HttpCallDispatcher, Plugin, PluginLimits, PluginSpec, Runtime,
};

use crate::error::ConfigError;
use crate::upstream::ClusterRuntime;

/// One filter of a route's chain, with the policy for its failures.
pub struct ChainPlugin {
    /// The loaded plugin.
    pub plugin: Plugin,
    /// Let requests through when it fails.
    pub fail_open: bool,
    /// A security filter fails with 403, any other with 500.
    pub security: bool,
}

/// A route ready to serve.
pub struct ActiveRoute {
    /// Its configuration.
    pub config: Route,
    /// A name for logs and metrics: the app, or host + prefix.
    pub name: String,
    /// Its filters, in order.
    pub chain: Vec<Arc<ChainPlugin>>,
    /// Index into [`ActiveConfig::clusters`], for proxied routes.
    pub cluster: Option<usize>,
}

/// Everything a request needs, at one version.
pub struct ActiveConfig {
    /// The snapshot this was built from.
    pub snapshot: Snapshot,
    /// Route lookup by host and path.
    pub table: RouteTable,
    /// Routes, by the indices the table returns.
    pub routes: Vec<ActiveRoute>,
    /// Clusters with their endpoints.
    pub clusters: Vec<ClusterRuntime>,
}

/// What identifies a loaded plugin across reloads: same module, name and settings means the
/// same plugin, so a reload that does not touch a filter keeps its instances and state.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PluginKey {
    name: String,
    module: u64,
    configuration: Vec<u8>,
    vm_configuration: Vec<u8>,
    memory_bytes: u64,
    call_timeout_ms: u64,
}

/// Builds [`ActiveConfig`]s, keeping plugins loaded across builds.
pub struct ConfigBuilder {
    runtime: Runtime,
    clusters: Arc<ClusterDispatcher>,
    dispatcher: Arc<dyn HttpCallDispatcher>,
    background: tokio::runtime::Handle,
    plugins: HashMap<PluginKey, Plugin>,
    base_dir: std::path::PathBuf,
}

impl ConfigBuilder {
    /// A builder; relative `wasm` paths are resolved against `base_dir` (the config file's
    /// folder). `clusters` is updated with every configuration's clusters; plugins call out
    /// through `dispatcher` (which may answer some cluster names itself).
    pub fn new(
        runtime: Runtime,
        clusters: Arc<ClusterDispatcher>,
        dispatcher: Arc<dyn HttpCallDispatcher>,
        background: tokio::runtime::Handle,
        base_dir: impl Into<std::path::PathBuf>,
    ) -> Self {
        Self {
            runtime,
            clusters,
            dispatcher,
            background,
            plugins: HashMap::new(),
            base_dir: base_dir.into(),
        }
    }

    /// The wasm runtime plugins run in.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Loads every plugin and cluster of `snapshot`. Nothing changes for running requests;
    /// on error nothing is kept.
    pub fn build(&mut self, snapshot: Snapshot) -> Result<ActiveConfig, ConfigError> {
        snapshot.validate()?;
        let table =
            RouteTable::new(&snapshot.routes).map_err(|e| ConfigError::Runtime(e.to_string()))?;
        let mut clusters = Vec::with_capacity(snapshot.clusters.len());
        for cluster in &snapshot.clusters {
            clusters.push(ClusterRuntime::new(cluster.clone(), &self.background)?);
        }
        let cluster_index: HashMap<&str, usize> = snapshot
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), i))
            .collect();

        // Plugins reach clusters by name through proxy_http_call; set them before plugins load
        // (a plugin may call out from proxy_on_configure).
        let addresses = clusters
            .iter()
            .map(|c| {
                (
                    c.config.name.clone(),
                    c.endpoints.iter().map(|e| e.addr).collect(),
                )
            })
            .collect();
        self.clusters.set_clusters(addresses);

        let mut loaded: HashMap<PluginKey, Plugin> = HashMap::new();
        let mut routes = Vec::with_capacity(snapshot.routes.len());
        for (route_index, route) in snapshot.routes.iter().enumerate() {
            let mut chain = Vec::with_capacity(route.plugins.len());
            for (index, plugin) in route.plugins.iter().enumerate() {
                let error = |message: String| ConfigError::Plugin {
                    route: route_index,
                    index,
                    name: plugin.name.clone(),
                    message,
                };
                let wasm: Arc<[u8]> = match plugin.source() {
                    Some(PluginSource::Builtin(name)) => paved_builtin_plugins::get(name)
                        .ok_or_else(|| {
                            let known: Vec<_> = paved_builtin_plugins::names().collect();
                            error(format!(
                                "no built-in plugin {name:?} (built in: {})",
                                known.join(", ")
                            ))
                        })?
                        .into(),
                    Some(PluginSource::Wasm(path)) => {
                        let path = self.resolve(path);
                        std::fs::read(&path)
                            .map_err(|e| error(format!("reading {}: {e}", path.display())))?
                            .into()
                    }
                    None => return Err(error("needs exactly one of wasm or builtin".into())),
                };
                let key = PluginKey {
                    name: plugin.name.clone(),
                    module: hash_bytes(&wasm),
                    configuration: plugin.config.to_bytes(),
                    vm_configuration: plugin.vm_config.to_bytes(),
                    memory_bytes: plugin.memory_bytes(),
                    call_timeout_ms: plugin.call_timeout_ms(),
                };
                let loaded_plugin = match loaded.get(&key).or_else(|| self.plugins.get(&key)) {
                    Some(existing) => existing.clone(),
                    None => {
                        let mut spec =
                            PluginSpec::new(plugin.name.clone(), wasm, key.configuration.clone());
                        spec.vm_configuration = key.vm_configuration.clone();
                        // Plugins of one name and configuration share data; different
                        // configurations (other apps) do not see each other's state.
                        spec.vm_id =
                            format!("{}/{:016x}", plugin.name, hash_bytes(&key.configuration));
                        spec.limits = PluginLimits {
                            memory_bytes: usize::try_from(key.memory_bytes).unwrap_or(usize::MAX),
                            call_timeout: Duration::from_millis(key.call_timeout_ms),
                            ..PluginLimits::default()
                        };
                        self.runtime
                            .load(spec, self.dispatcher.clone())
                            .map_err(|e| error(e.to_string()))?
                    }
                };
                loaded.insert(key, loaded_plugin.clone());
                chain.push(Arc::new(ChainPlugin {
                    plugin: loaded_plugin,
                    fail_open: plugin.fail_open,
                    security: plugin.security,
                }));
            }
            let name = route
                .app
                .clone()
                .unwrap_or_else(|| format!("{}{}", route.host, route.path_prefix));
            routes.push(ActiveRoute {
                cluster: route
                    .cluster
                    .as_deref()
                    .and_then(|c| cluster_index.get(c).copied()),
                config: route.clone(),
                name,
                chain,
            });
        }
        // Plugins no route uses any more are dropped with the old configuration.
        self.plugins = loaded;
        Ok(ActiveConfig {
            snapshot,
            table,
            routes,
            clusters,
        })
    }

    fn resolve(&self, path: &Path) -> std::path::PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

/// The listener addresses of a snapshot, to tell when a reload would need a restart.
pub fn listener_set(snapshot: &Snapshot) -> HashSet<String> {
    snapshot
        .listeners
        .iter()
        .map(|l| l.address.to_string())
        .collect()
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}
