//! A loaded plugin: its compiled module, a pool of instances, and the per-request
//! [`HttpContext`] the gateway drives through the phases of a request.
//!
//! Instances are pooled (one per worker by default); a request's context lives in one
//! instance for its whole life, so root and request contexts share memory as in Envoy. Each
//! instance has a background driver for what does not belong to a request phase: ticks,
//! queue notifications and HTTP call responses.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use wasmtime::Module;

use crate::abi::{Action, LogLevel};
use crate::error::{LoadError, PluginFailure};
use crate::http_call::HttpCallDispatcher;
use crate::instance::{ContextEvent, DriverMsg, Phase, PluginInstance};
use crate::runtime::Runtime;
use crate::shared::QueueReady;
use crate::state::{PluginEnv, PluginLimits};
use crate::stream::{HttpStream, LocalResponse};

/// Everything needed to load a plugin.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// The plugin's name (logs, metrics, `plugin_name`).
    pub name: String,
    /// The root ID (`plugin_root_id`); defaults to the name when empty.
    pub root_id: String,
    /// The VM ID: plugins with the same one share data and queues; defaults to the name.
    pub vm_id: String,
    /// The module's bytes.
    pub wasm: Arc<[u8]>,
    /// The bytes handed to `proxy_on_configure`.
    pub configuration: Vec<u8>,
    /// The bytes handed to `proxy_on_vm_start`.
    pub vm_configuration: Vec<u8>,
    /// Resource limits.
    pub limits: PluginLimits,
    /// How many instances to pool (0: one per available core).
    pub instances: usize,
    /// The most verbose level the plugin's logs are kept at.
    pub log_level: LogLevel,
}

impl PluginSpec {
    /// A spec with default limits for the module `wasm` and configuration bytes.
    pub fn new(
        name: impl Into<String>,
        wasm: impl Into<Arc<[u8]>>,
        configuration: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            name: name.into(),
            root_id: String::new(),
            vm_id: String::new(),
            wasm: wasm.into(),
            configuration: configuration.into(),
            vm_configuration: Vec::new(),
            limits: PluginLimits::default(),
            instances: 0,
            log_level: LogLevel::Info,
        }
    }
}

/// Counters about a plugin's calls, for the gateway's `/metrics`.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Stream callbacks made.
    pub calls: AtomicU64,
    /// Callbacks that failed (trap, timeout, memory, bad return, pause timeout).
    pub failures: AtomicU64,
    /// Total time inside callbacks, in nanoseconds.
    pub call_nanos: AtomicU64,
    /// Instances started (more than the pool size means some were replaced after failures).
    pub instances_started: AtomicU64,
}

/// A loaded plugin; cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    env: Arc<PluginEnv>,
    module: Module,
    runtime: Runtime,
    slots: Vec<Arc<Slot>>,
    next: AtomicUsize,
    stats: PluginStats,
}

struct Slot {
    state: Mutex<SlotState>,
}

struct SlotState {
    instance: Option<PluginInstance>,
    generation: u64,
}

impl SlotState {
    fn live(
        &mut self,
        generation: u64,
        plugin: &str,
    ) -> Result<&mut PluginInstance, PluginFailure> {
        let unavailable = |reason: &str| PluginFailure::Unavailable {
            plugin: plugin.to_owned(),
            reason: reason.to_owned(),
        };
        if self.generation != generation {
            return Err(unavailable("its instance was replaced"));
        }
        match &mut self.instance {
            None => Err(unavailable("no instance")),
            Some(instance) => match &instance.failure {
                Some(failure) => Err(unavailable(&failure.to_string())),
                None => Ok(instance),
            },
        }
    }
}

