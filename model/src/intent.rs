//! The `paved.yaml` app intent: what a developer declares about an app (who owns it, where it
//! lives, who may enter, how it is protected), from which the gateway configuration is compiled.
//!
//! The format is versioned by `apiVersion: paved.dev/v1`; unknown fields are errors; everything
//! but the name, owners, domains and one upstream has a paved default. [`Intent::from_yaml_str`]
//! decodes and validates, and every error names the file, line, column and field and says what
//! was expected. [`json_schema()`] is the published JSON Schema (`docs/intent.schema.json`).
//!
//! Minimal intent (a fully paved app):
//!
//! ```yaml
//! apiVersion: paved.dev/v1
//! name: hello
//! owners: [alice@example.com]
//! domains: [hello.example.com]
//! upstream: 127.0.0.1:9000
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{ModelError, Problems, decode_yaml, field, index};
use crate::names::{
    check_header_name, check_header_value, check_host_pattern, check_hostname, check_identifier,
    check_path_prefix,
};
use crate::position::PositionMap;
use crate::snapshot::Endpoint;

/// Name given to the upstream declared with the `upstream` shorthand.
pub const DEFAULT_UPSTREAM: &str = "default";
/// Default Content-Security-Policy: same-origin resources only, no framing, no plugins.
pub const DEFAULT_CSP: &str = "default-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'";
/// Default Permissions-Policy: powerful features off.
pub const DEFAULT_PERMISSIONS_POLICY: &str =
    "camera=(), microphone=(), geolocation=(), payment=(), usb=()";
/// Response headers that Paved manages (names accepted by `headers.disable`).
pub const MANAGED_HEADERS: [&str; 8] = [
    "content-security-policy",
    "strict-transport-security",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "permissions-policy",
    "cross-origin-opener-policy",
    "cross-origin-resource-policy",
];

/// An app's intent, the content of its `paved.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "Paved app intent (paved.yaml)")]
pub struct Intent {
    /// Version of this format: `paved.dev/v1`.
    pub api_version: ApiVersion,
    /// App name: lowercase letters, digits and `-`, starting with a letter (a DNS label).
    pub name: String,
    /// People or groups accountable for the app (e-mail addresses or user names); at least one.
    pub owners: Vec<String>,
    /// Team that owns the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// What the app does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The most sensitive data the app handles.
    #[serde(default)]
    pub data_sensitivity: DataSensitivity,
    /// Whether the app is reachable from the internet.
    #[serde(default)]
    pub internet_facing: bool,
    /// Host names the app is served on (exact or `*.example.com`); at least one.
    pub domains: Vec<String>,
    /// Shorthand for one upstream named `default`: `host:port`, a list of them, or an upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamSpec>,
    /// Named upstreams (`name: host:port`, a list, or an upstream).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstreams: BTreeMap<String, UpstreamSpec>,
    /// Routes by path prefix; default: `/` to the only upstream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteIntent>,
    /// Named user populations: who may enter, by groups and claims.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub populations: BTreeMap<String, Population>,
    /// Services allowed in with a bearer token, by OAuth client id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_clients: Vec<ServiceClient>,
    /// Web application firewall.
    #[serde(default)]
    pub waf: Waf,
    /// Rate limits; absent: 100 requests per second per IP with a burst of 100; `[]`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<Vec<RateLimit>>,
    /// Security response headers and overrides.
    #[serde(default)]
    pub headers: Headers,
    /// Names of apps this one talks to or depends on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_apps: Vec<String>,
}

/// Version of the intent format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    /// The first version.
    #[serde(rename = "paved.dev/v1")]
    V1,
}

/// Sensitivity of the data an app handles.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum DataSensitivity {
    /// Meant for anyone.
    Public,
    /// For the company's people.
    #[default]
    Internal,
    /// Customer or business data whose leak hurts.
    Confidential,
    /// Credentials, payment, health or similarly regulated data.
    Restricted,
}

/// An upstream as written: a `host:port` string, a list of them, or a full [`Upstream`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct UpstreamSpec(pub Upstream);

impl std::ops::Deref for UpstreamSpec {
    type Target = Upstream;
    fn deref(&self) -> &Upstream {
        &self.0
    }
}

impl<'de> Deserialize<'de> for UpstreamSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UpstreamSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`host:port`, a list of `host:port`, or an upstream mapping")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(UpstreamSpec(Upstream::with_endpoints(vec![v.to_string()])))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                let endpoints = Vec::<String>::deserialize(SeqAccessDeserializer::new(seq))?;
                Ok(UpstreamSpec(Upstream::with_endpoints(endpoints)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                Upstream::deserialize(MapAccessDeserializer::new(map)).map(UpstreamSpec)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for UpstreamSpec {
    fn schema_name() -> Cow<'static, str> {
        "UpstreamSpec".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let full = generator.subschema_for::<Upstream>();
        json_schema!({
            "description": "An upstream: `host:port`, a list of `host:port`, or an upstream mapping.",
            "oneOf": [
                {"type": "string", "description": "One endpoint, `host:port`."},
                {"type": "array", "items": {"type": "string"}, "description": "Endpoints, `host:port`."},
                full
            ]
        })
    }
}

/// A pool of endpoints serving the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Upstream {
    /// Endpoints as `host:port` (IP address or DNS name); at least one.
    pub endpoints: Vec<String>,
    /// How requests are spread over healthy endpoints.
    #[serde(default)]
    pub load_balancing: LoadBalancing,
    /// Active health check (by default a TCP connect every 5 s).
    #[serde(default)]
    pub health_check: HealthCheck,
    /// Time allowed to connect, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time allowed between two reads, in milliseconds.
    #[serde(default = "default_read_timeout_ms")]
    pub read_timeout_ms: u64,
    /// Retries on another endpoint when connecting fails.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// TLS to the endpoints; absent: plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
}

