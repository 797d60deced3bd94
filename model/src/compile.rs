//! Compilation of app intents into a gateway [`Snapshot`]: pure and deterministic (the same
//! intents, in any order, with the same options give the same snapshot, byte for byte).
//!
//! Each app gets one cluster per upstream (`<app>.<upstream>`), one route per domain and path,
//! and on every route the paved filter chain as built-in plugins, in order
//! `authn → authz → waf → ratelimit → headers → accesslog`, each with its JSON configuration
//! ([`crate::plugin_config`]) derived from the intent. A WAF in mode `off` and a rate limiter
//! with no rule for the route are left out of that route's chain.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::error::ModelError;
use crate::intent::{
    self, Intent, RateLimit, RateLimitKey as IntentRateKey, RateWindow, ResolvedRoute,
    ResolvedTarget, WafMode as IntentWafMode,
};
use crate::plugin_config::{
    self, AccesslogConfig, AuthnConfig, AuthnMode, AuthzConfig, CorsConfig, HeaderEntry,
    HeadersConfig, PopulationRule, RateLimitBackend, RateLimitKey, RateLimitRule, RatelimitConfig,
    WafConfig, WafExclusion, WafMode,
};
use crate::routing::path_matches;
use crate::snapshot::{
    Admin, Cluster, ConfigValue, Endpoint, HealthCheck, Listener, LoadBalancing, Plugin, Route,
    Snapshot, SnapshotVersion, StaticSite, UpstreamTls,
};

/// Name of the cluster through which the `authn` plugin reaches the identity provider. App
/// clusters are named `<app>.<upstream>` and always hold a dot, so they never collide with it.
pub const IDP_CLUSTER: &str = "paved-idp";

/// Platform settings that are not part of any app's intent.
#[derive(Debug, Clone, PartialEq)]
pub struct CompileOptions {
    /// Version stamped on the snapshot.
    pub version: SnapshotVersion,
    /// The gateway's admin endpoint.
    pub admin: Admin,
    /// The gateway's listeners (with the certificates of the apps' domains).
    pub listeners: Vec<Listener>,
    /// The identity provider the `authn` plugin signs people and services in with.
    pub identity: IdentityOptions,
    /// Where rate-limit counters live.
    pub rate_limit_backend: RateLimitBackend,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            version: SnapshotVersion::Number(1),
            admin: Admin::default(),
            listeners: vec![Listener {
                address: SocketAddr::from(([127, 0, 0, 1], 8080)),
                tls: None,
                http2: false,
            }],
            identity: IdentityOptions::default(),
            rate_limit_backend: RateLimitBackend::Local,
        }
    }
}

/// The identity provider, as seen from the gateway.
#[derive(Clone, PartialEq)]
pub struct IdentityOptions {
    /// OpenID Connect issuer URL.
    pub issuer: String,
    /// Endpoints where the gateway reaches the issuer (the `paved-idp` cluster).
    pub endpoints: Vec<Endpoint>,
    /// TLS towards the issuer.
    pub tls: Option<UpstreamTls>,
    /// The gateway's OAuth client id.
    pub client_id: String,
    /// The gateway's OAuth client secret, for confidential clients.
    pub client_secret: Option<String>,
    /// Audiences accepted in bearer tokens; empty: the client id.
    pub audiences: Vec<String>,
    /// Key that encrypts session cookies, shared by all gateways.
    pub session_key: Option<String>,
    /// Key that signs identity assertions sent upstream.
    pub assertion_key: Option<String>,
}

impl std::fmt::Debug for IdentityOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("IdentityOptions")
            .field("issuer", &self.issuer)
            .field("endpoints", &self.endpoints)
            .field("tls", &self.tls)
            .field("client_id", &self.client_id)
            .field("client_secret", &redact(&self.client_secret))
            .field("audiences", &self.audiences)
            .field("session_key", &redact(&self.session_key))
            .field("assertion_key", &redact(&self.assertion_key))
            .finish()
    }
}

