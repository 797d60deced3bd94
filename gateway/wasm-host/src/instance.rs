//! One instance of a plugin: a wasmtime store, the module's exports, and the calls into them.
//!
//! An instance holds one root context and any number of HTTP contexts, as in Envoy. Calls are
//! synchronous and bounded by the store's epoch deadline and memory limiter; a call that
//! fails poisons the instance (its memory may be inconsistent), and the pool replaces it.

use std::sync::Arc;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use wasmtime::{Engine, Instance, Linker, Module, Store, Trap, TypedFunc, WasmParams, WasmResults};

use crate::abi::Action;
use crate::error::{LoadError, PluginFailure};
use crate::http_call::HttpCallResponse;
use crate::shared::QueueReady;
use crate::state::{ContextMap, ContextSet, Effect, HostState, Limiter, PluginEnv};
use crate::stream::{HttpStream, LocalResponse};

type F1 = TypedFunc<i32, ()>;
type F1R = TypedFunc<i32, i32>;
type F2 = TypedFunc<(i32, i32), ()>;
type F2R = TypedFunc<(i32, i32), i32>;
type F3R = TypedFunc<(i32, i32, i32), i32>;
type F5 = TypedFunc<(i32, i32, i32, i32, i32), ()>;

/// The module's exports the host calls; absent optional ones are skipped. Looked up once per
/// instance and called by reference (cloning a `TypedFunc` clones its registered type: a
/// handful of atomic reference counts per call for nothing).
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
        // Boxed: a request is far larger than the other messages on the channel.
        request: Box<crate::http_call::HttpCallRequest>,
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
    /// The contexts that are paused in the gateway, waiting for another call to decide for
    /// them. Registered only when a callback pauses: most requests never do, and need no
    /// channel.
    waiters: ContextMap<UnboundedSender<ContextEvent>>,
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
            live_contexts: ContextSet::default(),
            streams: ContextMap::default(),
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
            waiters: ContextMap::default(),
            driver,
            failure: None,
        };
        let failed = |failure| LoadError::Failed {
            plugin: env.name.clone(),
            failure,
        };
        let root = ROOT_CONTEXT_ID as i32;
        this.invoke("proxy_on_context_create", ROOT_CONTEXT_ID, 10, |s, e| {
            e.on_context_create.call(s, (root, 0))
        })
        .map_err(failed)?;
        if this.exports.on_vm_start.is_some() {
            let size = env.vm_configuration.len() as i32;
            let accepted = this
                .invoke("proxy_on_vm_start", ROOT_CONTEXT_ID, 10, |s, e| {
                    call_or(&e.on_vm_start, s, (root, size), 1)
                })
                .map_err(failed)?;
            if accepted == 0 {
                return Err(LoadError::VmStartRejected {
                    plugin: env.name.clone(),
                });
            }
        }
        if this.exports.on_configure.is_some() {
            let size = env.configuration.len() as i32;
            let accepted = this
                .invoke("proxy_on_configure", ROOT_CONTEXT_ID, 10, |s, e| {
                    call_or(&e.on_configure, s, (root, size), 1)
                })
                .map_err(failed)?;
            if accepted == 0 {
                return Err(LoadError::ConfigureRejected {
                    plugin: env.name.clone(),
                });
            }
        }
        this.dispatch_effects(None);
        Ok(this)
    }

    /// Runs one call into the guest with the deadline set and the effective context chosen;
    /// classifies a failure and poisons the instance with it. `call` gets the store and the
    /// exports, so that it calls the export by reference.
    fn invoke<T>(
        &mut self,
        function: &'static str,
        context_id: u32,
        budgets: u64,
        call: impl FnOnce(&mut Store<HostState>, &Exports) -> wasmtime::Result<T>,
    ) -> Result<T, PluginFailure> {
        if let Some(failure) = &self.failure {
            return Err(PluginFailure::Unavailable {
                plugin: self.env.name.clone(),
                reason: failure.to_string(),
            });
        }
        self.store.set_epoch_deadline(self.deadline_ticks * budgets);
        self.store.data_mut().effective_context = context_id;
        match call(&mut self.store, &self.exports) {
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

    /// Creates an HTTP context (`proxy_on_context_create`).
    pub(crate) fn create_http_context(&mut self) -> Result<u32, PluginFailure> {
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
        let root = ROOT_CONTEXT_ID as i32;
        self.invoke("proxy_on_context_create", id, 1, |s, e| {
            e.on_context_create.call(s, (id as i32, root))
        })?;
        Ok(id)
    }

    /// Registers a context that just paused: what later calls decide for it (continue, a
    /// local response, close, the instance failing) arrives on the returned receiver, until
    /// [`Self::stop_waiting`]. The caller holds the instance's lock from the callback that
    /// paused to here, so nothing decided in between is missed.
    pub(crate) fn wait_for_events(&mut self, context_id: u32) -> UnboundedReceiver<ContextEvent> {
        let (events_tx, events) = unbounded_channel();
        if self.failure.is_none() {
            self.waiters.insert(context_id, events_tx);
        }
        // A failed instance drops the sender at once: the waiting context sees it went away.
        events
    }

    /// Forgets a context's waiter once it stopped waiting; later decisions for it are moot
    /// (as a second `proxy_continue_stream` is in Envoy).
    pub(crate) fn stop_waiting(&mut self, context_id: u32) {
        self.waiters.remove(&context_id);
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
        let exported = match phase {
            Phase::RequestHeaders => self.exports.on_request_headers.is_some(),
            Phase::RequestBody => self.exports.on_request_body.is_some(),
            Phase::RequestTrailers => self.exports.on_request_trailers.is_some(),
            Phase::ResponseHeaders => self.exports.on_response_headers.is_some(),
            Phase::ResponseBody => self.exports.on_response_body.is_some(),
            Phase::ResponseTrailers => self.exports.on_response_trailers.is_some(),
        };
        if !exported {
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
        let raw = self.invoke(function, context_id, 1, |s, e| match phase {
            Phase::RequestHeaders => call_or(&e.on_request_headers, s, (id, size, eos), 0),
            Phase::RequestBody => call_or(&e.on_request_body, s, (id, size, eos), 0),
            Phase::RequestTrailers => call_or(&e.on_request_trailers, s, (id, size), 0),
            Phase::ResponseHeaders => call_or(&e.on_response_headers, s, (id, size, eos), 0),
            Phase::ResponseBody => call_or(&e.on_response_body, s, (id, size, eos), 0),
            Phase::ResponseTrailers => call_or(&e.on_response_trailers, s, (id, size), 0),
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
    /// `proxy_on_delete`, in one step under the caller's one hold of the instance's lock.
    /// Failures are logged: the response has already been decided.
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
        // `proxy_on_done`'s answer (whether the context is done now or will call
        // `proxy_done`) does not matter: the host ends the context either way.
        if self.exports.on_done.is_some() {
            let _ = self.invoke("proxy_on_done", context_id, 1, |s, e| {
                call_or(&e.on_done, s, id, 1)
            });
        }
        if self.exports.on_log.is_some() {
            let _ = self.invoke("proxy_on_log", context_id, 1, |s, e| {
                call_or(&e.on_log, s, id, ())
            });
        }
        let parked = self.take_stream(context_id);
        if let Some(s) = stream {
            *s = parked;
        }
        if self.exports.on_delete.is_some() {
            let _ = self.invoke("proxy_on_delete", context_id, 1, |s, e| {
                call_or(&e.on_delete, s, id, ())
            });
        }
        self.store.data_mut().live_contexts.remove(&context_id);
        // Effects of teardown callbacks (e.g. an enqueue) are dispatched; decisions are moot.
        self.dispatch_effects(Some(context_id));
    }

    /// Calls `proxy_on_tick` on the root context.
    pub(crate) fn tick(&mut self) -> Result<(), PluginFailure> {
        if self.exports.on_tick.is_some() {
            let root = ROOT_CONTEXT_ID as i32;
            self.invoke("proxy_on_tick", ROOT_CONTEXT_ID, 1, |s, e| {
                call_or(&e.on_tick, s, root, ())
            })?;
        }
        self.dispatch_effects(None);
        Ok(())
    }

    /// Calls `proxy_on_queue_ready` on the root context.
    pub(crate) fn queue_ready(&mut self, ready: QueueReady) -> Result<(), PluginFailure> {
        if self.exports.on_queue_ready.is_some() {
            let args = (ready.root_context_id as i32, ready.queue_id as i32);
            self.invoke("proxy_on_queue_ready", ROOT_CONTEXT_ID, 1, |s, e| {
                call_or(&e.on_queue_ready, s, args, ())
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
        if self.exports.on_http_call_response.is_none() {
            return Ok(());
        }
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
        let result = self.invoke("proxy_on_http_call_response", context_id, 1, |s, e| {
            call_or(&e.on_http_call_response, s, args, ())
        });
        self.store.data_mut().call_response = None;
        self.dispatch_effects(None);
        result
    }

    /// Sends effects to where they take effect; returns the ones for `current`, the context
    /// whose callback just ran.
    fn dispatch_effects(&mut self, current: Option<u32>) -> CallOutcome {
        let mut outcome = CallOutcome::default();
        if self.store.data().effects.is_empty() {
            return outcome;
        }
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
                        request: Box::new(request),
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

/// Calls an optional export, or answers `absent` without entering the guest when the module
/// does not export it.
fn call_or<P: WasmParams, R: WasmResults>(
    export: &Option<TypedFunc<P, R>>,
    store: &mut Store<HostState>,
    params: P,
    absent: R,
) -> wasmtime::Result<R> {
    match export {
        Some(f) => f.call(store, params),
        None => Ok(absent),
    }
}

fn typed<P: WasmParams, R: WasmResults>(
    instance: &Instance,
    store: &mut Store<HostState>,
    name: &str,
) -> Option<TypedFunc<P, R>> {
    instance.get_typed_func::<P, R>(store, name).ok()
}
