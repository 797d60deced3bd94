//! The gateway configuration snapshot: the one model the gateway runs from, read from a YAML
//! file (`paved gateway --config FILE`) or pushed by the control plane as JSON.
//!
//! Decoding rejects unknown fields and fills defaults; [`Snapshot::validate`] then checks the
//! rules that span fields (names unique, references resolve, addresses and patterns parse).
//! Every error names the field path and, for YAML text, the line and column.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[cfg(feature = "yaml")]
use crate::error::decode_yaml;
use crate::error::{ModelError, Problems, decode_json, field, index};
use crate::names::{check_host_pattern, check_hostname, check_identifier, check_path_prefix};
use crate::position::PositionMap;

/// Default address of the admin endpoint (`/healthz`, `/readyz`, `/metrics`).
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9901";
/// Default time allowed to open a connection to an upstream endpoint, in milliseconds.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Default time allowed between two reads from an upstream, in milliseconds.
pub const DEFAULT_READ_TIMEOUT_MS: u64 = 60_000;
/// Default number of retries on another endpoint when connecting fails.
pub const DEFAULT_RETRIES: u32 = 1;
/// Default interval between two active health checks of one endpoint, in milliseconds.
pub const DEFAULT_HEALTH_INTERVAL_MS: u64 = 5_000;
/// Default time allowed for one health check, in milliseconds.
pub const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 1_000;
/// Default number of consecutive successes that mark an endpoint healthy.
pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 2;
/// Default number of consecutive failures that mark an endpoint unhealthy.
pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 3;
/// Default file served for a directory of a static site.
pub const DEFAULT_STATIC_INDEX: &str = "index.html";
/// Default memory limit of one plugin instance, in bytes, when a plugin sets no limit.
pub const DEFAULT_PLUGIN_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// Default time limit of one call into a plugin, in milliseconds, when a plugin sets no limit.
pub const DEFAULT_PLUGIN_CALL_TIMEOUT_MS: u64 = 100;

/// The complete configuration of a gateway at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Version of this snapshot, acknowledged back to the control plane.
    #[serde(default)]
    pub version: SnapshotVersion,
    /// The admin endpoint.
    #[serde(default)]
    pub admin: Admin,
    /// Addresses the gateway accepts traffic on.
    pub listeners: Vec<Listener>,
    /// Upstream pools, also the targets of `proxy_http_call`.
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// Routes by host and path prefix.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// Version of a snapshot: a number or a string id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SnapshotVersion {
    /// A numeric version.
    Number(u64),
    /// An opaque version id (a hash, a timestamp, ...).
    Id(String),
}

impl Default for SnapshotVersion {
    fn default() -> Self {
        SnapshotVersion::Number(0)
    }
}

impl fmt::Display for SnapshotVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotVersion::Number(n) => write!(f, "{n}"),
            SnapshotVersion::Id(s) => f.write_str(s),
        }
    }
}

impl Serialize for SnapshotVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SnapshotVersion::Number(n) => s.serialize_u64(*n),
            SnapshotVersion::Id(id) => s.serialize_str(id),
        }
    }
}

impl<'de> Deserialize<'de> for SnapshotVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SnapshotVersion;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a version number or a version id string")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(SnapshotVersion::Number(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(SnapshotVersion::Number)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(SnapshotVersion::Id(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The admin endpoint: `/healthz`, `/readyz` and Prometheus `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Address of the admin listener.
    #[serde(deserialize_with = "socket_addr")]
    pub address: SocketAddr,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            address: SocketAddr::from(([127, 0, 0, 1], 9901)),
        }
    }
}

/// An address the gateway accepts traffic on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Socket address to bind, such as `0.0.0.0:443`.
    #[serde(deserialize_with = "socket_addr")]
    pub address: SocketAddr,
    /// TLS termination; absent means plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Offer HTTP/2 (ALPN `h2` with TLS, prior-knowledge h2c without) besides HTTP/1.1.
    #[serde(default)]
    pub http2: bool,
}

/// TLS termination of a listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// Certificates, picked by the SNI name of the client hello.
    pub certificates: Vec<Certificate>,
}

