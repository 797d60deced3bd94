//! `authn`: Paved's authentication filter as a Proxy-Wasm plugin.
//!
//! The logic is `paved_identity::authn` (pure, tested natively); this crate is the glue:
//!
//! - the root context fetches the issuer's discovery document and JWKS with
//!   `dispatch_http_call` through the configured cluster, on configure, on a schedule and
//!   when a token names an unknown key; it shares them with the other instances through
//!   shared data;
//! - a request first loses every identity header a client could spoof, then is decided;
//!   decisions that need the issuer's answer (code exchange, userinfo, refresh) pause the
//!   request while the call runs;
//! - requests that arrive before the keys are loaded (or while an unknown key is being
//!   looked up) pause; the root resumes them when the keys arrive, with
//!   `proxy_set_effective_context`, or answers 503 after `max_wait_ms`.

mod host;
mod instance;
mod keys;
mod replay;

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use log::{info, warn};
use paved_identity::authn::{Need, Pending, Resume};
use paved_identity::provider::{Fetch, Loaded};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use host::Applied;
use instance::Instance;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(Root::new(context_id))
    });
}}

/// Tick period while the provider is loading or requests wait: the latency a waiting
/// request can get on top of the provider's own.
const BUSY_TICK: Duration = Duration::from_millis(100);
/// Tick period otherwise (refresh schedule, waiting deadlines).
const IDLE_TICK: Duration = Duration::from_secs(1);

/// How long a call may stay unanswered before it counts as lost: its own timeout (the host
/// answers a timed-out call as failed) plus a margin.
fn call_deadline_ms(inst: &Instance) -> u64 {
    inst.authn.settings().http_timeout_ms + 2000
}

fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

struct Root {
    id: u32,
    instance: Option<Rc<Instance>>,
    /// The provider fetch under way: token, what, when it started (ms).
    fetch: Option<(u32, Fetch, u64)>,
    /// Calls the root made for waiting requests: token → (request, step, started ms).
    calls: HashMap<u32, (u32, Pending, u64)>,
    tick: Duration,
}

impl Root {
    fn new(id: u32) -> Root {
        Root {
            id,
            instance: None,
            fetch: None,
            calls: HashMap::new(),
            tick: Duration::ZERO,
        }
    }

    fn set_tick(&mut self, period: Duration) {
        if self.tick != period {
            self.set_tick_period(period);
            self.tick = period;
        }
    }

    /// Starts the next provider fetch, if one is due.
    fn fetch(&mut self, inst: &Instance, now_ms: u64) {
        let now = now_ms / 1000;
        if let Some((_, what, started)) = self.fetch {
            if now_ms < started + call_deadline_ms(inst) {
                return;
            }
            // The host never answered (it must answer even failed calls): count it as a
            // failure, so the fetcher backs off and tries again instead of waiting forever.
            warn!("authn: no answer to the {what:?} fetch; trying again");
            self.fetch = None;
            let _ = inst.provider.borrow_mut().on_response(what, 0, b"", now);
        }
        // Another instance may have fetched what is due already.
        let due = inst.provider.borrow_mut().next_fetch(now);
        let request = match due {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(err) => {
                warn!("authn: cannot fetch from the identity provider: {err}");
                return;
            }
        };
        let headers = vec![
            (":method", "GET"),
            (":path", request.path.as_str()),
            (":authority", request.authority.as_str()),
            ("accept", "application/json"),
        ];
        let timeout = Duration::from_millis(inst.authn.settings().http_timeout_ms);
        match self.dispatch_http_call(&inst.cluster, headers, None, Vec::new(), timeout) {
            Ok(token) => self.fetch = Some((token, request.what, now_ms)),
            Err(status) => {
                warn!(
                    "authn: calling cluster {:?} failed ({status:?}); is it configured?",
                    inst.cluster
                );
                let _ = inst
                    .provider
                    .borrow_mut()
                    .on_response(request.what, 0, b"", now);
            }
        }
    }

