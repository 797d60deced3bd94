//! Writes a `paved.yaml` (docs/intent.md) from what the wizard collected.
//!
//! The text is meant to be committed to the app's repository, so it is written by hand in the
//! style of the examples (block mappings, short flow lists, defaults left out) rather than by a
//! serializer. Values are written as entered: the control plane validates them and its
//! diagnostics point back at the wizard's fields.

use std::fmt::Write as _;

/// The app's upstream, as it goes into the intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamDraft {
    /// One endpoint (`host:port`), with TLS to it or not.
    Endpoint {
        /// `host:port`.
        endpoint: String,
        /// Speak TLS to the upstream (`tls: {}`).
        tls: bool,
    },
    /// Text that is not a URL, passed on for the control plane to judge.
    Raw(String),
}

/// A named user population.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PopulationDraft {
    /// Its name (what routes `allow`).
    pub name: String,
    /// Identity-provider groups; being in any one admits.
    pub groups: Vec<String>,
    /// Claims that must each hold one of their values.
    pub claims: Vec<(String, Vec<String>)>,
}

/// A route: a path prefix and who may enter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteDraft {
    /// Path prefix.
    pub path: String,
    /// Populations admitted (empty: every population of the app).
    pub allow: Vec<String>,
    /// No sign-in.
    pub public: bool,
}

/// Rate limiting of the app.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RateLimitDraft {
    /// The platform's default (the key is left out).
    #[default]
    PlatformDefault,
    /// No limit at all (`rateLimits: []`).
    Unlimited,
    /// One rule, values as entered.
    Rule {
        /// Requests per window (a number; anything else is passed on).
        requests: String,
        /// `second`, `minute` or `hour`.
        per: String,
        /// `ip`, `identity` or `route` (empty: the default).
        key: String,
        /// Extra burst (empty: the default).
        burst: String,
    },
}

/// Everything a wizard intent can say; `None` and empty values are left out of the text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntentDraft {
    /// App name (written even when empty, so the control plane reports it at `name`).
    pub name: String,
    /// Owners (written even when empty).
    pub owners: Vec<String>,
    /// Owning team.
    pub team: Option<String>,
    /// What the app does.
    pub description: Option<String>,
    /// `public`, `internal`, `confidential` or `restricted`.
    pub data_sensitivity: Option<String>,
    /// Reachable from the internet.
    pub internet_facing: Option<bool>,
    /// Domains (written even when empty).
    pub domains: Vec<String>,
    /// The upstream (`None`: left out).
    pub upstream: Option<UpstreamDraft>,
    /// Populations, in the order entered.
    pub populations: Vec<PopulationDraft>,
    /// Routes (empty: the default single route `/`).
    pub routes: Vec<RouteDraft>,
    /// OAuth client ids of services admitted with a bearer token.
    pub service_clients: Vec<String>,
    /// `block`, `detect` or `off` (`None`: the default).
    pub waf_mode: Option<String>,
    /// Rate limiting.
    pub rate_limits: RateLimitDraft,
}

