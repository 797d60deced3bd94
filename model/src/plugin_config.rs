//! The JSON configuration of each built-in plugin, as handed to `proxy_on_configure`.
//!
//! The compiler writes these; the plugins (built for `wasm32-wasip1`) read them, so both sides
//! share field names. Decoding is tolerant on purpose: missing fields take their defaults and
//! unknown fields are ignored, so a newer control plane can add a field without breaking an
//! older plugin. Secrets are never printed by `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Name of the built-in authentication plugin (OIDC sessions, JWT bearer tokens).
pub const AUTHN: &str = "authn";
/// Name of the built-in authorization plugin (user populations, service clients).
pub const AUTHZ: &str = "authz";
/// Name of the built-in web application firewall.
pub const WAF: &str = "waf";
/// Name of the built-in rate limiter.
pub const RATELIMIT: &str = "ratelimit";
/// Name of the built-in security response headers plugin.
pub const HEADERS: &str = "headers";
/// Name of the built-in structured access log.
pub const ACCESSLOG: &str = "accesslog";
/// The paved filter chain, in the order the compiler emits it.
pub const DEFAULT_CHAIN: [&str; 6] = [AUTHN, AUTHZ, WAF, RATELIMIT, HEADERS, ACCESSLOG];

/// Whether a route requires a signed-in user or service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthnMode {
    /// No identity, no entry: browsers are sent to sign in, API clients get 401.
    #[default]
    Required,
    /// Identity is checked when present and passed upstream, never demanded (public routes).
    Optional,
}

/// Configuration of the `authn` plugin.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthnConfig {
    /// App the route belongs to.
    pub app: String,
    /// Whether an identity is required.
    pub mode: AuthnMode,
    /// OpenID Connect issuer URL (discovery at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// Cluster through which the plugin reaches the issuer (`proxy_http_call`).
    pub idp_cluster: String,
    /// OAuth client id of the gateway.
    pub client_id: String,
    /// OAuth client secret, for confidential clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Scopes requested at sign-in.
    pub scopes: Vec<String>,
    /// Audiences accepted in bearer tokens.
    pub audiences: Vec<String>,
    /// Path of the OIDC redirect (callback) on every app domain.
    pub callback_path: String,
    /// Path that ends the session.
    pub logout_path: String,
    /// Name of the encrypted session cookie.
    pub cookie_name: String,
    /// Lifetime of a session, in seconds.
    pub session_ttl_secs: u64,
    /// Key that encrypts session cookies (base64, 32 bytes), shared by all gateways.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// Claim holding the user's groups.
    pub groups_claim: String,
    /// Request header that carries the signed identity assertion upstream.
    pub identity_header: String,
    /// Key that signs the identity assertion (PEM or base64), shared by all gateways.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assertion_key: Option<String>,
    /// Request headers removed from every request before it reaches the upstream (spoofing).
    pub strip_headers: Vec<String>,
}

impl Default for AuthnConfig {
    fn default() -> Self {
        AuthnConfig {
            app: String::new(),
            mode: AuthnMode::Required,
            issuer: String::new(),
            idp_cluster: String::new(),
            client_id: String::new(),
            client_secret: None,
            scopes: ["openid", "profile", "email", "groups"]
                .map(String::from)
                .to_vec(),
            audiences: Vec::new(),
            callback_path: "/.paved/callback".into(),
            logout_path: "/.paved/logout".into(),
            cookie_name: "paved_session".into(),
            session_ttl_secs: 8 * 3600,
            session_key: None,
            groups_claim: "groups".into(),
            identity_header: "x-paved-identity".into(),
            assertion_key: None,
            strip_headers: [
                "x-paved-identity",
                "x-paved-user",
                "x-paved-groups",
                "x-forwarded-user",
                "x-forwarded-email",
                "x-forwarded-groups",
                "x-auth-request-user",
                "x-auth-request-email",
                "x-remote-user",
                "remote-user",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl fmt::Debug for AuthnConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("AuthnConfig")
            .field("app", &self.app)
            .field("mode", &self.mode)
            .field("issuer", &self.issuer)
            .field("idp_cluster", &self.idp_cluster)
            .field("client_id", &self.client_id)
            .field("client_secret", &redact(&self.client_secret))
            .field("scopes", &self.scopes)
            .field("audiences", &self.audiences)
            .field("callback_path", &self.callback_path)
            .field("logout_path", &self.logout_path)
            .field("cookie_name", &self.cookie_name)
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("session_key", &redact(&self.session_key))
            .field("groups_claim", &self.groups_claim)
            .field("identity_header", &self.identity_header)
            .field("assertion_key", &redact(&self.assertion_key))
            .field("strip_headers", &self.strip_headers)
            .finish()
    }
}

/// Configuration of the `authz` plugin: who may enter a route.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthzConfig {
    /// App the route belongs to.
    pub app: String,
    /// Public route: requests without identity are let through.
    pub anonymous: bool,
    /// Any signed-in user may enter (the app defines no user populations).
    pub any_user: bool,
    /// A signed-in user may enter when they belong to one of these populations.
    pub populations: Vec<PopulationRule>,
    /// Service clients (OAuth client ids of bearer tokens) allowed on this route.
    pub clients: Vec<String>,
    /// Claim holding the user's groups.
    pub groups_claim: String,
}

/// A user population: members of any of `groups` whose claims match all of `claims`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PopulationRule {
    /// Population name (from the intent), reported in decisions.
    pub name: String,
    /// Groups, any of which admits (empty: groups are not checked).
    pub groups: Vec<String>,
    /// Claim name → accepted values; every claim must hold one of its values.
    pub claims: BTreeMap<String, Vec<String>>,
}

