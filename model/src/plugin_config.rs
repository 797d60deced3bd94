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
    /// The plugin always removes the headers it sets itself, listed here or not.
    pub strip_headers: Vec<String>,
    /// Path that starts a login explicitly (`?rd=<target>`), e.g. from a public page.
    pub login_path: String,
    /// Path where the gateway serves the JWKS of the assertion key.
    pub jwks_path: String,
    /// The app's domains: absolute redirect targets (logout `rd`) must be on one of them or
    /// on the request's own host (`*.example.com` admits one label). Relative targets are
    /// always on the request's host.
    pub domains: Vec<String>,
    /// Older session keys, still accepted when opening cookies during a key rotation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub previous_session_keys: Vec<String>,
    /// How often a session is checked back with the issuer (refresh token grant), in
    /// seconds; sessions without a refresh token last until `session_ttl_secs`.
    pub session_refresh_secs: u64,
    /// Lifetime of a login in progress (between redirect and callback), in seconds.
    pub login_ttl_secs: u64,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds (at most 300).
    pub clock_skew_secs: u64,
    /// At login, fetch the issuer's userinfo endpoint for claims the ID token lacks.
    pub fetch_userinfo: bool,
    /// At logout, also send the browser to the issuer's `end_session_endpoint`.
    pub idp_logout: bool,
    /// Where logout sends the browser when the request names no valid `rd`.
    pub post_logout_redirect: String,
    /// Budget of the claims exposed to authz (`paved.identity.claims`), in bytes of JSON.
    pub max_claims_bytes: u64,
    /// Time allowed for each call to the issuer, in milliseconds.
    pub http_timeout_ms: u64,
    /// Longest a request waits for the issuer's keys (start, key rotation), in milliseconds.
    pub max_wait_ms: u64,
    /// Most requests waiting for the issuer's keys at once, per plugin instance.
    pub max_waiting: u32,
    /// Discovery document and JWKS are fetched again this often, in seconds.
    pub jwks_refresh_secs: u64,
    /// Least time between JWKS refreshes caused by unknown key ids, in seconds.
    pub jwks_min_refresh_secs: u64,
    /// `iss` of the identity assertions.
    pub assertion_issuer: String,
    /// Lifetime of one identity assertion, in seconds.
    pub assertion_ttl_secs: u64,
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
                "x-paved-email",
                "x-paved-groups",
                "x-paved-client-id",
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
            login_path: "/.paved/login".into(),
            jwks_path: "/.paved/jwks.json".into(),
            domains: Vec::new(),
            previous_session_keys: Vec::new(),
            session_refresh_secs: 15 * 60,
            login_ttl_secs: 10 * 60,
            clock_skew_secs: 60,
            fetch_userinfo: true,
            idp_logout: false,
            post_logout_redirect: "/".into(),
            max_claims_bytes: 2048,
            http_timeout_ms: 5000,
            max_wait_ms: 10_000,
            max_waiting: 1024,
            jwks_refresh_secs: 600,
            jwks_min_refresh_secs: 30,
            assertion_issuer: "paved".into(),
            assertion_ttl_secs: 60,
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
            .field("login_path", &self.login_path)
            .field("jwks_path", &self.jwks_path)
            .field("domains", &self.domains)
            .field(
                "previous_session_keys",
                &format_args!("<{} redacted>", self.previous_session_keys.len()),
            )
            .field("session_refresh_secs", &self.session_refresh_secs)
            .field("login_ttl_secs", &self.login_ttl_secs)
            .field("clock_skew_secs", &self.clock_skew_secs)
            .field("fetch_userinfo", &self.fetch_userinfo)
            .field("idp_logout", &self.idp_logout)
            .field("post_logout_redirect", &self.post_logout_redirect)
            .field("max_claims_bytes", &self.max_claims_bytes)
            .field("http_timeout_ms", &self.http_timeout_ms)
            .field("max_wait_ms", &self.max_wait_ms)
            .field("max_waiting", &self.max_waiting)
            .field("jwks_refresh_secs", &self.jwks_refresh_secs)
            .field("jwks_min_refresh_secs", &self.jwks_min_refresh_secs)
            .field("assertion_issuer", &self.assertion_issuer)
            .field("assertion_ttl_secs", &self.assertion_ttl_secs)
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
    /// Claim holding the user's groups. Informational: authz reads the groups authn
    /// recorded (`paved.identity.groups`), taken from authn's own `groups_claim`.
    pub groups_claim: String,
    /// Finer policies under the route, by path prefix and method. The most specific rule
    /// that matches a request (longest prefix, then first listed) replaces the route-level
    /// policy above; a request no rule matches gets the route-level policy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<AuthzRule>,
}

/// A policy for part of a route: some path prefixes and methods.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthzRule {
    /// Path prefixes, matched on segment boundaries against the normalized path (empty: the
    /// whole route).
    pub path_prefixes: Vec<String>,
    /// Methods, uppercase (empty: every method).
    pub methods: Vec<String>,
    /// Requests without identity are let through.
    pub anonymous: bool,
    /// Any signed-in user may enter.
    pub any_user: bool,
    /// A signed-in user may enter when they belong to one of these populations.
    pub populations: Vec<PopulationRule>,
    /// Service clients allowed.
    pub clients: Vec<String>,
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
    /// Per API token: the value of the rule's `header` (default `authorization`), hashed, so
    /// tokens never appear in counters' keys; falls back to the IP when absent.
    ApiToken,
    /// Per value of the request header named by the rule's `header`; falls back to the IP
    /// when absent.
    Header,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Cluster of the gateway's rate-limit service, called with `proxy_http_call` when
    /// `backend` is `redis`.
    pub cluster: String,
    /// Time allowed for one call to that service; past it the local limit decides.
    pub cluster_timeout_ms: u64,
    /// Requests one client IP may have in flight at once on this route (flood guard);
    /// 0 turns the guard off.
    pub max_concurrent_per_ip: u32,
    /// Clients tracked at once per rule in the gateway's memory (the local counters' table
    /// size); beyond it, new clients share one counter per rule.
    pub max_tracked_keys: u32,
}

