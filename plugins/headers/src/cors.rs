//! CORS: which origins may read responses, and the answers to preflights.

use paved_model::plugin_config::CorsConfig;

/// An allowed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// Any origin (`*`), never with credentials.
    Any,
    /// Exactly this `scheme://host[:port]`.
    Exact(String),
    /// `scheme://` then one label then `.suffix[:port]`: `https://*.example.com`.
    Subdomain { scheme: String, suffix: String },
}

/// A route's CORS policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    origins: Vec<Origin>,
    methods: Vec<String>,
    headers: Vec<String>,
    exposed: Vec<String>,
    credentials: bool,
    max_age_secs: u64,
}

/// What to do with a preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// Answer 204 with these headers.
    Allow(Vec<(String, String)>),
    /// Answer 403 without CORS headers: the browser will not send the request.
    Refuse,
}

impl Cors {
    /// Checks and compiles a configuration.
    pub fn new(config: &CorsConfig) -> Result<Cors, String> {
        let mut origins = Vec::new();
        for (i, o) in config.allowed_origins.iter().enumerate() {
            let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
            let origin = if o == "*" {
                if config.allow_credentials {
                    return Err("cors: allowed_origins `*` cannot be combined with allow_credentials (browsers refuse it; list the origins)".into());
                }
                Origin::Any
            } else if let Some((scheme, rest)) = o.split_once("://*.") {
                if rest.is_empty() || rest.contains('*') {
                    return Err(format!(
                        "cors.allowed_origins[{i}]: invalid wildcard origin {o:?}"
                    ));
                }
                Origin::Subdomain {
                    scheme: scheme.to_string(),
                    suffix: rest.to_string(),
                }
            } else if o.contains("://") && !o.contains('*') && o != "null" {
                Origin::Exact(o)
            } else {
                return Err(format!("cors.allowed_origins[{i}]: {o:?} is not an origin like https://app.example.com"));
            };
            origins.push(origin);
        }
        Ok(Cors {
            origins,
            methods: config
                .allowed_methods
                .iter()
                .map(|m| m.trim().to_ascii_uppercase())
                .collect(),
            headers: config
                .allowed_headers
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            exposed: config
                .exposed_headers
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            credentials: config.allow_credentials,
            max_age_secs: config.max_age_secs,
        })
    }

    /// Whether `origin` (as the browser sent it) may read responses.
    pub fn allows(&self, origin: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        self.origins.iter().any(|allowed| match allowed {
            Origin::Any => true,
            Origin::Exact(o) => *o == origin,
            Origin::Subdomain { scheme, suffix } => origin
                .strip_prefix(scheme.as_str())
                .and_then(|r| r.strip_prefix("://"))
                .and_then(|host| host.strip_suffix(suffix.as_str()))
                .and_then(|label| label.strip_suffix('.'))
                .is_some_and(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }),
        })
    }

    /// `Access-Control-Allow-Origin` for an allowed origin: `*` when any origin is allowed
    /// and no credentials are involved (cacheable by shared caches), else the origin itself.
    fn allow_origin(&self, origin: &str) -> String {
        if !self.credentials && self.origins.contains(&Origin::Any) {
            "*".to_string()
        } else {
            origin.to_string()
        }
    }

    /// The answer to a preflight from `origin` for `method` with `request_headers`
    /// (the comma-separated `Access-Control-Request-Headers`).
    pub fn preflight(&self, origin: &str, method: &str, request_headers: &str) -> Preflight {
        let method = method.trim().to_ascii_uppercase();
        let requested: Vec<String> = request_headers
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let method_ok = self.methods.contains(&method) || matches!(method.as_str(), "GET" | "HEAD");
        let headers_ok = requested.iter().all(|h| self.headers.contains(h));
        if !(self.allows(origin) && method_ok && headers_ok) {
            return Preflight::Refuse;
        }
        let mut out = vec![
            (
                "access-control-allow-origin".to_string(),
                self.allow_origin(origin),
            ),
            (
                "access-control-allow-methods".to_string(),
                self.methods.join(", "),
            ),
            (
                "access-control-max-age".to_string(),
                self.max_age_secs.to_string(),
            ),
            (
                "vary".to_string(),
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers".to_string(),
            ),
        ];
        if !self.headers.is_empty() {
            out.push((
                "access-control-allow-headers".to_string(),
                self.headers.join(", "),
            ));
        }
        if self.credentials {
            out.push((
                "access-control-allow-credentials".to_string(),
                "true".to_string(),
            ));
        }
        Preflight::Allow(out)
    }

    /// Headers for the response to an actual request from `origin` (`None`: not allowed).
    pub fn response_headers(&self, origin: &str) -> Option<Vec<(String, String)>> {
        if !self.allows(origin) {
            return None;
        }
        let mut out = vec![(
            "access-control-allow-origin".to_string(),
            self.allow_origin(origin),
        )];
        if self.credentials {
            out.push((
                "access-control-allow-credentials".to_string(),
                "true".to_string(),
            ));
        }
        if !self.exposed.is_empty() {
            out.push((
                "access-control-expose-headers".to_string(),
                self.exposed.join(", "),
            ));
        }
        Some(out)
    }

    /// Whether responses differ by origin (then `Vary: Origin` is needed for caches).
    pub fn varies_by_origin(&self) -> bool {
        self.credentials || !self.origins.contains(&Origin::Any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> Result<Cors, String> {
        Cors::new(&CorsConfig {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_credentials: credentials,
            ..CorsConfig::default()
        })
    }

    #[test]
    fn exact_and_one_label_wildcard_origins_match() {
        let c = cors(&["https://app.example.com", "https://*.example.org"], true).unwrap();
        assert!(c.allows("https://app.example.com"));
        assert!(c.allows("https://a-1.example.org"));
        assert!(!c.allows("https://example.org"));
        assert!(!c.allows("https://a.b.example.org"));
        assert!(!c.allows("https://evilexample.org"));
        assert!(!c.allows("http://app.example.com"));
        assert!(!c.allows("null"));
    }

    #[test]
    fn preflights_check_origin_method_and_headers() {
        let c = cors(&["https://app.example.com"], true).unwrap();
        match c.preflight(
            "https://app.example.com",
            "post",
            "Content-Type, Authorization",
        ) {
            Preflight::Allow(h) => {
                assert!(h.contains(&(
                    "access-control-allow-origin".into(),
                    "https://app.example.com".into()
                )));
                assert!(h.contains(&("access-control-allow-credentials".into(), "true".into())));
                assert!(h.iter().any(|(n, v)| n == "vary" && v.contains("Origin")));
            }
            Preflight::Refuse => panic!("refused"),
        }
        assert_eq!(
            c.preflight("https://evil.example", "POST", ""),
            Preflight::Refuse
        );
        assert_eq!(
            c.preflight("https://app.example.com", "DELETE", ""),
            Preflight::Refuse
        );
        assert_eq!(
            c.preflight("https://app.example.com", "POST", "x-secret"),
            Preflight::Refuse
        );
    }

    #[test]
    fn any_origin_is_star_and_never_with_credentials() {
        assert!(cors(&["*"], true).is_err());
        let c = cors(&["*"], false).unwrap();
        assert_eq!(
            c.response_headers("https://x.example"),
            Some(vec![("access-control-allow-origin".into(), "*".into())])
        );
        assert!(!c.varies_by_origin());
        assert!(cors(&["app.example.com"], false).is_err());
    }
}
