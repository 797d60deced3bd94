//! One instance of a plugin: a wasmtime store, the module's exports, and the calls into them.
//!
//! An instance holds one root context and any number of HTTP contexts, as in Envoy. Calls are
//! synchronous and bounded by the store's epoch deadline and memory limiter; a call that
//! fails poisons the instance (its memory may be inconsistent), and the pool replaces it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;
use wasmtime::{Engine, Instance, Linker, Module, Store, Trap, TypedFunc, WasmParams, WasmResults};

use crate::abi::Action;
use crate::error::{LoadError, PluginFailure};
use crate::http_call::HttpCallResponse;
use crate::shared::QueueReady;
use crate::state::{Effect, HostState, Limiter, PluginEnv};
use crate::stream::{HttpStream, LocalResponse};

type F1 = TypedFunc<i32, ()>;
type F1R = TypedFunc<i32, i32>;
type F2 = TypedFunc<(i32, i32), ()>;
type F2R = TypedFunc<(i32, i32), i32>;
type F3R = TypedFunc<(i32, i32, i32), i32>;
type F5 = TypedFunc<(i32, i32, i32, i32, i32), ()>;

/// The module's exports the host calls; absent optional ones are skipped.
struct Exports {
    on_context_create: F2,
    on_vm_start: Option<F2R>,
    on_configure: Option<F2R>,
    on_tick: Option<F1>,
    on_queue_ready: Option<F2>,
    on_done: Option<F1R>,
    on_log: Option<F1>,
    on_delete: Option<F1>,
    on_request_headers: Option<F3R>,
    on_request_body: Option<F3R>,
    on_request_trailers: Option<F2R>,
    on_response_headers: Option<F3R>,
    on_response_body: Option<F3R>,
    on_response_trailers: Option<F2R>,
    on_http_call_response: Option<F5>,
}

/// A request-path event for a context that is waiting (paused) in the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContextEvent {
    Resume,
    LocalResponse(LocalResponse),
    Close,
    Failed(PluginFailure),
}

/// Work for the instance's background driver.
#[derive(Debug)]
pub(crate) enum DriverMsg {
    HttpCall {
        context_id: u32,
        token: u32,
        request: crate::http_call::HttpCallRequest,
    },
    SetTick(std::time::Duration),
}

/// What one stream callback decided.
#[derive(Debug, Default)]
pub(crate) struct CallOutcome {
    pub local_response: Option<LocalResponse>,
    pub resumed: bool,
    pub closed: bool,
}

/// Which stream callback to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
}

impl Phase {
    fn export_name(self) -> &'static str {
        match self {
            Self::RequestHeaders => "proxy_on_request_headers",
            Self::RequestBody => "proxy_on_request_body",
            Self::RequestTrailers => "proxy_on_request_trailers",
            Self::ResponseHeaders => "proxy_on_response_headers",
            Self::ResponseBody => "proxy_on_response_body",
            Self::ResponseTrailers => "proxy_on_response_trailers",
        }
    }
}

/// A live instance of a plugin.
pub(crate) struct PluginInstance {
    store: Store<HostState>,
    exports: Exports,
    env: Arc<PluginEnv>,
    next_context_id: u32,
    deadline_ticks: u64,
    waiters: HashMap<u32, UnboundedSender<ContextEvent>>,
    driver: UnboundedSender<DriverMsg>,
    pub(crate) failure: Option<PluginFailure>,
}

/// The root context's ID in every instance.
pub(crate) const ROOT_CONTEXT_ID: u32 = 1;

