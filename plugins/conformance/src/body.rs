//! `request_body` and `response_body`: buffer the whole body (Pause until `end_of_stream`),
//! read it, then deny the request or rewrite the body.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::config::{BodyConfig, Transform};

/// What a body becomes; `None` when it stays as it is.
/// Uppercase replaces the whole body (`start` 0, `size` = its length); append writes at
/// `start` = its length with `size` 0: the two forms of `proxy_set_buffer_bytes` Envoy supports.
fn rewrite(config: &BodyConfig, body: &[u8]) -> Option<(usize, usize, Vec<u8>)> {
    match config.transform {
        Transform::Uppercase => Some((0, body.len(), body.to_ascii_uppercase())),
        Transform::Append => Some((body.len(), 0, config.marker.clone().into_bytes())),
        Transform::None => None,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// Per-stream record of what the body callbacks saw, reported in response headers.
#[derive(Default)]
struct Seen {
    calls: u32,
    size: Option<usize>,
}

pub struct RequestBody {
    config: Rc<BodyConfig>,
    seen: Seen,
    denied: bool,
}

impl RequestBody {
    pub fn new(config: Rc<BodyConfig>) -> Self {
        Self {
            config,
            seen: Seen::default(),
            denied: false,
        }
    }
}

impl Context for RequestBody {}

impl HttpContext for RequestBody {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // The body will change length: the upstream must not rely on the client's length.
        if self.config.transform == Transform::Append {
            self.set_http_request_header("content-length", None);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.seen.calls += 1;
        if !end_of_stream {
            // StopIterationAndBuffer: the host keeps the chunks; called again with the total.
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        self.seen.size = Some(body.len());
        if let Some(needle) = &self.config.deny_if_contains {
            if contains(&body, needle.as_bytes()) {
                self.denied = true;
                self.send_http_response(403, vec![("x-denied-by", "conformance")], Some(b"denied"));
                return Action::Pause;
            }
        }
        if let Some((start, size, value)) = rewrite(&self.config, &body) {
            self.set_http_request_body(start, size, &value);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if !self.denied {
            let size = self
                .seen
                .size
                .map_or_else(|| "none".into(), |size| size.to_string());
            self.set_http_response_header("x-request-body-size", Some(&size));
            self.set_http_response_header(
                "x-request-body-calls",
                Some(&self.seen.calls.to_string()),
            );
        }
        Action::Continue
    }
}

pub struct ResponseBody {
    config: Rc<BodyConfig>,
}

impl ResponseBody {
    pub fn new(config: Rc<BodyConfig>) -> Self {
        Self { config }
    }
}

impl Context for ResponseBody {}

impl HttpContext for ResponseBody {
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Headers go out before the body is rewritten: drop the length now (as the SDK's
        // http_body example does), so the client does not wait for the old length.
        if self.config.transform == Transform::Append {
            self.set_http_response_header("content-length", None);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self
            .get_http_response_body(0, body_size)
            .unwrap_or_default();
        if let Some((start, size, value)) = rewrite(&self.config, &body) {
            self.set_http_response_body(start, size, &value);
        }
        Action::Continue
    }
}