impl Upstream {
    /// An upstream with these endpoints and every default.
    pub fn with_endpoints(endpoints: Vec<String>) -> Upstream {
        Upstream {
            endpoints,
            load_balancing: LoadBalancing::default(),
            health_check: HealthCheck::default(),
            connect_timeout_ms: default_connect_timeout_ms(),
            read_timeout_ms: default_read_timeout_ms(),
            retries: default_retries(),
            tls: None,
        }
    }
}

fn default_connect_timeout_ms() -> u64 {
    crate::snapshot::DEFAULT_CONNECT_TIMEOUT_MS
}
fn default_read_timeout_ms() -> u64 {
    crate::snapshot::DEFAULT_READ_TIMEOUT_MS
}
fn default_retries() -> u32 {
    crate::snapshot::DEFAULT_RETRIES
}
fn default_true() -> bool {
    true
}
fn default_path() -> String {
    "/".to_string()
}
fn default_index() -> String {
    crate::snapshot::DEFAULT_STATIC_INDEX.to_string()
}

/// Load-balancing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LoadBalancing {
    /// Each healthy endpoint in turn.
    #[default]
    RoundRobin,
    /// The healthy endpoint with the fewest requests in flight.
    LeastConnections,
}

/// Active health checking of an upstream's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct HealthCheck {
    /// Check endpoints at all.
    pub enabled: bool,
    /// HTTP path to `GET` (2xx is healthy); absent: a TCP connect check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Interval between two checks of one endpoint, in milliseconds.
    pub interval_ms: u64,
    /// Time allowed for one check, in milliseconds.
    pub timeout_ms: u64,
    /// Consecutive successes that mark an endpoint healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures that mark an endpoint unhealthy.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            enabled: true,
            path: None,
            interval_ms: crate::snapshot::DEFAULT_HEALTH_INTERVAL_MS,
            timeout_ms: crate::snapshot::DEFAULT_HEALTH_TIMEOUT_MS,
            healthy_threshold: crate::snapshot::DEFAULT_HEALTHY_THRESHOLD,
            unhealthy_threshold: crate::snapshot::DEFAULT_UNHEALTHY_THRESHOLD,
        }
    }
}

/// TLS from the gateway to an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpstreamTls {
    /// Server name to send and verify; absent: the endpoint's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Verify the upstream's certificate.
    #[serde(default = "default_true")]
    pub verify: bool,
}

/// A route: a path prefix and what serves it, and who may enter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteIntent {
    /// Path prefix, matched on whole segments (`/api` matches `/api/x`, not `/apix`).
    #[serde(default = "default_path")]
    pub path: String,
    /// Name of the upstream serving it; default: the only upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Static assets served by the gateway instead of an upstream.
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    pub static_site: Option<StaticSite>,
    /// Domains of the app this route is on; default: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
    /// Open to everyone, no sign-in (identity headers are still stripped).
    #[serde(default)]
    pub public: bool,
    /// Populations admitted; default: every population of the app (any signed-in user when the
    /// app defines none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
}

/// Static assets, such as a single-page app's build output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StaticSite {
    /// Directory on the gateway's host.
    pub root: String,
    /// File served for a directory.
    #[serde(default = "default_index")]
    pub index: String,
    /// Serve the index for paths with no file (client-side routing).
    #[serde(default = "default_true")]
    pub spa_fallback: bool,
}

/// A user population: members of any of `groups`, whose claims match every entry of `claims`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Population {
    /// Identity-provider groups, any of which admits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Claim name → accepted value (or list of values); all must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, OneOrMany>,
}

/// One string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::<String>::deserialize(SeqAccessDeserializer::new(seq)).map(OneOrMany)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for OneOrMany {
    fn schema_name() -> Cow<'static, str> {
        "OneOrMany".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A string or a list of strings.",
            "oneOf": [
                {"type": ["string", "boolean", "integer"]},
                {"type": "array", "items": {"type": "string"}}
            ]
        })
    }
}

/// A service allowed in with a bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceClient {
    /// OAuth client id carried by the token (`client_id` or `azp` claim).
    pub client_id: String,
    /// What the client is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Paths of the routes it may call (each a route's `path`); default: every route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<String>>,
}

/// Web application firewall settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Waf {
    /// `block` (deny with 403), `detect` (log only) or `off`.
    pub mode: WafMode,
    /// Paranoia level, 1 (fewest false positives) to 4 (strictest).
    pub paranoia: u8,
    /// Anomaly score at which a request is blocked.
    pub anomaly_threshold: u32,
    /// Rules turned off, optionally only under some paths or for some parameters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclusions: Vec<WafExclusion>,
}