fn lock(slot: &Slot) -> MutexGuard<'_, SlotState> {
    // A panic while holding the lock cannot leave the slot inconsistent in a way that matters:
    // a failed instance is marked as such and replaced.
    slot.state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Plugin {
    /// Compiles (or takes from the cache) the module, and starts the first instance now, so
    /// a configuration that the plugin rejects fails here rather than on the first request.
    pub(crate) fn load(
        runtime: Runtime,
        spec: PluginSpec,
        http: Arc<dyn HttpCallDispatcher>,
    ) -> Result<Self, LoadError> {
        let module = runtime.compile(&spec.name, &spec.wasm)?;
        let pool_size = if spec.instances == 0 {
            std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2)
        } else {
            spec.instances
        };
        let or_name = |id: String| if id.is_empty() { spec.name.clone() } else { id };
        let env = Arc::new(PluginEnv {
            root_id: or_name(spec.root_id),
            vm_id: or_name(spec.vm_id),
            name: spec.name,
            configuration: spec.configuration,
            vm_configuration: spec.vm_configuration,
            log_level: spec.log_level,
            limits: spec.limits,
            shared: runtime.shared_state(),
            metrics: runtime.metrics(),
            http,
        });
        let slots = (0..pool_size)
            .map(|_| {
                Arc::new(Slot {
                    state: Mutex::new(SlotState {
                        instance: None,
                        generation: 0,
                    }),
                })
            })
            .collect();
        let plugin = Self {
            inner: Arc::new(PluginInner {
                env,
                module,
                runtime,
                slots,
                next: AtomicUsize::new(0),
                stats: PluginStats::default(),
            }),
        };
        let first = plugin.inner.slots[0].clone();
        // Hold the slot while the instance starts: its driver may already have a tick or an
        // HTTP call answer to deliver, and must find the instance stored, not an empty slot.
        let mut state = lock(&first);
        state.generation = 1;
        state.instance = Some(plugin.start_instance(&first, 1)?);
        drop(state);
        Ok(plugin)
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.inner.env.name
    }

    /// Counters about its calls.
    pub fn stats(&self) -> &PluginStats {
        &self.inner.stats
    }

    /// The limits it runs under.
    pub fn limits(&self) -> PluginLimits {
        self.inner.env.limits
    }

    fn start_instance(
        &self,
        slot: &Arc<Slot>,
        generation: u64,
    ) -> Result<PluginInstance, LoadError> {
        let (driver_tx, driver_rx) = unbounded_channel();
        let (queue_tx, queue_rx) = unbounded_channel();
        let rt = &self.inner.runtime;
        let instance = PluginInstance::start(
            rt.engine(),
            rt.linker(),
            &self.inner.module,
            self.inner.env.clone(),
            rt.epoch_tick(),
            driver_tx,
            queue_tx,
        )?;
        self.inner
            .stats
            .instances_started
            .fetch_add(1, Ordering::Relaxed);
        let driver = Driver {
            slot: Arc::downgrade(slot),
            generation,
            http: self.inner.env.http.clone(),
            plugin: self.inner.env.name.clone(),
        };
        rt.background().spawn(driver.run(driver_rx, queue_rx));
        Ok(instance)
    }

    /// Creates the context of a new request in one of the pooled instances, replacing the
    /// instance first if it failed.
    pub fn new_http_context(&self) -> Result<HttpContext, PluginFailure> {
        let index = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.slots.len();
        let slot = self.inner.slots[index].clone();
        let mut state = lock(&slot);
        if state.instance.as_ref().is_none_or(|i| i.failure.is_some()) {
            state.instance = None;
            state.generation += 1;
            let instance = self.start_instance(&slot, state.generation).map_err(|e| {
                PluginFailure::Unavailable {
                    plugin: self.name().to_owned(),
                    reason: e.to_string(),
                }
            })?;
            state.instance = Some(instance);
        }
        let generation = state.generation;
        let instance = state.live(generation, self.name())?;
        let id = instance.create_http_context()?;
        drop(state);
        Ok(HttpContext {
            plugin: self.clone(),
            slot,
            generation,
            id,
            finished: false,
        })
    }
}

/// What a plugin decided about a request or response after a header or trailer callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Continue,
    /// Send this response instead.
    Respond(LocalResponse),
    /// Reset the stream.
    Close,
}

