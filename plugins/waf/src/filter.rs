//! The request context: inspect the head; buffer the body up to the limit, then inspect the
//! whole request.

use std::rc::Rc;

use paved_waf_engine::{Action, Body, Request};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action as Flow;

use crate::verdict;
use crate::Settings;

/// One request through the WAF.
pub struct WafFilter {
    settings: Rc<Settings>,
    method: String,
    uri: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    /// Set once the final decision is made (the body phase may be called again after).
    decided: bool,
}

impl WafFilter {
    /// A context for one request.
    pub fn new(settings: Rc<Settings>) -> WafFilter {
        WafFilter {
            settings,
            method: String::new(),
            uri: Vec::new(),
            headers: Vec::new(),
            decided: false,
        }
    }

    fn request<'a>(&'a self, body: Option<Body<'a>>) -> Request<'a> {
        Request {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            body,
        }
    }

    /// The final decision, recorded and acted on.
    fn decide(&mut self, body: Option<Body<'_>>) -> Flow {
        self.decided = true;
        let decision = self.settings.waf.inspect(&self.request(body));
        if verdict::apply(self, &decision) {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }
}

impl Context for WafFilter {}

impl HttpContext for WafFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Flow {
        if !self.settings.waf.is_on() {
            self.decided = true;
            return Flow::Continue;
        }
        self.headers = self
            .get_http_request_headers_bytes()
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        let pseudo = |name: &str| {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        self.method = String::from_utf8_lossy(&pseudo(":method")).into_owned();
        self.uri = pseudo(":path");
        if end_of_stream {
            return self.decide(None);
        }
        // A body follows. Deny now if the head alone is enough; otherwise let the headers
        // through (as on Envoy) and hold the body until it has been inspected.
        let head = self.settings.waf.inspect(&self.request(None));
        if head.action == Action::Deny {
            self.decided = true;
            verdict::apply(self, &head);
            return Flow::Pause;
        }
        Flow::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        if self.decided {
            return Flow::Continue;
        }
        let limit = self.settings.max_body_bytes;
        if !end_of_stream && body_size < limit {
            // Pause buffers: the host calls again with the next chunk appended.
            return Flow::Pause;
        }
        let inspected = body_size.min(limit);
        let bytes = if inspected == 0 {
            Vec::new()
        } else {
            self.get_http_request_body(0, inspected).unwrap_or_default()
        };
        // Past the limit the rest is not inspected; the engine flags that (920400).
        let truncated = body_size > limit || (!end_of_stream && body_size >= limit);
        self.decide(Some(Body {
            bytes: &bytes,
            truncated,
        }))
    }
}

/// The context of a plugin whose configuration was refused: fail closed.
pub struct Unconfigured;

impl Context for Unconfigured {}

impl HttpContext for Unconfigured {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Flow {
        let id = verdict::request_id(self);
        self.set_property(vec!["paved", "decision", "waf"], Some(b"deny"));
        verdict::deny(self, &id);
        Flow::Pause
    }
}