impl Default for Waf {
    fn default() -> Self {
        Waf {
            mode: WafMode::Block,
            paranoia: 1,
            anomaly_threshold: 5,
            exclusions: Vec::new(),
        }
    }
}

/// What the WAF does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WafMode {
    /// Deny requests whose anomaly score reaches the threshold.
    #[default]
    Block,
    /// Log the rules that fired, let requests through.
    Detect,
    /// No inspection.
    Off,
}

/// A WAF rule exclusion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WafExclusion {
    /// Rule ids or tags (such as `sqli`) to exclude; at least one.
    pub rules: Vec<String>,
    /// Path prefixes where it applies; default: everywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Request parameters excluded from these rules; default: the whole request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<String>,
    /// Why the exclusion is needed (kept for review).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A rate limit: at most `requests` per `per`, counted by `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimit {
    /// Name reported in decisions; default: `limit-<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What is counted together.
    #[serde(default)]
    pub key: RateLimitKey,
    /// Requests allowed per window.
    pub requests: u32,
    /// Window length.
    pub per: RateWindow,
    /// Extra requests allowed in a burst.
    #[serde(default)]
    pub burst: u32,
    /// Path prefixes it applies to; default: every route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

/// What a rate limit counts together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RateLimitKey {
    /// Per client IP address.
    #[default]
    Ip,
    /// Per signed-in user or service client.
    Identity,
    /// All clients of a route together.
    Route,
}

/// Length of a rate-limit window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RateWindow {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
}

impl RateWindow {
    /// The window's length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            RateWindow::Second => 1,
            RateWindow::Minute => 60,
            RateWindow::Hour => 3600,
        }
    }
}

/// Security response headers: paved defaults, overrides, extra and removed headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Headers {
    /// Content-Security-Policy.
    pub csp: String,
    /// Send the CSP as `Content-Security-Policy-Report-Only` (to try a policy out).
    pub csp_report_only: bool,
    /// Strict-Transport-Security.
    pub hsts: Hsts,
    /// X-Frame-Options.
    pub frame_options: String,
    /// Referrer-Policy.
    pub referrer_policy: String,
    /// Permissions-Policy.
    pub permissions_policy: String,
    /// Cross-Origin-Opener-Policy.
    pub cross_origin_opener_policy: String,
    /// Cross-Origin-Resource-Policy.
    pub cross_origin_resource_policy: String,
    /// Extra response headers to set (name → value); not for the managed headers above.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Extra response headers to remove (`Server` and `X-Powered-By` always are).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Managed headers not to send (such as `Content-Security-Policy`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disable: Vec<String>,
    /// Cross-origin resource sharing, when browsers on other origins call the app; absent:
    /// no CORS headers (browsers keep other origins out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
}

/// CORS: which other origins' pages may call the app, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Cors {
    /// Origins allowed: `https://app.example.com`, `https://*.example.com` (one label), or
    /// `*` (any origin; never with `allowCredentials`).
    pub allowed_origins: Vec<String>,
    /// Methods allowed in preflights.
    pub allowed_methods: Vec<String>,
    /// Request headers allowed in preflights.
    pub allowed_headers: Vec<String>,
    /// Response headers scripts may read.
    pub exposed_headers: Vec<String>,
    /// Whether cookies and `Authorization` may be sent.
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight's answer, in seconds (at most 86400).
    pub max_age_secs: u64,
}

impl Default for Cors {
    /// The `headers` plugin's own defaults.
    fn default() -> Self {
        let plugin = crate::plugin_config::CorsConfig::default();
        Cors {
            allowed_origins: plugin.allowed_origins,
            allowed_methods: plugin.allowed_methods,
            allowed_headers: plugin.allowed_headers,
            exposed_headers: plugin.exposed_headers,
            allow_credentials: plugin.allow_credentials,
            max_age_secs: plugin.max_age_secs,
        }
    }
}

impl Default for Headers {
    fn default() -> Self {
        Headers {
            csp: DEFAULT_CSP.into(),
            csp_report_only: false,
            hsts: Hsts::default(),
            frame_options: "DENY".into(),
            referrer_policy: "strict-origin-when-cross-origin".into(),
            permissions_policy: DEFAULT_PERMISSIONS_POLICY.into(),
            cross_origin_opener_policy: "same-origin".into(),
            cross_origin_resource_policy: "same-origin".into(),
            set: BTreeMap::new(),
            remove: Vec::new(),
            disable: Vec::new(),
            cors: None,
        }
    }
}

/// Strict-Transport-Security settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Hsts {
    /// `max-age`, in seconds.
    pub max_age_secs: u64,
    /// Add `includeSubDomains`.
    pub include_subdomains: bool,
    /// Add `preload` (needs `includeSubdomains` and at least one year).
    pub preload: bool,
}

impl Default for Hsts {
    fn default() -> Self {
        Hsts {
            max_age_secs: 31_536_000,
            include_subdomains: true,
            preload: false,
        }
    }
}

impl Hsts {
    /// The header value, such as `max-age=31536000; includeSubDomains`.
    pub fn header_value(&self) -> String {
        let mut v = format!("max-age={}", self.max_age_secs);
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        v
    }
}

