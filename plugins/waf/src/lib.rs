//! `waf`: Paved's web application firewall as a Proxy-Wasm filter.
//!
//! The detection logic is `paved-waf-engine`; this crate feeds it the request (headers, then
//! the body buffered up to `max_body_bytes`) and acts on its decision: a 403 naming the
//! request ID (never the rules) in block mode, and in every mode the decision recorded for
//! the access log in the properties `paved.decision.waf`, `paved.waf.rules` and
//! `paved.waf.score`. Configuration: `paved_model::plugin_config::WafConfig` as JSON
//! (`docs/plugins/waf.md`); an invalid one fails `on_configure`.

mod filter;
mod verdict;

use std::rc::Rc;

use log::error;
use paved_model::plugin_config::WafConfig;
use paved_waf_engine::Waf;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(WafRoot { settings: None }) });
}}

/// What every request of the route shares: the configured engine and the body limit.
pub struct Settings {
    waf: Waf,
    max_body_bytes: usize,
}

struct WafRoot {
    settings: Option<Rc<Settings>>,
}

/// Reads the configuration: absent or empty means the defaults.
fn settings(bytes: Option<Vec<u8>>) -> Result<Settings, String> {
    let config: WafConfig = match bytes.filter(|b| !b.iter().all(u8::is_ascii_whitespace)) {
        None => WafConfig::default(),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("configuration is not valid JSON for the waf: {e}"))?,
    };
    let waf = Waf::new(&config).map_err(|e| e.to_string())?;
    Ok(Settings {
        waf,
        max_body_bytes: usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX),
    })
}

impl Context for WafRoot {}

impl RootContext for WafRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        match settings(self.get_plugin_configuration()) {
            Ok(s) => {
                self.settings = Some(Rc::new(s));
                true
            }
            Err(e) => {
                error!("waf: {e}");
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Without a configuration (on_configure failed) the host should not create requests;
        // if it does, they are refused rather than let through uninspected.
        Some(match &self.settings {
            Some(settings) => Box::new(filter::WafFilter::new(settings.clone())),
            None => Box::new(filter::Unconfigured),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_configuration_is_the_default_block_mode_waf() {
        let s = settings(None).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.waf.is_on());
        assert_eq!(s.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn invalid_configurations_are_refused_with_the_reason() {
        let err = settings(Some(br#"{"paranoia": 9}"#.to_vec()))
            .err()
            .unwrap_or_default();
        assert!(err.contains("paranoia"), "{err}");
        assert!(settings(Some(b"{".to_vec())).is_err());
    }
}
