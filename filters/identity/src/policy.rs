//! authz's logic: who may reach which route, from the identity authn recorded.
//!
//! A route's policy admits anonymous requests (public routes), any signed-in user, users of
//! some populations (groups and claims), and service clients by client id. Finer rules by
//! path prefix and method replace it where they match (the most specific wins). Anything not
//! admitted is denied: an empty policy admits nobody. Denials name a reason code, never the
//! policy.

use paved_model::plugin_config::{AuthzConfig, AuthzRule, PopulationRule};
use paved_model::routing::{normalize_path, path_matches};
use serde_json::Value;

use crate::identity::{Identity, Kind, Source};

/// Pseudo-claim: the domain of a *verified* e-mail address.
pub const EMAIL_DOMAIN: &str = "email_domain";

/// authz's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let through; how it was admitted (`anonymous`, `user`, `client`, `population:<name>`).
    Allow(String),
    /// Refuse with this status (401 without identity, 403 otherwise) and reason.
    Deny {
        /// HTTP status.
        status: u16,
        /// Reason code.
        reason: &'static str,
    },
}

impl Verdict {
    /// What `paved.decision.authz` records: `allow:<via>` or `deny:<reason>`.
    pub fn decision(&self) -> String {
        match self {
            Verdict::Allow(via) => format!("allow:{via}"),
            Verdict::Deny { reason, .. } => format!("deny:{reason}"),
        }
    }
}

/// One policy: the route's, or a rule's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Admits {
    anonymous: bool,
    any_user: bool,
    populations: Vec<PopulationRule>,
    clients: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    prefixes: Vec<String>,
    methods: Vec<String>,
    admits: Admits,
}

/// A route's authorization policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    route: Admits,
    rules: Vec<Rule>,
}

impl Policy {
    /// The policy of a configuration.
    pub fn new(config: &AuthzConfig) -> Policy {
        Policy {
            route: Admits {
                anonymous: config.anonymous,
                any_user: config.any_user,
                populations: config.populations.clone(),
                clients: config.clients.clone(),
            },
            rules: config.rules.iter().map(rule).collect(),
        }
    }

    /// Decides a request (`path` as received; it is normalized here, and a path that cannot
    /// be normalized safely is denied).
    pub fn decide(&self, method: &str, path: &str, identity: Option<&Identity>) -> Verdict {
        let admits = if self.rules.is_empty() {
            &self.route
        } else {
            let Ok(path) = normalize_path(path) else {
                return Verdict::Deny {
                    status: 403,
                    reason: "ambiguous_path",
                };
            };
            self.rule_for(method, &decode_unreserved(&path))
                .unwrap_or(&self.route)
        };
        admits.decide(identity)
    }

    fn rule_for(&self, method: &str, path: &str) -> Option<&Admits> {
        let mut best: Option<(usize, &Admits)> = None;
        for rule in &self.rules {
            if !rule.methods.is_empty() && !rule.methods.iter().any(|m| m == method) {
                continue;
            }
            let len = if rule.prefixes.is_empty() {
                Some(0)
            } else {
                rule.prefixes
                    .iter()
                    .filter(|p| path_matches(p, path))
                    .map(String::len)
                    .max()
            };
            if let Some(len) = len
                && best.is_none_or(|(b, _)| len > b)
            {
                best = Some((len, &rule.admits));
            }
        }
        best.map(|(_, a)| a)
    }
}

/// Decodes percent escapes of unreserved characters (RFC 3986 §6.2.2.2: `/%61dmin` is
/// `/admin` to any upstream); other escapes stay as they are.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = path
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            && (v.is_ascii_alphanumeric() || matches!(v, b'-' | b'_' | b'~'))
        {
            out.push(v as char);
            i += 3;
            continue;
        }
        // Everything else is copied as it was, byte for byte (the path is valid UTF-8).
        let ch_len = path[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&path[i..i + ch_len]);
        i += ch_len;
    }
    out
}