/// What a plugin decided after a body callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyVerdict {
    /// Pass the buffered body on.
    Continue,
    /// Hold the body and call again with the next chunk appended (`StopIterationAndBuffer`).
    Buffer,
    /// Send this response instead.
    Respond(LocalResponse),
    /// Reset the stream.
    Close,
}

/// The context of one request in one plugin; dropping it ends the context.
///
/// Each phase locks the context's instance once, for the callback only; a request that never
/// pauses costs no channel, task or timer.
pub struct HttpContext {
    plugin: Plugin,
    slot: Arc<Slot>,
    generation: u64,
    id: u32,
    finished: bool,
}

/// What a callback left the gateway to do.
enum Step {
    /// The callback decided.
    Decided(Verdict),
    /// The callback paused; the receiver is there when the caller will wait for a decision.
    Paused(Option<UnboundedReceiver<ContextEvent>>),
}

/// Whether the caller of a callback waits when it pauses (or buffers, or goes on).
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnPause {
    Wait,
    DoNotWait,
}

impl HttpContext {
    /// The plugin this context belongs to.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// `proxy_on_request_headers`; waits while the plugin pauses the request.
    pub async fn on_request_headers(
        &mut self,
        stream: &mut HttpStream,
        end_of_stream: bool,
    ) -> Result<Verdict, PluginFailure> {
        self.run_and_wait(Phase::RequestHeaders, stream, end_of_stream)
            .await
    }

    /// `proxy_on_request_body` with the body buffered so far in `stream.request_body`.
    pub async fn on_request_body(
        &mut self,
        stream: &mut HttpStream,
        end_of_stream: bool,
    ) -> Result<BodyVerdict, PluginFailure> {
        // Before the end of the body a pause buffers; at the end the request waits.
        let on_pause = if end_of_stream {
            OnPause::Wait
        } else {
            OnPause::DoNotWait
        };
        match self.step(Phase::RequestBody, stream, end_of_stream, on_pause)? {
            Step::Decided(verdict) => Ok(verdict.into()),
            Step::Paused(events) if end_of_stream => Ok(self.wait(events, stream).await?.into()),
            Step::Paused(_) => {
                self.take_back(stream)?;
                Ok(BodyVerdict::Buffer)
            }
        }
    }

    /// `proxy_on_request_trailers`; waits while the plugin pauses.
    pub async fn on_request_trailers(
        &mut self,
        stream: &mut HttpStream,
    ) -> Result<Verdict, PluginFailure> {
        self.run_and_wait(Phase::RequestTrailers, stream, true)
            .await
    }

    /// `proxy_on_response_headers`; waits while the plugin pauses.
    pub async fn on_response_headers(
        &mut self,
        stream: &mut HttpStream,
        end_of_stream: bool,
    ) -> Result<Verdict, PluginFailure> {
        self.run_and_wait(Phase::ResponseHeaders, stream, end_of_stream)
            .await
    }

    /// `proxy_on_response_body`. Synchronous, because the gateway's response body hook is:
    /// a pause buffers (the plugin is called again with more), and a pause at the end of the
    /// stream continues, since nothing could resume it there.
    pub fn on_response_body(
        &mut self,
        stream: &mut HttpStream,
        end_of_stream: bool,
    ) -> Result<BodyVerdict, PluginFailure> {
        match self.step(
            Phase::ResponseBody,
            stream,
            end_of_stream,
            OnPause::DoNotWait,
        )? {
            Step::Decided(verdict) => Ok(verdict.into()),
            Step::Paused(_) => {
                self.take_back(stream)?;
                Ok(if end_of_stream {
                    BodyVerdict::Continue
                } else {
                    BodyVerdict::Buffer
                })
            }
        }
    }

    /// `proxy_on_response_trailers` (synchronous, like the body).
    pub fn on_response_trailers(
        &mut self,
        stream: &mut HttpStream,
    ) -> Result<Verdict, PluginFailure> {
        match self.step(Phase::ResponseTrailers, stream, true, OnPause::DoNotWait)? {
            Step::Decided(verdict) => Ok(verdict),
            Step::Paused(_) => {
                self.take_back(stream)?;
                Ok(Verdict::Continue)
            }
        }
    }