    /// Answers requests that waited too long, and resumes those whose need is met.
    fn serve_waiters(&mut self, inst: &Rc<Instance>, now_ms: u64) {
        let expired = inst.waiting.borrow_mut().expired(now_ms);
        for waiter in expired {
            if hostcalls::set_effective_context(waiter.id).is_ok() {
                host::apply(
                    inst,
                    waiter.id,
                    paved_identity::authn::Outcome::Respond(inst.authn.unavailable()),
                    now_ms,
                    None,
                );
            }
        }
        let ready = {
            let provider = inst.provider.borrow();
            let loaded = provider.provider().is_some();
            let keys_settled = !provider.key_refresh_pending();
            inst.waiting
                .borrow_mut()
                .take_ready(|(need, _)| match need {
                    Need::Provider => loaded,
                    Need::Keys => keys_settled,
                })
        };
        for waiter in ready {
            // BAD_ARGUMENT: the request is gone (its client left).
            if hostcalls::set_effective_context(waiter.id).is_err() {
                continue;
            }
            let now = now_ms / 1000;
            let outcome = match waiter.resume.1 {
                Resume::Request => inst.decide(&host::read_request(), now),
                Resume::Response(pending, response) => inst.continue_call(pending, response, now),
            };
            self.finish(inst, waiter.id, outcome, now_ms);
        }
        let _ = hostcalls::set_effective_context(self.id);
    }

    /// Applies an outcome for a request the root acts on (effective context: the request).
    fn finish(
        &mut self,
        inst: &Instance,
        ctx: u32,
        outcome: paved_identity::authn::Outcome,
        now_ms: u64,
    ) {
        match host::apply(inst, ctx, outcome, now_ms, Some(self.id)) {
            Applied::Continue => {
                if let Err(status) = hostcalls::resume_http_request() {
                    warn!("authn: resuming request {ctx}: {status:?}");
                }
            }
            Applied::Called(token, pending) => {
                self.calls.insert(token, (ctx, pending, now_ms));
            }
            Applied::Done | Applied::Waiting => {}
        }
    }

    /// Answers 503 for requests whose call (made by the root or by the request itself) never
    /// got an answer from the host.
    fn expire_calls(&mut self, inst: &Instance, now_ms: u64) {
        let deadline = call_deadline_ms(inst);
        let mut stuck: Vec<u32> = Vec::new();
        self.calls.retain(|_, (ctx, _, started)| {
            let alive = now_ms < *started + deadline;
            if !alive {
                stuck.push(*ctx);
            }
            alive
        });
        inst.calls_in_flight.borrow_mut().retain(|ctx, started| {
            let alive = now_ms < *started + deadline;
            if !alive {
                stuck.push(*ctx);
            }
            alive
        });
        for ctx in stuck {
            warn!("authn: no answer from the identity provider for request {ctx}");
            if hostcalls::set_effective_context(ctx).is_ok() {
                let reply = paved_identity::authn::Outcome::Respond(inst.authn.unavailable());
                host::apply(inst, ctx, reply, now_ms, None);
            }
        }
        let _ = hostcalls::set_effective_context(self.id);
    }