fn rule(r: &AuthzRule) -> Rule {
    Rule {
        prefixes: r.path_prefixes.clone(),
        methods: r.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
        admits: Admits {
            anonymous: r.anonymous,
            any_user: r.any_user,
            populations: r.populations.clone(),
            clients: r.clients.clone(),
        },
    }
}

impl Admits {
    fn decide(&self, identity: Option<&Identity>) -> Verdict {
        if self.anonymous {
            return Verdict::Allow("anonymous".into());
        }
        let Some(id) = identity else {
            return Verdict::Deny {
                status: 401,
                reason: "authentication_required",
            };
        };
        if id.source == Source::Bearer
            && let Some(cid) = &id.client_id
            && self.clients.iter().any(|c| c == cid)
        {
            return Verdict::Allow("client".into());
        }
        if id.kind == Kind::Service {
            return Verdict::Deny {
                status: 403,
                reason: "client_not_allowed",
            };
        }
        if self.any_user {
            return Verdict::Allow("user".into());
        }
        let mut group_matched = false;
        for p in &self.populations {
            let groups_ok = p.groups.is_empty() || p.groups.iter().any(|g| id.groups.contains(g));
            group_matched |= groups_ok;
            if groups_ok
                && p.claims
                    .iter()
                    .all(|(name, accepted)| claim_matches(id, name, accepted))
            {
                return Verdict::Allow(format!("population:{}", p.name));
            }
        }
        let reason = if self.populations.is_empty() {
            "not_allowed"
        } else if !group_matched {
            "group_required"
        } else {
            "claim_required"
        };
        Verdict::Deny {
            status: 403,
            reason,
        }
    }
}

