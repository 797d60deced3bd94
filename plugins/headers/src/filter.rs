//! The request context: answer CORS preflights; on the response, apply the header policy.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::cors::Preflight;
use crate::policy::Policy;

/// One request's headers work.
pub struct HeadersFilter {
    policy: Rc<Policy>,
    /// The request's `Origin`, for the CORS headers of the response.
    origin: Option<String>,
}

impl HeadersFilter {
    /// A context for one request.
    pub fn new(policy: Rc<Policy>) -> HeadersFilter {
        HeadersFilter {
            policy,
            origin: None,
        }
    }

    fn apply_policy(&self) {
        for name in &self.policy.remove {
            self.remove_http_response_header(name);
        }
        for (name, value) in &self.policy.set {
            self.set_http_response_header(name, Some(value));
        }
        for (name, value) in &self.policy.defaults {
            if self.get_http_response_header(name).is_none() {
                self.set_http_response_header(name, Some(value));
            }
        }
    }

    fn apply_cors(&self) {
        let Some(cors) = &self.policy.cors else {
            return;
        };
        // The gateway owns CORS for this route: an upstream's own answer is dropped so a
        // permissive upstream cannot widen the policy.
        for name in [
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "access-control-expose-headers",
        ] {
            self.remove_http_response_header(name);
        }
        if let Some(headers) = self
            .origin
            .as_deref()
            .and_then(|o| cors.response_headers(o))
        {
            for (name, value) in headers {
                self.set_http_response_header(&name, Some(&value));
            }
        }
        if cors.varies_by_origin() {
            self.add_http_response_header("vary", "Origin");
        }
    }
}

impl Context for HeadersFilter {}

impl HttpContext for HeadersFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let policy = self.policy.clone();
        let Some(cors) = policy.cors.as_ref() else {
            return Action::Continue;
        };
        self.origin = self.get_http_request_header("origin");
        let method = self.get_http_request_header(":method").unwrap_or_default();
        let requested_method = self.get_http_request_header("access-control-request-method");
        let (Some(origin), Some(requested_method)) = (self.origin.clone(), requested_method) else {
            return Action::Continue;
        };
        if !method.eq_ignore_ascii_case("OPTIONS") {
            return Action::Continue;
        }
        let requested_headers = self
            .get_http_request_header("access-control-request-headers")
            .unwrap_or_default();
        let mut headers = match cors.preflight(&origin, &requested_method, &requested_headers) {
            Preflight::Allow(headers) => headers,
            Preflight::Refuse => {
                self.set_property(vec!["paved", "decision", "cors"], Some(b"deny"));
                self.send_http_response(
                    403,
                    vec![
                        ("vary", "Origin"),
                        ("content-type", "text/plain; charset=utf-8"),
                    ],
                    Some(b"CORS preflight refused.\n"),
                );
                return Action::Pause;
            }
        };
        self.set_property(vec!["paved", "decision", "cors"], Some(b"preflight"));
        headers.extend(self.policy.set.iter().cloned());
        headers.extend(self.policy.defaults.iter().cloned());
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        self.send_http_response(204, pairs, None);
        Action::Pause
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.apply_policy();
        self.apply_cors();
        Action::Continue
    }
}