/// What the WAF does with a request whose anomaly score reaches the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WafMode {
    /// Deny with 403.
    #[default]
    Block,
    /// Let it through and log the rules that fired.
    Detect,
    /// Do not inspect.
    Off,
}

/// Configuration of the `waf` plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WafConfig {
    /// Block or detect.
    pub mode: WafMode,
    /// Paranoia level 1 (fewest false positives) to 4 (strictest).
    pub paranoia: u8,
    /// Anomaly score at which a request is blocked (or reported).
    pub anomaly_threshold: u32,
    /// Largest request body inspected, in bytes; bodies beyond are inspected up to it.
    pub max_body_bytes: u64,
    /// Rules turned off, optionally only under some paths or for some parameters.
    pub exclusions: Vec<WafExclusion>,
}

impl Default for WafConfig {
    fn default() -> Self {
        WafConfig {
            mode: WafMode::Block,
            paranoia: 1,
            anomaly_threshold: 5,
            max_body_bytes: 1024 * 1024,
            exclusions: Vec::new(),
        }
    }
}

/// A WAF rule exclusion.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WafExclusion {
    /// Rule ids or tags (such as `sqli`) to exclude.
    pub rules: Vec<String>,
    /// Path prefixes where the exclusion applies (empty: everywhere).
    pub path_prefixes: Vec<String>,
    /// Request parameters (query, form or JSON field names) excluded (empty: the whole rule).
    pub parameters: Vec<String>,
}

/// What requests a rate limit counts together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitKey {
    /// Per client IP address.
    #[default]
    Ip,
    /// Per signed-in user or service client (falls back to the IP when anonymous).
    Identity,
    /// All clients of the route together.
    Route,
}

/// Where rate-limit counters live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitBackend {
    /// In the gateway process (per gateway replica).
    #[default]
    Local,
    /// In Redis, shared by all gateway replicas.
    Redis,
}

/// Configuration of the `ratelimit` plugin.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RatelimitConfig {
    /// App the route belongs to (part of every counter's key).
    pub app: String,
    /// Path prefix of the route (part of `route` counters' keys).
    pub route: String,
    /// Where counters live.
    pub backend: RateLimitBackend,
    /// Limits; a request must pass every rule that applies to its path.
    pub rules: Vec<RateLimitRule>,
}

/// One rate limit: at most `limit` requests per `window_secs` per key, plus `burst`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitRule {
    /// Name, reported in decisions and metrics.
    pub name: String,
    /// What is counted together.
    pub key: RateLimitKey,
    /// Requests allowed per window.
    pub limit: u32,
    /// Window length, in seconds.
    pub window_secs: u64,
    /// Extra requests allowed in a burst above the steady rate.
    pub burst: u32,
    /// Path prefixes the rule applies to (empty: the whole route).
    pub path_prefixes: Vec<String>,
}

/// Configuration of the `headers` plugin: response headers set and removed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HeadersConfig {
    /// Response headers set (replacing any the upstream sent), in order.
    pub set: Vec<HeaderEntry>,
    /// Response headers removed (lowercase names), such as `server` and `x-powered-by`.
    pub remove: Vec<String>,
}

/// One header name and value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HeaderEntry {
    /// Header name, lowercase.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// Configuration of the `accesslog` plugin.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AccesslogConfig {
    /// App the route belongs to.
    pub app: String,
    /// Path prefix of the route.
    pub route: String,
    /// Request headers copied into each record (lowercase names).
    pub request_headers: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_decode_with_defaults_and_ignore_unknown_fields() {
        let c: WafConfig =
            serde_json::from_str(r#"{"mode":"detect","future":1}"#).unwrap_or_default();
        assert_eq!(c.mode, WafMode::Detect);
        assert_eq!(c.paranoia, 1);
        let a: AuthnConfig =
            serde_json::from_str(r#"{"issuer":"https://idp"}"#).unwrap_or_default();
        assert_eq!(a.issuer, "https://idp");
        assert_eq!(a.callback_path, "/.paved/callback");
    }

    #[test]
    fn secrets_are_not_printed() {
        let a = AuthnConfig {
            client_secret: Some("s3cret".into()),
            session_key: Some("k3y".into()),
            ..AuthnConfig::default()
        };
        let text = format!("{a:?}");
        assert!(!text.contains("s3cret") && !text.contains("k3y"), "{text}");
    }

    #[test]
    fn enums_use_snake_case() {
        let text = serde_json::to_string(&RatelimitConfig {
            rules: vec![RateLimitRule {
                key: RateLimitKey::Identity,
                ..RateLimitRule::default()
            }],
            backend: RateLimitBackend::Redis,
            ..RatelimitConfig::default()
        })
        .unwrap_or_default();
        assert!(text.contains(r#""key":"identity""#) && text.contains(r#""backend":"redis""#));
    }
}
