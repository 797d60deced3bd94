//! `authz`: Paved's authorization filter as a Proxy-Wasm plugin.
//!
//! It runs after `authn` in the chain and reads the identity authn recorded in the stream's
//! properties (`paved.identity.*`); clients cannot set those. The policy logic is
//! `paved_identity::policy`. A denied request gets 401 (no identity) or 403 with a JSON body
//! naming the reason and the request id, never the policy; every request gets
//! `paved.decision.authz`.

use std::rc::Rc;

use log::warn;
use paved_identity::identity::{Identity, props};
use paved_identity::policy::{Policy, Verdict, denial_body};
use paved_model::plugin_config::AuthzConfig;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Default)]
struct Root {
    policy: Option<Rc<(Policy, String)>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            warn!("authz: no configuration");
            return false;
        };
        match serde_json::from_slice::<AuthzConfig>(&bytes) {
            Ok(config) => {
                self.policy = Some(Rc::new((Policy::new(&config), config.app)));
                true
            }
            Err(err) => {
                warn!("authz: configuration is not valid JSON for authz: {err}");
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Authz {
            policy: self.policy.clone(),
        }))
    }
}

struct Authz {
    /// The policy and the app name (the realm of 401s). `None`: configuration failed, every
    /// request is denied.
    policy: Option<Rc<(Policy, String)>>,
}

impl Authz {
    fn property(&self, path: &str) -> Option<String> {
        self.get_property(path.split('.').collect())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    fn header(&self, name: &str) -> String {
        self.get_http_request_header_bytes(name)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }
}

impl Context for Authz {}

impl HttpContext for Authz {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let verdict = match &self.policy {
            Some(policy) => {
                let identity = Identity::from_properties(|name| self.property(name));
                policy.0.decide(
                    &self.header(":method"),
                    &self.header(":path"),
                    identity.as_ref(),
                )
            }
            None => Verdict::Deny {
                status: 500,
                reason: "authz_not_configured",
            },
        };
        self.set_property(
            props::DECISION_AUTHZ.split('.').collect(),
            Some(verdict.decision().as_bytes()),
        );
        let Verdict::Deny { status, reason } = verdict else {
            return Action::Continue;
        };
        let request_id = self.property("request.id").unwrap_or_default();
        let body = denial_body(status, reason, &request_id);
        let realm = self
            .policy
            .as_ref()
            .map(|p| p.1.clone())
            .unwrap_or_default();
        let challenge = format!(
            "Bearer realm=\"{}\"",
            realm.replace(|c: char| c == '"' || c == '\\' || c.is_control(), "_")
        );
        let mut headers = vec![
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ];
        if status == 401 {
            headers.push(("www-authenticate", challenge.as_str()));
        }
        self.send_http_response(u32::from(status), headers, Some(body.as_bytes()));
        Action::Pause
    }
}
