//! The wasm engine shared by every plugin of a gateway: compilation (cached in memory and on
//! disk), the epoch ticker that bounds calls, process-wide shared data and metrics, and the
//! background runtime that drives ticks and HTTP calls.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::{Config, Engine, Linker, Module};

use crate::error::LoadError;
use crate::http_call::HttpCallDispatcher;
use crate::metrics::MetricsRegistry;
use crate::plugin::{Plugin, PluginSpec};
use crate::shared::SharedState;
use crate::state::HostState;

/// How to set up the engine.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled modules are cached across restarts; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// How often the epoch advances: the granularity of call time limits.
    pub epoch_tick: Duration,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            cache_dir: None,
            epoch_tick: Duration::from_millis(5),
        }
    }
}

/// The engine and what all plugins share; cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<HostState>,
    background: Option<tokio::runtime::Runtime>,
    shared: Arc<SharedState>,
    metrics: Arc<MetricsRegistry>,
    epoch_tick: Duration,
    stop_ticker: Arc<AtomicBool>,
    modules: Mutex<ModuleCache>,
}

/// Compiled modules by a hash of their bytes (the bytes are compared on a hit).
type ModuleCache = HashMap<u64, Vec<(Arc<[u8]>, Module)>>;

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
        // Dropping a tokio runtime from async code panics; shutting it down in the background does not.
        if let Some(background) = self.background.take() {
            background.shutdown_background();
        }
    }
}

impl Runtime {
    /// Sets up the engine, its linker with every host function, and the background threads.
    pub fn new(options: RuntimeOptions) -> Result<Self, LoadError> {
        let engine_error = |e: &dyn std::fmt::Display| LoadError::Engine(e.to_string());
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        if let Some(dir) = &options.cache_dir {
            let mut cache_config = wasmtime::CacheConfig::new();
            cache_config.with_directory(dir);
            let cache = wasmtime::Cache::new(cache_config).map_err(|e| engine_error(&e))?;
            config.cache(Some(cache));
        }
        let engine = Engine::new(&config).map_err(|e| engine_error(&e))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut HostState| &mut s.wasi)
            .map_err(|e| engine_error(&e))?;
        crate::host_fns::add_to_linker(&mut linker).map_err(|e| engine_error(&e))?;
        let background = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("paved-wasm-bg")
            .enable_all()
            .build()
            .map_err(|e| engine_error(&e))?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.clone();
        let stop = stop_ticker.clone();
        let tick = options.epoch_tick;
        std::thread::Builder::new()
            .name("paved-wasm-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| engine_error(&e))?;

        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                background: Some(background),
                shared: Arc::new(SharedState::default()),
                metrics: Arc::new(MetricsRegistry::default()),
                epoch_tick: tick,
                stop_ticker,
                modules: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Loads a plugin: compiles it (once per distinct module) and starts its first instance.
    pub fn load(
        &self,
        spec: PluginSpec,
        http: Arc<dyn HttpCallDispatcher>,
    ) -> Result<Plugin, LoadError> {
        Plugin::load(self.clone(), spec, http)
    }

    /// The metrics every plugin defined.
    pub fn metrics(&self) -> Arc<MetricsRegistry> {
        self.inner.metrics.clone()
    }

    /// Registers a queue the host itself consumes (e.g. the access log): plugins resolve it by
    /// `vm_id` and `name` and enqueue; the receiver is told when items arrive.
    pub fn register_host_queue(
        &self,
        vm_id: &str,
        name: &str,
    ) -> Result<
        (
            u32,
            tokio::sync::mpsc::UnboundedReceiver<crate::shared::QueueReady>,
        ),
        crate::abi::Status,
    > {
        let (notify, ready) = tokio::sync::mpsc::unbounded_channel();
        let owner = crate::shared::QueueOwner {
            root_context_id: 0,
            notify,
        };
        let id = self.inner.shared.register_queue(vm_id, name, owner)?;
        Ok((id, ready))
    }

    /// Takes the oldest item of a queue, if there is one.
    pub fn dequeue(&self, queue_id: u32) -> Option<Vec<u8>> {
        self.inner.shared.dequeue(queue_id).ok()
    }

    /// How many items a queue has accepted since it was registered (0 for an unknown queue).
    /// Items are taken in order, so a consumer that has taken this many has taken them all.
    pub fn queue_accepted(&self, queue_id: u32) -> u64 {
        self.inner.shared.accepted(queue_id).unwrap_or(0)
    }

    /// Shared data and queues.
    pub(crate) fn shared_state(&self) -> Arc<SharedState> {
        self.inner.shared.clone()
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.inner.linker
    }

    pub(crate) fn epoch_tick(&self) -> Duration {
        self.inner.epoch_tick
    }

    pub(crate) fn background(&self) -> &tokio::runtime::Handle {
        match &self.inner.background {
            Some(runtime) => runtime.handle(),
            None => unreachable!("the background runtime lives as long as the Runtime"),
        }
    }

    /// Compiles `wasm`, or returns the module compiled earlier from the same bytes.
    pub(crate) fn compile(&self, plugin: &str, wasm: &Arc<[u8]>) -> Result<Module, LoadError> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        wasm.hash(&mut hasher);
        let key = hasher.finish();
        let mut modules = self.inner.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, module)) = modules
            .get(&key)
            .and_then(|v| v.iter().find(|(bytes, _)| bytes[..] == wasm[..]))
        {
            return Ok(module.clone());
        }
        let module = Module::new(&self.inner.engine, wasm).map_err(|e| LoadError::Compile {
            plugin: plugin.to_owned(),
            message: format!("{e:#}"),
        })?;
        modules
            .entry(key)
            .or_default()
            .push((wasm.clone(), module.clone()));
        Ok(module)
    }
}
