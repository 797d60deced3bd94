//! The plugin configuration: `{"scenario": "<name>", ...parameters}`.
//!
//! Every struct denies unknown fields, so a typo in a test's configuration makes
//! `proxy_on_configure` return false instead of silently running a different test.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::Context;
use proxy_wasm::types::Status;
use serde::Deserialize;

/// Header names and values, applied in name order.
pub type Fields = BTreeMap<String, String>;

/// One scenario and its parameters. Scenarios without parameters are empty struct variants so
/// that they, too, reject unknown fields.
#[derive(Debug, Deserialize)]
#[serde(tag = "scenario", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scenario {
    Headers(Rc<HeadersConfig>),
    LocalResponse(Rc<LocalResponseConfig>),
    RequestBody(Rc<BodyConfig>),
    ResponseBody(Rc<BodyConfig>),
    Trailers {},
    HttpCall(Rc<HttpCallConfig>),
    SharedData(Rc<SharedDataConfig>),
    Queue(Rc<QueueConfig>),
    Tick(Rc<TickConfig>),
    RootPause(Rc<RootPauseConfig>),
    Metrics(Rc<MetricsConfig>),
    Properties(Rc<PropertiesConfig>),
    Log {},
    Time {},
    VmConfig {},
    Lifecycle(Rc<LifecycleConfig>),
    Reset {},
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadersConfig {
    /// The request header reported in `x-seen-header`.
    pub read: String,
    /// Request headers added with `proxy_add_header_map_value` (kept next to existing values).
    pub add: Fields,
    /// Request headers set with `proxy_replace_header_map_value`.
    pub replace: Fields,
    /// Request headers removed with `proxy_remove_header_map_value`.
    pub remove: Vec<String>,
    /// A new `:path` for the request.
    pub path: Option<String>,
    /// Apply all of the above with one `proxy_set_header_map_pairs` instead.
    pub set_all: bool,
    pub response_add: Fields,
    pub response_replace: Fields,
    pub response_remove: Vec<String>,
}

impl Default for HeadersConfig {
    fn default() -> Self {
        Self {
            read: "x-probe".into(),
            add: Fields::new(),
            replace: Fields::new(),
            remove: Vec::new(),
            path: None,
            set_all: false,
            response_add: Fields::new(),
            response_replace: Fields::new(),
            response_remove: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalPhase {
    #[default]
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    HttpCallResponse,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalResponseConfig {
    pub phase: LocalPhase,
    pub status: u32,
    pub headers: Fields,
    pub body: Option<String>,
    /// The call made first when `phase` is `http_call_response`.
    pub call: CallTarget,
}

impl Default for LocalResponseConfig {
    fn default() -> Self {
        Self {
            phase: LocalPhase::default(),
            status: 403,
            headers: Fields::new(),
            body: None,
            call: CallTarget::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Replace the whole body by its ASCII uppercase (same length).
    #[default]
    Uppercase,
    /// Append `marker` (changes the length, so the plugin drops `content-length`).
    Append,
    /// Read the body but leave it as it is.
    None,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BodyConfig {
    pub transform: Transform,
    pub marker: String,
    /// Request bodies only: answer 403 instead when the body contains this.
    pub deny_if_contains: Option<String>,
}

impl Default for BodyConfig {
    fn default() -> Self {
        Self {
            transform: Transform::default(),
            marker: "[conformance]".into(),
            deny_if_contains: None,
        }
    }
}

/// An outbound call made with `proxy_http_call`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallTarget {
    pub cluster: String,
    pub method: String,
    pub path: String,
    pub authority: String,
    pub headers: Fields,
    pub body: Option<String>,
    pub trailers: Fields,
    pub timeout_ms: u64,
}

impl Default for CallTarget {
    fn default() -> Self {
        Self {
            cluster: "callout".into(),
            method: "GET".into(),
            path: "/".into(),
            authority: "callout.conformance".into(),
            headers: Fields::new(),
            body: None,
            trailers: Fields::new(),
            timeout_ms: 1000,
        }
    }
}

impl CallTarget {
    /// Dispatches the call from `context`, so the response comes back to that context.
    pub fn dispatch(&self, context: &dyn Context) -> Result<u32, Status> {
        let mut headers = vec![
            (":method", self.method.as_str()),
            (":path", self.path.as_str()),
            (":authority", self.authority.as_str()),
        ];
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        context.dispatch_http_call(
            &self.cluster,
            headers,
            self.body.as_deref().map(str::as_bytes),
            self.trailers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            Duration::from_millis(self.timeout_ms),
        )
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallPhase {
    #[default]
    RequestHeaders,
    ResponseHeaders,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpCallConfig {
    pub call: CallTarget,
    /// Where the call is made and the stream paused: the request or the response.
    pub phase: CallPhase,
    /// A header of the call's response copied into `x-call-header`.
    pub echo_header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharedDataConfig {
    pub key: String,
}

impl Default for SharedDataConfig {
    fn default() -> Self {
        Self {
            key: "counter".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    /// The VM id given to `proxy_resolve_shared_queue`.
    pub vm_id: String,
    pub count_key: String,
    pub last_key: String,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            name: "conformance_queue".into(),
            vm_id: String::new(),
            count_key: "queue_count".into(),
            last_key: "queue_last".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TickConfig {
    pub period_ms: u64,
    pub key: String,
}

impl Default for TickConfig {
    fn default() -> Self {
        Self {
            period_ms: 20,
            key: "ticks".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RootPauseConfig {
    /// Requests wait until the root context has seen this many ticks.
    pub ticks: u64,
    pub period_ms: u64,
}

impl Default for RootPauseConfig {
    fn default() -> Self {
        Self {
            ticks: 5,
            period_ms: 20,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub counter: String,
    pub gauge: String,
    pub histogram: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            counter: "conformance_requests_total".into(),
            gauge: "conformance_requests_active".into(),
            histogram: "conformance_path_length".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PropertiesConfig {
    /// A dotted path written with `proxy_set_property` and read back.
    pub set_path: String,
    pub set_value: String,
    /// A request header read through the property path `request.headers.<name>`.
    pub header: String,
    /// Prefix of the report headers, so that two plugins of one chain report apart.
    pub prefix: String,
}

impl Default for PropertiesConfig {
    fn default() -> Self {
        Self {
            set_path: "conformance.custom".into(),
            set_value: "custom-value".into(),
            header: "x-probe".into(),
            prefix: "x-prop-".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    pub log_key: String,
    pub done_key: String,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            log_key: "log_calls".into(),
            done_key: "done_calls".into(),
        }
    }
}