/// A certificate chain and its private key, for one or more domains.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// Names served with this certificate (exact or `*.example.com`).
    pub domains: Vec<String>,
    /// Path of a PEM file with the certificate chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// The certificate chain as PEM text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_pem: Option<String>,
    /// Path of a PEM file with the private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The private key as PEM text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pem: Option<String>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("domains", &self.domains)
            .field("cert_file", &self.cert_file)
            .field("cert_pem", &self.cert_pem.as_ref().map(|_| "<pem>"))
            .field("key_file", &self.key_file)
            .field("key_pem", &self.key_pem.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Where PEM material comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemSource<'a> {
    /// Read from this file.
    File(&'a std::path::Path),
    /// This PEM text.
    Inline(&'a str),
}

impl Certificate {
    /// Where the certificate chain comes from (`None` only when the snapshot is invalid).
    pub fn cert_source(&self) -> Option<PemSource<'_>> {
        pem_source(self.cert_file.as_deref(), self.cert_pem.as_deref())
    }

    /// Where the private key comes from (`None` only when the snapshot is invalid).
    pub fn key_source(&self) -> Option<PemSource<'_>> {
        pem_source(self.key_file.as_deref(), self.key_pem.as_deref())
    }
}

fn pem_source<'a>(
    file: Option<&'a std::path::Path>,
    pem: Option<&'a str>,
) -> Option<PemSource<'a>> {
    match (file, pem) {
        (Some(f), None) => Some(PemSource::File(f)),
        (None, Some(p)) => Some(PemSource::Inline(p)),
        _ => None,
    }
}

/// An upstream pool: endpoints, balancing, health checks, timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Unique name, referenced by routes and by `proxy_http_call`.
    pub name: String,
    /// Endpoints as `host:port` (an IP address or a DNS name resolved by the gateway).
    pub endpoints: Vec<Endpoint>,
    /// How requests are spread over healthy endpoints.
    #[serde(default)]
    pub load_balancing: LoadBalancing,
    /// Active health checking; absent means every endpoint is considered healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Time allowed to open a connection, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time allowed between two reads from the upstream, in milliseconds.
    #[serde(default = "default_read_timeout_ms")]
    pub read_timeout_ms: u64,
    /// Retries on another endpoint when connecting fails (never after a request was sent).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// TLS towards the upstream; absent means plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
}

/// An upstream endpoint, `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Endpoint(pub String);

impl Endpoint {
    /// The host and port, or `None` when the text is not `host:port`.
    pub fn host_port(&self) -> Option<(&str, u16)> {
        if let Ok(addr) = self.0.parse::<SocketAddr>() {
            let host = self.0.rsplit_once(':').map(|(h, _)| h)?;
            return (addr.port() != 0).then_some((host, addr.port()));
        }
        let (host, port) = self.0.rsplit_once(':')?;
        let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
        check_hostname(host).ok()?;
        Some((host, port))
    }

    /// The socket address when the host is an IP address.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.0.parse().ok()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Endpoint {
    fn from(s: &str) -> Self {
        Endpoint(s.to_string())
    }
}

/// Load-balancing policy of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancing {
    /// Each healthy endpoint in turn.
    #[default]
    RoundRobin,
    /// The healthy endpoint with the fewest requests in flight.
    LeastConnections,
}

/// Active health checking of a cluster's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// HTTP path to `GET` (a 2xx answer is healthy); absent means a TCP connect check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Interval between two checks of one endpoint, in milliseconds.
    #[serde(default = "default_health_interval_ms")]
    pub interval_ms: u64,
    /// Time allowed for one check, in milliseconds.
    #[serde(default = "default_health_timeout_ms")]
    pub timeout_ms: u64,
    /// Consecutive successes that mark an endpoint healthy.
    #[serde(default = "default_healthy_threshold")]
    pub healthy_threshold: u32,
    /// Consecutive failures that mark an endpoint unhealthy.
    #[serde(default = "default_unhealthy_threshold")]
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: None,
            interval_ms: DEFAULT_HEALTH_INTERVAL_MS,
            timeout_ms: DEFAULT_HEALTH_TIMEOUT_MS,
            healthy_threshold: DEFAULT_HEALTHY_THRESHOLD,
            unhealthy_threshold: DEFAULT_UNHEALTHY_THRESHOLD,
        }
    }
}

/// TLS from the gateway to a cluster's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// Server name sent in the client hello and verified; absent means the endpoint's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Verify the upstream's certificate against the system roots.
    #[serde(default = "default_true")]
    pub verify: bool,
}

