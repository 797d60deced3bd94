//! The route's configuration compiled into limits, and the key of a request for each.

use std::time::Duration;

use paved_model::plugin_config::{RateLimitBackend, RateLimitKey, RatelimitConfig};
use paved_ratelimit_engine::key::{counter_key, hashed, sanitized};
use paved_ratelimit_engine::store::Store;
use paved_ratelimit_engine::{Limit, Table};

/// Header whose value identifies an API token when a rule names none.
const DEFAULT_TOKEN_HEADER: &str = "authorization";

/// One rule, ready to check.
pub struct Rule {
    /// Its name, reported in decisions.
    pub name: String,
    key: RateLimitKey,
    header: String,
    /// The GCRA limit: `limit / window_secs` per second, `limit + burst` at once.
    pub limit: Limit,
    path_prefixes: Vec<String>,
    /// Where its local counters live.
    pub table: Table,
}

/// The route's rate limiting.
pub struct Policy {
    /// App and route, parts of every key.
    pub app: String,
    /// The route's path prefix.
    pub route: String,
    /// Local counters, or the cluster-wide service.
    pub backend: RateLimitBackend,
    /// The rules.
    pub rules: Vec<Rule>,
    /// The service's cluster.
    pub cluster: String,
    /// Time allowed for one call to it.
    pub cluster_timeout: Duration,
    /// The in-flight cap per client IP (0: off).
    pub max_concurrent_per_ip: u32,
    /// Where in-flight counts live.
    pub flood_table: Table,
}

/// What identifies a request's client, read once per request.
pub struct Facts {
    /// The client's address without port (IPv6: its /64).
    pub client_ip: String,
    /// `paved.identity.subject`, set by `authn`.
    pub identity: Option<String>,
    /// Request headers (lowercase names).
    pub headers: Vec<(String, String)>,
}

impl Facts {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// Shared-data key prefixes may only hold plain characters.
fn table_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Policy {
    /// Reads and checks the configuration; absent or empty means no rules.
    pub fn from_json(bytes: Option<&[u8]>) -> Result<Policy, String> {
        let config: RatelimitConfig = match bytes.filter(|b| !b.iter().all(u8::is_ascii_whitespace))
        {
            None => RatelimitConfig::default(),
            Some(b) => serde_json::from_slice(b)
                .map_err(|e| format!("configuration is not valid JSON for ratelimit: {e}"))?,
        };
        let app = table_part(&config.app);
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let at = |what: String| format!("rules[{i}] ({}): {what}", r.name);
                if r.limit == 0 || r.window_secs == 0 {
                    return Err(at("limit and window_secs must be at least 1".into()));
                }
                if r.key == RateLimitKey::Header && r.header.trim().is_empty() {
                    return Err(at(
                        "a `header` key needs the header's name in `header`".into()
                    ));
                }
                let rate = f64::from(r.limit) / r.window_secs as f64;
                let limit = Limit::new(rate, r.limit.saturating_add(r.burst))
                    .map_err(|e| at(e.to_string()))?;
                Ok(Rule {
                    name: r.name.clone(),
                    key: r.key,
                    header: r.header.trim().to_ascii_lowercase(),
                    limit,
                    path_prefixes: r.path_prefixes.clone(),
                    table: Table::new(
                        format!("paved.rl.{app}.{}", table_part(&r.name)),
                        config.max_tracked_keys,
                    ),
                })
            })
            .collect::<Result<Vec<Rule>, String>>()?;
        Ok(Policy {
            flood_table: Table::new(format!("paved.conc.{app}"), config.max_tracked_keys),
            app: config.app,
            route: config.route,
            backend: config.backend,
            rules,
            cluster: config.cluster,
            cluster_timeout: Duration::from_millis(config.cluster_timeout_ms.max(1)),
            max_concurrent_per_ip: config.max_concurrent_per_ip,
        })
    }

    /// Creates the tables' locks before any request (see `Table::prepare`).
    pub fn prepare(&self, store: &dyn Store) {
        self.flood_table.prepare(store);
        for rule in &self.rules {
            rule.table.prepare(store);
        }
    }

    /// The rules that apply to `path` (without query).
    pub fn applicable<'a>(&'a self, path: &'a str) -> impl Iterator<Item = (usize, &'a Rule)> + 'a {
        self.rules.iter().enumerate().filter(move |(_, r)| {
            r.path_prefixes.is_empty() || r.path_prefixes.iter().any(|p| under_prefix(path, p))
        })
    }

    /// The in-flight counter's key of a client on this route.
    pub fn flood_key(&self, client_ip: &str) -> String {
        format!("{}|{client_ip}", self.route)
    }
}