impl Default for IdentityOptions {
    fn default() -> Self {
        IdentityOptions {
            issuer: "http://127.0.0.1:8081".into(),
            endpoints: vec![Endpoint::from("127.0.0.1:8081")],
            tls: None,
            client_id: "paved-gateway".into(),
            client_secret: None,
            audiences: Vec::new(),
            session_key: None,
            assertion_key: None,
        }
    }
}

/// Why intents could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// An intent breaks its own rules.
    #[error("app `{app}` is invalid:\n{error}")]
    InvalidIntent {
        /// The app's name.
        app: String,
        /// What is wrong with it.
        error: ModelError,
    },
    /// Two intents have the same app name.
    #[error("app `{0}` is declared twice")]
    DuplicateApp(String),
    /// Two apps claim the same host and path prefix.
    #[error("host `{host}` and path `{path}` are claimed by both app `{first}` and app `{second}`")]
    RouteConflict {
        /// The host.
        host: String,
        /// The path prefix.
        path: String,
        /// The app that comes first by name.
        first: String,
        /// The other app.
        second: String,
    },
    /// The resulting snapshot is invalid (for instance the options have no listener).
    #[error("the compiled snapshot is invalid:\n{0}")]
    InvalidSnapshot(ModelError),
}

/// Compiles one app's intent into a snapshot.
pub fn compile_one(intent: &Intent, options: &CompileOptions) -> Result<Snapshot, CompileError> {
    compile(std::slice::from_ref(intent), options)
}

/// Compiles intents into one snapshot. The order of `intents` does not matter.
pub fn compile(intents: &[Intent], options: &CompileOptions) -> Result<Snapshot, CompileError> {
    let mut sorted: Vec<&Intent> = intents.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for pair in sorted.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(CompileError::DuplicateApp(pair[0].name.clone()));
        }
    }
    let mut clusters = Vec::new();
    if !options.identity.endpoints.is_empty() {
        clusters.push(Cluster {
            name: IDP_CLUSTER.into(),
            endpoints: options.identity.endpoints.clone(),
            load_balancing: LoadBalancing::RoundRobin,
            health_check: None,
            connect_timeout_ms: crate::snapshot::DEFAULT_CONNECT_TIMEOUT_MS,
            read_timeout_ms: 10_000,
            retries: crate::snapshot::DEFAULT_RETRIES,
            tls: options.identity.tls.clone(),
        });
    }
    // (host, path) → (app, route)
    let mut routes: BTreeMap<(String, String), (String, Route)> = BTreeMap::new();
    for intent in sorted {
        intent
            .validate()
            .map_err(|error| CompileError::InvalidIntent {
                app: intent.name.clone(),
                error,
            })?;
        clusters.extend(app_clusters(intent));
        for resolved in intent.resolved_routes() {
            for domain in &resolved.domains {
                let route = app_route(intent, &resolved, domain, options);
                let key = (route.host.clone(), route.path_prefix.clone());
                if let Some((first, _)) = routes.get(&key) {
                    return Err(CompileError::RouteConflict {
                        host: key.0,
                        path: key.1,
                        first: first.clone(),
                        second: intent.name.clone(),
                    });
                }
                routes.insert(key, (intent.name.clone(), route));
            }
        }
    }
    let snapshot = Snapshot {
        version: options.version.clone(),
        admin: options.admin.clone(),
        listeners: options.listeners.clone(),
        clusters,
        routes: routes.into_values().map(|(_, route)| route).collect(),
    };
    snapshot.validate().map_err(CompileError::InvalidSnapshot)?;
    Ok(snapshot)
}

/// The name of the cluster of an app's upstream.
pub fn cluster_name(app: &str, upstream: &str) -> String {
    format!("{app}.{upstream}")
}

