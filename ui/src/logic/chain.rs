//! The filter chain in force on each route of an app, described from its current intent (the
//! API's `IntentVersion.intent`: parsed, defaults filled).
//!
//! The chain's order and members are the compiler's (docs/intent.md, "How it compiles":
//! `authn → authz → waf → ratelimit → headers → accesslog`); this module only reads the
//! intent's settings for each of them to say, in words, what each filter does there. The API
//! has no field with the compiled chain yet; when it gets one, this module is what to replace.

use serde_json::Value;

/// One filter of a route's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainStep {
    /// The filter (`authn`, `authz`, ...).
    pub filter: &'static str,
    /// What it does on this route.
    pub summary: String,
    /// Whether it runs (a WAF that is `off` or no rate limit is left out of the chain).
    pub active: bool,
}

/// A route and its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChain {
    /// Path prefix.
    pub path: String,
    /// What serves it (`upstream api`, `static /srv/app`).
    pub target: String,
    /// Domains it is served on (empty: all of the app's).
    pub domains: Vec<String>,
    /// The filters in order.
    pub steps: Vec<ChainStep>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The chain of every route of `intent`.
pub fn describe(intent: &Value) -> Vec<RouteChain> {
    let default_route = serde_json::json!([{ "path": "/" }]);
    let routes = match intent.get("routes").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list.clone(),
        _ => default_route.as_array().cloned().unwrap_or_default(),
    };
    let mut populations: Vec<String> = intent
        .get("populations")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    populations.sort();
    let clients: Vec<(String, Option<Vec<String>>)> = intent
        .get("serviceClients")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|c| {
                    let id = c.get("clientId")?.as_str()?.to_string();
                    let routes = c
                        .get("routes")
                        .filter(|r| r.is_array())
                        .map(|r| strings(Some(r)));
                    Some((id, routes))
                })
                .collect()
        })
        .unwrap_or_default();
    let waf = waf_step(intent.get("waf"));
    let ratelimit = ratelimit_step(intent.get("rateLimits"));

    routes
        .iter()
        .map(|route| {
            let path = route
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string();
            let public = route
                .get("public")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let target = match (
                route.get("upstream").and_then(Value::as_str),
                route.get("static"),
            ) {
                (Some(name), _) => format!("upstream {name}"),
                (None, Some(s)) if s.is_object() => format!(
                    "static files {}",
                    s.get("root").and_then(Value::as_str).unwrap_or("")
                ),
                _ => "the app's upstream".to_string(),
            };
            let allow = route
                .get("allow")
                .filter(|a| a.is_array())
                .map(|a| strings(Some(a)));
            let route_clients: Vec<&str> = clients
                .iter()
                .filter(|(_, paths)| paths.as_ref().is_none_or(|p| p.contains(&path)))
                .map(|(id, _)| id.as_str())
                .collect();
            let authz = if public {
                "anyone (public route)".to_string()
            } else {
                let admitted = allow.unwrap_or_else(|| populations.clone());
                let mut who = if populations.is_empty() {
                    "any signed-in user".to_string()
                } else if admitted.is_empty() {
                    "no population".to_string()
                } else {
                    format!("populations: {}", admitted.join(", "))
                };
                if !route_clients.is_empty() {
                    who.push_str(&format!("; service clients: {}", route_clients.join(", ")));
                }
                who
            };
            RouteChain {
                path,
                target,
                domains: strings(route.get("domains")),
                steps: vec![
                    ChainStep {
                        filter: "authn",
                        summary: if public {
                            "sign-in optional; identity checked when present".into()
                        } else {
                            "single sign-on required".into()
                        },
                        active: true,
                    },
                    ChainStep {
                        filter: "authz",
                        summary: authz,
                        active: true,
                    },
                    waf.clone(),
                    ratelimit.clone(),
                    ChainStep {
                        filter: "headers",
                        summary: "security response headers; Server and X-Powered-By removed"
                            .into(),
                        active: true,
                    },
                    ChainStep {
                        filter: "accesslog",
                        summary: "structured access log".into(),
                        active: true,
                    },
                ],
            }
        })
        .collect()
}

