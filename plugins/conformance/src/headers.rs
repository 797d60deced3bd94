//! `headers`: reads, adds, replaces and removes request and response headers, pseudo-headers
//! included, and reports what it read in `x-seen-*` headers.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::config::HeadersConfig;
use crate::util::header_safe_or_absent;

/// The header that tells the upstream the map was written whole.
const SET_ALL: &str = "x-set-all";

pub struct Headers {
    config: Rc<HeadersConfig>,
}

impl Headers {
    pub fn new(config: Rc<HeadersConfig>) -> Self {
        Self { config }
    }

    fn read_request(&self, name: &str) -> String {
        header_safe_or_absent(self.get_http_request_header_bytes(name).as_deref())
    }

    /// Applies the configuration one header at a time.
    fn edit_one_by_one(&self, seen: &[(&str, String)]) {
        let config = &self.config;
        for name in &config.remove {
            self.remove_http_request_header(name);
        }
        for (name, value) in &config.replace {
            self.set_http_request_header(name, Some(value));
        }
        for (name, value) in &config.add {
            self.add_http_request_header(name, value);
        }
        if let Some(path) = &config.path {
            self.set_http_request_header(":path", Some(path));
        }
        // Replace, not add: a client sending its own `x-seen-*` must not fool the test.
        for (name, value) in seen {
            self.set_http_request_header(name, Some(value));
        }
    }

    /// Applies the same edits to a copy of the map and writes it back in one call.
    fn edit_whole_map(&self, mut pairs: Vec<(String, Vec<u8>)>, seen: &[(&str, String)]) {
        let config = &self.config;
        // Removed, replaced (re-added below with the new value) or one of our reports.
        let dropped = |name: &str| {
            config.remove.iter().any(|r| r.eq_ignore_ascii_case(name))
                || config.replace.keys().any(|r| r.eq_ignore_ascii_case(name))
                || seen.iter().any(|(r, _)| r.eq_ignore_ascii_case(name))
                || name.eq_ignore_ascii_case(SET_ALL)
        };
        pairs.retain(|(name, _)| !dropped(name));
        if let Some(path) = &config.path {
            match pairs.iter_mut().find(|(name, _)| name == ":path") {
                Some((_, value)) => *value = path.clone().into_bytes(),
                None => pairs.push((":path".into(), path.clone().into_bytes())),
            }
        }
        let extra = config
            .replace
            .iter()
            .chain(&config.add)
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let seen = seen.iter().map(|(k, v)| (*k, v.as_str()));
        let mut map: Vec<(&str, &[u8])> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        map.extend(
            extra
                .chain(seen)
                .chain([(SET_ALL, "1")])
                .map(|(k, v)| (k, v.as_bytes())),
        );
        self.set_http_request_headers_bytes(map);
    }
}

impl Context for Headers {}

impl HttpContext for Headers {
    fn on_http_request_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action {
        let pairs = self.get_http_request_headers_bytes();
        let mut pseudo: Vec<&str> = pairs
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| name.starts_with(':'))
            .collect();
        pseudo.sort_unstable();
        let seen = [
            ("x-seen-method", self.read_request(":method")),
            ("x-seen-path", self.read_request(":path")),
            ("x-seen-authority", self.read_request(":authority")),
            ("x-seen-scheme", self.read_request(":scheme")),
            ("x-seen-header", self.read_request(&self.config.read)),
            ("x-seen-count", pairs.len().to_string()),
            ("x-seen-num-headers", num_headers.to_string()),
            ("x-seen-pseudo", pseudo.join(",")),
            ("x-seen-eos", end_of_stream.to_string()),
        ];
        if self.config.set_all {
            self.edit_whole_map(pairs, &seen);
        } else {
            self.edit_one_by_one(&seen);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let status = self.get_http_response_header_bytes(":status");
        let count = self.get_http_response_headers_bytes().len();
        let config = &self.config;
        for name in &config.response_remove {
            self.remove_http_response_header(name);
        }
        for (name, value) in &config.response_replace {
            self.set_http_response_header(name, Some(value));
        }
        for (name, value) in &config.response_add {
            self.add_http_response_header(name, value);
        }
        self.set_http_response_header(
            "x-seen-status",
            Some(&header_safe_or_absent(status.as_deref())),
        );
        self.set_http_response_header("x-seen-response-count", Some(&count.to_string()));
        Action::Continue
    }
}