/// A route: which requests (host, path prefix) go where, through which plugins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Host pattern: an exact name, `*.example.com` (one label) or `*`.
    #[serde(default = "default_host")]
    pub host: String,
    /// Path prefix, matched on whole segments (`/api` matches `/api/x`, not `/apix`).
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
    /// Name of the cluster to proxy to (exclusive with `static`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// A directory of static assets to serve (exclusive with `cluster`).
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    pub static_site: Option<StaticSite>,
    /// The app this route belongs to, for telemetry (set by the compiler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Filter chain, run in order.
    #[serde(default)]
    pub plugins: Vec<Plugin>,
}

/// What a route sends requests to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteTarget<'a> {
    /// Proxy to the named cluster.
    Cluster(&'a str),
    /// Serve files from a directory.
    Static(&'a StaticSite),
}

impl Route {
    /// The route's target (`None` only when the snapshot is invalid).
    pub fn target(&self) -> Option<RouteTarget<'_>> {
        match (&self.cluster, &self.static_site) {
            (Some(c), None) => Some(RouteTarget::Cluster(c)),
            (None, Some(s)) => Some(RouteTarget::Static(s)),
            _ => None,
        }
    }
}

/// A directory of static assets, e.g. a single-page app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSite {
    /// Directory to serve, on the gateway's host.
    pub root: PathBuf,
    /// File served for a directory.
    #[serde(default = "default_index")]
    pub index: String,
    /// Serve the root index for paths with no file (client-side routing).
    #[serde(default = "default_true")]
    pub spa_fallback: bool,
}

/// One filter of a route's chain: a Proxy-Wasm module or a built-in plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    /// Name, unique within the route (reported in logs and metrics).
    pub name: String,
    /// Path of a Proxy-Wasm module (exclusive with `builtin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<PathBuf>,
    /// Name of a plugin shipped with the gateway (exclusive with `wasm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
    /// Configuration handed to `proxy_on_configure`.
    #[serde(default, skip_serializing_if = "ConfigValue::is_empty")]
    pub config: ConfigValue,
    /// Configuration handed to `proxy_on_vm_start`.
    #[serde(default, skip_serializing_if = "ConfigValue::is_empty")]
    pub vm_config: ConfigValue,
    /// Let requests through when the plugin fails (traps, times out, misbehaves).
    #[serde(default)]
    pub fail_open: bool,
    /// A security filter: its failure denies with 403 instead of 500.
    #[serde(default = "default_true")]
    pub security: bool,
    /// Resource limits of the plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<PluginLimits>,
}

/// What a plugin runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginSource<'a> {
    /// A Proxy-Wasm module at this path.
    Wasm(&'a std::path::Path),
    /// A built-in plugin of this name.
    Builtin(&'a str),
}

impl Plugin {
    /// What the plugin runs (`None` only when the snapshot is invalid).
    pub fn source(&self) -> Option<PluginSource<'_>> {
        match (&self.wasm, &self.builtin) {
            (Some(w), None) => Some(PluginSource::Wasm(w)),
            (None, Some(b)) => Some(PluginSource::Builtin(b)),
            _ => None,
        }
    }

    /// The memory limit in force, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.limits
            .as_ref()
            .and_then(|l| l.memory_bytes)
            .unwrap_or(DEFAULT_PLUGIN_MEMORY_BYTES)
    }

    /// The time limit of one call in force, in milliseconds.
    pub fn call_timeout_ms(&self) -> u64 {
        self.limits
            .as_ref()
            .and_then(|l| l.call_timeout_ms)
            .unwrap_or(DEFAULT_PLUGIN_CALL_TIMEOUT_MS)
    }
}

/// Resource limits of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLimits {
    /// Maximum linear memory of one instance, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Maximum duration of one call into the plugin, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_ms: Option<u64>,
}

/// Plugin configuration: a string is handed over as its bytes; any other value as compact JSON.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfigValue(pub serde_json::Value);

