//! `ratelimit`: Paved's rate-limit filter as a Proxy-Wasm plugin.
//!
//! Every rule of the route's `RatelimitConfig` is a GCRA limit (`paved-ratelimit-engine`)
//! keyed by client IP, identity, API token, route or a header. Counters live in the host's
//! shared data (one bounded table per rule, compare-and-swap updates), so every instance of
//! the plugin in the gateway process counts together. With `backend: redis` the plugin asks
//! the gateway's rate-limit service instead (`dispatch_http_call`, short timeout) and falls
//! back to the local counters when it does not answer. A per-IP cap on requests in flight
//! guards against floods. Every response carries `RateLimit-*` headers; a refusal is a 429
//! with `Retry-After`. The decision is recorded in `paved.decision.ratelimit`.

mod filter;
mod metrics;
mod rules;
mod shared;

use std::rc::Rc;

use log::error;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use rules::Policy;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(RatelimitRoot { policy: None }) });
}}

struct RatelimitRoot {
    policy: Option<Rc<Policy>>,
}

impl Context for RatelimitRoot {}

impl RootContext for RatelimitRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration();
        match Policy::from_json(bytes.as_deref()) {
            Ok(policy) => {
                policy.prepare(&shared::HostStore);
                self.policy = Some(Rc::new(policy));
                true
            }
            Err(e) => {
                error!("ratelimit: {e}");
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(match &self.policy {
            Some(policy) => Box::new(filter::RatelimitFilter::new(policy.clone())),
            None => Box::new(filter::Unconfigured),
        })
    }
}
