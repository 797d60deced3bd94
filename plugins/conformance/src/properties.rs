//! `properties`: reads Envoy's common attributes with `proxy_get_property`, writes one with
//! `proxy_set_property`, and reports every value in an `x-prop-*` response header.
//!
//! Values are decoded as Envoy encodes them: strings as raw bytes, integers as 8-byte
//! little-endian `i64`, booleans as one byte (0 is false), maps in the ABI's header-map format.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use proxy_wasm::types::{Bytes, Status};

use crate::config::PropertiesConfig;
use crate::util::{ABSENT, header_safe, property_path, status_name};

#[derive(Clone, Copy)]
enum Kind {
    String,
    Int,
    Bool,
    /// Reported as its number of entries.
    Map,
}

/// Read while the request headers are processed.
const REQUEST_PROPERTIES: &[(&str, Kind)] = &[
    ("request.path", Kind::String),
    ("request.url_path", Kind::String),
    ("request.host", Kind::String),
    ("request.scheme", Kind::String),
    ("request.method", Kind::String),
    ("request.protocol", Kind::String),
    ("request.id", Kind::String),
    ("request.headers", Kind::Map),
    ("source.address", Kind::String),
    ("source.port", Kind::Int),
    ("destination.address", Kind::String),
    ("destination.port", Kind::Int),
    ("connection.mtls", Kind::Bool),
    ("plugin_name", Kind::String),
    ("plugin_root_id", Kind::String),
    ("plugin_vm_id", Kind::String),
];

/// Read while the response headers are processed.
const RESPONSE_PROPERTIES: &[(&str, Kind)] = &[
    ("response.code", Kind::Int),
    ("response.headers", Kind::Map),
];

/// `request.path` → `x-prop-request-path`; `plugin_name` → `x-prop-plugin-name` (underscores
/// become dashes too: some proxies drop header names with underscores), with the default
/// `prefix`.
fn header_name(prefix: &str, property: &str) -> String {
    format!("{prefix}{}", property.replace(['.', '_'], "-"))
}

fn invalid(bytes: &[u8]) -> String {
    format!("invalid:{}", header_safe(bytes))
}

/// Number of entries of a map in the ABI's format, if it is one.
fn map_len(bytes: &[u8]) -> Option<usize> {
    // The spec allows an empty map as no bytes or as a single NUL.
    if bytes.is_empty() || bytes == [0] {
        return Some(0);
    }
    let word =
        |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize);
    let count = word(0)?;
    let mut data = 0usize;
    for i in 0..count {
        data = data.checked_add(word(4 + i * 8)? + word(8 + i * 8)? + 2)?;
    }
    (4 + count * 8 + data == bytes.len()).then_some(count)
}

fn render(kind: Kind, value: Result<Option<Bytes>, Status>) -> String {
    let bytes = match value {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return ABSENT.into(),
        Err(status) => return format!("<{}>", status_name(status)),
    };
    match kind {
        Kind::String => header_safe(&bytes),
        Kind::Int => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(raw) => i64::from_le_bytes(raw).to_string(),
            Err(_) => invalid(&bytes),
        },
        Kind::Bool => match bytes.as_slice() {
            [0] => "false".into(),
            [_] => "true".into(),
            _ => invalid(&bytes),
        },
        Kind::Map => map_len(&bytes).map_or_else(|| invalid(&bytes), |len| len.to_string()),
    }
}

/// Reads a property without the SDK's `Context::get_property`, which panics on
/// `SERIALIZATION_FAILURE` and `INTERNAL_FAILURE`: those must show in the report, not trap.
fn read(path: &str) -> Result<Option<Bytes>, Status> {
    hostcalls::get_property(property_path(path))
}

pub struct Properties {
    config: Rc<PropertiesConfig>,
    /// Header name and rendered value of everything read in the request phase.
    report: Vec<(String, String)>,
}

impl Properties {
    pub fn new(config: Rc<PropertiesConfig>) -> Self {
        Self {
            config,
            report: Vec::new(),
        }
    }
}

impl Context for Properties {}

impl HttpContext for Properties {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let config = &self.config;
        let mut report: Vec<(String, String)> = REQUEST_PROPERTIES
            .iter()
            .map(|&(name, kind)| (header_name(&config.prefix, name), render(kind, read(name))))
            .collect();
        // One header through the property tree: `request.headers` indexed by name.
        let mut path = vec!["request", "headers"];
        path.push(&config.header);
        report.push((
            header_name(&config.prefix, "request-header"),
            render(Kind::String, hostcalls::get_property(path)),
        ));
        // The SDK panics unless the host answers OK: a host must accept plugin-defined paths.
        self.set_property(
            property_path(&config.set_path),
            Some(config.set_value.as_bytes()),
        );
        report.push((
            header_name(&config.prefix, "custom"),
            render(Kind::String, read(&config.set_path)),
        ));
        self.report = report;
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let prefix = &self.config.prefix;
        for (name, value) in &self.report {
            self.set_http_response_header(name, Some(value));
        }
        for &(name, kind) in RESPONSE_PROPERTIES {
            let value = render(kind, read(name));
            self.set_http_response_header(&header_name(prefix, name), Some(&value));
        }
        // Still there in a later phase of the same stream.
        let later = render(Kind::String, read(&self.config.set_path));
        self.set_http_response_header(&header_name(prefix, "custom-later"), Some(&later));
        Action::Continue
    }
}
