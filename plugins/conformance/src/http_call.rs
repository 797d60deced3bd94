//! `http_call`: pauses the request (or the response), calls a cluster with `proxy_http_call`,
//! copies what came back into headers and resumes the stream from `on_http_call_response`.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::config::{CallPhase, HttpCallConfig};
use crate::util::{header_safe, header_safe_or_absent, status_name};

/// At most this much of the call's body goes into `x-call-body`, to keep headers small.
const BODY_IN_HEADER: usize = 1024;

pub struct HttpCall {
    config: Rc<HttpCallConfig>,
    /// Set once the call is made, so a local response passing through the response phase
    /// does not start a second call.
    dispatched: bool,
}

impl HttpCall {
    pub fn new(config: Rc<HttpCallConfig>) -> Self {
        Self {
            config,
            dispatched: false,
        }
    }

    fn dispatch(&mut self) -> Action {
        if self.dispatched {
            return Action::Continue;
        }
        self.dispatched = true;
        match self.config.call.dispatch(self) {
            Ok(_token) => Action::Pause,
            Err(status) => {
                let headers = vec![("x-dispatch-status", status_name(status))];
                self.send_http_response(503, headers, Some(b"dispatch failed"));
                Action::Pause
            }
        }
    }

    /// Sets `name` on the stream that is paused: request headers or response headers.
    fn report(&self, name: &str, value: &str) {
        match self.config.phase {
            CallPhase::RequestHeaders => self.set_http_request_header(name, Some(value)),
            CallPhase::ResponseHeaders => self.set_http_response_header(name, Some(value)),
        }
    }
}

impl Context for HttpCall {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        num_headers: usize,
        body_size: usize,
        num_trailers: usize,
    ) {
        // The spec's signal of a failed call (no route, refused, timed out).
        if num_headers == 0 {
            self.send_http_response(503, vec![("x-call-failed", "1")], Some(b"call failed"));
            return;
        }
        let status = self.get_http_call_response_header_bytes(":status");
        let headers = self.get_http_call_response_headers_bytes();
        let body = self
            .get_http_call_response_body(0, body_size)
            .unwrap_or_default();
        let trailers = self.get_http_call_response_trailers_bytes();
        self.report("x-call-status", &header_safe_or_absent(status.as_deref()));
        self.report("x-call-headers", &headers.len().to_string());
        self.report("x-call-num-headers", &num_headers.to_string());
        self.report(
            "x-call-body",
            &header_safe(&body[..body.len().min(BODY_IN_HEADER)]),
        );
        self.report("x-call-body-size", &body_size.to_string());
        self.report("x-call-trailers", &trailers.len().to_string());
        self.report("x-call-num-trailers", &num_trailers.to_string());
        if let Some(name) = &self.config.echo_header {
            let value = self.get_http_call_response_header_bytes(name);
            self.report("x-call-header", &header_safe_or_absent(value.as_deref()));
        }
        match self.config.phase {
            CallPhase::RequestHeaders => self.resume_http_request(),
            CallPhase::ResponseHeaders => self.resume_http_response(),
        }
    }
}

impl HttpContext for HttpCall {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match self.config.phase {
            CallPhase::RequestHeaders => self.dispatch(),
            CallPhase::ResponseHeaders => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match self.config.phase {
            CallPhase::RequestHeaders => Action::Continue,
            CallPhase::ResponseHeaders => self.dispatch(),
        }
    }
}