/// A route with its target resolved (see [`Intent::resolved_routes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRoute<'a> {
    /// Index in `routes` (`None` for the implicit `/` route).
    pub index: Option<usize>,
    /// The route as written (or the implicit one).
    pub route: Cow<'a, RouteIntent>,
    /// What serves it.
    pub target: ResolvedTarget<'a>,
    /// Domains it is on.
    pub domains: Vec<&'a str>,
}

/// What serves a resolved route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedTarget<'a> {
    /// The upstream of this name.
    Upstream(&'a str),
    /// These static assets.
    Static(&'a StaticSite),
}

impl Intent {
    /// Decodes and validates an intent from YAML (or JSON) text; `source_name` names it in
    /// errors (usually the file name).
    pub fn from_yaml_str(text: &str, source_name: &str) -> Result<Intent, ModelError> {
        let (intent, positions): (Intent, _) = decode_yaml(text, source_name)?;
        intent.check(source_name, Some(&positions))?;
        Ok(intent)
    }

    /// Checks every semantic rule; all problems are reported, each with its field path.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.check("paved.yaml", None)
    }

    /// Every upstream by name, the `upstream` shorthand included as `default`.
    pub fn all_upstreams(&self) -> BTreeMap<&str, &Upstream> {
        let mut all: BTreeMap<&str, &Upstream> = self
            .upstreams
            .iter()
            .map(|(name, spec)| (name.as_str(), &spec.0))
            .collect();
        if let Some(spec) = &self.upstream {
            all.insert(DEFAULT_UPSTREAM, &spec.0);
        }
        all
    }

    /// The routes with targets and domains resolved: an absent `upstream` means the only
    /// upstream, absent `routes` means one `/` route to it. Routes that cannot be resolved
    /// (only in invalid intents) are left out.
    pub fn resolved_routes(&self) -> Vec<ResolvedRoute<'_>> {
        let upstreams = self.all_upstreams();
        let only = if upstreams.len() == 1 {
            upstreams.keys().next().copied()
        } else {
            None
        };
        let all_domains: Vec<&str> = self.domains.iter().map(String::as_str).collect();
        if self.routes.is_empty() {
            return only
                .map(|name| ResolvedRoute {
                    index: None,
                    route: Cow::Owned(RouteIntent {
                        path: default_path(),
                        upstream: None,
                        static_site: None,
                        domains: None,
                        public: false,
                        allow: None,
                    }),
                    target: ResolvedTarget::Upstream(name),
                    domains: all_domains.clone(),
                })
                .into_iter()
                .collect();
        }
        self.routes
            .iter()
            .enumerate()
            .filter_map(|(i, route)| {
                let target = match (&route.upstream, &route.static_site) {
                    (Some(name), None) => {
                        let (key, _) = upstreams.get_key_value(name.as_str())?;
                        ResolvedTarget::Upstream(key)
                    }
                    (None, Some(site)) => ResolvedTarget::Static(site),
                    (None, None) => ResolvedTarget::Upstream(only?),
                    (Some(_), Some(_)) => return None,
                };
                let domains = match &route.domains {
                    Some(list) => list.iter().map(String::as_str).collect(),
                    None => all_domains.clone(),
                };
                Some(ResolvedRoute {
                    index: Some(i),
                    route: Cow::Borrowed(route),
                    target,
                    domains,
                })
            })
            .collect()
    }

    pub(crate) fn check(
        &self,
        source: &str,
        positions: Option<&PositionMap>,
    ) -> Result<(), ModelError> {
        let mut p = Problems::default();
        self.check_identity(&mut p);
        self.check_upstreams(&mut p);
        self.check_routes(&mut p);
        self.check_access(&mut p);
        self.check_waf(&mut p);
        self.check_rate_limits(&mut p);
        self.check_headers(&mut p);
        p.finish(source, positions)
    }

    fn check_identity(&self, p: &mut Problems) {
        if let Err(e) = check_app_name(&self.name) {
            p.push("name", e);
        }
        if self.owners.is_empty() {
            p.push(
                "owners",
                "expected at least one owner (an e-mail address or user name)",
            );
        }
        for (i, owner) in self.owners.iter().enumerate() {
            if owner.trim().is_empty() || owner.chars().any(char::is_whitespace) {
                p.push(
                    index("owners", i),
                    format!(
                        "expected an e-mail address or user name without spaces, found `{owner}`"
                    ),
                );
            }
        }
        if let Some(team) = &self.team
            && let Err(e) = check_identifier(team)
        {
            p.push("team", e);
        }
        if self.domains.is_empty() {
            p.push(
                "domains",
                "expected at least one domain such as `app.example.com`",
            );
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, domain) in self.domains.iter().enumerate() {
            let lower = domain.to_ascii_lowercase();
            if lower == "*" || check_host_pattern(&lower).is_err() {
                p.push(
                    index("domains", i),
                    format!(
                        "expected a domain such as `app.example.com` or `*.preview.example.com`, found `{domain}`"
                    ),
                );
            } else if let Some(first) = seen.insert(lower, i) {
                p.push(
                    index("domains", i),
                    format!("domain `{domain}` is already listed at domains[{first}]"),
                );
            }
        }
        for (i, app) in self.related_apps.iter().enumerate() {
            if let Err(e) = check_app_name(app) {
                p.push(index("relatedApps", i), e);
            } else if *app == self.name {
                p.push(
                    index("relatedApps", i),
                    "expected another app, found this app's own name",
                );
            }
        }
    }

    fn check_upstreams(&self, p: &mut Problems) {
        if let Some(spec) = &self.upstream {
            if self.upstreams.contains_key(DEFAULT_UPSTREAM) {
                p.push(
                    "upstream",
                    "`upstream` declares the upstream `default`, which `upstreams` also declares: keep one",
                );
            }
            check_upstream(p, "upstream", spec);
        }
        for (name, spec) in &self.upstreams {
            let at = field("upstreams", name);
            if let Err(e) = check_identifier(name) {
                p.push(&at, format!("invalid upstream name: {e}"));
            }
            check_upstream(p, &at, spec);
        }
        if self.upstream.is_none() && self.upstreams.is_empty() && self.routes.is_empty() {
            p.push(
                "",
                "expected `upstream`, `upstreams` or `routes` with static assets",
            );
        }
    }

    fn check_routes(&self, p: &mut Problems) {
        let upstreams = self.all_upstreams();
        if self.routes.is_empty() && upstreams.len() > 1 {
            p.push(
                "routes",
                "expected routes saying which upstream serves which path (there are several upstreams)",
            );
        }
        let names = || {
            upstreams
                .keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let app_domains: Vec<String> = self
            .domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        // (path, domain) → route index
        let mut seen: HashMap<(&str, String), usize> = HashMap::new();
        for (i, route) in self.routes.iter().enumerate() {
            let at = index("routes", i);
            if let Err(e) = check_path_prefix(&route.path) {
                p.push(field(&at, "path"), e);
            }
            match (&route.upstream, &route.static_site) {
                (Some(_), Some(_)) => p.push(
                    field(&at, "static"),
                    "expected only one of `upstream` and `static`, found both",
                ),
                (Some(name), None) => {
                    if !upstreams.contains_key(name.as_str()) {
                        let known = if upstreams.is_empty() {
                            "none are declared".to_string()
                        } else {
                            format!("one of {}", names())
                        };
                        p.push(
                            field(&at, "upstream"),
                            format!("expected the name of an upstream ({known}), found `{name}`"),
                        );
                    }
                }
                (None, None) => {
                    if upstreams.len() != 1 {
                        let known = if upstreams.is_empty() {
                            "no upstream is declared".to_string()
                        } else {
                            format!("one of {}", names())
                        };
                        p.push(&at, format!("expected `upstream` ({known}) or `static`"));
                    }
                }
                (None, Some(site)) => {
                    let at = field(&at, "static");
                    if site.root.trim().is_empty() {
                        p.push(
                            field(&at, "root"),
                            "expected a directory, found an empty path",
                        );
                    }
                    if site.index.is_empty() || site.index.contains(['/', '\\']) {
                        p.push(
                            field(&at, "index"),
                            format!(
                                "expected a file name such as `index.html`, found `{}`",
                                site.index
                            ),
                        );
                    }
                }
            }
            let domains: Vec<String> = match &route.domains {
                Some(list) => {
                    if list.is_empty() {
                        p.push(
                            field(&at, "domains"),
                            "expected at least one of the app's domains (or leave `domains` out for all)",
                        );
                    }
                    for (j, d) in list.iter().enumerate() {
                        if !app_domains.contains(&d.to_ascii_lowercase()) {
                            p.push(
                                index(&field(&at, "domains"), j),
                                format!(
                                    "expected one of the app's domains ({}), found `{d}`",
                                    quoted(&self.domains)
                                ),
                            );
                        }
                    }
                    list.iter().map(|d| d.to_ascii_lowercase()).collect()
                }
                None => app_domains.clone(),
            };
            for domain in domains {
                if let Some(first) = seen.insert((route.path.as_str(), domain.clone()), i)
                    && first != i
                {
                    p.push(
                        field(&at, "path"),
                        format!(
                            "path `{}` on `{domain}` is already routed by routes[{first}]",
                            route.path
                        ),
                    );
                    break;
                }
            }
            if route.public && route.allow.is_some() {
                p.push(
                    field(&at, "allow"),
                    "a public route admits everyone: remove `allow` or `public`",
                );
            }
            if let Some(allow) = &route.allow {
                if allow.is_empty() {
                    p.push(
                        field(&at, "allow"),
                        "expected at least one population (an empty list would admit nobody)",
                    );
                }
                for (j, name) in allow.iter().enumerate() {
                    if !self.populations.contains_key(name) {
                        let known = if self.populations.is_empty() {
                            "none are declared in `populations`".to_string()
                        } else {
                            format!(
                                "one of {}",
                                self.populations
                                    .keys()
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        };
                        p.push(
                            index(&field(&at, "allow"), j),
                            format!("expected the name of a population ({known}), found `{name}`"),
                        );
                    }
                }
            }
        }
    }

    fn check_access(&self, p: &mut Problems) {
        for (name, population) in &self.populations {
            let at = field("populations", name);
            if let Err(e) = check_identifier(name) {
                p.push(&at, format!("invalid population name: {e}"));
            }
            if population.groups.is_empty() && population.claims.is_empty() {
                p.push(
                    &at,
                    "expected `groups` or `claims` (a population that matches everyone admits any signed-in user; leave `allow` out instead)",
                );
            }
            for (i, group) in population.groups.iter().enumerate() {
                if group.trim().is_empty() {
                    p.push(
                        index(&field(&at, "groups"), i),
                        "expected a group name, found an empty string",
                    );
                }
            }
            for (claim, values) in &population.claims {
                let c_at = field(&field(&at, "claims"), claim);
                if claim.trim().is_empty() {
                    p.push(&c_at, "expected a claim name, found an empty string");
                }
                if values.0.is_empty() {
                    p.push(&c_at, "expected at least one accepted value");
                }
            }
        }
        let paths: Vec<&str> = if self.routes.is_empty() {
            vec!["/"]
        } else {
            self.routes.iter().map(|r| r.path.as_str()).collect()
        };
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, client) in self.service_clients.iter().enumerate() {
            let at = index("serviceClients", i);
            if client.client_id.trim().is_empty()
                || client.client_id.chars().any(char::is_whitespace)
            {
                p.push(
                    field(&at, "clientId"),
                    format!(
                        "expected an OAuth client id without spaces, found `{}`",
                        client.client_id
                    ),
                );
            } else if let Some(first) = seen.insert(&client.client_id, i) {
                p.push(
                    field(&at, "clientId"),
                    format!(
                        "client `{}` is already listed at serviceClients[{first}]",
                        client.client_id
                    ),
                );
            }
            if let Some(routes) = &client.routes {
                if routes.is_empty() {
                    p.push(
                        field(&at, "routes"),
                        "expected at least one route path (or leave `routes` out for every route)",
                    );
                }
                for (j, path) in routes.iter().enumerate() {
                    if !paths.contains(&path.as_str()) {
                        p.push(
                            index(&field(&at, "routes"), j),
                            format!(
                                "expected the path of one of the app's routes ({}), found `{path}`",
                                paths
                                    .iter()
                                    .map(|p| format!("`{p}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                    }
                }
            }
        }
    }

    fn check_waf(&self, p: &mut Problems) {
        if !(1..=4).contains(&self.waf.paranoia) {
            p.push(
                "waf.paranoia",
                format!(
                    "expected a paranoia level from 1 to 4, found {}",
                    self.waf.paranoia
                ),
            );
        }
        if self.waf.anomaly_threshold == 0 {
            p.push(
                "waf.anomalyThreshold",
                "expected a value greater than 0, found 0",
            );
        }
        for (i, ex) in self.waf.exclusions.iter().enumerate() {
            let at = index("waf.exclusions", i);
            if ex.rules.is_empty() {
                p.push(field(&at, "rules"), "expected at least one rule id or tag");
            }
            for (j, rule) in ex.rules.iter().enumerate() {
                if rule.trim().is_empty() || rule.chars().any(char::is_whitespace) {
                    p.push(
                        index(&field(&at, "rules"), j),
                        format!(
                            "expected a rule id or tag such as `942100` or `sqli`, found `{rule}`"
                        ),
                    );
                }
            }
            for (j, path) in ex.paths.iter().enumerate() {
                if let Err(e) = check_path_prefix(path) {
                    p.push(index(&field(&at, "paths"), j), e);
                }
            }
            for (j, param) in ex.parameters.iter().enumerate() {
                if param.trim().is_empty() {
                    p.push(
                        index(&field(&at, "parameters"), j),
                        "expected a parameter name, found an empty string",
                    );
                }
            }
        }
    }

    fn check_rate_limits(&self, p: &mut Problems) {
        let Some(limits) = &self.rate_limits else {
            return;
        };
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, limit) in limits.iter().enumerate() {
            let at = index("rateLimits", i);
            let name = limit.name.clone().unwrap_or_else(|| format!("limit-{i}"));
            if let Some(given) = &limit.name
                && let Err(e) = check_identifier(given)
            {
                p.push(field(&at, "name"), e);
            } else if let Some(first) = names.insert(name.clone(), i) {
                p.push(
                    field(&at, "name"),
                    format!("rate limit `{name}` is already defined by rateLimits[{first}]"),
                );
            }
            if limit.requests == 0 {
                p.push(
                    field(&at, "requests"),
                    "expected a value greater than 0, found 0",
                );
            }
            for (j, path) in limit.paths.iter().enumerate() {
                if let Err(e) = check_path_prefix(path) {
                    p.push(index(&field(&at, "paths"), j), e);
                }
            }
        }
    }

    fn check_headers(&self, p: &mut Problems) {
        let h = &self.headers;
        for (name, value) in [
            ("csp", &h.csp),
            ("frameOptions", &h.frame_options),
            ("referrerPolicy", &h.referrer_policy),
            ("permissionsPolicy", &h.permissions_policy),
            ("crossOriginOpenerPolicy", &h.cross_origin_opener_policy),
            ("crossOriginResourcePolicy", &h.cross_origin_resource_policy),
        ] {
            let at = field("headers", name);
            if value.trim().is_empty() {
                p.push(
                    at,
                    "expected a header value (to send no header, list it in `headers.disable`)",
                );
            } else if let Err(e) = check_header_value(value) {
                p.push(at, e);
            }
        }
        if h.hsts.preload && (!h.hsts.include_subdomains || h.hsts.max_age_secs < 31_536_000) {
            p.push(
                "headers.hsts.preload",
                "preload needs `includeSubdomains: true` and `maxAgeSecs` of at least 31536000",
            );
        }
        for (name, value) in &h.set {
            let at = field("headers.set", name);
            if let Err(e) = check_header_name(name) {
                p.push(&at, e);
            } else if MANAGED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                p.push(
                    &at,
                    format!("`{name}` is managed by Paved: use its own field under `headers`"),
                );
            } else if let Err(e) = check_header_value(value) {
                p.push(&at, e);
            }
        }
        for (i, name) in h.remove.iter().enumerate() {
            let at = index("headers.remove", i);
            if let Err(e) = check_header_name(name) {
                p.push(at, e);
            } else if MANAGED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                p.push(
                    at,
                    format!("`{name}` is managed by Paved: list it in `headers.disable`"),
                );
            }
        }
        for (i, name) in h.disable.iter().enumerate() {
            if !MANAGED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                p.push(
                    index("headers.disable", i),
                    format!(
                        "expected a managed header ({}), found `{name}`",
                        MANAGED_HEADERS.join(", ")
                    ),
                );
            }
        }
        if let Some(cors) = &h.cors {
            check_cors(cors, p);
        }
    }
}

fn quoted(list: &[String]) -> String {
    list.iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks an app name: a DNS label starting with a letter.
fn check_app_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected lowercase letters, digits and `-`, starting with a letter (at most 63), found `{name}`"
        ))
    }
}

