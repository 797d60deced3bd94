//! The WAF: a configured policy that turns findings into a decision.

use std::fmt;

use paved_model::plugin_config::{WafConfig, WafExclusion, WafMode};

use crate::inspect::{self, Findings, Hit};
use crate::request::{Location, Request};
use crate::rule::{self, Family, RuleId};

/// What happens to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Below the threshold (or the WAF is off): let it through.
    Allow,
    /// At or above the threshold in detect mode: let it through, report it.
    Detect,
    /// At or above the threshold in block mode: deny it.
    Deny,
}

impl Action {
    /// The value of the `paved.decision.waf` property.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Detect => "detect",
            Action::Deny => "deny",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of inspecting a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// The anomaly score: the sum of the scores of `rules`.
    pub score: u32,
    /// The rules that counted (enabled at the paranoia level, not excluded), ascending.
    pub rules: Vec<RuleId>,
    /// Where they matched.
    pub hits: Vec<Hit>,
}

impl Decision {
    /// The value of the `paved.waf.rules` property: rule IDs, comma-separated.
    pub fn rules_csv(&self) -> String {
        self.rules
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A configuration the WAF cannot run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Paranoia outside 1–4.
    Paranoia(u8),
    /// The anomaly threshold is 0: every request would be denied.
    Threshold,
    /// An exclusion names no rule, or a rule or family that does not exist.
    UnknownRule {
        /// Index of the exclusion.
        exclusion: usize,
        /// What it said.
        rule: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Paranoia(p) => write!(f, "paranoia must be 1 to 4, found {p}"),
            ConfigError::Threshold => f.write_str("anomaly_threshold must be at least 1"),
            ConfigError::UnknownRule { exclusion, rule } => write!(
                f,
                "exclusions[{exclusion}].rules: {rule:?} is not a rule ID, an ID range (942100-942199), or a family ({})",
                Family::ALL.map(Family::tag).join(", ")
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Which rules an exclusion turns off.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RuleSelector {
    Range(RuleId, RuleId),
    Family(Family),
}

impl RuleSelector {
    fn parse(text: &str) -> Option<RuleSelector> {
        let text = text.trim();
        if let Some(family) = Family::from_tag(text) {
            return Some(RuleSelector::Family(family));
        }
        let (low, high) = text.split_once('-').unwrap_or((text, text));
        let (low, high) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
        let any_rule = rule::RULES.iter().any(|r| (low..=high).contains(&r.id));
        (low <= high && any_rule).then_some(RuleSelector::Range(low, high))
    }

    fn matches(&self, id: RuleId) -> bool {
        match self {
            RuleSelector::Range(low, high) => (*low..=*high).contains(&id),
            RuleSelector::Family(family) => rule::rule(id).is_some_and(|r| r.family == *family),
        }
    }
}

/// Which values an exclusion covers: `name` (an argument: query, form, JSON key or path,
/// multipart field), `cookie:name`, `header:name`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ParameterSelector {
    Arg(String),
    Cookie(String),
    Header(String),
}

impl ParameterSelector {
    fn parse(text: &str) -> ParameterSelector {
        let lower = text.trim().to_lowercase();
        if let Some(name) = lower.strip_prefix("cookie:") {
            ParameterSelector::Cookie(name.to_string())
        } else if let Some(name) = lower.strip_prefix("header:") {
            ParameterSelector::Header(name.to_string())
        } else {
            ParameterSelector::Arg(lower.strip_prefix("arg:").unwrap_or(&lower).to_string())
        }
    }

    fn matches(&self, hit: &Hit) -> bool {
        let t = &hit.target;
        match self {
            ParameterSelector::Arg(name) => {
                matches!(
                    t.location,
                    Location::Arg | Location::ArgName | Location::FileName
                ) && (t.name == *name || t.path == *name)
            }
            ParameterSelector::Cookie(name) => {
                matches!(t.location, Location::Cookie | Location::CookieName) && t.name == *name
            }
            ParameterSelector::Header(name) => t.location == Location::Header && t.name == *name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Exclusion {
    rules: Vec<RuleSelector>,
    path_prefixes: Vec<String>,
    parameters: Vec<ParameterSelector>,
}

impl Exclusion {
    fn parse(index: usize, e: &WafExclusion) -> Result<Exclusion, ConfigError> {
        if e.rules.is_empty() {
            return Err(ConfigError::UnknownRule {
                exclusion: index,
                rule: String::new(),
            });
        }
        let rules = e
            .rules
            .iter()
            .map(|r| {
                RuleSelector::parse(r).ok_or_else(|| ConfigError::UnknownRule {
                    exclusion: index,
                    rule: r.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Exclusion {
            rules,
            path_prefixes: e.path_prefixes.clone(),
            parameters: e
                .parameters
                .iter()
                .map(|p| ParameterSelector::parse(p))
                .collect(),
        })
    }

    fn excludes(&self, hit: &Hit, path: &str) -> bool {
        self.rules.iter().any(|r| r.matches(hit.rule))
            && (self.path_prefixes.is_empty()
                || self.path_prefixes.iter().any(|p| path_has_prefix(path, p)))
            && (self.parameters.is_empty() || self.parameters.iter().any(|p| p.matches(hit)))
    }
}

/// Prefix match on whole segments: `/api` covers `/api` and `/api/x`, not `/apix`.
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'),
        None => false,
    }
}

/// A configured WAF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waf {
    mode: WafMode,
    paranoia: u8,
    threshold: u32,
    exclusions: Vec<Exclusion>,
}

impl Waf {
    /// Validates the configuration.
    pub fn new(config: &WafConfig) -> Result<Waf, ConfigError> {
        if !(1..=4).contains(&config.paranoia) {
            return Err(ConfigError::Paranoia(config.paranoia));
        }
        if config.anomaly_threshold == 0 {
            return Err(ConfigError::Threshold);
        }
        let exclusions = config
            .exclusions
            .iter()
            .enumerate()
            .map(|(i, e)| Exclusion::parse(i, e))
            .collect::<Result<_, _>>()?;
        Ok(Waf {
            mode: config.mode,
            paranoia: config.paranoia,
            threshold: config.anomaly_threshold,
            exclusions,
        })
    }

    /// Whether the WAF inspects requests at all.
    pub fn is_on(&self) -> bool {
        self.mode != WafMode::Off
    }

    /// Inspects a request and decides.
    pub fn inspect(&self, req: &Request<'_>) -> Decision {
        if !self.is_on() {
            return self.decide(&Findings::default(), "/");
        }
        let findings = inspect::inspect(req);
        let path = String::from_utf8_lossy(req.raw_path()).into_owned();
        self.decide(&findings, &path)
    }

    /// Scores findings under this policy: rules above the paranoia level and excluded matches
    /// do not count; each rule counts once.
    pub fn decide(&self, findings: &Findings, path: &str) -> Decision {
        let hits: Vec<Hit> = findings
            .hits
            .iter()
            .filter(|hit| rule::rule(hit.rule).is_some_and(|r| r.paranoia <= self.paranoia))
            .filter(|hit| !self.exclusions.iter().any(|e| e.excludes(hit, path)))
            .cloned()
            .collect();
        let mut rules: Vec<RuleId> = hits.iter().map(|h| h.rule).collect();
        rules.sort_unstable();
        rules.dedup();
        let score = rules
            .iter()
            .filter_map(|id| rule::rule(*id))
            .map(|r| r.score)
            .sum();
        let action = match self.mode {
            _ if score < self.threshold => Action::Allow,
            WafMode::Block => Action::Deny,
            WafMode::Detect => Action::Detect,
            WafMode::Off => Action::Allow,
        };
        Decision {
            action,
            score,
            rules,
            hits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Target;

    fn config(json_exclusions: Vec<WafExclusion>, mode: WafMode) -> WafConfig {
        WafConfig {
            mode,
            exclusions: json_exclusions,
            ..WafConfig::default()
        }
    }

    fn findings(hits: &[(RuleId, Location, &str)]) -> Findings {
        Findings {
            hits: hits
                .iter()
                .map(|(rule, location, name)| Hit {
                    rule: *rule,
                    target: Target::new(*location, *name),
                })
                .collect(),
        }
    }

    #[test]
    fn a_critical_rule_denies_in_block_mode_and_is_reported_in_detect_mode() {
        let f = findings(&[(rule::SQLI_TOKENIZER, Location::Arg, "q")]);
        let block = Waf::new(&config(vec![], WafMode::Block)).unwrap();
        let d = block.decide(&f, "/search");
        assert_eq!(
            (d.action, d.score, d.rules_csv()),
            (Action::Deny, 5, "942100".to_string())
        );
        let detect = Waf::new(&config(vec![], WafMode::Detect)).unwrap();
        assert_eq!(detect.decide(&f, "/search").action, Action::Detect);
    }

    #[test]
    fn each_rule_counts_once_and_rules_above_the_paranoia_level_do_not_count() {
        let f = findings(&[
            (rule::PATH_TRAVERSAL, Location::Arg, "a"),
            (rule::PATH_TRAVERSAL, Location::Arg, "b"),
            (rule::SQLI_FUNCTIONS, Location::Arg, "a"),
        ]);
        let waf = Waf::new(&WafConfig::default()).unwrap();
        let d = waf.decide(&f, "/");
        assert_eq!((d.action, d.score), (Action::Allow, 4));
        let strict = Waf::new(&WafConfig {
            paranoia: 2,
            ..WafConfig::default()
        })
        .unwrap();
        assert_eq!(strict.decide(&f, "/").action, Action::Deny);
    }

    #[test]
    fn exclusions_apply_by_rule_family_path_and_parameter() {
        let f = findings(&[
            (rule::XSS_TOKENIZER, Location::Arg, "body_html"),
            (rule::SQLI_TOKENIZER, Location::Arg, "q"),
        ]);
        let exclusion = |rules: &[&str], paths: &[&str], params: &[&str]| WafExclusion {
            rules: rules.iter().map(|s| s.to_string()).collect(),
            path_prefixes: paths.iter().map(|s| s.to_string()).collect(),
            parameters: params.iter().map(|s| s.to_string()).collect(),
        };
        let waf = Waf::new(&config(
            vec![
                exclusion(&["xss"], &["/cms"], &["body_html"]),
                exclusion(&["942100-942199"], &[], &["q"]),
            ],
            WafMode::Block,
        ))
        .unwrap();
        assert_eq!(waf.decide(&f, "/cms/pages").action, Action::Allow);
        assert_eq!(waf.decide(&f, "/cmsx").rules, vec![rule::XSS_TOKENIZER]);
    }

    #[test]
    fn invalid_configurations_are_refused_with_the_reason() {
        let bad = WafConfig {
            paranoia: 5,
            ..WafConfig::default()
        };
        assert_eq!(Waf::new(&bad), Err(ConfigError::Paranoia(5)));
        let bad = config(
            vec![WafExclusion {
                rules: vec!["sqlx".into()],
                ..WafExclusion::default()
            }],
            WafMode::Block,
        );
        let err = Waf::new(&bad).unwrap_err();
        assert!(
            err.to_string().contains("exclusions[0].rules: \"sqlx\""),
            "{err}"
        );
    }
}