impl ConfigValue {
    /// The bytes handed to the plugin: a string's UTF-8, other values as compact JSON, absent
    /// (null) as no bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.0 {
            serde_json::Value::Null => Vec::new(),
            serde_json::Value::String(s) => s.as_bytes().to_vec(),
            other => other.to_string().into_bytes(),
        }
    }

    /// True when there is no configuration (null).
    pub fn is_empty(&self) -> bool {
        self.0.is_null()
    }

    /// A configuration made by serializing `value` (used for built-in plugins' configs).
    pub fn from_serialize<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_value(value).map(ConfigValue)
    }
}

fn default_true() -> bool {
    true
}
fn default_host() -> String {
    "*".to_string()
}
fn default_path_prefix() -> String {
    "/".to_string()
}
fn default_index() -> String {
    DEFAULT_STATIC_INDEX.to_string()
}
fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}
fn default_read_timeout_ms() -> u64 {
    DEFAULT_READ_TIMEOUT_MS
}
fn default_retries() -> u32 {
    DEFAULT_RETRIES
}
fn default_health_interval_ms() -> u64 {
    DEFAULT_HEALTH_INTERVAL_MS
}
fn default_health_timeout_ms() -> u64 {
    DEFAULT_HEALTH_TIMEOUT_MS
}
fn default_healthy_threshold() -> u32 {
    DEFAULT_HEALTHY_THRESHOLD
}
fn default_unhealthy_threshold() -> u32 {
    DEFAULT_UNHEALTHY_THRESHOLD
}

/// Deserializes a socket address from a string, saying what was expected when it is not one.
fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "expected a socket address such as `127.0.0.1:8080` or `[::1]:8443`, found `{text}`"
        ))
    })
}

impl Snapshot {
    #[cfg(feature = "yaml")]
    /// Decodes and validates a snapshot from YAML text; `source_name` names it in errors.
    pub fn from_yaml_str(text: &str, source_name: &str) -> Result<Snapshot, ModelError> {
        let (snapshot, positions): (Snapshot, _) = decode_yaml(text, source_name)?;
        snapshot.check(source_name, Some(&positions))?;
        Ok(snapshot)
    }

    /// Decodes and validates a snapshot from JSON bytes; `source_name` names it in errors.
    pub fn from_json_slice(bytes: &[u8], source_name: &str) -> Result<Snapshot, ModelError> {
        let snapshot: Snapshot = decode_json(bytes, source_name)?;
        snapshot.check(source_name, None)?;
        Ok(snapshot)
    }

    /// The snapshot as pretty JSON (what the control plane pushes and the gateway keeps on disk).
    pub fn to_json_pretty(&self) -> String {
        // Serializing these types cannot fail: every map key is a string.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The cluster of this name.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// Checks the rules that span fields; every problem is reported, with its field path.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.check("<snapshot>", None)
    }

    pub(crate) fn check(
        &self,
        source: &str,
        positions: Option<&PositionMap>,
    ) -> Result<(), ModelError> {
        let mut p = Problems::default();
        if let SnapshotVersion::Id(id) = &self.version
            && id.trim().is_empty()
        {
            p.push("version", "expected a non-empty version id");
        }
        self.check_listeners(&mut p);
        let clusters = self.check_clusters(&mut p);
        self.check_routes(&mut p, &clusters);
        p.finish(source, positions)
    }

    fn check_listeners(&self, p: &mut Problems) {
        if self.listeners.is_empty() {
            p.push("listeners", "expected at least one listener");
        }
        let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
        for (i, listener) in self.listeners.iter().enumerate() {
            let at = index("listeners", i);
            if let Some(first) = seen.insert(listener.address, i) {
                p.push(
                    field(&at, "address"),
                    format!(
                        "address `{}` is already used by listeners[{first}]",
                        listener.address
                    ),
                );
            }
            if listener.address == self.admin.address {
                p.push(
                    field(&at, "address"),
                    format!(
                        "address `{}` is already used by the admin endpoint",
                        listener.address
                    ),
                );
            }
            if let Some(tls) = &listener.tls {
                check_listener_tls(p, &field(&at, "tls"), tls);
            }
        }
    }