/// The `paved.yaml` text of `draft`.
pub fn to_yaml(draft: &IntentDraft) -> String {
    let mut out = String::new();
    // `write!` to a String cannot fail; the results are ignored for that reason.
    let name_for_comment = if draft.name.trim().is_empty() {
        "this app"
    } else {
        draft.name.as_str()
    };
    let _ = writeln!(
        out,
        "# paved.yaml of {name_for_comment}, made by the Paved onboarding wizard.\n\
         # Commit it to the app's repository; docs/intent.md describes every field."
    );
    out.push_str("apiVersion: paved.dev/v1\n");
    let _ = writeln!(out, "name: {}", scalar(&draft.name));
    if let Some(d) = non_empty(&draft.description) {
        let _ = writeln!(out, "description: {}", scalar(d));
    }
    let _ = writeln!(out, "owners: {}", flow_list(&draft.owners));
    if let Some(team) = non_empty(&draft.team) {
        let _ = writeln!(out, "team: {}", scalar(team));
    }
    if let Some(s) = non_empty(&draft.data_sensitivity) {
        let _ = writeln!(out, "dataSensitivity: {}", scalar(s));
    }
    if let Some(b) = draft.internet_facing {
        let _ = writeln!(out, "internetFacing: {b}");
    }
    let _ = writeln!(out, "domains: {}", flow_list(&draft.domains));
    match &draft.upstream {
        None => {}
        Some(UpstreamDraft::Endpoint {
            endpoint,
            tls: false,
        }) => {
            let _ = writeln!(out, "upstream: {}", scalar(endpoint));
        }
        Some(UpstreamDraft::Endpoint {
            endpoint,
            tls: true,
        }) => {
            let _ = writeln!(
                out,
                "upstream:\n  endpoints: [{}]\n  tls: {{}}",
                scalar(endpoint)
            );
        }
        Some(UpstreamDraft::Raw(text)) => {
            let _ = writeln!(out, "upstream: {}", scalar(text));
        }
    }
    write_populations(&mut out, &draft.populations);
    write_routes(&mut out, &draft.routes);
    if !draft.service_clients.is_empty() {
        out.push_str("serviceClients:\n");
        for id in &draft.service_clients {
            let _ = writeln!(out, "  - clientId: {}", scalar(id));
        }
    }
    if let Some(mode) = non_empty(&draft.waf_mode) {
        let _ = writeln!(out, "waf:\n  mode: {}", scalar(mode));
    }
    match &draft.rate_limits {
        RateLimitDraft::PlatformDefault => {}
        RateLimitDraft::Unlimited => out.push_str("rateLimits: []\n"),
        RateLimitDraft::Rule {
            requests,
            per,
            key,
            burst,
        } => {
            let _ = writeln!(out, "rateLimits:\n  - requests: {}", number(requests));
            let _ = writeln!(out, "    per: {}", scalar(per));
            if !key.trim().is_empty() {
                let _ = writeln!(out, "    key: {}", scalar(key));
            }
            if !burst.trim().is_empty() {
                let _ = writeln!(out, "    burst: {}", number(burst));
            }
        }
    }
    out
}

fn write_populations(out: &mut String, populations: &[PopulationDraft]) {
    if populations.is_empty() {
        return;
    }
    out.push_str("populations:\n");
    for p in populations {
        let _ = writeln!(out, "  {}:", key(&p.name));
        if p.groups.is_empty() && p.claims.is_empty() {
            // Written out so the control plane can say what a population needs.
            out.push_str("    groups: []\n");
        }
        if !p.groups.is_empty() {
            let _ = writeln!(out, "    groups: {}", flow_list(&p.groups));
        }
        if !p.claims.is_empty() {
            out.push_str("    claims:\n");
            for (claim, values) in &p.claims {
                let value = match values.as_slice() {
                    [one] => scalar(one),
                    many => flow_list(many),
                };
                let _ = writeln!(out, "      {}: {value}", key(claim));
            }
        }
    }
}

fn write_routes(out: &mut String, routes: &[RouteDraft]) {
    if routes.is_empty() {
        return;
    }
    out.push_str("routes:\n");
    for r in routes {
        let _ = writeln!(out, "  - path: {}", scalar(&r.path));
        if r.public {
            out.push_str("    public: true\n");
        }
        if !r.allow.is_empty() {
            let _ = writeln!(out, "    allow: {}", flow_list(&r.allow));
        }
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// `[a, b]`, items quoted when needed.
fn flow_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| scalar(i)).collect();
    format!("[{}]", items.join(", "))
}

/// A mapping key: plain when safe, else double-quoted.
fn key(text: &str) -> String {
    scalar(text)
}

/// A number as entered when it is one, else the text quoted (the control plane then reports
/// the type error at the field).
fn number(text: &str) -> String {
    let t = text.trim();
    if !t.is_empty() && t.len() <= 18 && t.bytes().all(|b| b.is_ascii_digit()) {
        t.to_string()
    } else {
        quoted(t)
    }
}

