//! The request context: flood guard, then every applicable rule, locally or through the
//! cluster-wide service; headers on the response; the in-flight place given back at the end.

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use log::warn;
use paved_model::plugin_config::RateLimitBackend;
use paved_ratelimit_engine::cluster::{self, CallAnswer, CallRequest};
use paved_ratelimit_engine::headers::ceil_seconds;
use paved_ratelimit_engine::key::client_ip;
use paved_ratelimit_engine::{concurrency, Quota};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::metrics::Counter;
use crate::rules::{Facts, Policy};
use crate::shared::HostStore;

const NANOS_PER_MILLI: u64 = 1_000_000;

/// A call to the cluster-wide service awaiting its answer.
struct Pending {
    token: u32,
    rule: usize,
    key: String,
}

/// One request through the rate limiter.
pub struct RatelimitFilter {
    policy: Rc<Policy>,
    /// The in-flight place taken for this request, given back in `on_log`.
    flood_key: Option<String>,
    pending: Vec<Pending>,
    /// Per applicable rule: its name and what it said.
    quotas: Vec<(String, Quota)>,
    /// How the counting was done: `local`, `cluster`, or `local-fallback`.
    backend: &'static str,
    /// Whether the request was paused waiting for the service.
    paused: bool,
}

impl RatelimitFilter {
    /// A context for one request.
    pub fn new(policy: Rc<Policy>) -> RatelimitFilter {
        RatelimitFilter {
            policy,
            flood_key: None,
            pending: Vec::new(),
            quotas: Vec::new(),
            backend: "local",
            paused: false,
        }
    }

    fn now_ns(&self) -> u64 {
        self.get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn property(&self, path: &[&str]) -> Option<String> {
        self.get_property(path.to_vec())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .filter(|v| !v.is_empty())
    }

    fn facts(&self) -> Facts {
        let source = self.property(&["source", "address"]).unwrap_or_default();
        Facts {
            client_ip: client_ip(&source),
            identity: self.property(&["paved", "identity", "subject"]),
            headers: self
                .get_http_request_headers()
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v))
                .collect(),
        }
    }

    fn record(&self, decision: &str, rule: &str) {
        self.set_property(
            vec!["paved", "decision", "ratelimit"],
            Some(decision.as_bytes()),
        );
        self.set_property(vec!["paved", "ratelimit", "rule"], Some(rule.as_bytes()));
        self.set_property(
            vec!["paved", "ratelimit", "backend"],
            Some(self.backend.as_bytes()),
        );
    }

    /// Checks rule `index` against the local counters.
    fn check_locally(&mut self, index: usize, key: &str, now_ns: u64) {
        let policy = self.policy.clone();
        let Some(rule) = policy.rules.get(index) else {
            return;
        };
        match paved_ratelimit_engine::check(&HostStore, &rule.table, &rule.limit, key, now_ns) {
            Ok(updated) => {
                if updated.overflow {
                    Counter::Overflow.increment();
                }
                self.quotas.push((
                    rule.name.clone(),
                    Quota::from_outcome(rule.limit.burst(), &updated.value),
                ));
            }
            Err(e) => {
                // Counting failed (shared data full or contended): let the request through
                // rather than fail every request of the route.
                warn!("ratelimit: rule {}: {e}; request allowed", rule.name);
                Counter::StoreErrors.increment();
            }
        }
    }

    /// Asks the cluster-wide service about rule `index`; falls back to local counting when
    /// the call cannot be made.
    fn check_in_cluster(&mut self, index: usize, key: String, now_ns: u64) {
        let policy = self.policy.clone();
        let Some(rule) = policy.rules.get(index) else {
            return;
        };
        let body = CallRequest {
            key: key.clone(),
            rate_per_second: rule.limit.rate_per_second(),
            burst: rule.limit.burst(),
            cost: 1,
        }
        .to_json();
        let headers = vec![
            (":method", "POST"),
            (":path", cluster::PATH),
            (":authority", cluster::AUTHORITY),
            ("content-type", "application/json"),
        ];
        match self.dispatch_http_call(
            &policy.cluster,
            headers,
            Some(&body),
            vec![],
            policy.cluster_timeout,
        ) {
            Ok(token) => self.pending.push(Pending {
                token,
                rule: index,
                key,
            }),
            Err(status) => {
                warn!(
                    "ratelimit: cannot call cluster {}: {status:?}; counting locally",
                    policy.cluster
                );
                self.degrade(index, &key, now_ns);
            }
        }
    }

    fn degrade(&mut self, index: usize, key: &str, now_ns: u64) {
        Counter::Degraded.increment();
        self.backend = "local-fallback";
        self.check_locally(index, key, now_ns);
    }

    /// Once every rule has answered: 429, or on its way.
    fn decide(&mut self) -> Action {
        let tightest =
            self.quotas
                .iter()
                .cloned()
                .reduce(|a, b| if a.1.tightest(b.1) == a.1 { a } else { b });
        let Some((rule, quota)) = tightest else {
            self.record("allow", "");
            return self.proceed();
        };
        if quota.retry_after_ns.is_none() {
            self.record("allow", &rule);
            return self.proceed();
        }
        self.record("deny", &rule);
        Counter::Denied.increment();
        self.too_many_requests(&quota);
        Action::Pause
    }

    fn proceed(&mut self) -> Action {
        if self.paused {
            self.paused = false;
            self.resume_http_request();
        }
        Action::Continue
    }

    fn too_many_requests(&self, quota: &Quota) {
        let headers = quota.headers();
        let retry = quota.retry_after_ns.map_or(1, |ns| ceil_seconds(ns).max(1));
        let body = format!("Too many requests. Retry in {retry} s.\n");
        let mut pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        pairs.push(("content-type", "text/plain; charset=utf-8"));
        pairs.push(("cache-control", "no-store"));
        self.send_http_response(429, pairs, Some(body.as_bytes()));
    }

    /// The flood guard: takes an in-flight place for the client, or refuses the request.
    fn enter(&mut self, facts: &Facts, now_ns: u64) -> bool {
        let max = self.policy.max_concurrent_per_ip;
        if max == 0 {
            return true;
        }
        let key = self.policy.flood_key(&facts.client_ip);
        match concurrency::acquire(&HostStore, &self.policy.flood_table, &key, max, now_ns) {
            Ok(updated) if updated.value => {
                self.flood_key = Some(key);
                true
            }
            Ok(_) => false,
            Err(e) => {
                warn!("ratelimit: in-flight count: {e}; request allowed");
                Counter::StoreErrors.increment();
                true
            }
        }
    }
}

