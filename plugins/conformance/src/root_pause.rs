//! `root_pause`: requests wait (Pause) until the root context is ready, then the root resumes
//! each of them. This is how an OIDC plugin holds requests while it fetches its discovery
//! document on a tick: the root must be able to act on another context's stream through
//! `proxy_set_effective_context`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};

/// The header a request carries upstream: `1` if the root resumed it, `0` if it never waited.
const RESUMED: &str = "x-resumed-by-root";

/// State shared by one instance's root context and its requests.
#[derive(Default)]
pub struct Gate {
    ticks: Cell<u64>,
    open: Cell<bool>,
    /// Requests paused until the gate opens, by context id.
    waiting: RefCell<Vec<u32>>,
}

impl Gate {
    /// Counts a tick of the root context `root_id`; on tick number `needed`, opens the gate and
    /// resumes every waiting request.
    pub fn tick(&self, root_id: u32, needed: u64) {
        self.ticks.set(self.ticks.get() + 1);
        if self.open.get() || self.ticks.get() < needed {
            return;
        }
        self.open.set(true);
        // No more ticks needed: also shows that a period of 0 stops the timer.
        hostcalls::set_tick_period(Duration::ZERO).expect("set_tick_period");
        for id in self.waiting.take() {
            // BAD_ARGUMENT: the request is gone (its client left); nothing to resume.
            if hostcalls::set_effective_context(id).is_err() {
                continue;
            }
            hostcalls::set_map_value(MapType::HttpRequestHeaders, RESUMED, Some("1"))
                .expect("set header");
            hostcalls::resume_http_request().expect("resume");
        }
        // Back to the root's own context for whatever the host does after this callback. An
        // error here would only mean the host does not treat the root as a context to switch
        // to; nothing below depends on it.
        let _ = hostcalls::set_effective_context(root_id);
    }
}

pub struct RootPause {
    gate: Rc<Gate>,
    context_id: u32,
}

impl RootPause {
    pub fn new(gate: Rc<Gate>, context_id: u32) -> Self {
        Self { gate, context_id }
    }
}

impl Context for RootPause {
    fn on_done(&mut self) -> bool {
        // A request that ends while waiting must not be resumed later.
        self.gate
            .waiting
            .borrow_mut()
            .retain(|&id| id != self.context_id);
        true
    }
}

impl HttpContext for RootPause {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.gate.open.get() {
            self.set_http_request_header(RESUMED, Some("0"));
            return Action::Continue;
        }
        self.gate.waiting.borrow_mut().push(self.context_id);
        Action::Pause
    }
}