/// Whether the identity's claim `name` holds one of `accepted`.
fn claim_matches(id: &Identity, name: &str, accepted: &[String]) -> bool {
    if name == EMAIL_DOMAIN {
        // An unverified address proves nothing about its domain.
        let verified = matches!(id.claims.get("email_verified"), Some(Value::Bool(true)))
            || id.claims.get("email_verified").and_then(Value::as_str) == Some("true");
        let domain = id
            .email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase());
        return verified
            && domain.is_some_and(|d| accepted.iter().any(|a| a.eq_ignore_ascii_case(&d)));
    }
    let values: Vec<String> = match name {
        "sub" => vec![id.subject.clone()],
        "email" => id.email.iter().cloned().collect(),
        _ => match id.claims.get(name) {
            Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
            Some(v) => scalar(v).into_iter().collect(),
            None => Vec::new(),
        },
    };
    values.iter().any(|v| accepted.contains(v))
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The body of a denial: the reason code and the request id, never the policy.
pub fn denial_body(status: u16, reason: &str, request_id: &str) -> String {
    let error = if status == 401 {
        "unauthorized"
    } else {
        "forbidden"
    };
    serde_json::json!({"error": error, "reason": reason, "request_id": request_id}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn user(groups: &[&str], claims: Value) -> Identity {
        Identity {
            subject: "alice".into(),
            email: Some("alice@Example.com".into()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            client_id: None,
            kind: Kind::User,
            source: Source::Session,
            issuer: "i".into(),
            claims: claims.as_object().cloned().unwrap_or_default(),
        }
    }

    fn service(client: &str) -> Identity {
        Identity {
            subject: client.into(),
            email: None,
            groups: Vec::new(),
            client_id: Some(client.into()),
            kind: Kind::Service,
            source: Source::Bearer,
            issuer: "i".into(),
            claims: Default::default(),
        }
    }

    fn pop(name: &str, groups: &[&str], claims: &[(&str, &[&str])]) -> PopulationRule {
        PopulationRule {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            claims: claims
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|x| x.to_string()).collect()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn payroll() -> AuthzConfig {
        AuthzConfig {
            app: "payroll".into(),
            populations: vec![
                pop("employees", &["all-staff"], &[]),
                pop("hr", &["hr"], &[("acr", &["mfa"])]),
            ],
            clients: vec!["billing".into()],
            ..AuthzConfig::default()
        }
    }

    #[test]
    fn members_of_a_population_are_admitted() {
        let p = Policy::new(&payroll());
        let v = p.decide("GET", "/", Some(&user(&["all-staff"], json!({}))));
        assert_eq!(v, Verdict::Allow("population:employees".into()));
        assert_eq!(v.decision(), "allow:population:employees");
    }

    #[test]
    fn a_user_outside_every_population_needs_a_group() {
        let p = Policy::new(&payroll());
        assert_eq!(
            p.decide("GET", "/", Some(&user(&["guests"], json!({})))),
            Verdict::Deny {
                status: 403,
                reason: "group_required"
            }
        );
    }

    #[test]
    fn claims_must_match_too() {
        let p = Policy::new(&AuthzConfig {
            populations: vec![pop("hr", &["hr"], &[("acr", &["mfa"])])],
            ..AuthzConfig::default()
        });
        assert_eq!(
            p.decide("GET", "/", Some(&user(&["hr"], json!({"acr": "pwd"})))),
            Verdict::Deny {
                status: 403,
                reason: "claim_required"
            }
        );
        assert!(matches!(
            p.decide("GET", "/", Some(&user(&["hr"], json!({"acr": "mfa"})))),
            Verdict::Allow(_)
        ));
    }

    #[test]
    fn boolean_and_array_claims_match_by_value() {
        let p = Policy::new(&AuthzConfig {
            populations: vec![pop(
                "v",
                &[],
                &[("email_verified", &["true"]), ("amr", &["otp"])],
            )],
            ..AuthzConfig::default()
        });
        let ok = user(&[], json!({"email_verified": true, "amr": ["pwd", "otp"]}));
        assert!(matches!(p.decide("GET", "/", Some(&ok)), Verdict::Allow(_)));
        let no = user(&[], json!({"email_verified": false, "amr": ["pwd", "otp"]}));
        assert!(matches!(
            p.decide("GET", "/", Some(&no)),
            Verdict::Deny { .. }
        ));
    }

    #[test]
    fn email_domain_needs_a_verified_address() {
        let p = Policy::new(&AuthzConfig {
            populations: vec![pop("corp", &[], &[(EMAIL_DOMAIN, &["example.com"])])],
            ..AuthzConfig::default()
        });
        let verified = user(&[], json!({"email_verified": true}));
        assert!(matches!(
            p.decide("GET", "/", Some(&verified)),
            Verdict::Allow(_)
        ));
        let unverified = user(&[], json!({}));
        assert_eq!(
            p.decide("GET", "/", Some(&unverified)),
            Verdict::Deny {
                status: 403,
                reason: "claim_required"
            }
        );
    }

    #[test]
    fn service_clients_are_admitted_only_by_client_id() {
        let p = Policy::new(&payroll());
        assert_eq!(
            p.decide("POST", "/api", Some(&service("billing"))),
            Verdict::Allow("client".into())
        );
        assert_eq!(
            p.decide("POST", "/api", Some(&service("intruder"))),
            Verdict::Deny {
                status: 403,
                reason: "client_not_allowed"
            }
        );
        let any = Policy::new(&AuthzConfig {
            any_user: true,
            ..AuthzConfig::default()
        });
        assert_eq!(
            any.decide("GET", "/", Some(&service("intruder"))),
            Verdict::Deny {
                status: 403,
                reason: "client_not_allowed"
            },
            "any_user means people"
        );
    }

    #[test]
    fn a_session_user_cannot_claim_a_client_id() {
        let p = Policy::new(&AuthzConfig {
            clients: vec!["billing".into()],
            ..AuthzConfig::default()
        });
        let mut u = user(&[], json!({}));
        u.client_id = Some("billing".into());
        assert_eq!(
            p.decide("GET", "/", Some(&u)),
            Verdict::Deny {
                status: 403,
                reason: "not_allowed"
            }
        );
    }

    #[test]
    fn no_identity_is_401_unless_anonymous() {
        let p = Policy::new(&payroll());
        assert_eq!(
            p.decide("GET", "/", None),
            Verdict::Deny {
                status: 401,
                reason: "authentication_required"
            }
        );
        let public = Policy::new(&AuthzConfig {
            anonymous: true,
            ..AuthzConfig::default()
        });
        assert_eq!(
            public.decide("GET", "/", None),
            Verdict::Allow("anonymous".into())
        );
    }

    #[test]
    fn an_empty_policy_admits_nobody() {
        let p = Policy::new(&AuthzConfig::default());
        assert_eq!(
            p.decide("GET", "/", Some(&user(&["admin"], json!({})))),
            Verdict::Deny {
                status: 403,
                reason: "not_allowed"
            }
        );
    }

    #[test]
    fn the_most_specific_rule_by_path_and_method_wins() {
        let mut c = AuthzConfig {
            any_user: true,
            ..AuthzConfig::default()
        };
        c.rules = vec![
            AuthzRule {
                path_prefixes: vec!["/admin".into()],
                populations: vec![pop("admins", &["admin"], &[])],
                ..AuthzRule::default()
            },
            AuthzRule {
                path_prefixes: vec!["/admin/health".into()],
                methods: vec!["get".into()],
                anonymous: true,
                ..AuthzRule::default()
            },
        ];
        let p = Policy::new(&c);
        let staff = user(&["staff"], json!({}));
        assert_eq!(
            p.decide("GET", "/reports", Some(&staff)),
            Verdict::Allow("user".into())
        );
        assert_eq!(
            p.decide("GET", "/admin/users", Some(&staff)),
            Verdict::Deny {
                status: 403,
                reason: "group_required"
            }
        );
        assert_eq!(
            p.decide("GET", "/admin/health", None),
            Verdict::Allow("anonymous".into())
        );
        assert_eq!(
            p.decide("POST", "/admin/health", Some(&staff)),
            Verdict::Deny {
                status: 403,
                reason: "group_required"
            },
            "method not covered: the next rule applies"
        );
        assert_eq!(
            p.decide("GET", "/administrator", Some(&staff)),
            Verdict::Allow("user".into()),
            "prefixes match on segment boundaries"
        );
    }

    #[test]
    fn path_tricks_do_not_escape_a_rule() {
        let mut c = AuthzConfig {
            any_user: true,
            ..AuthzConfig::default()
        };
        c.rules = vec![AuthzRule {
            path_prefixes: vec!["/admin".into()],
            populations: vec![pop("admins", &["admin"], &[])],
            ..AuthzRule::default()
        }];
        let p = Policy::new(&c);
        let staff = user(&["staff"], json!({}));
        for path in [
            "/public/../admin",
            "//admin",
            "/./admin/x",
            "/admin?x=1",
            "/%61dmin",
            "/adm%69n/x",
        ] {
            assert_eq!(
                p.decide("GET", path, Some(&staff)),
                Verdict::Deny {
                    status: 403,
                    reason: "group_required"
                },
                "{path}"
            );
        }
        for path in ["/%61dmin/../admin%2fx", "/admin%2F..%2F", "/a\\admin"] {
            assert_eq!(
                p.decide("GET", path, Some(&staff)),
                Verdict::Deny {
                    status: 403,
                    reason: "ambiguous_path"
                },
                "{path}"
            );
        }
    }

    #[test]
    fn denial_bodies_name_only_the_reason() {
        let body = denial_body(403, "group_required", "req-1");
        assert_eq!(
            body,
            r#"{"error":"forbidden","reason":"group_required","request_id":"req-1"}"#
        );
    }
}