/// Every domain of the intents, sorted and deduplicated (what the certificate authority issues
/// certificates for).
pub fn domains(intents: &[Intent]) -> Vec<String> {
    let mut all: Vec<String> = intents
        .iter()
        .flat_map(|i| i.domains.iter().map(|d| d.to_ascii_lowercase()))
        .collect();
    all.sort();
    all.dedup();
    all
}

fn app_clusters(intent: &Intent) -> Vec<Cluster> {
    intent
        .all_upstreams()
        .into_iter()
        .map(|(name, up)| Cluster {
            name: cluster_name(&intent.name, name),
            endpoints: up.endpoints.iter().map(|e| Endpoint(e.clone())).collect(),
            load_balancing: match up.load_balancing {
                intent::LoadBalancing::RoundRobin => LoadBalancing::RoundRobin,
                intent::LoadBalancing::LeastConnections => LoadBalancing::LeastConnections,
            },
            health_check: up.health_check.enabled.then(|| HealthCheck {
                path: up.health_check.path.clone(),
                interval_ms: up.health_check.interval_ms,
                timeout_ms: up.health_check.timeout_ms,
                healthy_threshold: up.health_check.healthy_threshold,
                unhealthy_threshold: up.health_check.unhealthy_threshold,
            }),
            connect_timeout_ms: up.connect_timeout_ms,
            read_timeout_ms: up.read_timeout_ms,
            retries: up.retries,
            tls: up.tls.as_ref().map(|t| UpstreamTls {
                sni: t.sni.clone(),
                verify: t.verify,
            }),
        })
        .collect()
}

fn app_route(
    intent: &Intent,
    resolved: &ResolvedRoute<'_>,
    domain: &str,
    options: &CompileOptions,
) -> Route {
    let (cluster, static_site) = match resolved.target {
        ResolvedTarget::Upstream(name) => (Some(cluster_name(&intent.name, name)), None),
        ResolvedTarget::Static(site) => (
            None,
            Some(StaticSite {
                root: site.root.clone().into(),
                index: site.index.clone(),
                spa_fallback: site.spa_fallback,
            }),
        ),
    };
    Route {
        host: domain.to_ascii_lowercase(),
        path_prefix: resolved.route.path.clone(),
        cluster,
        static_site,
        app: Some(intent.name.clone()),
        plugins: chain(intent, resolved, options),
    }
}

fn builtin(name: &str, config: ConfigValue, security: bool, fail_open: bool) -> Plugin {
    Plugin {
        name: name.into(),
        wasm: None,
        builtin: Some(name.into()),
        config,
        vm_config: ConfigValue::default(),
        fail_open,
        security,
        limits: None,
    }
}

fn config<T: serde::Serialize>(value: &T) -> ConfigValue {
    // The plugin configs are plain structs with string keys: serializing cannot fail.
    ConfigValue::from_serialize(value).unwrap_or_default()
}

/// The paved filter chain of one route.
fn chain(intent: &Intent, resolved: &ResolvedRoute<'_>, options: &CompileOptions) -> Vec<Plugin> {
    let route = &resolved.route;
    let mut plugins = Vec::new();
    // CORS answers preflights before authentication: browsers send them without credentials,
    // so behind `authn` they would be refused and the real call never made. It also adds the
    // CORS headers to every response (a 401 included, so the page can read it).
    if let Some(cors) = &intent.headers.cors {
        plugins.push(Plugin {
            name: CORS_FILTER.into(),
            builtin: Some(plugin_config::HEADERS.into()),
            ..builtin(
                plugin_config::HEADERS,
                config(&HeadersConfig {
                    set: Vec::new(),
                    remove: Vec::new(),
                    secure_defaults: false,
                    cors: Some(cors_config(cors)),
                }),
                false,
                false,
            )
        });
    }
    plugins.extend([
        builtin(
            plugin_config::AUTHN,
            config(&authn_config(intent, route.public, options)),
            true,
            false,
        ),
        builtin(
            plugin_config::AUTHZ,
            config(&authz_config(intent, resolved)),
            true,
            false,
        ),
    ]);
    if let Some(waf) = waf_config(intent) {
        plugins.push(builtin(plugin_config::WAF, config(&waf), true, false));
    }
    if let Some(rl) = ratelimit_config(intent, &route.path, options) {
        plugins.push(builtin(plugin_config::RATELIMIT, config(&rl), true, false));
    }
    plugins.push(builtin(
        plugin_config::HEADERS,
        config(&headers_config(intent)),
        false,
        false,
    ));
    plugins.push(builtin(
        plugin_config::ACCESSLOG,
        config(&AccesslogConfig {
            app: intent.name.clone(),
            route: route.path.clone(),
            request_headers: vec!["referer".into(), "user-agent".into()],
        }),
        false,
        true,
    ));
    plugins
}