    fn check_clusters<'a>(&'a self, p: &mut Problems) -> BTreeMap<&'a str, usize> {
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, cluster) in self.clusters.iter().enumerate() {
            let at = index("clusters", i);
            if let Err(e) = check_identifier(&cluster.name) {
                p.push(field(&at, "name"), e);
            } else if let Some(first) = names.insert(&cluster.name, i) {
                p.push(
                    field(&at, "name"),
                    format!(
                        "cluster `{}` is already defined by clusters[{first}]",
                        cluster.name
                    ),
                );
                names.insert(&cluster.name, first);
            }
            if cluster.endpoints.is_empty() {
                p.push(
                    field(&at, "endpoints"),
                    "expected at least one endpoint (`host:port`)",
                );
            }
            for (j, endpoint) in cluster.endpoints.iter().enumerate() {
                if endpoint.host_port().is_none() {
                    p.push(
                        index(&field(&at, "endpoints"), j),
                        format!(
                            "expected `host:port` such as `127.0.0.1:9000` or `app.internal:8080`, found `{endpoint}`"
                        ),
                    );
                }
            }
            positive(
                p,
                &field(&at, "connect_timeout_ms"),
                cluster.connect_timeout_ms,
            );
            positive(p, &field(&at, "read_timeout_ms"), cluster.read_timeout_ms);
            if let Some(hc) = &cluster.health_check {
                let at = field(&at, "health_check");
                if let Some(path) = &hc.path
                    && let Err(e) = check_path_prefix(path)
                {
                    p.push(field(&at, "path"), e);
                }
                positive(p, &field(&at, "interval_ms"), hc.interval_ms);
                positive(p, &field(&at, "timeout_ms"), hc.timeout_ms);
                positive(
                    p,
                    &field(&at, "healthy_threshold"),
                    u64::from(hc.healthy_threshold),
                );
                positive(
                    p,
                    &field(&at, "unhealthy_threshold"),
                    u64::from(hc.unhealthy_threshold),
                );
                if hc.timeout_ms > hc.interval_ms {
                    p.push(
                        field(&at, "timeout_ms"),
                        format!(
                            "expected at most interval_ms ({}), found {}",
                            hc.interval_ms, hc.timeout_ms
                        ),
                    );
                }
            }
            if let Some(tls) = &cluster.tls
                && let Some(sni) = &tls.sni
                && let Err(e) = check_hostname(sni)
            {
                p.push(field(&field(&at, "tls"), "sni"), e);
            }
        }
        names
    }

    fn check_routes(&self, p: &mut Problems, clusters: &BTreeMap<&str, usize>) {
        let mut seen: HashMap<(String, &str), usize> = HashMap::new();
        for (i, route) in self.routes.iter().enumerate() {
            let at = index("routes", i);
            let host_ok = match check_host_pattern(&route.host.to_ascii_lowercase()) {
                Ok(()) => true,
                Err(e) => {
                    p.push(field(&at, "host"), e);
                    false
                }
            };
            let path_ok = match check_path_prefix(&route.path_prefix) {
                Ok(()) => true,
                Err(e) => {
                    p.push(field(&at, "path_prefix"), e);
                    false
                }
            };
            if host_ok
                && path_ok
                && let Some(first) =
                    seen.insert((route.host.to_ascii_lowercase(), &route.path_prefix), i)
            {
                p.push(
                    &at,
                    format!(
                        "host `{}` and path prefix `{}` are already routed by routes[{first}]",
                        route.host, route.path_prefix
                    ),
                );
            }
            match (&route.cluster, &route.static_site) {
                (Some(_), Some(_)) => p.push(
                    field(&at, "static"),
                    "expected only one of `cluster` and `static`, found both",
                ),
                (None, None) => p.push(&at, "expected one of `cluster` or `static`"),
                (Some(name), None) => {
                    if !clusters.contains_key(name.as_str()) {
                        let known: Vec<String> =
                            clusters.keys().map(|k| format!("`{k}`")).collect();
                        let known = if known.is_empty() {
                            "none are defined".to_string()
                        } else {
                            format!("one of {}", known.join(", "))
                        };
                        p.push(
                            field(&at, "cluster"),
                            format!("expected the name of a cluster ({known}), found `{name}`"),
                        );
                    }
                }
                (None, Some(site)) => {
                    let at = field(&at, "static");
                    if site.root.as_os_str().is_empty() {
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
            check_plugins(p, &field(&at, "plugins"), &route.plugins);
        }
    }
}

fn positive(p: &mut Problems, at: &str, value: u64) {
    if value == 0 {
        p.push(at, "expected a value greater than 0, found 0");
    }
}

fn check_listener_tls(p: &mut Problems, at: &str, tls: &ListenerTls) {
    if tls.certificates.is_empty() {
        p.push(
            field(at, "certificates"),
            "expected at least one certificate",
        );
    }
    let mut domains: HashMap<String, usize> = HashMap::new();
    for (i, cert) in tls.certificates.iter().enumerate() {
        let at = index(&field(at, "certificates"), i);
        if cert.domains.is_empty() {
            p.push(field(&at, "domains"), "expected at least one domain");
        }
        for (j, domain) in cert.domains.iter().enumerate() {
            let lower = domain.to_ascii_lowercase();
            let d_at = index(&field(&at, "domains"), j);
            if lower == "*" || check_host_pattern(&lower).is_err() {
                p.push(
                    d_at,
                    format!(
                        "expected a domain such as `app.example.com` or `*.example.com`, found `{domain}`"
                    ),
                );
            } else if let Some(first) = domains.insert(lower, i)
                && first != i
            {
                p.push(
                    d_at,
                    format!("domain `{domain}` is already served by certificates[{first}]"),
                );
            }
        }
        check_pem_pair(p, &at, "cert", &cert.cert_file, &cert.cert_pem);
        check_pem_pair(p, &at, "key", &cert.key_file, &cert.key_pem);
    }
}

fn check_pem_pair(
    p: &mut Problems,
    at: &str,
    what: &str,
    file: &Option<PathBuf>,
    pem: &Option<String>,
) {
    match (file, pem) {
        (Some(_), Some(_)) => p.push(
            field(at, &format!("{what}_pem")),
            format!("expected only one of `{what}_file` and `{what}_pem`, found both"),
        ),
        (None, None) => p.push(at, format!("expected one of `{what}_file` or `{what}_pem`")),
        (Some(f), None) => {
            if f.as_os_str().is_empty() {
                p.push(
                    field(at, &format!("{what}_file")),
                    "expected a file path, found an empty path",
                );
            }
        }
        (None, Some(text)) => {
            if !text.trim_start().starts_with("-----BEGIN ") {
                p.push(
                    field(at, &format!("{what}_pem")),
                    "expected PEM text starting with `-----BEGIN `",
                );
            }
        }
    }
}

fn check_plugins(p: &mut Problems, at: &str, plugins: &[Plugin]) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, plugin) in plugins.iter().enumerate() {
        let at = index(at, i);
        if let Err(e) = check_identifier(&plugin.name) {
            p.push(field(&at, "name"), e);
        } else if let Some(first) = names.insert(&plugin.name, i) {
            p.push(
                field(&at, "name"),
                format!(
                    "plugin `{}` is already in this route's chain at plugins[{first}]",
                    plugin.name
                ),
            );
            names.insert(&plugin.name, first);
        }
        match (&plugin.wasm, &plugin.builtin) {
            (Some(_), Some(_)) => p.push(
                field(&at, "builtin"),
                "expected only one of `wasm` and `builtin`, found both",
            ),
            (None, None) => p.push(&at, "expected one of `wasm` or `builtin`"),
            (Some(path), None) => {
                if path.as_os_str().is_empty() {
                    p.push(
                        field(&at, "wasm"),
                        "expected a path to a .wasm file, found an empty path",
                    );
                }
            }
            (None, Some(name)) => {
                if let Err(e) = check_identifier(name) {
                    p.push(field(&at, "builtin"), e);
                }
            }
        }
        if let Some(limits) = &plugin.limits {
            let at = field(&at, "limits");
            if let Some(m) = limits.memory_bytes {
                positive(p, &field(&at, "memory_bytes"), m);
            }
            if let Some(t) = limits.call_timeout_ms {
                positive(p, &field(&at, "call_timeout_ms"), t);
            }
        }
    }
}

