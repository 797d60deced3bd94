//! `headers`: Paved's security response headers as a Proxy-Wasm filter.
//!
//! Adds the secure defaults (HSTS, Content-Security-Policy, `nosniff`, Referrer-Policy,
//! Permissions-Policy, COOP/CORP, X-Frame-Options) unless the upstream set its own, replaces
//! the headers the configuration sets (per-app overrides), removes banners (`Server`,
//! `X-Powered-By`), and does CORS when configured: preflights answered by the gateway,
//! origins checked against an allow-list, `Vary: Origin`. Configuration:
//! `paved_model::plugin_config::HeadersConfig` as JSON (`docs/plugins/headers.md`).

mod cors;
mod filter;
mod policy;

use std::rc::Rc;

use log::error;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use policy::Policy;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(HeadersRoot { policy: None }) });
}}

struct HeadersRoot {
    policy: Option<Rc<Policy>>,
}

impl Context for HeadersRoot {}

impl RootContext for HeadersRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        match Policy::from_json(self.get_plugin_configuration().as_deref()) {
            Ok(policy) => {
                self.policy = Some(Rc::new(policy));
                true
            }
            Err(e) => {
                error!("headers: {e}");
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Without a valid configuration the secure defaults still apply.
        let policy = self
            .policy
            .clone()
            .unwrap_or_else(|| Rc::new(Policy::secure_defaults()));
        Some(Box::new(filter::HeadersFilter::new(policy)))
    }
}