impl Default for RatelimitConfig {
    fn default() -> Self {
        RatelimitConfig {
            app: String::new(),
            route: String::new(),
            backend: RateLimitBackend::Local,
            rules: Vec::new(),
            cluster: "paved-ratelimit".into(),
            cluster_timeout_ms: 50,
            max_concurrent_per_ip: 256,
            max_tracked_keys: 4096,
        }
    }
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
    /// Request header whose value is the key, for `api_token` (default `authorization`) and
    /// `header` keys (lowercase name).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub header: String,
}

/// Configuration of the `headers` plugin: response headers set and removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeadersConfig {
    /// Response headers set (replacing any the upstream sent), in order.
    pub set: Vec<HeaderEntry>,
    /// Response headers removed (lowercase names), such as `server` and `x-powered-by`.
    pub remove: Vec<String>,
    /// Add the paved secure headers (HSTS, CSP, `nosniff`, ...) that `set` does not name, and
    /// remove the usual banners. The compiler writes the full list itself and sets this to
    /// `false`; a hand-written configuration gets the defaults unless it says otherwise.
    pub secure_defaults: bool,
    /// Cross-origin resource sharing; absent: no CORS headers, preflights go upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfig>,
}

impl Default for HeadersConfig {
    fn default() -> Self {
        HeadersConfig {
            set: Vec::new(),
            remove: Vec::new(),
            secure_defaults: true,
            cors: None,
        }
    }
}

/// CORS policy of a route: which origins may read responses, with which methods and headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CorsConfig {
    /// Origins allowed: exact (`https://app.example.com`), one-label wildcard
    /// (`https://*.example.com`), or `*` (any origin, never with credentials).
    pub allowed_origins: Vec<String>,
    /// Methods allowed in preflights.
    pub allowed_methods: Vec<String>,
    /// Request headers allowed in preflights (lowercase).
    pub allowed_headers: Vec<String>,
    /// Response headers exposed to scripts.
    pub exposed_headers: Vec<String>,
    /// Whether cookies and authorization may be sent (`Access-Control-Allow-Credentials`).
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer, in seconds.
    pub max_age_secs: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: Vec::new(),
            allowed_methods: ["GET", "HEAD", "POST"].map(String::from).to_vec(),
            allowed_headers: ["accept", "content-type", "authorization"]
                .map(String::from)
                .to_vec(),
            exposed_headers: Vec::new(),
            allow_credentials: false,
            max_age_secs: 600,
        }
    }
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
    fn fields_added_later_take_their_defaults_when_absent() {
        let rl: RatelimitConfig =
            serde_json::from_str(r#"{"app":"a","rules":[{"name":"r","key":"header"}]}"#)
                .unwrap_or_default();
        assert_eq!(rl.cluster, "paved-ratelimit");
        assert_eq!(rl.cluster_timeout_ms, 50);
        assert_eq!(rl.max_concurrent_per_ip, 256);
        assert_eq!(rl.max_tracked_keys, 4096);
        assert_eq!(rl.rules[0].key, RateLimitKey::Header);
        assert_eq!(rl.rules[0].header, "");
        let h: HeadersConfig =
            serde_json::from_str(r#"{"remove":["server"]}"#).unwrap_or_else(|_| HeadersConfig {
                secure_defaults: false,
                ..HeadersConfig::default()
            });
        assert!(h.secure_defaults && h.cors.is_none());
        let cors: CorsConfig = serde_json::from_str(r#"{"allowed_origins":["https://a.example"]}"#)
            .unwrap_or_default();
        assert_eq!(cors.max_age_secs, 600);
        assert_eq!(cors.allowed_methods, ["GET", "HEAD", "POST"]);
    }

    #[test]
    fn authn_and_authz_fields_added_later_take_their_defaults() {
        let a: AuthnConfig = serde_json::from_str(r#"{"issuer":"https://idp","client_id":"gw"}"#)
            .unwrap_or_default();
        assert_eq!(a.login_path, "/.paved/login");
        assert_eq!(a.jwks_path, "/.paved/jwks.json");
        assert_eq!((a.clock_skew_secs, a.assertion_ttl_secs), (60, 60));
        assert!(a.fetch_userinfo && !a.idp_logout);
        assert!(a.strip_headers.iter().any(|h| h == "x-paved-email"));
        let z: AuthzConfig = serde_json::from_str(
            r#"{"any_user":true,"rules":[{"path_prefixes":["/admin"],"methods":["POST"]}]}"#,
        )
        .unwrap_or_default();
        assert_eq!(z.rules.len(), 1);
        assert!(!z.rules[0].any_user && z.rules[0].populations.is_empty());
        let text = serde_json::to_string(&AuthzConfig::default()).unwrap_or_default();
        assert!(!text.contains("rules"), "no rules: nothing written");
    }

    #[test]
    fn secrets_are_not_printed() {
        let a = AuthnConfig {
            client_secret: Some("s3cret".into()),
            session_key: Some("k3y".into()),
            previous_session_keys: vec!["0ldk3y".into()],
            ..AuthnConfig::default()
        };
        let text = format!("{a:?}");
        assert!(
            !text.contains("s3cret") && !text.contains("k3y") && !text.contains("0ldk3y"),
            "{text}"
        );
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
