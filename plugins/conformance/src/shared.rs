//! Scenarios whose state outlives one request: `shared_data`, `queue`, `tick` and `lifecycle`.
//! Their values live in the host's shared data, so they prove sharing across every instance
//! of the plugin, not only across the requests of one instance.

use std::cell::Cell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, Status};

use crate::config::{LifecycleConfig, QueueConfig, SharedDataConfig, TickConfig};
use crate::util::{add_to_counter, header_safe_or_absent, read_counter, status_name};

pub struct SharedData {
    config: Rc<SharedDataConfig>,
    context_id: u32,
    /// The counter after this request's increment, and the CAS mismatches it took.
    counter: Option<(u64, u32)>,
    stale_cas: &'static str,
}

impl SharedData {
    pub fn new(config: Rc<SharedDataConfig>, context_id: u32) -> Self {
        Self {
            config,
            context_id,
            counter: None,
            stale_cas: "not-run",
        }
    }

    /// Proves the host checks CAS values: a write with a CAS that a later write made stale
    /// must fail with `CAS_MISMATCH`. The key is this request's own, so concurrent requests
    /// cannot disturb the sequence.
    fn stale_cas_probe(&self) -> &'static str {
        let key = format!("{}.cas_probe.{}", self.config.key, self.context_id);
        if self.set_shared_data(&key, Some(b"1"), None).is_err() {
            return "unconditional-write-rejected";
        }
        let (_, cas) = self.get_shared_data(&key);
        if cas.is_none() {
            return "no-cas";
        }
        if self.set_shared_data(&key, Some(b"2"), cas).is_err() {
            return "fresh-cas-rejected";
        }
        match self.set_shared_data(&key, Some(b"3"), cas) {
            Err(Status::CasMismatch) => "mismatch",
            Ok(()) => "accepted",
            Err(status) => status_name(status),
        }
    }
}

impl Context for SharedData {}

impl HttpContext for SharedData {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.counter = Some(add_to_counter(&self.config.key, 1));
        self.stale_cas = self.stale_cas_probe();
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some((value, mismatches)) = self.counter {
            self.set_http_response_header("x-counter", Some(&value.to_string()));
            self.set_http_response_header("x-cas-retries", Some(&mismatches.to_string()));
        }
        self.set_http_response_header("x-cas-stale", Some(self.stale_cas));
        Action::Continue
    }
}

/// The queue as the root context registered it in `on_configure`.
pub struct QueueHandle {
    pub id: u32,
    /// What `proxy_resolve_shared_queue` said about the same name: `same`, `different` or
    /// `not-found`.
    pub resolved: &'static str,
}

pub struct Queue {
    config: Rc<QueueConfig>,
    handle: Rc<QueueHandle>,
    enqueued: &'static str,
}

impl Queue {
    pub fn new(config: Rc<QueueConfig>, handle: Rc<QueueHandle>) -> Self {
        Self {
            config,
            handle,
            enqueued: "not-run",
        }
    }
}

impl Context for Queue {}

impl HttpContext for Queue {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let path = self
            .get_http_request_header_bytes(":path")
            .unwrap_or_default();
        self.enqueued = match self.enqueue_shared_queue(self.handle.id, Some(&path)) {
            Ok(()) => "ok",
            Err(status) => status_name(status),
        };
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // The root dequeues asynchronously (on_queue_ready): this request's own item may or
        // may not be counted yet.
        let count = read_counter(&self.config.count_key);
        let (last, _cas) = self.get_shared_data(&self.config.last_key);
        self.set_http_response_header("x-queue-enqueue", Some(self.enqueued));
        self.set_http_response_header("x-queue-count", Some(&count.to_string()));
        self.set_http_response_header(
            "x-queue-last",
            Some(&header_safe_or_absent(last.as_deref())),
        );
        self.set_http_response_header("x-queue-resolved", Some(self.handle.resolved));
        Action::Continue
    }
}

/// Drains a queue from the root context's `on_queue_ready`: counts the items into `count_key`
/// and keeps the last one in `last_key`.
pub fn drain_queue(config: &QueueConfig, context: &dyn Context, queue_id: u32) {
    let mut count = 0;
    let mut last = None;
    // Ok(None) is EMPTY; Err is NOT_FOUND (an unknown queue id): either way, done.
    while let Ok(Some(item)) = context.dequeue_shared_queue(queue_id) {
        count += 1;
        last = Some(item);
    }
    if count > 0 {
        add_to_counter(&config.count_key, count);
    }
    if let Some(item) = last {
        // Several roots may drain concurrently; the last writer wins, which is good enough
        // for a value that only shows that items carry their bytes.
        context
            .set_shared_data(&config.last_key, Some(&item), None)
            .expect("write without CAS");
    }
}

pub struct Tick {
    config: Rc<TickConfig>,
    /// Ticks seen by this instance's root context.
    local: Rc<Cell<u64>>,
}

impl Tick {
    pub fn new(config: Rc<TickConfig>, local: Rc<Cell<u64>>) -> Self {
        Self { config, local }
    }
}

impl Context for Tick {}

impl HttpContext for Tick {
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let ticks = read_counter(&self.config.key);
        self.set_http_response_header("x-ticks", Some(&ticks.to_string()));
        self.set_http_response_header("x-ticks-local", Some(&self.local.get().to_string()));
        Action::Continue
    }
}

pub struct Lifecycle {
    config: Rc<LifecycleConfig>,
    context_id: u32,
    root_id: u32,
}

impl Lifecycle {
    pub fn new(config: Rc<LifecycleConfig>, context_id: u32, root_id: u32) -> Self {
        Self {
            config,
            context_id,
            root_id,
        }
    }
}

impl Context for Lifecycle {
    fn on_done(&mut self) -> bool {
        add_to_counter(&self.config.done_key, 1);
        true
    }
}

impl HttpContext for Lifecycle {
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Counts of the requests finished before this one: its own on_done/on_log come later.
        let log_calls = read_counter(&self.config.log_key);
        let done_calls = read_counter(&self.config.done_key);
        self.set_http_response_header("x-log-calls", Some(&log_calls.to_string()));
        self.set_http_response_header("x-done-calls", Some(&done_calls.to_string()));
        self.set_http_response_header("x-context-id", Some(&self.context_id.to_string()));
        self.set_http_response_header("x-root-context-id", Some(&self.root_id.to_string()));
        Action::Continue
    }

    fn on_log(&mut self) {
        add_to_counter(&self.config.log_key, 1);
    }
}