/// A string scalar: plain when YAML reads it back as the same string in every context we use
/// (block values, flow lists, keys), else double-quoted with JSON escapes (valid YAML).
pub fn scalar(text: &str) -> String {
    if is_plain_safe(text) {
        text.to_string()
    } else {
        quoted(text)
    }
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

fn is_plain_safe(text: &str) -> bool {
    const RESERVED: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
    ];
    let Some(first) = text.chars().next() else {
        return false;
    };
    if !text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '@' | ':'))
    {
        return false;
    }
    if !(first.is_ascii_alphanumeric() || first == '/' || first == '_') || text.ends_with(':') {
        return false;
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(text)) {
        return false;
    }
    // Anything a YAML reader might take for a number (`8080`, `1.5`, `1e3`, `0x1f`, `1_000`)
    // is quoted; `10.0.0.5:80` and `1.2.3` are strings whatever the reader.
    if first.is_ascii_digit() {
        let dots = text.matches('.').count();
        return text.contains(':') || dots >= 2 || text.contains('/') || text.contains('@');
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> IntentDraft {
        IntentDraft {
            name: "orders".into(),
            owners: vec!["demo".into()],
            team: Some("platform".into()),
            domains: vec!["orders.localhost".into()],
            upstream: Some(UpstreamDraft::Endpoint {
                endpoint: "127.0.0.1:9000".into(),
                tls: false,
            }),
            ..IntentDraft::default()
        }
    }

    fn as_json(yaml: &str) -> serde_json::Value {
        serde_yaml_ng::from_str(yaml).expect("the generated text is YAML")
    }

    #[test]
    fn minimal_draft_is_the_smallest_paved_intent() {
        let yaml = to_yaml(&minimal());
        assert_eq!(
            as_json(&yaml),
            json!({
                "apiVersion": "paved.dev/v1",
                "name": "orders",
                "owners": ["demo"],
                "team": "platform",
                "domains": ["orders.localhost"],
                "upstream": "127.0.0.1:9000",
            })
        );
        assert!(yaml.starts_with("# paved.yaml of orders"), "{yaml}");
    }

    #[test]
    fn minimal_draft_is_accepted_by_the_control_plane_model() {
        let intent = paved_model::Intent::from_yaml_str(&to_yaml(&minimal()), "paved.yaml")
            .expect("the model accepts the wizard's intent");
        assert_eq!(intent.name, "orders");
        assert_eq!(intent.domains, vec!["orders.localhost".to_string()]);
    }

    #[test]
    fn every_section_round_trips_and_the_model_accepts_it() {
        let draft = IntentDraft {
            description: Some("Orders: \"quotes\", colons: and #hashes".into()),
            data_sensitivity: Some("confidential".into()),
            internet_facing: Some(true),
            domains: vec!["orders.example.com".into(), "*.preview.example.com".into()],
            upstream: Some(UpstreamDraft::Endpoint {
                endpoint: "api.internal:443".into(),
                tls: true,
            }),
            populations: vec![
                PopulationDraft {
                    name: "staff".into(),
                    groups: vec!["all-staff".into()],
                    claims: vec![],
                },
                PopulationDraft {
                    name: "hr".into(),
                    groups: vec!["hr".into()],
                    claims: vec![
                        ("acr".into(), vec!["mfa".into()]),
                        ("department".into(), vec!["finance".into(), "audit".into()]),
                    ],
                },
            ],
            routes: vec![
                RouteDraft {
                    path: "/".into(),
                    allow: vec!["staff".into()],
                    public: false,
                },
                RouteDraft {
                    path: "/admin".into(),
                    allow: vec!["hr".into()],
                    public: false,
                },
                RouteDraft {
                    path: "/status".into(),
                    allow: vec![],
                    public: true,
                },
            ],
            service_clients: vec!["billing-cron".into()],
            waf_mode: Some("detect".into()),
            rate_limits: RateLimitDraft::Rule {
                requests: "50".into(),
                per: "second".into(),
                key: "identity".into(),
                burst: "25".into(),
            },
            ..minimal()
        };
        let yaml = to_yaml(&draft);
        let v = as_json(&yaml);
        assert_eq!(v["description"], "Orders: \"quotes\", colons: and #hashes");
        assert_eq!(v["internetFacing"], true);
        assert_eq!(v["domains"][1], "*.preview.example.com");
        assert_eq!(
            v["upstream"],
            json!({"endpoints": ["api.internal:443"], "tls": {}})
        );
        assert_eq!(
            v["populations"]["hr"],
            json!({"groups": ["hr"], "claims": {"acr": "mfa", "department": ["finance", "audit"]}})
        );
        assert_eq!(v["routes"][2], json!({"path": "/status", "public": true}));
        assert_eq!(v["serviceClients"], json!([{"clientId": "billing-cron"}]));
        assert_eq!(v["waf"], json!({"mode": "detect"}));
        assert_eq!(
            v["rateLimits"],
            json!([{"requests": 50, "per": "second", "key": "identity", "burst": 25}])
        );
        let intent = paved_model::Intent::from_yaml_str(&yaml, "paved.yaml")
            .unwrap_or_else(|e| panic!("the model accepts it: {e}\n{yaml}"));
        assert_eq!(intent.routes.len(), 3);
        assert_eq!(intent.populations.len(), 2);
    }

    #[test]
    fn no_rate_limit_is_an_empty_list_and_the_default_leaves_the_key_out() {
        let none = IntentDraft {
            rate_limits: RateLimitDraft::Unlimited,
            ..minimal()
        };
        assert_eq!(as_json(&to_yaml(&none))["rateLimits"], json!([]));
        assert!(as_json(&to_yaml(&minimal())).get("rateLimits").is_none());
    }

    #[test]
    fn empty_required_fields_are_written_so_the_control_plane_reports_them_by_field() {
        let draft = IntentDraft {
            name: String::new(),
            owners: vec![],
            domains: vec![],
            upstream: Some(UpstreamDraft::Raw(String::new())),
            ..IntentDraft::default()
        };
        let v = as_json(&to_yaml(&draft));
        assert_eq!(v["name"], "");
        assert_eq!(v["owners"], json!([]));
        assert_eq!(v["domains"], json!([]));
        assert_eq!(v["upstream"], "");
        let err = paved_model::Intent::from_yaml_str(&to_yaml(&draft), "paved.yaml")
            .expect_err("empty values are invalid");
        let fields: Vec<String> = err.diagnostics().iter().map(|d| d.field.clone()).collect();
        assert!(fields.iter().any(|f| f == "name"), "{fields:?}");
        assert!(fields.iter().any(|f| f == "owners"), "{fields:?}");
    }

    #[test]
    fn values_a_yaml_reader_would_retype_are_quoted() {
        for text in [
            "yes", "No", "null", "~", "8080", "1.5", "1e3", "-x", "*.a.com", "a b", "a:", "#x", "",
            "&a", "!x", "[x]", "x,y",
        ] {
            let yaml = format!("v: {}\n", scalar(text));
            let back: serde_json::Value = serde_yaml_ng::from_str(&yaml).expect("valid YAML");
            assert_eq!(back["v"], json!(text), "{text} written as {yaml}");
        }
        assert_eq!(scalar("10.0.0.5:8080"), "10.0.0.5:8080");
        assert_eq!(scalar("alice@example.com"), "alice@example.com");
    }

    #[test]
    fn non_numeric_rate_values_are_passed_on_as_text() {
        let draft = IntentDraft {
            rate_limits: RateLimitDraft::Rule {
                requests: "lots".into(),
                per: "second".into(),
                key: String::new(),
                burst: String::new(),
            },
            ..minimal()
        };
        assert_eq!(
            as_json(&to_yaml(&draft))["rateLimits"],
            json!([{"requests": "lots", "per": "second"}])
        );
    }
}