fn check_upstream(p: &mut Problems, at: &str, upstream: &Upstream) {
    if upstream.endpoints.is_empty() {
        p.push(
            field(at, "endpoints"),
            "expected at least one endpoint (`host:port`)",
        );
    }
    for (i, endpoint) in upstream.endpoints.iter().enumerate() {
        if Endpoint(endpoint.clone()).host_port().is_none() {
            // The shorthand forms have no `endpoints` key: report at the upstream itself.
            p.push(
                index(&field(at, "endpoints"), i),
                format!(
                    "expected `host:port` such as `127.0.0.1:9000` or `app.internal:8080`, found `{endpoint}`"
                ),
            );
        }
    }
    for (name, value) in [
        ("connectTimeoutMs", upstream.connect_timeout_ms),
        ("readTimeoutMs", upstream.read_timeout_ms),
    ] {
        if value == 0 {
            p.push(field(at, name), "expected a value greater than 0, found 0");
        }
    }
    let hc = &upstream.health_check;
    let hc_at = field(at, "healthCheck");
    if let Some(path) = &hc.path
        && let Err(e) = check_path_prefix(path)
    {
        p.push(field(&hc_at, "path"), e);
    }
    for (name, value) in [
        ("intervalMs", hc.interval_ms),
        ("timeoutMs", hc.timeout_ms),
        ("healthyThreshold", u64::from(hc.healthy_threshold)),
        ("unhealthyThreshold", u64::from(hc.unhealthy_threshold)),
    ] {
        if value == 0 {
            p.push(
                field(&hc_at, name),
                "expected a value greater than 0, found 0",
            );
        }
    }
    if hc.timeout_ms > hc.interval_ms {
        p.push(
            field(&hc_at, "timeoutMs"),
            format!(
                "expected at most intervalMs ({}), found {}",
                hc.interval_ms, hc.timeout_ms
            ),
        );
    }
    if let Some(tls) = &upstream.tls
        && let Some(sni) = &tls.sni
        && let Err(e) = check_hostname(sni)
    {
        p.push(field(&field(at, "tls"), "sni"), e);
    }
}

