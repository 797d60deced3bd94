//! `local_response`: answers the client with `proxy_send_local_response` from the configured
//! phase, instead of (or in place of) the upstream's response.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::config::{LocalPhase, LocalResponseConfig};
use crate::util::status_name;

pub struct LocalResponse {
    config: Rc<LocalResponseConfig>,
    sent: bool,
}

impl LocalResponse {
    pub fn new(config: Rc<LocalResponseConfig>) -> Self {
        Self {
            config,
            sent: false,
        }
    }

    /// Sends the configured response plus `extra` headers, once.
    fn send(&mut self, extra: &[(&str, &str)]) -> Action {
        if self.sent {
            // A host that runs its local response through this filter again (Envoy does, for
            // response headers) must not find it paused.
            return Action::Continue;
        }
        self.sent = true;
        let mut headers: Vec<(&str, &str)> = self
            .config
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers.extend_from_slice(extra);
        let body = self.config.body.as_deref().map(str::as_bytes);
        self.send_http_response(self.config.status, headers, body);
        // As on Envoy: after a local response, the stream must not go on.
        Action::Pause
    }
}

impl Context for LocalResponse {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        num_headers: usize,
        _body: usize,
        _trailers: usize,
    ) {
        let status = match num_headers {
            0 => None,
            _ => self.get_http_call_response_header(":status"),
        };
        let status = status.unwrap_or_else(|| "failed".into());
        self.send(&[("x-call-status", &status)]);
    }
}

impl HttpContext for LocalResponse {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match self.config.phase {
            LocalPhase::RequestHeaders => self.send(&[]),
            LocalPhase::HttpCallResponse => match self.config.call.dispatch(self) {
                Ok(_token) => Action::Pause,
                Err(status) => {
                    self.sent = true;
                    let headers = vec![("x-dispatch-status", status_name(status))];
                    self.send_http_response(503, headers, Some(b"dispatch failed"));
                    Action::Pause
                }
            },
            _ => Action::Continue,
        }
    }

    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        // On the first chunk, not at the end: the host must cope with a body still arriving.
        match self.config.phase {
            LocalPhase::RequestBody => self.send(&[]),
            _ => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match self.config.phase {
            LocalPhase::ResponseHeaders => self.send(&[]),
            _ => Action::Continue,
        }
    }
}
