//! `accesslog`: Paved's structured access log as a Proxy-Wasm filter.
//!
//! When the response's headers pass it (or in `on_log`, for a response it never saw) it
//! builds one JSON record — time, request ID, app and route, method, path with secret-looking query
//! parameters redacted, status, latency, sizes, client IP, identity subject, and the decision
//! of every filter (`paved.decision.*`, `paved.waf.*`, `paved.ratelimit.*`) — and enqueues it
//! on the shared queue `paved.accesslog` of VM `paved`, which the gateway drains into its
//! durable log. Configuration: `paved_model::plugin_config::AccesslogConfig` as JSON.

mod filter;
mod queue;
mod record;
mod time;

use std::rc::Rc;

use log::error;
use paved_model::plugin_config::AccesslogConfig;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(AccesslogRoot::default()) });
}}

#[derive(Default)]
struct AccesslogRoot {
    config: Rc<AccesslogConfig>,
    queue: Rc<queue::Queue>,
}

impl Context for AccesslogRoot {}

impl RootContext for AccesslogRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self
            .get_plugin_configuration()
            .filter(|b| !b.iter().all(u8::is_ascii_whitespace));
        let config = match bytes {
            None => AccesslogConfig::default(),
            Some(b) => match serde_json::from_slice(&b) {
                Ok(config) => config,
                Err(e) => {
                    error!("accesslog: configuration is not valid JSON for accesslog: {e}");
                    return false;
                }
            },
        };
        self.config = Rc::new(config);
        self.queue.resolve(self);
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(filter::AccesslogFilter::new(
            self.config.clone(),
            self.queue.clone(),
        )))
    }
}
