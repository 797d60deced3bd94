//! `trailers`: reads request and response trailers and adds one to each.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

/// The trailer this scenario adds, to the request and to the response.
const ADDED: &str = "x-conformance-trailer";

#[derive(Default)]
pub struct Trailers {
    /// Sorted names of the request trailers, once `on_http_request_trailers` ran.
    request_trailers: Option<Vec<String>>,
}

impl Context for Trailers {}

impl HttpContext for Trailers {
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let mut names: Vec<String> = self
            .get_http_request_trailers_bytes()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        names.sort_unstable();
        self.request_trailers = Some(names);
        self.add_http_request_trailer(ADDED, "request");
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Request trailers arrive after the request body, so by now they have been seen.
        let (count, names) = match &self.request_trailers {
            Some(names) => (names.len().to_string(), names.join(",")),
            None => ("none".into(), String::new()),
        };
        self.set_http_response_header("x-request-trailers", Some(&count));
        self.set_http_response_header("x-request-trailer-names", Some(&names));
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.add_http_response_trailer(ADDED, "response");
        Action::Continue
    }
}