/// Whole-segment prefix match: `/api` covers `/api` and `/api/x`, not `/apix`.
fn under_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'),
        None => false,
    }
}

impl Rule {
    /// The counter key of a request. Identity, token and header keys fall back to the client
    /// IP when the request has none, so anonymous traffic is still limited.
    pub fn key(&self, policy: &Policy, facts: &Facts) -> String {
        let by_ip = || ("ip", facts.client_ip.clone());
        let (kind, value) = match self.key {
            RateLimitKey::Ip => by_ip(),
            RateLimitKey::Route => ("route", sanitized(&policy.route)),
            RateLimitKey::Identity => facts
                .identity
                .as_deref()
                .map_or_else(by_ip, |id| ("id", sanitized(id))),
            RateLimitKey::ApiToken => {
                let header = if self.header.is_empty() {
                    DEFAULT_TOKEN_HEADER
                } else {
                    &self.header
                };
                facts
                    .header(header)
                    .map_or_else(by_ip, |token| ("token", hashed(token)))
            }
            RateLimitKey::Header => facts
                .header(&self.header)
                .map_or_else(by_ip, |v| ("header", sanitized(v))),
        };
        counter_key(&policy.app, &self.name, kind, &value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Result<Policy, String> {
        Policy::from_json(Some(json.as_bytes()))
    }

    fn facts(identity: Option<&str>, headers: &[(&str, &str)]) -> Facts {
        Facts {
            client_ip: "10.0.0.7".into(),
            identity: identity.map(String::from),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_rule_becomes_rate_per_second_with_limit_plus_burst_at_once() {
        let p = policy(r#"{"app":"shop","route":"/api","rules":[{"name":"r","limit":120,"window_secs":60,"burst":30}]}"#).unwrap();
        let rule = &p.rules[0];
        assert_eq!(rule.limit.rate_per_second(), 2.0);
        assert_eq!(rule.limit.burst(), 150);
        assert_eq!(p.cluster, "paved-ratelimit");
        assert_eq!(p.cluster_timeout, Duration::from_millis(50));
    }

    #[test]
    fn keys_follow_the_rule_and_fall_back_to_the_client_ip() {
        let p = policy(
            r#"{"app":"shop","route":"/api","rules":[
                {"name":"user","key":"identity","limit":1,"window_secs":1},
                {"name":"tok","key":"api_token","limit":1,"window_secs":1},
                {"name":"tenant","key":"header","header":"X-Tenant","limit":1,"window_secs":1},
                {"name":"all","key":"route","limit":1,"window_secs":1}]}"#,
        )
        .unwrap();
        let signed_in = facts(
            Some("jane"),
            &[("authorization", "Bearer s3cret"), ("x-tenant", "acme")],
        );
        let anonymous = facts(None, &[]);
        let keys: Vec<String> = p.rules.iter().map(|r| r.key(&p, &signed_in)).collect();
        assert_eq!(keys[0], "shop|user|id:jane");
        assert!(keys[1].starts_with("shop|tok|token:h") && !keys[1].contains("s3cret"));
        assert_eq!(keys[2], "shop|tenant|header:acme");
        assert_eq!(keys[3], "shop|all|route:/api");
        assert_eq!(p.rules[0].key(&p, &anonymous), "shop|user|ip:10.0.0.7");
        assert_eq!(p.rules[1].key(&p, &anonymous), "shop|tok|ip:10.0.0.7");
    }

    #[test]
    fn rules_apply_under_their_path_prefixes_only() {
        let p = policy(r#"{"rules":[{"name":"login","limit":5,"window_secs":60,"path_prefixes":["/login"]},{"name":"all","limit":100,"window_secs":1}]}"#).unwrap();
        let names = |path| {
            p.applicable(path)
                .map(|(_, r)| r.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("/login/password"), vec!["login", "all"]);
        assert_eq!(names("/loginx"), vec!["all"]);
    }

    #[test]
    fn invalid_rules_are_refused_with_their_position() {
        let err = policy(r#"{"rules":[{"name":"x","limit":0,"window_secs":1}]}"#)
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("rules[0] (x)"), "{err}");
        assert!(
            policy(r#"{"rules":[{"name":"h","key":"header","limit":1,"window_secs":1}]}"#).is_err()
        );
        assert!(policy("not json").is_err());
    }
}