    /// Ends the context: `proxy_on_done`, `proxy_on_log` with the final stream, `proxy_on_delete`.
    pub fn finish(mut self, stream: &mut HttpStream) {
        self.finished = true;
        let mut state = lock(&self.slot);
        if let Ok(instance) = state.live(self.generation, self.plugin.name()) {
            instance.finish_context(self.id, Some(stream));
        }
    }

    async fn run_and_wait(
        &mut self,
        phase: Phase,
        stream: &mut HttpStream,
        eos: bool,
    ) -> Result<Verdict, PluginFailure> {
        match self.step(phase, stream, eos, OnPause::Wait)? {
            Step::Decided(verdict) => Ok(verdict),
            Step::Paused(events) => self.wait(events, stream).await,
        }
    }

    /// Runs one callback under one hold of the instance's lock. When it pauses and the caller
    /// will wait, the waiter is registered under the same hold, so that no decision made
    /// for the context in between (by a tick, a call response) is missed.
    fn step(
        &mut self,
        phase: Phase,
        stream: &mut HttpStream,
        eos: bool,
        on_pause: OnPause,
    ) -> Result<Step, PluginFailure> {
        let stats = &self.plugin.inner.stats;
        let started = Instant::now();
        let result = {
            let mut state = lock(&self.slot);
            state
                .live(self.generation, self.plugin.name())
                .and_then(|instance| {
                    let (action, outcome) = instance.run_phase(self.id, phase, stream, eos)?;
                    let paused = outcome.local_response.is_none()
                        && !outcome.closed
                        && !outcome.resumed
                        && action == Action::Pause;
                    let events = (paused && on_pause == OnPause::Wait)
                        .then(|| instance.wait_for_events(self.id));
                    Ok((action, outcome, events))
                })
        };
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats
            .call_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let (action, outcome, events) = result.inspect_err(|_| {
            stats.failures.fetch_add(1, Ordering::Relaxed);
        })?;
        Ok(if let Some(response) = outcome.local_response {
            Step::Decided(Verdict::Respond(response))
        } else if outcome.closed {
            Step::Decided(Verdict::Close)
        } else if action == Action::Continue || outcome.resumed {
            Step::Decided(Verdict::Continue)
        } else {
            Step::Paused(events)
        })
    }

    /// Waits (bounded) for another call to decide for the paused context (`events`: its
    /// waiter; none means that the instance went away).
    async fn wait(
        &mut self,
        events: Option<UnboundedReceiver<ContextEvent>>,
        stream: &mut HttpStream,
    ) -> Result<Verdict, PluginFailure> {
        let limit = self.plugin.inner.env.limits.pause_timeout;
        let event = match events {
            Some(mut events) => tokio::time::timeout(limit, events.recv()).await,
            None => Ok(None),
        };
        let verdict = match event {
            Ok(Some(ContextEvent::Resume)) => Ok(Verdict::Continue),
            Ok(Some(ContextEvent::LocalResponse(response))) => Ok(Verdict::Respond(response)),
            Ok(Some(ContextEvent::Close)) => Ok(Verdict::Close),
            Ok(Some(ContextEvent::Failed(failure))) => Err(failure),
            Ok(None) => Err(PluginFailure::Unavailable {
                plugin: self.plugin.name().to_owned(),
                reason: "its instance went away while the request was paused".into(),
            }),
            Err(_) => Err(PluginFailure::PauseTimeout {
                plugin: self.plugin.name().to_owned(),
                limit,
            }),
        };
        // The stream comes back whatever happened: a fail-open filter passes it on intact.
        let taken = self.take_back_even_if_failed(stream);
        let verdict = verdict.map_err(|failure| self.count_failure(failure))?;
        taken?;
        Ok(verdict)
    }

    /// Takes the stream parked in a live instance back into `stream`.
    fn take_back(&mut self, stream: &mut HttpStream) -> Result<(), PluginFailure> {
        let mut state = lock(&self.slot);
        let instance = state.live(self.generation, self.plugin.name())?;
        instance.stop_waiting(self.id);
        *stream = instance.take_stream(self.id);
        Ok(())
    }