/// The JSON Schema of `paved.yaml`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Intent)).unwrap_or_default()
}

/// The JSON Schema of `paved.yaml` as pretty JSON with a final newline, exactly as committed in
/// `docs/intent.schema.json`.
pub fn json_schema_string() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// The checks of `headers.cors`: every origin an origin (or a one-label wildcard, or `*`
/// without credentials), methods HTTP tokens, headers header names, a bounded max age.
fn check_cors(cors: &Cors, p: &mut Problems) {
    if cors.allowed_origins.is_empty() {
        p.push(
            "headers.cors.allowedOrigins",
            "expected at least one origin, such as `https://app.example.com`",
        );
    }
    for (i, origin) in cors.allowed_origins.iter().enumerate() {
        let at = index("headers.cors.allowedOrigins", i);
        if origin == "*" {
            if cors.allow_credentials {
                p.push(
                    at,
                    "`*` cannot be combined with `allowCredentials: true` (browsers refuse it): list the origins",
                );
            }
            continue;
        }
        if let Err(e) = check_origin(origin) {
            p.push(at, e);
        }
    }
    for (i, method) in cors.allowed_methods.iter().enumerate() {
        let token = !method.is_empty()
            && method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            p.push(
                index("headers.cors.allowedMethods", i),
                format!("expected an HTTP method such as `PUT`, found `{method}`"),
            );
        }
    }
    for (list, names) in [
        ("headers.cors.allowedHeaders", &cors.allowed_headers),
        ("headers.cors.exposedHeaders", &cors.exposed_headers),
    ] {
        for (i, name) in names.iter().enumerate() {
            if let Err(e) = check_header_name(name) {
                p.push(index(list, i), e);
            }
        }
    }
    if cors.max_age_secs > 86_400 {
        p.push(
            "headers.cors.maxAgeSecs",
            format!(
                "expected at most 86400 (browsers cap it lower still), found {}",
                cors.max_age_secs
            ),
        );
    }
}