    fn busy(&self, inst: &Instance) -> bool {
        !inst.waiting.borrow().is_empty()
            || inst.provider.borrow().busy()
            || self.fetch.is_some()
            || !self.calls.is_empty()
            || !inst.calls_in_flight.borrow().is_empty()
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(inst) = self.instance.clone() else {
            return;
        };
        let response = host::call_response(num_headers, body_size);
        let now_ms = now_ms();
        if let Some((t, what, _)) = self.fetch
            && t == token
        {
            self.fetch = None;
            let result = inst.provider.borrow_mut().on_response(
                what,
                response.status,
                &response.body,
                now_ms / 1000,
            );
            match result {
                Ok(Loaded::Discovery) => self.fetch(&inst, now_ms),
                Ok(Loaded::Keys(skipped)) => {
                    for (kid, why) in skipped {
                        warn!("authn: issuer key {kid:?} skipped: {why}");
                    }
                    info!("authn: issuer keys loaded");
                    inst.share();
                }
                Err(err) => warn!("authn: fetching {what:?} from the identity provider: {err}"),
            }
            self.serve_waiters(&inst, now_ms);
            return;
        }
        let Some((ctx, pending, _)) = self.calls.remove(&token) else {
            return;
        };
        if hostcalls::set_effective_context(ctx).is_err() {
            return;
        }
        let outcome = inst.continue_call(pending, response, now_ms / 1000);
        self.finish(&inst, ctx, outcome, now_ms);
        let _ = hostcalls::set_effective_context(self.id);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            warn!("authn: no configuration");
            return false;
        };
        let Some(inst) = Instance::configure(&bytes) else {
            return false;
        };
        // The first fetch starts at the first tick, not here: an answer that came back
        // before the host finished setting the instance up could be lost.
        self.instance = Some(Rc::new(inst));
        self.set_tick(BUSY_TICK);
        true
    }

    fn on_tick(&mut self) {
        let Some(inst) = self.instance.clone() else {
            return;
        };
        let now = now_ms();
        if self.fetch.is_none() && inst.provider.borrow().busy() {
            inst.adopt_shared();
        }
        self.fetch(&inst, now);
        self.expire_calls(&inst, now);
        self.serve_waiters(&inst, now);
        let period = if self.busy(&inst) {
            BUSY_TICK
        } else {
            IDLE_TICK
        };
        self.set_tick(period);
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // A host that creates requests although on_configure failed gets a context that
        // refuses them (fail closed), never one that lets them through.
        Some(Box::new(Request {
            id: context_id,
            instance: self.instance.clone(),
            pending: None,
        }))
    }
}

struct Request {
    id: u32,
    instance: Option<Rc<Instance>>,
    /// The call this request made itself, and what its answer continues.
    pending: Option<(u32, Pending)>,
}

impl Context for Request {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(inst) = self.instance.clone() else {
            return;
        };
        let Some((expected, pending)) = self.pending.take() else {
            return;
        };
        if expected != token {
            self.pending = Some((expected, pending));
            return;
        }
        // Gone from the list: the root already answered this request (no answer in time).
        if inst.calls_in_flight.borrow_mut().remove(&self.id).is_none() {
            return;
        }
        let response = host::call_response(num_headers, body_size);
        let now = now_ms();
        let outcome = inst.continue_call(pending, response, now / 1000);
        match host::apply(&inst, self.id, outcome, now, None) {
            Applied::Continue => self.resume_http_request(),
            Applied::Called(token, pending) => {
                inst.calls_in_flight.borrow_mut().insert(self.id, now);
                self.pending = Some((token, pending));
            }
            Applied::Done | Applied::Waiting => {}
        }
    }

    fn on_done(&mut self) -> bool {
        if let Some(inst) = &self.instance {
            inst.waiting.borrow_mut().remove(self.id);
            inst.response_cookies.borrow_mut().remove(&self.id);
            inst.calls_in_flight.borrow_mut().remove(&self.id);
        }
        true
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(inst) = self.instance.clone() else {
            self.send_http_response(
                500,
                vec![("content-type", "text/plain")],
                Some(b"authn is not configured\n"),
            );
            return Action::Pause;
        };
        host::strip(inst.authn.strip_headers());
        let now = now_ms();
        let outcome = inst.decide(&host::read_request(), now / 1000);
        match host::apply(&inst, self.id, outcome, now, None) {
            Applied::Continue => Action::Continue,
            Applied::Called(token, pending) => {
                inst.calls_in_flight.borrow_mut().insert(self.id, now);
                self.pending = Some((token, pending));
                Action::Pause
            }
            Applied::Done | Applied::Waiting => Action::Pause,
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(inst) = &self.instance
            && let Some(cookies) = inst.response_cookies.borrow_mut().remove(&self.id)
        {
            for cookie in cookies {
                self.add_http_response_header("set-cookie", &cookie);
            }
        }
        Action::Continue
    }
}