/// The name of the filter that answers CORS preflights (the `headers` plugin, CORS only).
pub const CORS_FILTER: &str = "cors";

fn cors_config(cors: &intent::Cors) -> CorsConfig {
    CorsConfig {
        allowed_origins: cors.allowed_origins.clone(),
        allowed_methods: cors.allowed_methods.clone(),
        allowed_headers: cors
            .allowed_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        exposed_headers: cors
            .exposed_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        allow_credentials: cors.allow_credentials,
        max_age_secs: cors.max_age_secs,
    }
}

fn authn_config(intent: &Intent, public: bool, options: &CompileOptions) -> AuthnConfig {
    let id = &options.identity;
    AuthnConfig {
        app: intent.name.clone(),
        mode: if public {
            AuthnMode::Optional
        } else {
            AuthnMode::Required
        },
        issuer: id.issuer.clone(),
        idp_cluster: IDP_CLUSTER.into(),
        client_id: id.client_id.clone(),
        client_secret: id.client_secret.clone(),
        audiences: if id.audiences.is_empty() {
            vec![id.client_id.clone()]
        } else {
            id.audiences.clone()
        },
        session_key: id.session_key.clone(),
        assertion_key: id.assertion_key.clone(),
        ..AuthnConfig::default()
    }
}

fn authz_config(intent: &Intent, resolved: &ResolvedRoute<'_>) -> AuthzConfig {
    let route = &resolved.route;
    let admitted: Vec<&String> = match &route.allow {
        Some(names) => {
            let mut v: Vec<&String> = names.iter().collect();
            v.sort();
            v.dedup();
            v
        }
        None => intent.populations.keys().collect(),
    };
    let populations = if route.public {
        Vec::new()
    } else {
        admitted
            .into_iter()
            .filter_map(|name| {
                intent.populations.get(name).map(|p| PopulationRule {
                    name: name.clone(),
                    groups: p.groups.clone(),
                    claims: p
                        .claims
                        .iter()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect(),
                })
            })
            .collect()
    };
    let mut clients: Vec<String> = intent
        .service_clients
        .iter()
        .filter(|c| match &c.routes {
            None => true,
            Some(paths) => paths.iter().any(|p| *p == route.path),
        })
        .map(|c| c.client_id.clone())
        .collect();
    clients.sort();
    AuthzConfig {
        app: intent.name.clone(),
        anonymous: route.public,
        any_user: !route.public && intent.populations.is_empty(),
        populations,
        clients,
        groups_claim: AuthnConfig::default().groups_claim,
        ..AuthzConfig::default()
    }
}

fn waf_config(intent: &Intent) -> Option<WafConfig> {
    let waf = &intent.waf;
    let mode = match waf.mode {
        IntentWafMode::Block => WafMode::Block,
        IntentWafMode::Detect => WafMode::Detect,
        IntentWafMode::Off => return None,
    };
    Some(WafConfig {
        mode,
        paranoia: waf.paranoia,
        anomaly_threshold: waf.anomaly_threshold,
        exclusions: waf
            .exclusions
            .iter()
            .map(|e| WafExclusion {
                rules: e.rules.clone(),
                path_prefixes: e.paths.clone(),
                parameters: e.parameters.clone(),
            })
            .collect(),
        ..WafConfig::default()
    })
}