impl Context for RatelimitFilter {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(at) = self.pending.iter().position(|p| p.token == token) else {
            return;
        };
        let Pending {
            rule: index, key, ..
        } = self.pending.remove(at);
        let status = self.get_http_call_response_header(":status");
        let answer = (num_headers > 0 && status.as_deref() == Some("200"))
            .then(|| self.get_http_call_response_body(0, body_size))
            .flatten()
            .and_then(|body| CallAnswer::from_json(&body));
        let now_ns = self.now_ns();
        match (answer, self.policy.clone().rules.get(index)) {
            (Some(answer), Some(rule)) => {
                if self.backend == "local" {
                    self.backend = "cluster";
                }
                let quota = Quota {
                    limit: rule.limit.burst(),
                    remaining: answer.remaining,
                    reset_ns: answer.reset_ms.saturating_mul(NANOS_PER_MILLI),
                    retry_after_ns: (!answer.allowed)
                        .then(|| answer.retry_after_ms.saturating_mul(NANOS_PER_MILLI)),
                };
                self.quotas.push((rule.name.clone(), quota));
            }
            _ => {
                warn!("ratelimit: cluster {} gave no usable answer (status {status:?}); counting locally", self.policy.cluster);
                self.degrade(index, &key, now_ns);
            }
        }
        if self.pending.is_empty() {
            self.decide();
        }
    }
}

impl HttpContext for RatelimitFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let now_ns = self.now_ns();
        let facts = self.facts();
        if !self.enter(&facts, now_ns) {
            self.record("deny", "max_concurrent_per_ip");
            Counter::FloodDenied.increment();
            let quota = Quota {
                limit: self.policy.max_concurrent_per_ip,
                remaining: 0,
                reset_ns: 0,
                retry_after_ns: Some(1),
            };
            self.too_many_requests(&quota);
            return Action::Pause;
        }
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let path = path.split('?').next().unwrap_or("/").to_string();
        let policy = self.policy.clone();
        let applicable: Vec<(usize, String)> = policy
            .applicable(&path)
            .map(|(i, rule)| (i, rule.key(&policy, &facts)))
            .collect();
        for (index, key) in applicable {
            match policy.backend {
                RateLimitBackend::Local => self.check_locally(index, &key, now_ns),
                RateLimitBackend::Redis => self.check_in_cluster(index, key, now_ns),
            }
        }
        if self.pending.is_empty() {
            return self.decide();
        }
        self.paused = true;
        Action::Pause
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let tightest = self.quotas.iter().map(|(_, q)| *q).reduce(Quota::tightest);
        if let Some(quota) = tightest {
            for (name, value) in quota.headers() {
                if name != "retry-after" {
                    self.set_http_response_header(name, Some(&value));
                }
            }
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let Some(key) = self.flood_key.take() {
            let now_ns = self.now_ns();
            if let Err(e) = concurrency::release(&HostStore, &self.policy.flood_table, &key, now_ns)
            {
                warn!("ratelimit: releasing the in-flight place of {key}: {e}");
                Counter::StoreErrors.increment();
            }
        }
    }
}

/// The context of a plugin whose configuration was refused: fail closed.
pub struct Unconfigured;

impl Context for Unconfigured {}

impl HttpContext for Unconfigured {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.set_property(vec!["paved", "decision", "ratelimit"], Some(b"deny"));
        self.send_http_response(
            503,
            vec![("content-type", "text/plain; charset=utf-8")],
            Some(b"Rate limiter unavailable.\n"),
        );
        Action::Pause
    }
}