#[cfg(all(test, feature = "yaml"))]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
listeners: [{address: "127.0.0.1:8080"}]
clusters:
  - name: app
    endpoints: ["127.0.0.1:9000"]
routes:
  - host: "*"
    path_prefix: /
    cluster: app
    plugins:
      - name: example
        wasm: ./plugins/example.wasm
        config: '{"any": "bytes handed to proxy_on_configure"}'
        fail_open: false
"#;

    fn load(text: &str) -> Result<Snapshot, String> {
        Snapshot::from_yaml_str(text, "gw.yaml").map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_the_minimal_shape_with_defaults() {
        let s = load(MINIMAL).expect("valid");
        assert_eq!(s.version, SnapshotVersion::Number(0));
        assert_eq!(s.admin.address.to_string(), DEFAULT_ADMIN_ADDRESS);
        assert_eq!(s.listeners[0].address.to_string(), "127.0.0.1:8080");
        assert!(!s.listeners[0].http2);
        let c = &s.clusters[0];
        assert_eq!(c.load_balancing, LoadBalancing::RoundRobin);
        assert_eq!(c.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
        assert_eq!(c.retries, DEFAULT_RETRIES);
        assert!(c.health_check.is_none());
        let r = &s.routes[0];
        assert_eq!(r.target(), Some(RouteTarget::Cluster("app")));
        let plugin = &r.plugins[0];
        assert!(plugin.security);
        assert!(!plugin.fail_open);
        assert_eq!(
            plugin.source(),
            Some(PluginSource::Wasm(std::path::Path::new(
                "./plugins/example.wasm"
            )))
        );
        assert_eq!(
            plugin.config.to_bytes(),
            br#"{"any": "bytes handed to proxy_on_configure"}"#.to_vec()
        );
        assert_eq!(plugin.memory_bytes(), DEFAULT_PLUGIN_MEMORY_BYTES);
        assert_eq!(plugin.call_timeout_ms(), DEFAULT_PLUGIN_CALL_TIMEOUT_MS);
    }

    #[test]
    fn accepts_every_field() {
        let text = r#"
version: "2024-06-01.3"
admin: {address: "127.0.0.1:9999"}
listeners:
  - address: "0.0.0.0:8443"
    http2: true
    tls:
      certificates:
        - domains: [app.example.com, "*.example.com"]
          cert_file: /etc/paved/app.crt
          key_pem: "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n"
clusters:
  - name: api
    endpoints: ["10.0.0.1:8080", "api.internal:8080", "[::1]:9000"]
    load_balancing: least_connections
    health_check: {path: /healthz, interval_ms: 2000, timeout_ms: 500, healthy_threshold: 1, unhealthy_threshold: 5}
    connect_timeout_ms: 1000
    read_timeout_ms: 2000
    retries: 3
    tls: {sni: api.internal, verify: false}
routes:
  - host: APP.example.com
    path_prefix: /api
    cluster: api
    app: billing
    plugins:
      - name: waf
        builtin: waf
        config: {mode: block, paranoia: 2}
        vm_config: "x"
        security: true
        fail_open: false
        limits: {memory_bytes: 1048576, call_timeout_ms: 20}
  - host: "*.example.com"
    path_prefix: /
    static: {root: ./dist}
"#;
        let s = load(text).expect("valid");
        assert_eq!(s.version.to_string(), "2024-06-01.3");
        let cert = &s.listeners[0].tls.as_ref().expect("tls").certificates[0];
        assert!(matches!(cert.cert_source(), Some(PemSource::File(_))));
        assert!(matches!(cert.key_source(), Some(PemSource::Inline(_))));
        assert!(
            !format!("{cert:?}").contains("abc"),
            "key must not be printed"
        );
        let c = &s.clusters[0];
        assert_eq!(c.endpoints[1].host_port(), Some(("api.internal", 8080)));
        assert_eq!(c.endpoints[2].host_port(), Some(("[::1]", 9000)));
        assert_eq!(c.endpoints[2].socket_addr().map(|a| a.port()), Some(9000));
        assert_eq!(
            s.routes[0].plugins[0].config.to_bytes(),
            br#"{"mode":"block","paranoia":2}"#.to_vec()
        );
        assert_eq!(s.routes[0].plugins[0].call_timeout_ms(), 20);
        let Some(RouteTarget::Static(site)) = s.routes[1].target() else {
            panic!("static route expected");
        };
        assert_eq!(site.index, "index.html");
        assert!(site.spa_fallback);
        // JSON round trip.
        let json = s.to_json_pretty();
        let back = Snapshot::from_json_slice(json.as_bytes(), "push").expect("round trip");
        assert_eq!(back, s);
    }

    #[test]
    fn unknown_fields_are_errors_with_positions() {
        let text = MINIMAL.replace("fail_open: false", "fail_opn: false");
        let e = load(&text).err().unwrap_or_default();
        assert!(
            e.starts_with("gw.yaml:14:9: routes[0].plugins[0].fail_opn: unknown field `fail_opn`, expected one of"),
            "{e}"
        );
    }

    #[test]
    fn bad_addresses_say_what_was_expected() {
        let e = load("listeners: [{address: \"localhost\"}]\n")
            .err()
            .unwrap_or_default();
        assert_eq!(
            e,
            "gw.yaml:1:23: listeners[0].address: expected a socket address such as `127.0.0.1:8080` or `[::1]:8443`, found `localhost`"
        );
    }

    #[test]
    fn semantic_errors_name_field_line_and_column() {
        let text = r#"
listeners: [{address: "127.0.0.1:8080"}, {address: "127.0.0.1:8080"}]
clusters:
  - name: app
    endpoints: []
    connect_timeout_ms: 0
  - name: app
    endpoints: ["nope"]
routes:
  - host: "a.*.com"
    path_prefix: api
    cluster: missing
    plugins:
      - name: p
        wasm: ""
      - name: p
        builtin: x
        wasm: ./x.wasm
  - path_prefix: /
  - host: "*"
    static: {root: ./dist, index: a/b.html}
    cluster: app
"#;
        let e = load(text).err().unwrap_or_default();
        let expected = "\
gw.yaml:2:52: listeners[1].address: address `127.0.0.1:8080` is already used by listeners[0]
gw.yaml:5:16: clusters[0].endpoints: expected at least one endpoint (`host:port`)
gw.yaml:6:25: clusters[0].connect_timeout_ms: expected a value greater than 0, found 0
gw.yaml:7:11: clusters[1].name: cluster `app` is already defined by clusters[0]
gw.yaml:8:17: clusters[1].endpoints[0]: expected `host:port` such as `127.0.0.1:9000` or `app.internal:8080`, found `nope`
gw.yaml:10:11: routes[0].host: expected a host name (`app.example.com`), a wildcard (`*.example.com`) or `*`, found `a.*.com`
gw.yaml:11:18: routes[0].path_prefix: expected a path starting with `/` (no spaces, `?`, `#`, `\\` or dot segments), found `api`
gw.yaml:12:14: routes[0].cluster: expected the name of a cluster (one of `app`), found `missing`
gw.yaml:15:15: routes[0].plugins[0].wasm: expected a path to a .wasm file, found an empty path
gw.yaml:16:15: routes[0].plugins[1].name: plugin `p` is already in this route's chain at plugins[0]
gw.yaml:17:18: routes[0].plugins[1].builtin: expected only one of `wasm` and `builtin`, found both
gw.yaml:19:5: routes[1]: expected one of `cluster` or `static`
gw.yaml:20:5: routes[2]: host `*` and path prefix `/` are already routed by routes[1]
gw.yaml:21:13: routes[2].static: expected only one of `cluster` and `static`, found both";
        assert_eq!(e, expected);
    }

    #[test]
    fn json_errors_carry_field_paths() {
        let e = Snapshot::from_json_slice(
            br#"{"listeners":[{"address":"127.0.0.1:1"}],"routes":[{"cluster":"x"}]}"#,
            "push",
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "push: routes[0].cluster: expected the name of a cluster (none are defined), found `x`"
            )
        );
    }

    #[test]
    fn config_values() {
        assert!(ConfigValue::default().to_bytes().is_empty());
        assert_eq!(
            ConfigValue(serde_json::json!("raw")).to_bytes(),
            b"raw".to_vec()
        );
        assert_eq!(
            ConfigValue(serde_json::json!([1, true])).to_bytes(),
            b"[1,true]".to_vec()
        );
    }

    #[test]
    fn versions() {
        let s = load("version: 7\nlisteners: [{address: \"127.0.0.1:1\"}]\n").expect("valid");
        assert_eq!(s.version, SnapshotVersion::Number(7));
        let e = load("version: -1\nlisteners: [{address: \"127.0.0.1:1\"}]\n")
            .err()
            .unwrap_or_default();
        assert_eq!(
            e,
            "gw.yaml:1:10: version: invalid value: integer `-1`, expected a version number or a version id string"
        );
        let e = load("listeners: []\n").err().unwrap_or_default();
        assert_eq!(e, "gw.yaml:1:12: listeners: expected at least one listener");
    }
}