/// The rate limits of an intent as written, or the paved default when it has none.
fn rate_limits(intent: &Intent) -> Vec<RateLimit> {
    match &intent.rate_limits {
        Some(list) => list.clone(),
        None => vec![RateLimit {
            name: Some("default".into()),
            key: IntentRateKey::Ip,
            requests: 100,
            per: RateWindow::Second,
            burst: 100,
            paths: Vec::new(),
        }],
    }
}

fn ratelimit_config(
    intent: &Intent,
    route_path: &str,
    options: &CompileOptions,
) -> Option<RatelimitConfig> {
    let rules: Vec<RateLimitRule> = rate_limits(intent)
        .into_iter()
        .enumerate()
        .filter(|(_, rl)| {
            // A rule applies when one of its paths overlaps the route's prefix.
            rl.paths.is_empty()
                || rl
                    .paths
                    .iter()
                    .any(|p| path_matches(p, route_path) || path_matches(route_path, p))
        })
        .map(|(i, rl)| RateLimitRule {
            name: rl.name.clone().unwrap_or_else(|| format!("limit-{i}")),
            key: match rl.key {
                IntentRateKey::Ip => RateLimitKey::Ip,
                IntentRateKey::Identity => RateLimitKey::Identity,
                IntentRateKey::Route => RateLimitKey::Route,
            },
            limit: rl.requests,
            window_secs: rl.per.seconds(),
            burst: rl.burst,
            // Paths the route's prefix already covers need no check at request time.
            path_prefixes: if rl.paths.iter().any(|p| path_matches(p, route_path)) {
                Vec::new()
            } else {
                rl.paths.clone()
            },
            ..RateLimitRule::default()
        })
        .collect();
    (!rules.is_empty()).then(|| RatelimitConfig {
        app: intent.name.clone(),
        route: route_path.to_string(),
        backend: options.rate_limit_backend,
        rules,
        ..RatelimitConfig::default()
    })
}

