//! The data a plugin instance's store carries: what host functions read and write.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use wasmtime::{Memory, ResourceLimiter, TypedFunc};
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::abi::LogLevel;
use crate::http_call::{HttpCallDispatcher, HttpCallRequest, HttpCallResponse};
use crate::metrics::MetricsRegistry;
use crate::shared::{QueueReady, SharedState};
use crate::stream::{HttpStream, LocalResponse};

/// Bounds on one plugin's use of the host; every value from a plugin is checked against them.
#[derive(Debug, Clone, Copy)]
pub struct PluginLimits {
    /// The most linear memory an instance may grow to.
    pub memory_bytes: usize,
    /// How long one call into the plugin may run before it is interrupted.
    pub call_timeout: Duration,
    /// How long a paused stream may wait for the plugin to resume it.
    pub pause_timeout: Duration,
    /// The largest body the plugin may buffer or set.
    pub max_body_bytes: usize,
    /// The largest total size of a header map the plugin may produce.
    pub max_header_bytes: usize,
    /// The longest timeout a plugin's HTTP call may ask for.
    pub max_http_call_timeout: Duration,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            call_timeout: Duration::from_millis(200),
            pause_timeout: Duration::from_secs(30),
            max_body_bytes: 8 << 20,
            max_header_bytes: 96 << 10,
            max_http_call_timeout: Duration::from_secs(60),
        }
    }
}

/// What every instance of one plugin shares.
pub(crate) struct PluginEnv {
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    pub configuration: Vec<u8>,
    pub vm_configuration: Vec<u8>,
    pub log_level: LogLevel,
    pub limits: PluginLimits,
    pub shared: Arc<SharedState>,
    pub metrics: Arc<MetricsRegistry>,
    pub http: Arc<dyn HttpCallDispatcher>,
}

/// Something a host function asked for that takes effect after the call returns.
#[derive(Debug)]
pub(crate) enum Effect {
    Resume {
        context_id: u32,
    },
    LocalResponse {
        context_id: u32,
        response: LocalResponse,
    },
    Close {
        context_id: u32,
    },
    HttpCall {
        context_id: u32,
        token: u32,
        request: HttpCallRequest,
    },
    TickPeriod(Duration),
}

/// Enforces the memory limit; remembers that it did, so the failure is named correctly.
pub(crate) struct Limiter {
    pub max_memory: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.exceeded = true;
            wasmtime::bail!(
                "memory limit of {} bytes exceeded (asked for {desired})",
                self.max_memory
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a plugin needs a few thousand at most.
        Ok(desired <= 100_000)
    }
}

/// Hashes context IDs with one multiplication (Fx-style). The maps keyed by them are looked up
/// on every callback and many host calls; SipHash's resistance to chosen keys buys nothing
/// here, since every key inserted is an ID the host allocated (a plugin only looks IDs up).
#[derive(Default, Clone, Copy)]
pub(crate) struct ContextIdHasher(u64);

impl Hasher for ContextIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        // An odd constant with well-spread bits: sequential IDs land in distinct buckets and
        // differ in the top bits hashbrown uses as tags.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// Maps and sets keyed by context ID.
pub(crate) type ContextMap<V> = HashMap<u32, V, BuildHasherDefault<ContextIdHasher>>;
/// See [`ContextMap`].
pub(crate) type ContextSet = HashSet<u32, BuildHasherDefault<ContextIdHasher>>;

/// The store's data.
pub(crate) struct HostState {
    pub wasi: WasiP1Ctx,
    pub limiter: Limiter,
    pub memory: Option<Memory>,
    pub alloc: Option<TypedFunc<i32, i32>>,
    pub env: Arc<PluginEnv>,
    pub root_context_id: u32,
    /// The context host functions act on: the one called, or the one the plugin chose with
    /// `proxy_set_effective_context`.
    pub effective_context: u32,
    /// HTTP contexts created and not yet deleted.
    pub live_contexts: ContextSet,
    /// Streams parked in the instance for a callback or while paused.
    pub streams: ContextMap<HttpStream>,
    /// The response of the HTTP call being delivered by `proxy_on_http_call_response`.
    pub call_response: Option<HttpCallResponse>,
    pub effects: Vec<Effect>,
    pub next_call_token: u32,
    pub queue_notify: UnboundedSender<QueueReady>,
}

impl HostState {
    /// The stream of the effective context, if it is parked here.
    pub fn stream(&self) -> Option<&HttpStream> {
        self.streams.get(&self.effective_context)
    }

    /// The stream of the effective context, mutably.
    pub fn stream_mut(&mut self) -> Option<&mut HttpStream> {
        self.streams.get_mut(&self.effective_context)
    }
}