    /// Takes the stream back from the instance of this context's generation, failed or not.
    fn take_back_even_if_failed(&mut self, stream: &mut HttpStream) -> Result<(), PluginFailure> {
        let mut state = lock(&self.slot);
        let same_generation = state.generation == self.generation;
        match (&mut state.instance, same_generation) {
            (Some(instance), true) => {
                instance.stop_waiting(self.id);
                *stream = instance.take_stream(self.id);
                Ok(())
            }
            _ => Err(PluginFailure::Unavailable {
                plugin: self.plugin.name().to_owned(),
                reason: "its instance was replaced while the request was paused".into(),
            }),
        }
    }

    fn count_failure(&self, failure: PluginFailure) -> PluginFailure {
        self.plugin
            .inner
            .stats
            .failures
            .fetch_add(1, Ordering::Relaxed);
        failure
    }
}

impl From<Verdict> for BodyVerdict {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Continue => Self::Continue,
            Verdict::Respond(response) => Self::Respond(response),
            Verdict::Close => Self::Close,
        }
    }
}

impl Drop for HttpContext {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut state = lock(&self.slot);
        if let Ok(instance) = state.live(self.generation, self.plugin.name()) {
            instance.finish_context(self.id, None);
        }
    }
}

/// The background work of one instance: ticks, queue notifications, HTTP calls.
struct Driver {
    slot: Weak<Slot>,
    generation: u64,
    http: Arc<dyn HttpCallDispatcher>,
    plugin: String,
}

enum DriverEvent {
    Msg(DriverMsg),
    Queue(QueueReady),
    Tick,
}

impl Driver {
    async fn run(
        self,
        mut msgs: UnboundedReceiver<DriverMsg>,
        mut queue: UnboundedReceiver<QueueReady>,
    ) {
        let mut ticks: Option<tokio::time::Interval> = None;
        loop {
            let event = tokio::select! {
                msg = msgs.recv() => match msg {
                    Some(msg) => DriverEvent::Msg(msg),
                    // The instance is gone: so is its driver.
                    None => return,
                },
                Some(ready) = queue.recv() => DriverEvent::Queue(ready),
                () = next_tick(&mut ticks) => DriverEvent::Tick,
            };
            let alive = match event {
                DriverEvent::Msg(DriverMsg::SetTick(period)) => {
                    ticks = (!period.is_zero()).then(|| {
                        let mut interval =
                            tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        interval
                    });
                    true
                }
                DriverEvent::Msg(DriverMsg::HttpCall {
                    context_id,
                    token,
                    request,
                }) => {
                    let future = self.http.dispatch(*request);
                    let (slot, generation, plugin) =
                        (self.slot.clone(), self.generation, self.plugin.clone());
                    tokio::spawn(async move {
                        let result = future.await;
                        if let Err(error) = &result {
                            tracing::debug!(plugin = %plugin, token, error = %error, "plugin http call failed");
                        }
                        with_instance(&slot, generation, |i| {
                            i.http_call_response(context_id, token, result.ok())
                        });
                    });
                    true
                }
                DriverEvent::Queue(ready) => {
                    with_instance(&self.slot, self.generation, |i| i.queue_ready(ready))
                }
                DriverEvent::Tick => {
                    with_instance(&self.slot, self.generation, PluginInstance::tick)
                }
            };
            if !alive {
                return;
            }
        }
    }
}

async fn next_tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Runs `f` on the slot's instance if it is still the one of `generation`; returns whether
/// it was (a failure inside poisons the instance, and the driver stops).
fn with_instance(
    slot: &Weak<Slot>,
    generation: u64,
    f: impl FnOnce(&mut PluginInstance) -> Result<(), PluginFailure>,
) -> bool {
    let Some(slot) = slot.upgrade() else {
        return false;
    };
    let mut state = lock(&slot);
    match state.live(generation, "") {
        Ok(instance) => f(instance).is_ok(),
        Err(_) => false,
    }
}