fn headers_config(intent: &Intent) -> HeadersConfig {
    let h = &intent.headers;
    let disabled: Vec<String> = h.disable.iter().map(|d| d.to_ascii_lowercase()).collect();
    let csp_name = if h.csp_report_only {
        "content-security-policy-report-only"
    } else {
        "content-security-policy"
    };
    let managed = [
        ("content-security-policy", csp_name, h.csp.clone()),
        (
            "strict-transport-security",
            "strict-transport-security",
            h.hsts.header_value(),
        ),
        (
            "x-frame-options",
            "x-frame-options",
            h.frame_options.clone(),
        ),
        (
            "x-content-type-options",
            "x-content-type-options",
            "nosniff".to_string(),
        ),
        (
            "referrer-policy",
            "referrer-policy",
            h.referrer_policy.clone(),
        ),
        (
            "permissions-policy",
            "permissions-policy",
            h.permissions_policy.clone(),
        ),
        (
            "cross-origin-opener-policy",
            "cross-origin-opener-policy",
            h.cross_origin_opener_policy.clone(),
        ),
        (
            "cross-origin-resource-policy",
            "cross-origin-resource-policy",
            h.cross_origin_resource_policy.clone(),
        ),
    ];
    let mut set: Vec<HeaderEntry> = managed
        .into_iter()
        .filter(|(key, _, _)| !disabled.iter().any(|d| d == key))
        .map(|(_, name, value)| HeaderEntry {
            name: name.to_string(),
            value,
        })
        .collect();
    set.extend(h.set.iter().map(|(name, value)| HeaderEntry {
        name: name.to_ascii_lowercase(),
        value: value.clone(),
    }));
    let mut remove: Vec<String> = [
        "server",
        "x-powered-by",
        "x-aspnet-version",
        "x-aspnetmvc-version",
    ]
    .map(String::from)
    .to_vec();
    remove.extend(h.remove.iter().map(|r| r.to_ascii_lowercase()));
    remove.sort();
    remove.dedup();
    HeadersConfig {
        set,
        remove,
        // The list above is complete: disabled headers must stay absent.
        secure_defaults: false,
        cors: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(text: &str) -> Intent {
        Intent::from_yaml_str(text, "paved.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn app(name: &str, domain: &str) -> Intent {
        intent(&format!(
            "apiVersion: paved.dev/v1\nname: {name}\nowners: [o]\ndomains: [{domain}]\nupstream: 127.0.0.1:9000\n"
        ))
    }

    #[test]
    fn minimal_intent_is_fully_paved() {
        let s = compile_one(
            &app("hello", "hello.example.com"),
            &CompileOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.clusters.len(), 2);
        assert_eq!(s.clusters[0].name, IDP_CLUSTER);
        assert_eq!(s.clusters[1].name, "hello.default");
        assert_eq!(s.routes.len(), 1);
        let names: Vec<&str> = s.routes[0]
            .plugins
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, plugin_config::DEFAULT_CHAIN.to_vec());
        assert_eq!(s.routes[0].cluster.as_deref(), Some("hello.default"));
    }

    #[test]
    fn order_of_intents_does_not_matter() {
        let a = app("alpha", "a.example.com");
        let b = app("beta", "b.example.com");
        let o = CompileOptions::default();
        let ab = compile(&[a.clone(), b.clone()], &o).map(|s| s.to_json_pretty());
        let ba = compile(&[b, a], &o).map(|s| s.to_json_pretty());
        assert_eq!(ab, ba);
        assert!(ab.is_ok());
    }

    #[test]
    fn conflicts_are_errors() {
        let o = CompileOptions::default();
        let e = compile(
            &[app("alpha", "x.example.com"), app("beta", "X.example.com")],
            &o,
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "host `x.example.com` and path `/` are claimed by both app `alpha` and app `beta`"
            )
        );
        let e = compile(
            &[app("alpha", "a.example.com"), app("alpha", "b.example.com")],
            &o,
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("app `alpha` is declared twice"));
        let no_listener = CompileOptions {
            listeners: vec![],
            ..CompileOptions::default()
        };
        let e = compile(&[app("alpha", "a.example.com")], &no_listener)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "the compiled snapshot is invalid:\n<snapshot>: listeners: expected at least one listener"
            )
        );
    }

    #[test]
    fn invalid_intents_are_refused() {
        let mut bad = app("alpha", "a.example.com");
        bad.owners.clear();
        let e = compile_one(&bad, &CompileOptions::default())
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "app `alpha` is invalid:\npaved.yaml: owners: expected at least one owner (an e-mail address or user name)"
            )
        );
    }

    #[test]
    fn static_only_app_needs_no_upstream() {
        let i = intent(
            "apiVersion: paved.dev/v1\nname: site\nowners: [o]\ndomains: [site.example.com]\nroutes:\n  - static: {root: ./dist}\n",
        );
        let s = compile_one(&i, &CompileOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.clusters.len(), 1, "only the identity provider");
        assert_eq!(s.routes.len(), 1);
        assert!(s.routes[0].static_site.is_some());
        let table = crate::RouteTable::new(&s.routes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            table.lookup("site.example.com", "/app/x").map(|m| m.index),
            Some(0)
        );
    }

    #[test]
    fn domains_are_collected() {
        let a = app("alpha", "B.example.com");
        let b = app("beta", "a.example.com");
        assert_eq!(domains(&[a, b]), vec!["a.example.com", "b.example.com"]);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let o = IdentityOptions {
            client_secret: Some("s3cret".into()),
            ..IdentityOptions::default()
        };
        assert!(!format!("{o:?}").contains("s3cret"));
    }
}