/// An origin: `http(s)://host[:port]`, the host possibly `*.` and one label less.
fn check_origin(origin: &str) -> Result<(), String> {
    let expected = || {
        format!(
            "expected an origin such as `https://app.example.com` or `https://*.example.com`, found `{origin}`"
        )
    };
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Err(expected());
    };
    if scheme != "https" && scheme != "http" {
        return Err(expected());
    }
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    let (host, port) = match host.rsplit_once(':') {
        Some((h, port)) => (h, Some(port)),
        None => (host, None),
    };
    let host_ok = !host.is_empty()
        && !host.starts_with('.')
        && !host.ends_with('.')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if !host_ok || !port_ok {
        return Err(expected());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "\
apiVersion: paved.dev/v1
name: hello
owners: [alice@example.com]
domains: [hello.example.com]
upstream: 127.0.0.1:9000
";

    fn load(text: &str) -> Result<Intent, String> {
        Intent::from_yaml_str(text, "paved.yaml").map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_intent_gets_paved_defaults() {
        let intent = load(MINIMAL).expect("valid");
        assert_eq!(intent.data_sensitivity, DataSensitivity::Internal);
        assert_eq!(intent.waf, Waf::default());
        assert_eq!(intent.headers, Headers::default());
        assert!(intent.rate_limits.is_none());
        let routes = intent.resolved_routes();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].route.path, "/");
        assert_eq!(routes[0].target, ResolvedTarget::Upstream(DEFAULT_UPSTREAM));
        assert_eq!(routes[0].domains, vec!["hello.example.com"]);
        let up = intent.all_upstreams();
        assert_eq!(up[DEFAULT_UPSTREAM].endpoints, vec!["127.0.0.1:9000"]);
        assert!(up[DEFAULT_UPSTREAM].health_check.enabled);
    }

    #[test]
    fn upstream_forms() {
        let text = MINIMAL.replace(
            "upstream: 127.0.0.1:9000\n",
            "upstreams:\n  a: 10.0.0.1:80\n  b: [10.0.0.2:80, 10.0.0.3:80]\n  c:\n    endpoints: [svc.internal:443]\n    tls: {sni: svc.internal}\nroutes:\n  - {path: /a, upstream: a}\n  - {path: /b, upstream: b}\n  - {path: /, upstream: c}\n",
        );
        let intent = load(&text).expect("valid");
        let up = intent.all_upstreams();
        assert_eq!(up["a"].endpoints, vec!["10.0.0.1:80"]);
        assert_eq!(up["b"].endpoints.len(), 2);
        assert_eq!(up["c"].tls.as_ref().map(|t| t.verify), Some(true));
    }

    #[test]
    fn errors_name_file_line_column_and_field() {
        let text = MINIMAL.replace("owners: [alice@example.com]", "owner: alice");
        assert_eq!(
            load(&text).err().unwrap_or_default(),
            "paved.yaml:3:1: owner: unknown field `owner`, expected one of `apiVersion`, `name`, `owners`, `team`, `description`, `dataSensitivity`, `internetFacing`, `domains`, `upstream`, `upstreams`, `routes`, `populations`, `serviceClients`, `waf`, `rateLimits`, `headers`, `relatedApps`"
        );
        let text = MINIMAL.replace("paved.dev/v1", "paved.dev/v2");
        assert_eq!(
            load(&text).err().unwrap_or_default(),
            "paved.yaml:1:13: apiVersion: unknown variant `paved.dev/v2`, expected `paved.dev/v1`"
        );
    }

    #[test]
    fn schema_mentions_every_top_level_field() {
        let schema = json_schema();
        let props = schema["properties"].as_object().map(|o| o.len());
        assert_eq!(props, Some(17));
        assert_eq!(schema["additionalProperties"], serde_json::json!(false));
        assert_eq!(
            schema["required"],
            serde_json::json!(["apiVersion", "name", "owners", "domains"])
        );
    }

    #[test]
    fn committed_schema_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/intent.schema.json");
        let generated = json_schema_string();
        if std::env::var_os("PAVED_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap_or_else(|e| panic!("writing {path}: {e}"));
            return;
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "{path} is out of date: run `PAVED_BLESS=1 cargo test -p paved-model` and commit it"
        );
    }

    #[test]
    fn hsts_values() {
        assert_eq!(
            Hsts::default().header_value(),
            "max-age=31536000; includeSubDomains"
        );
        let h = Hsts {
            max_age_secs: 63_072_000,
            include_subdomains: true,
            preload: true,
        };
        assert_eq!(
            h.header_value(),
            "max-age=63072000; includeSubDomains; preload"
        );
    }
}