impl PluginInstance {
    /// Instantiates the module, runs its initialisation, creates the root context, and calls
    /// `proxy_on_vm_start` and `proxy_on_configure`; either returning false fails the load.
    pub(crate) fn start(
        engine: &Engine,
        linker: &Linker<HostState>,
        module: &Module,
        env: Arc<PluginEnv>,
        epoch_tick: std::time::Duration,
        driver: UnboundedSender<DriverMsg>,
        queue_notify: UnboundedSender<QueueReady>,
    ) -> Result<Self, LoadError> {
        let plugin = env.name.clone();
        let instantiate_error = |e: wasmtime::Error| LoadError::Instantiate {
            plugin: plugin.clone(),
            message: format!("{e:#}"),
        };
        let wasi = wasmtime_wasi::WasiCtxBuilder::new().build_p1();
        let state = HostState {
            wasi,
            limiter: Limiter {
                max_memory: env.limits.memory_bytes,
                exceeded: false,
            },
            memory: None,
            alloc: None,
            env: env.clone(),
            root_context_id: ROOT_CONTEXT_ID,
            effective_context: ROOT_CONTEXT_ID,
            live_contexts: HashSet::new(),
            streams: HashMap::new(),
            call_response: None,
            effects: Vec::new(),
            next_call_token: 0,
            queue_notify,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        let deadline_ticks =
            (env.limits.call_timeout.as_micros() / epoch_tick.as_micros().max(1)) as u64 + 1;
        // Initialisation (constructors, `main!`) gets ten call budgets.
        store.set_epoch_deadline(deadline_ticks * 10);

        let abi_ok = module.exports().any(|e| {
            matches!(
                e.name(),
                "proxy_abi_version_0_2_1" | "proxy_abi_version_0_2_0"
            )
        });
        if !abi_ok {
            return Err(LoadError::AbiVersion { plugin });
        }
        let instance = linker
            .instantiate(&mut store, module)
            .map_err(instantiate_error)?;
        let memory = instance.get_memory(&mut store, "memory");
        if memory.is_none() {
            return Err(LoadError::Instantiate {
                plugin,
                message: "the module exports no memory".into(),
            });
        }
        let alloc = typed::<i32, i32>(&instance, &mut store, "proxy_on_memory_allocate")
            .or_else(|| typed::<i32, i32>(&instance, &mut store, "malloc"));
        if alloc.is_none() {
            return Err(LoadError::Instantiate {
                plugin,
                message: "the module exports neither proxy_on_memory_allocate nor malloc".into(),
            });
        }
        store.data_mut().memory = memory;
        store.data_mut().alloc = alloc;

        // WASI reactors export `_initialize`; commands `_start`. The SDK's `main!` is the former.
        for init in ["_initialize", "_start"] {
            if let Some(f) = typed::<(), ()>(&instance, &mut store, init) {
                f.call(&mut store, ()).map_err(instantiate_error)?;
                break;
            }
        }
        let Some(on_context_create) = typed(&instance, &mut store, "proxy_on_context_create")
        else {
            return Err(LoadError::Instantiate {
                plugin,
                message: "the module does not export proxy_on_context_create".into(),
            });
        };
        let exports = Exports {
            on_context_create,
            on_vm_start: typed(&instance, &mut store, "proxy_on_vm_start"),
            on_configure: typed(&instance, &mut store, "proxy_on_configure"),
            on_tick: typed(&instance, &mut store, "proxy_on_tick"),
            on_queue_ready: typed(&instance, &mut store, "proxy_on_queue_ready"),
            on_done: typed(&instance, &mut store, "proxy_on_done"),
            on_log: typed(&instance, &mut store, "proxy_on_log"),
            on_delete: typed(&instance, &mut store, "proxy_on_delete"),
            on_request_headers: typed(&instance, &mut store, "proxy_on_request_headers"),
            on_request_body: typed(&instance, &mut store, "proxy_on_request_body"),
            on_request_trailers: typed(&instance, &mut store, "proxy_on_request_trailers"),
            on_response_headers: typed(&instance, &mut store, "proxy_on_response_headers"),
            on_response_body: typed(&instance, &mut store, "proxy_on_response_body"),
            on_response_trailers: typed(&instance, &mut store, "proxy_on_response_trailers"),
            on_http_call_response: typed(&instance, &mut store, "proxy_on_http_call_response"),
        };
        let mut this = Self {
            store,
            exports,
            env: env.clone(),
            next_context_id: ROOT_CONTEXT_ID + 1,
            deadline_ticks,
            waiters: HashMap::new(),
            driver,
            failure: None,
        };
        let failed = |failure| LoadError::Failed {
            plugin: env.name.clone(),
            failure,
        };
        let root = ROOT_CONTEXT_ID as i32;
        let create = this.exports.on_context_create.clone();
        this.invoke("proxy_on_context_create", ROOT_CONTEXT_ID, 10, |s| {
            create.call(s, (root, 0))
        })
        .map_err(failed)?;
        if let Some(f) = this.exports.on_vm_start.clone() {
            let size = env.vm_configuration.len() as i32;
            if this
                .invoke("proxy_on_vm_start", ROOT_CONTEXT_ID, 10, |s| {
                    f.call(s, (root, size))
                })
                .map_err(failed)?
                == 0
            {
                return Err(LoadError::VmStartRejected {
                    plugin: env.name.clone(),
                });
            }
        }
        if let Some(f) = this.exports.on_configure.clone() {
            let size = env.configuration.len() as i32;
            if this
                .invoke("proxy_on_configure", ROOT_CONTEXT_ID, 10, |s| {
                    f.call(s, (root, size))
                })
                .map_err(failed)?
                == 0
            {
                return Err(LoadError::ConfigureRejected {
                    plugin: env.name.clone(),
                });
            }
        }
        this.dispatch_effects(None);
        Ok(this)
    }

    /// Runs one call into the guest with the deadline set and the effective context chosen;
    /// classifies a failure and poisons the instance with it.
    fn invoke<T>(
        &mut self,
        function: &'static str,
        context_id: u32,
        budgets: u64,
        call: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, PluginFailure> {
        if let Some(failure) = &self.failure {
            return Err(PluginFailure::Unavailable {
                plugin: self.env.name.clone(),
                reason: failure.to_string(),
            });
        }
        self.store.set_epoch_deadline(self.deadline_ticks * budgets);
        self.store.data_mut().effective_context = context_id;
        match call(&mut self.store) {
            Ok(value) => Ok(value),
            Err(error) => {
                let plugin = self.env.name.clone();
                let failure = if self.store.data().limiter.exceeded {
                    PluginFailure::MemoryLimit {
                        plugin,
                        function,
                        limit: self.env.limits.memory_bytes,
                    }
                } else if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
                    PluginFailure::Timeout {
                        plugin,
                        function,
                        limit: self.env.limits.call_timeout * budgets as u32,
                    }
                } else {
                    PluginFailure::Trap {
                        plugin,
                        function,
                        message: format!("{error:#}"),
                    }
                };
                tracing::warn!(plugin = %self.env.name, function, failure = %failure, "plugin failed; instance poisoned");
                self.poison(failure.clone());
                Err(failure)
            }
        }
    }

    /// Marks the instance failed and tells every waiting context.
    pub(crate) fn poison(&mut self, failure: PluginFailure) {
        // Other streams did not fail themselves: they lost their instance.
        let unavailable = PluginFailure::Unavailable {
            plugin: self.env.name.clone(),
            reason: failure.to_string(),
        };
        for (_, waiter) in self.waiters.drain() {
            let _ = waiter.send(ContextEvent::Failed(unavailable.clone()));
        }
        self.failure = Some(failure);
    }

    /// Creates an HTTP context; `events` receives what other calls decide for it.
    pub(crate) fn create_http_context(
        &mut self,
        events: UnboundedSender<ContextEvent>,
    ) -> Result<u32, PluginFailure> {
        let id = self.next_context_id;
        let Some(next) = id.checked_add(1) else {
            let failure = PluginFailure::Unavailable {
                plugin: self.env.name.clone(),
                reason: "context IDs exhausted; instance recycled".into(),
            };
            self.poison(failure.clone());
            return Err(failure);
        };
        self.next_context_id = next;
        self.store.data_mut().live_contexts.insert(id);
        let create = self.exports.on_context_create.clone();
        self.invoke("proxy_on_context_create", id, 1, |s| {
            create.call(s, (id as i32, ROOT_CONTEXT_ID as i32))
        })?;
        self.waiters.insert(id, events);
        Ok(id)
    }

    /// Runs a stream callback with `stream` parked in the instance. Returns the action and
    /// what the callback decided; on `Pause` (and no decision) the stream stays parked until
    /// [`Self::take_stream`].
    pub(crate) fn run_phase(
        &mut self,
        context_id: u32,
        phase: Phase,
        stream: &mut HttpStream,
        end_of_stream: bool,
    ) -> Result<(Action, CallOutcome), PluginFailure> {
        let func3 = match phase {
            Phase::RequestHeaders => self.exports.on_request_headers.clone(),
            Phase::RequestBody => self.exports.on_request_body.clone(),
            Phase::ResponseHeaders => self.exports.on_response_headers.clone(),
            Phase::ResponseBody => self.exports.on_response_body.clone(),
            _ => None,
        };
        let func2 = match phase {
            Phase::RequestTrailers => self.exports.on_request_trailers.clone(),
            Phase::ResponseTrailers => self.exports.on_response_trailers.clone(),
            _ => None,
        };
        if func3.is_none() && func2.is_none() {
            return Ok((Action::Continue, CallOutcome::default()));
        }
        let size = match phase {
            Phase::RequestHeaders => stream.request_headers.len(),
            Phase::RequestBody => stream.request_body.len(),
            Phase::RequestTrailers => stream.request_trailers.len(),
            Phase::ResponseHeaders => stream.response_headers.len(),
            Phase::ResponseBody => stream.response_body.len(),
            Phase::ResponseTrailers => stream.response_trailers.len(),
        } as i32;
        self.store
            .data_mut()
            .streams
            .insert(context_id, std::mem::take(stream));
        let id = context_id as i32;
        let eos = i32::from(end_of_stream);
        let function = phase.export_name();
        let raw = self.invoke(function, context_id, 1, |s| match (&func3, &func2) {
            (Some(f), _) => f.call(s, (id, size, eos)),
            (None, Some(f)) => f.call(s, (id, size)),
            (None, None) => Ok(0),
        });
        let outcome = self.dispatch_effects(Some(context_id));
        let raw = match raw {
            Ok(raw) => raw,
            Err(failure) => {
                *stream = self.take_stream(context_id);
                return Err(failure);
            }
        };
        let Some(action) = Action::from_raw(raw) else {
            *stream = self.take_stream(context_id);
            let failure = PluginFailure::BadReturn {
                plugin: self.env.name.clone(),
                function,
                value: raw,
            };
            self.poison(failure.clone());
            return Err(failure);
        };
        let decided = outcome.local_response.is_some() || outcome.closed || outcome.resumed;
        if action == Action::Continue || decided {
            *stream = self.take_stream(context_id);
        }
        Ok((action, outcome))
    }

    /// Takes a parked stream back out of the instance.
    pub(crate) fn take_stream(&mut self, context_id: u32) -> HttpStream {
        self.store
            .data_mut()
            .streams
            .remove(&context_id)
            .unwrap_or_default()
    }

    /// Ends an HTTP context: `proxy_on_done`, `proxy_on_log` (with the final stream) and
    /// `proxy_on_delete`. Failures are logged: the response has already been decided.
    pub(crate) fn finish_context(&mut self, context_id: u32, stream: Option<&mut HttpStream>) {
        self.waiters.remove(&context_id);
        if !self.store.data().live_contexts.contains(&context_id) || self.failure.is_some() {
            return;
        }
        let id = context_id as i32;
        let mut stream = stream;
        if let Some(s) = stream.as_deref_mut() {
            self.store
                .data_mut()
                .streams
                .insert(context_id, std::mem::take(s));
        }
        if let Some(f) = self.exports.on_done.clone() {
            let _ = self.invoke("proxy_on_done", context_id, 1, |s| f.call(s, id));
        }
        if let Some(f) = self.exports.on_log.clone() {
            let _ = self.invoke("proxy_on_log", context_id, 1, |s| f.call(s, id));
        }
        let parked = self.take_stream(context_id);
        if let Some(s) = stream {
            *s = parked;
        }
        if let Some(f) = self.exports.on_delete.clone() {
            let _ = self.invoke("proxy_on_delete", context_id, 1, |s| f.call(s, id));
        }
        self.store.data_mut().live_contexts.remove(&context_id);
        // Effects of teardown callbacks (e.g. an enqueue) are dispatched; decisions are moot.
        self.dispatch_effects(Some(context_id));
    }

    /// Calls `proxy_on_tick` on the root context.
    pub(crate) fn tick(&mut self) -> Result<(), PluginFailure> {
        if let Some(f) = self.exports.on_tick.clone() {
            self.invoke("proxy_on_tick", ROOT_CONTEXT_ID, 1, |s| {
                f.call(s, ROOT_CONTEXT_ID as i32)
            })?;
        }
        self.dispatch_effects(None);
        Ok(())
    }

    /// Calls `proxy_on_queue_ready` on the root context.
    pub(crate) fn queue_ready(&mut self, ready: QueueReady) -> Result<(), PluginFailure> {
        if let Some(f) = self.exports.on_queue_ready.clone() {
            let args = (ready.root_context_id as i32, ready.queue_id as i32);
            self.invoke("proxy_on_queue_ready", ROOT_CONTEXT_ID, 1, |s| {
                f.call(s, args)
            })?;
        }
        self.dispatch_effects(None);
        Ok(())
    }

    /// Delivers an HTTP call's response (`None`: the call failed, delivered with no headers).
    pub(crate) fn http_call_response(
        &mut self,
        context_id: u32,
        token: u32,
        response: Option<HttpCallResponse>,
    ) -> Result<(), PluginFailure> {
        if context_id != ROOT_CONTEXT_ID && !self.store.data().live_contexts.contains(&context_id) {
            // The stream ended while its call was in flight: Envoy cancels such calls.
            return Ok(());
        }
        let Some(f) = self.exports.on_http_call_response.clone() else {
            return Ok(());
        };
        let counts = response
            .as_ref()
            .map(|r| (r.headers.len(), r.body.len(), r.trailers.len()))
            .unwrap_or_default();
        self.store.data_mut().call_response = response;
        let args = (
            context_id as i32,
            token as i32,
            counts.0 as i32,
            counts.1 as i32,
            counts.2 as i32,
        );
        let result = self.invoke("proxy_on_http_call_response", context_id, 1, |s| {
            f.call(s, args)
        });
        self.store.data_mut().call_response = None;
        self.dispatch_effects(None);
        result
    }

    /// Sends effects to where they take effect; returns the ones for `current`, the context
    /// whose callback just ran.
    fn dispatch_effects(&mut self, current: Option<u32>) -> CallOutcome {
        let mut outcome = CallOutcome::default();
        let effects = std::mem::take(&mut self.store.data_mut().effects);
        for effect in effects {
            let (context_id, event) = match effect {
                Effect::HttpCall {
                    context_id,
                    token,
                    request,
                } => {
                    let _ = self.driver.send(DriverMsg::HttpCall {
                        context_id,
                        token,
                        request,
                    });
                    continue;
                }
                Effect::TickPeriod(period) => {
                    let _ = self.driver.send(DriverMsg::SetTick(period));
                    continue;
                }
                Effect::Resume { context_id } => (context_id, ContextEvent::Resume),
                Effect::LocalResponse {
                    context_id,
                    response,
                } => (context_id, ContextEvent::LocalResponse(response)),
                Effect::Close { context_id } => (context_id, ContextEvent::Close),
            };
            if Some(context_id) == current {
                match event {
                    ContextEvent::Resume => outcome.resumed = true,
                    // The first local response wins, as in Envoy.
                    ContextEvent::LocalResponse(r) => {
                        outcome.local_response.get_or_insert(r);
                    }
                    ContextEvent::Close => outcome.closed = true,
                    ContextEvent::Failed(_) => {}
                }
            } else if let Some(waiter) = self.waiters.get(&context_id) {
                let _ = waiter.send(event);
            }
        }
        outcome
    }
}

fn typed<P: WasmParams, R: WasmResults>(
    instance: &Instance,
    store: &mut Store<HostState>,
    name: &str,
) -> Option<TypedFunc<P, R>> {
    instance.get_typed_func::<P, R>(store, name).ok()
}