fn waf_step(waf: Option<&Value>) -> ChainStep {
    let mode = waf
        .and_then(|w| w.get("mode"))
        .and_then(Value::as_str)
        .unwrap_or("block");
    let paranoia = waf.and_then(|w| w.get("paranoia")).and_then(Value::as_u64);
    let threshold = waf
        .and_then(|w| w.get("anomalyThreshold"))
        .and_then(Value::as_u64);
    let exclusions = waf
        .and_then(|w| w.get("exclusions"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut summary = match mode {
        "off" => {
            return ChainStep {
                filter: "waf",
                summary: "off: not in the chain".into(),
                active: false,
            };
        }
        "detect" => "detects and logs only (does not block)".to_string(),
        _ => "blocks attacks with 403".to_string(),
    };
    if let Some(p) = paranoia {
        summary.push_str(&format!("; paranoia {p}"));
    }
    if let Some(t) = threshold {
        summary.push_str(&format!("; anomaly threshold {t}"));
    }
    if exclusions > 0 {
        summary.push_str(&format!("; {exclusions} rule exclusion(s)"));
    }
    ChainStep {
        filter: "waf",
        summary,
        active: true,
    }
}

fn ratelimit_step(limits: Option<&Value>) -> ChainStep {
    let Some(list) = limits.and_then(Value::as_array) else {
        return ChainStep {
            filter: "ratelimit",
            summary: "the platform's default limit per client IP".into(),
            active: true,
        };
    };
    if list.is_empty() {
        return ChainStep {
            filter: "ratelimit",
            summary: "no limit: not in the chain".into(),
            active: false,
        };
    }
    let rules: Vec<String> = list
        .iter()
        .map(|r| {
            let requests = r.get("requests").and_then(Value::as_u64).unwrap_or(0);
            let per = r.get("per").and_then(Value::as_str).unwrap_or("second");
            let key = r.get("key").and_then(Value::as_str).unwrap_or("ip");
            let mut rule = format!("{requests} per {per} per {key}");
            if let Some(b) = r.get("burst").and_then(Value::as_u64).filter(|b| *b > 0) {
                rule.push_str(&format!(" (burst {b})"));
            }
            let paths = strings(r.get("paths"));
            if !paths.is_empty() {
                rule.push_str(&format!(" on {}", paths.join(", ")));
            }
            rule
        })
        .collect();
    ChainStep {
        filter: "ratelimit",
        summary: rules.join("; "),
        active: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minimal_intent_has_one_route_with_the_full_paved_chain() {
        let chains = describe(&json!({
            "name": "hello", "domains": ["hello.example.com"], "upstream": "127.0.0.1:9000",
            "waf": {"mode": "block", "paranoia": 1, "anomalyThreshold": 5, "exclusions": []}
        }));
        assert_eq!(chains.len(), 1);
        let c = &chains[0];
        assert_eq!(c.path, "/");
        let names: Vec<&str> = c.steps.iter().map(|s| s.filter).collect();
        assert_eq!(
            names,
            ["authn", "authz", "waf", "ratelimit", "headers", "accesslog"]
        );
        assert!(c.steps.iter().all(|s| s.active));
        assert_eq!(c.steps[1].summary, "any signed-in user");
        assert_eq!(
            c.steps[2].summary,
            "blocks attacks with 403; paranoia 1; anomaly threshold 5"
        );
    }

    #[test]
    fn routes_say_who_may_enter() {
        let chains = describe(&json!({
            "populations": {"staff": {"groups": ["all"]}, "hr": {"groups": ["hr"]}},
            "serviceClients": [{"clientId": "cron", "routes": ["/api"]}, {"clientId": "export"}],
            "routes": [
                {"path": "/", "upstream": "web"},
                {"path": "/admin", "upstream": "web", "allow": ["hr"]},
                {"path": "/api", "upstream": "api"},
                {"path": "/status", "upstream": "web", "public": true}
            ]
        }));
        assert_eq!(
            chains[0].steps[1].summary,
            "populations: hr, staff; service clients: export"
        );
        assert_eq!(
            chains[1].steps[1].summary,
            "populations: hr; service clients: export"
        );
        assert_eq!(
            chains[2].steps[1].summary,
            "populations: hr, staff; service clients: cron, export"
        );
        assert_eq!(
            chains[3].steps[0].summary,
            "sign-in optional; identity checked when present"
        );
        assert_eq!(chains[3].steps[1].summary, "anyone (public route)");
        assert_eq!(chains[2].target, "upstream api");
    }

    #[test]
    fn waf_off_and_no_rate_limit_leave_filters_out() {
        let chains = describe(&json!({"waf": {"mode": "off"}, "rateLimits": []}));
        let steps = &chains[0].steps;
        assert!(!steps[2].active && !steps[3].active);
        let detect = describe(&json!({
            "waf": {"mode": "detect"},
            "rateLimits": [{"requests": 600, "per": "minute", "key": "identity", "burst": 0, "paths": ["/api"]}]
        }));
        assert_eq!(
            detect[0].steps[2].summary,
            "detects and logs only (does not block)"
        );
        assert_eq!(
            detect[0].steps[3].summary,
            "600 per minute per identity on /api"
        );
    }
}
