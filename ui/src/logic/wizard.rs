//! The onboarding wizard's logic, free of any UI: its steps and the fields each one owns, the
//! intent "so far" that each step sends to the control plane's `planIntent`, the mapping of
//! the control plane's diagnostics back to the wizard's fields, and the step machine.
//!
//! Validation is the control plane's: a step never judges a value itself. To validate the
//! fields of step N before the later steps are filled, the intent sent for step N carries the
//! entered values of steps up to N (empty ones written out empty, so the diagnostics name
//! them) and, for required fields of later steps that are still empty, placeholders the
//! control plane accepts. Only diagnostics about the current step's fields block "Next".

use std::collections::BTreeMap;

use super::intent_yaml::{IntentDraft, PopulationDraft, RateLimitDraft, RouteDraft, UpstreamDraft};
use super::upstream::parse_upstream;
use crate::api::ApiError;

/// Stable element ids (and form names) of the wizard's fields, for labels, errors and tests.
pub mod ids {
    /// App name.
    pub const APP_NAME: &str = "app-name";
    /// Owning team.
    pub const TEAM: &str = "team";
    /// Owners (comma-separated).
    pub const OWNERS: &str = "owners";
    /// Description.
    pub const DESCRIPTION: &str = "description";
    /// Domain(s) (comma-separated).
    pub const DOMAIN: &str = "domain";
    /// Upstream URL.
    pub const UPSTREAM: &str = "upstream";
    /// Service clients (comma-separated client ids).
    pub const SERVICE_CLIENTS: &str = "service-clients";
    /// Internet-facing checkbox.
    pub const INTERNET_FACING: &str = "internet-facing";
    /// Data sensitivity select.
    pub const DATA_SENSITIVITY: &str = "data-sensitivity";
    /// WAF mode select.
    pub const WAF_MODE: &str = "waf-mode";
    /// Rate limit choice (default, custom, none).
    pub const RATE_LIMIT: &str = "rate-limit";
    /// Requests per window of the custom rate limit.
    pub const RATE_LIMIT_REQUESTS: &str = "rate-limit-requests";
    /// Window of the custom rate limit.
    pub const RATE_LIMIT_PER: &str = "rate-limit-per";
    /// Key of the custom rate limit.
    pub const RATE_LIMIT_KEY: &str = "rate-limit-key";
    /// Burst of the custom rate limit.
    pub const RATE_LIMIT_BURST: &str = "rate-limit-burst";

    /// `population-<row>-<part>` (`name`, `groups`, `claims`).
    pub fn population(row: usize, part: &str) -> String {
        format!("population-{row}-{part}")
    }

    /// `route-<row>-<part>` (`path`, `allow`, `public`).
    pub fn route(row: usize, part: &str) -> String {
        format!("route-{row}-{part}")
    }
}

/// The wizard's steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// App name, owners, team.
    App,
    /// Domain(s).
    Domain,
    /// Upstream URL (with a reachability check).
    Upstream,
    /// Who may enter: populations, routes, service clients.
    Access,
    /// Internet-facing and data sensitivity.
    Exposure,
    /// WAF mode and rate limits.
    Protection,
    /// The generated paved.yaml, the plan, Apply.
    Review,
}

impl Step {
    /// Every step in order.
    pub const ALL: [Step; 7] = [
        Step::App,
        Step::Domain,
        Step::Upstream,
        Step::Access,
        Step::Exposure,
        Step::Protection,
        Step::Review,
    ];

    /// 1-based position.
    pub fn number(self) -> usize {
        Step::ALL.iter().position(|s| *s == self).unwrap_or(0) + 1
    }

    /// The step's title.
    pub fn title(self) -> &'static str {
        match self {
            Step::App => "App and owners",
            Step::Domain => "Domain",
            Step::Upstream => "Upstream",
            Step::Access => "Who may enter",
            Step::Exposure => "Exposure and data",
            Step::Protection => "Protection",
            Step::Review => "Review and apply",
        }
    }

    /// The step after this one.
    pub fn next(self) -> Option<Step> {
        Step::ALL.get(self.number()).copied()
    }

    /// The step before this one.
    pub fn prev(self) -> Option<Step> {
        self.number()
            .checked_sub(2)
            .and_then(|i| Step::ALL.get(i).copied())
    }

    /// The step whose form holds the field with element id `id`.
    pub fn of_field(id: &str) -> Option<Step> {
        match id {
            ids::APP_NAME | ids::TEAM | ids::OWNERS | ids::DESCRIPTION => Some(Step::App),
            ids::DOMAIN => Some(Step::Domain),
            ids::UPSTREAM => Some(Step::Upstream),
            ids::SERVICE_CLIENTS => Some(Step::Access),
            ids::INTERNET_FACING | ids::DATA_SENSITIVITY => Some(Step::Exposure),
            ids::WAF_MODE => Some(Step::Protection),
            _ if id.starts_with("population-") || id.starts_with("route-") => Some(Step::Access),
            _ if id.starts_with(ids::RATE_LIMIT) => Some(Step::Protection),
            _ => None,
        }
    }
}

/// The visible label of the field with element id `id` (for the error summary's links).
pub fn field_label(id: &str) -> String {
    let simple = match id {
        ids::APP_NAME => "App name",
        ids::TEAM => "Owner team",
        ids::OWNERS => "Owners",
        ids::DESCRIPTION => "Description",
        ids::DOMAIN => "Domain",
        ids::UPSTREAM => "Upstream URL",
        ids::SERVICE_CLIENTS => "Service clients",
        ids::INTERNET_FACING => "Internet-facing",
        ids::DATA_SENSITIVITY => "Data sensitivity",
        ids::WAF_MODE => "WAF mode",
        ids::RATE_LIMIT => "Rate limit",
        ids::RATE_LIMIT_REQUESTS => "Requests per window",
        ids::RATE_LIMIT_PER => "Window",
        ids::RATE_LIMIT_KEY => "Counted per",
        ids::RATE_LIMIT_BURST => "Burst",
        _ => "",
    };
    if !simple.is_empty() {
        return simple.to_string();
    }
    let row_label = |rest: &str, group: &str, parts: &[(&str, &str)]| -> Option<String> {
        let (row, part) = rest.split_once('-')?;
        let row: usize = row.parse().ok()?;
        let name = parts.iter().find(|(p, _)| *p == part)?.1;
        Some(format!("{group} {}: {name}", row + 1))
    };
    id.strip_prefix("population-")
        .and_then(|rest| {
            row_label(
                rest,
                "Population",
                &[("name", "name"), ("groups", "groups"), ("claims", "claims")],
            )
        })
        .or_else(|| {
            id.strip_prefix("route-").and_then(|rest| {
                row_label(
                    rest,
                    "Route",
                    &[
                        ("path", "path prefix"),
                        ("allow", "allowed populations"),
                        ("public", "public"),
                    ],
                )
            })
        })
        .unwrap_or_else(|| id.to_string())
}

/// One row of the populations table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PopulationFields {
    /// Name.
    pub name: String,
    /// Groups, comma-separated.
    pub groups: String,
    /// Claims, one `claim = value, value` per line.
    pub claims: String,
}

/// One row of the routes table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFields {
    /// Path prefix.
    pub path: String,
    /// Populations admitted, comma-separated.
    pub allow: String,
    /// No sign-in.
    pub public: bool,
}

impl Default for RouteFields {
    fn default() -> Self {
        RouteFields {
            path: "/".into(),
            allow: String::new(),
            public: false,
        }
    }
}

/// What the person entered, as text, exactly as in the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WizardFields {
    /// App name.
    pub app_name: String,
    /// Owning team.
    pub team: String,
    /// Owners, comma-separated.
    pub owners: String,
    /// Description.
    pub description: String,
    /// Domains, comma-separated.
    pub domain: String,
    /// Upstream URL or `host:port`.
    pub upstream: String,
    /// Populations.
    pub populations: Vec<PopulationFields>,
    /// Routes.
    pub routes: Vec<RouteFields>,
    /// Service client ids, comma-separated.
    pub service_clients: String,
    /// Internet-facing.
    pub internet_facing: bool,
    /// `public`, `internal`, `confidential` or `restricted`.
    pub data_sensitivity: String,
    /// `block` or `detect`.
    pub waf_mode: String,
    /// `default`, `custom` or `none`.
    pub rate_limit: String,
    /// Requests per window (custom).
    pub rate_requests: String,
    /// `second`, `minute` or `hour` (custom).
    pub rate_per: String,
    /// `ip`, `identity` or `route` (custom).
    pub rate_key: String,
    /// Burst (custom).
    pub rate_burst: String,
}

impl Default for WizardFields {
    fn default() -> Self {
        WizardFields {
            app_name: String::new(),
            team: String::new(),
            owners: String::new(),
            description: String::new(),
            domain: String::new(),
            upstream: String::new(),
            populations: Vec::new(),
            routes: vec![RouteFields::default()],
            service_clients: String::new(),
            internet_facing: false,
            data_sensitivity: "internal".into(),
            waf_mode: "block".into(),
            rate_limit: "default".into(),
            rate_requests: String::new(),
            rate_per: "second".into(),
            rate_key: "ip".into(),
            rate_burst: String::new(),
        }
    }
}

/// Domain used while the person has not reached the domain step (a reserved name that
/// conflicts with no app).
pub const PLACEHOLDER_DOMAIN: &str = "onboarding-wizard.paved.invalid";
/// Upstream used while the person has not reached the upstream step.
pub const PLACEHOLDER_UPSTREAM: &str = "127.0.0.1:9";

/// An intent for the control plane, and which form rows its list entries came from (rows left
/// blank are not written, so indexes differ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drafted {
    /// The intent.
    pub draft: IntentDraft,
    /// Form row of each written population, by position in the intent.
    pub population_rows: Vec<usize>,
    /// Form row of each written route, by position in the intent (empty: routes left out).
    pub route_rows: Vec<usize>,
}

/// Splits a comma-, space- or line-separated list.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses claims written one per line as `claim = value, value`; a line without `=` is a claim
/// with no accepted value (the control plane says what is wrong with it).
pub fn parse_claims(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| match line.split_once('=') {
            Some((claim, values)) => (claim.trim().to_string(), split_list(values)),
            None => (line.to_string(), Vec::new()),
        })
        .collect()
}

/// The intent to validate at `step`: entered values up to `step`, later required fields filled
/// with placeholders while empty.
pub fn draft(fields: &WizardFields, step: Step) -> Drafted {
    let upto = |s: Step| s <= step;
    let domains = split_list(&fields.domain);
    let domains = if domains.is_empty() && !upto(Step::Domain) {
        vec![PLACEHOLDER_DOMAIN.to_string()]
    } else {
        domains
    };
    let upstream_text = fields.upstream.trim();
    let upstream = if upstream_text.is_empty() && !upto(Step::Upstream) {
        UpstreamDraft::Endpoint {
            endpoint: PLACEHOLDER_UPSTREAM.into(),
            tls: false,
        }
    } else {
        match parse_upstream(upstream_text) {
            Some(t) => UpstreamDraft::Endpoint {
                endpoint: t.endpoint(),
                tls: t.tls(),
            },
            None => UpstreamDraft::Raw(upstream_text.to_string()),
        }
    };

    let mut population_rows = Vec::new();
    let mut populations = Vec::new();
    for (row, p) in fields.populations.iter().enumerate() {
        if p.name.trim().is_empty() && p.groups.trim().is_empty() && p.claims.trim().is_empty() {
            continue;
        }
        population_rows.push(row);
        populations.push(PopulationDraft {
            name: p.name.trim().to_string(),
            groups: split_list(&p.groups),
            claims: parse_claims(&p.claims),
        });
    }

    let written: Vec<(usize, &RouteFields)> = fields
        .routes
        .iter()
        .enumerate()
        .filter(|(_, r)| !(r.path.trim().is_empty() && r.allow.trim().is_empty() && !r.public))
        .collect();
    // One route `/` for everyone is what an intent without `routes` means: leave it out.
    let default_only = match written.as_slice() {
        [] => true,
        [(_, r)] => r.path.trim() == "/" && r.allow.trim().is_empty() && !r.public,
        _ => false,
    };
    let (routes, route_rows) = if default_only {
        (Vec::new(), Vec::new())
    } else {
        let routes = written
            .iter()
            .map(|(_, r)| RouteDraft {
                path: r.path.trim().to_string(),
                allow: split_list(&r.allow),
                public: r.public,
            })
            .collect();
        (routes, written.iter().map(|(row, _)| *row).collect())
    };

    let rate_limits = match fields.rate_limit.as_str() {
        "none" => RateLimitDraft::Unlimited,
        "custom" => RateLimitDraft::Rule {
            requests: fields.rate_requests.trim().to_string(),
            per: fields.rate_per.trim().to_string(),
            key: fields.rate_key.trim().to_string(),
            burst: fields.rate_burst.trim().to_string(),
        },
        _ => RateLimitDraft::PlatformDefault,
    };

    let optional = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    Drafted {
        draft: IntentDraft {
            name: fields.app_name.trim().to_string(),
            owners: split_list(&fields.owners),
            team: optional(&fields.team),
            description: optional(&fields.description),
            data_sensitivity: optional(&fields.data_sensitivity),
            internet_facing: Some(fields.internet_facing),
            domains,
            upstream: Some(upstream),
            populations,
            routes,
            service_clients: split_list(&fields.service_clients),
            waf_mode: optional(&fields.waf_mode),
            rate_limits,
        },
        population_rows,
        route_rows,
    }
}

/// The wizard field a diagnostic's field path (`routes[1].allow[0]`) concerns, if any.
pub fn field_for_path(path: &str, drafted: &Drafted) -> Option<String> {
    let (head, rest) = split_head(path);
    let simple = match head {
        "name" => Some(ids::APP_NAME),
        "team" => Some(ids::TEAM),
        "owners" => Some(ids::OWNERS),
        "description" => Some(ids::DESCRIPTION),
        "domains" => Some(ids::DOMAIN),
        "upstream" | "upstreams" => Some(ids::UPSTREAM),
        "serviceClients" => Some(ids::SERVICE_CLIENTS),
        "internetFacing" => Some(ids::INTERNET_FACING),
        "dataSensitivity" => Some(ids::DATA_SENSITIVITY),
        "waf" => Some(ids::WAF_MODE),
        _ => None,
    };
    if let Some(id) = simple {
        return Some(id.to_string());
    }
    match head {
        "populations" => {
            let rest = rest.strip_prefix('.')?;
            let (name, part) = split_head(rest);
            let position = drafted
                .draft
                .populations
                .iter()
                .position(|p| p.name == name)?;
            let row = *drafted.population_rows.get(position)?;
            let part = match split_head(part.trim_start_matches('.')).0 {
                "claims" => "claims",
                _ => "groups",
            };
            Some(ids::population(row, part))
        }
        "routes" => {
            let (index, after) = leading_index(rest);
            let row = match index {
                Some(i) => *drafted.route_rows.get(i)?,
                None => *drafted.route_rows.first()?,
            };
            let part = match split_head(after.trim_start_matches('.')).0 {
                "allow" => "allow",
                "public" => "public",
                _ => "path",
            };
            Some(ids::route(row, part))
        }
        "rateLimits" => {
            let (_, after) = leading_index(rest);
            let id = match split_head(after.trim_start_matches('.')).0 {
                "requests" => ids::RATE_LIMIT_REQUESTS,
                "per" => ids::RATE_LIMIT_PER,
                "key" => ids::RATE_LIMIT_KEY,
                "burst" => ids::RATE_LIMIT_BURST,
                _ => ids::RATE_LIMIT,
            };
            Some(id.to_string())
        }
        _ => None,
    }
}

/// `routes[1].path` → (`routes`, `[1].path`); `upstreams.api` → (`upstreams`, `.api`).
fn split_head(path: &str) -> (&str, &str) {
    let end = path.find(['.', '[']).unwrap_or(path.len());
    path.split_at(end)
}

/// `[3].allow` → (Some(3), `.allow`).
fn leading_index(rest: &str) -> (Option<usize>, &str) {
    let Some(inner) = rest.strip_prefix('[') else {
        return (None, rest);
    };
    match inner.split_once(']') {
        Some((n, after)) => (n.parse().ok(), after),
        None => (None, rest),
    }
}

/// A problem the control plane found that is not about the current step's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The step it concerns, when known.
    pub step: Option<Step>,
    /// The message, with the field path when there is one.
    pub message: String,
}

/// The outcome of validating one step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepCheck {
    /// Messages by element id of the current step's fields.
    pub field_errors: BTreeMap<String, Vec<String>>,
    /// Problems with other steps' fields (shown, not blocking).
    pub notes: Vec<Note>,
    /// Errors that concern the step as a whole (permissions, conflicts, no connection).
    pub general: Vec<String>,
    /// The person must sign in again.
    pub signed_out: bool,
}

impl StepCheck {
    /// Whether "Next" (or "Apply") must wait for a fix.
    pub fn blocks(&self) -> bool {
        !self.field_errors.is_empty() || !self.general.is_empty() || self.signed_out
    }

    /// The messages for the field with element id `id`.
    pub fn errors_for(&self, id: &str) -> &[String] {
        self.field_errors.get(id).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Sorts the control plane's answer to `planIntent` for `step` into what blocks and what does
/// not. `error` is `None` when the plan succeeded.
pub fn assess(step: Step, drafted: &Drafted, error: Option<&ApiError>) -> StepCheck {
    let mut check = StepCheck::default();
    let Some(error) = error else {
        return check;
    };
    let diagnostics = match error {
        ApiError::SignedOut => {
            check.signed_out = true;
            return check;
        }
        ApiError::Transport(_) => {
            check
                .general
                .push(format!("The step could not be checked. {error}"));
            return check;
        }
        ApiError::Graphql { diagnostics, .. } if diagnostics.is_empty() => {
            check.general.push(error.to_string());
            return check;
        }
        ApiError::Graphql { diagnostics, .. } => diagnostics,
    };
    for d in diagnostics {
        let path = d.field.as_deref().unwrap_or("");
        let id = field_for_path(path, drafted);
        let owner = id.as_deref().and_then(Step::of_field);
        match (id, owner) {
            (Some(id), Some(s)) if s == step => {
                check
                    .field_errors
                    .entry(id)
                    .or_default()
                    .push(d.message.clone());
            }
            // On the last step everything must be clean, so every problem blocks there; it is
            // listed with the step to go back to.
            (Some(_), Some(s)) if step == Step::Review => {
                check.general.push(labelled(s, path, &d.message));
            }
            (Some(_), Some(s)) => {
                // A placeholder's problem is not the person's: later steps replace it.
                if s > step && is_placeholder_problem(s, drafted) {
                    continue;
                }
                check.notes.push(Note {
                    step: Some(s),
                    message: labelled(s, path, &d.message),
                });
            }
            _ if step == Step::Review => check.general.push(with_path(path, &d.message)),
            _ => check.notes.push(Note {
                step: None,
                message: with_path(path, &d.message),
            }),
        }
    }
    check
}

fn is_placeholder_problem(step: Step, drafted: &Drafted) -> bool {
    match step {
        Step::Domain => drafted.draft.domains == [PLACEHOLDER_DOMAIN],
        Step::Upstream => matches!(
            &drafted.draft.upstream,
            Some(UpstreamDraft::Endpoint { endpoint, .. }) if endpoint == PLACEHOLDER_UPSTREAM
        ),
        _ => false,
    }
}

fn with_path(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_string()
    } else {
        format!("{path}: {message}")
    }
}

fn labelled(step: Step, path: &str, message: &str) -> String {
    format!(
        "Step {} ({}): {}",
        step.number(),
        step.title(),
        with_path(path, message)
    )
}

/// Where the wizard is: the step shown, the furthest step reached, whether a check is running,
/// and the last check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WizardState {
    /// The step shown.
    pub step: Step,
    /// The furthest step reached (steps up to it can be revisited).
    pub furthest: Step,
    /// A check with the control plane is running.
    pub checking: bool,
    /// The outcome of the last check of the step shown.
    pub check: StepCheck,
}

impl Default for WizardState {
    fn default() -> Self {
        WizardState {
            step: Step::App,
            furthest: Step::App,
            checking: false,
            check: StepCheck::default(),
        }
    }
}

impl WizardState {
    /// Starts checking the step shown; `false` when a check is already running (a second
    /// "Next" while waiting does nothing).
    pub fn begin_check(&mut self) -> bool {
        if self.checking {
            return false;
        }
        self.checking = true;
        true
    }

    /// Ends the check of `step`: moves to the next step when nothing blocks. Returns whether it
    /// moved. A result for a step no longer shown (the person went back meanwhile) is dropped.
    pub fn finish_check(&mut self, step: Step, check: StepCheck) -> bool {
        self.checking = false;
        if step != self.step {
            return false;
        }
        if check.blocks() {
            self.check = check;
            return false;
        }
        match step.next() {
            Some(next) => {
                self.step = next;
                self.furthest = self.furthest.max(next);
                // Notes about later steps stay visible on the step they concern.
                self.check = StepCheck {
                    notes: check.notes,
                    ..StepCheck::default()
                };
                true
            }
            None => {
                self.check = check;
                false
            }
        }
    }

    /// Goes one step back (nothing to validate: the step is checked again on "Next").
    pub fn back(&mut self) {
        if let Some(prev) = self.step.prev() {
            self.step = prev;
            self.checking = false;
            self.check = StepCheck::default();
        }
    }

    /// Jumps to `step` if it was reached before.
    pub fn go_to(&mut self, step: Step) -> bool {
        if step > self.furthest || step == self.step {
            return false;
        }
        self.step = step;
        self.checking = false;
        self.check = StepCheck::default();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Diagnostic;
    use crate::logic::intent_yaml::to_yaml;

    fn diag(field: &str, message: &str) -> Diagnostic {
        Diagnostic {
            field: Some(field.into()),
            line: Some(1),
            column: Some(1),
            message: message.into(),
        }
    }

    fn invalid(diagnostics: Vec<Diagnostic>) -> ApiError {
        ApiError::Graphql {
            message: "invalid intent".into(),
            code: Some("INVALID_INTENT".into()),
            diagnostics,
        }
    }

    fn filled() -> WizardFields {
        WizardFields {
            app_name: "orders".into(),
            team: "platform".into(),
            owners: "demo, ops@example.com".into(),
            domain: "orders.localhost".into(),
            upstream: "http://127.0.0.1:9000".into(),
            ..WizardFields::default()
        }
    }

    fn model_accepts(fields: &WizardFields, step: Step) -> Result<(), String> {
        let yaml = to_yaml(&draft(fields, step).draft);
        paved_model::Intent::from_yaml_str(&yaml, "paved.yaml")
            .map(|_| ())
            .map_err(|e| format!("{e}\n{yaml}"))
    }

    #[test]
    fn steps_run_in_order_and_every_field_belongs_to_one() {
        assert_eq!(Step::App.next(), Some(Step::Domain));
        assert_eq!(Step::Review.next(), None);
        assert_eq!(Step::App.prev(), None);
        assert_eq!(Step::Review.prev(), Some(Step::Protection));
        assert_eq!(Step::Review.number(), 7);
        assert_eq!(Step::of_field(ids::APP_NAME), Some(Step::App));
        assert_eq!(Step::of_field(ids::TEAM), Some(Step::App));
        assert_eq!(Step::of_field(ids::DOMAIN), Some(Step::Domain));
        assert_eq!(Step::of_field(ids::UPSTREAM), Some(Step::Upstream));
        assert_eq!(Step::of_field("route-2-allow"), Some(Step::Access));
        assert_eq!(Step::of_field("population-0-claims"), Some(Step::Access));
        assert_eq!(Step::of_field(ids::DATA_SENSITIVITY), Some(Step::Exposure));
        assert_eq!(
            Step::of_field(ids::RATE_LIMIT_BURST),
            Some(Step::Protection)
        );
        assert_eq!(Step::of_field("nothing"), None);
    }

    #[test]
    fn first_step_draft_uses_placeholders_the_model_accepts() {
        let fields = WizardFields {
            app_name: "orders".into(),
            owners: "demo".into(),
            ..WizardFields::default()
        };
        let d = draft(&fields, Step::App);
        assert_eq!(d.draft.domains, vec![PLACEHOLDER_DOMAIN.to_string()]);
        assert_eq!(
            d.draft.upstream,
            Some(UpstreamDraft::Endpoint {
                endpoint: PLACEHOLDER_UPSTREAM.into(),
                tls: false
            })
        );
        model_accepts(&fields, Step::App).expect("placeholders are valid");
    }

    #[test]
    fn empty_fields_of_the_current_step_are_written_empty_not_replaced() {
        let d = draft(&WizardFields::default(), Step::Upstream);
        assert!(d.draft.domains.is_empty(), "domain step already passed");
        assert_eq!(d.draft.upstream, Some(UpstreamDraft::Raw(String::new())));
    }

    #[test]
    fn complete_fields_make_an_intent_the_model_accepts_at_every_step() {
        let mut fields = filled();
        fields.populations = vec![PopulationFields {
            name: "staff".into(),
            groups: "all-staff".into(),
            claims: "acr = mfa".into(),
        }];
        fields.routes = vec![
            RouteFields {
                path: "/".into(),
                allow: "staff".into(),
                public: false,
            },
            RouteFields {
                path: "/status".into(),
                allow: String::new(),
                public: true,
            },
        ];
        fields.rate_limit = "custom".into();
        fields.rate_requests = "20".into();
        for step in Step::ALL {
            model_accepts(&fields, step).unwrap_or_else(|e| panic!("{step:?}: {e}"));
        }
    }

    #[test]
    fn the_default_route_is_left_out_and_blank_rows_are_skipped() {
        let mut fields = filled();
        fields.routes.push(RouteFields {
            path: String::new(),
            allow: String::new(),
            public: false,
        });
        fields.populations.push(PopulationFields::default());
        let d = draft(&fields, Step::Review);
        assert!(d.draft.routes.is_empty());
        assert!(d.route_rows.is_empty());
        assert!(d.draft.populations.is_empty());
    }

    #[test]
    fn diagnostics_map_back_to_form_rows_even_when_blank_rows_are_skipped() {
        let mut fields = filled();
        fields.populations = vec![
            PopulationFields::default(),
            PopulationFields {
                name: "hr".into(),
                groups: "hr".into(),
                claims: String::new(),
            },
        ];
        fields.routes = vec![
            RouteFields {
                path: String::new(),
                allow: String::new(),
                public: false,
            },
            RouteFields {
                path: "/".into(),
                allow: "hr".into(),
                public: false,
            },
            RouteFields {
                path: "/admin".into(),
                allow: "staf".into(),
                public: false,
            },
        ];
        let d = draft(&fields, Step::Access);
        assert_eq!(d.route_rows, vec![1, 2]);
        assert_eq!(
            field_for_path("routes[1].allow[0]", &d).as_deref(),
            Some("route-2-allow")
        );
        assert_eq!(
            field_for_path("routes[0].path", &d).as_deref(),
            Some("route-1-path")
        );
        assert_eq!(
            field_for_path("routes[0]", &d).as_deref(),
            Some("route-1-path")
        );
        assert_eq!(
            field_for_path("populations.hr", &d).as_deref(),
            Some("population-1-groups")
        );
        assert_eq!(
            field_for_path("populations.hr.claims.acr", &d).as_deref(),
            Some("population-1-claims")
        );
        assert_eq!(field_for_path("populations.nobody", &d), None);
        assert_eq!(field_for_path("routes[7].path", &d), None);
    }

    #[test]
    fn top_level_paths_map_to_their_fields() {
        let d = draft(&filled(), Step::Review);
        for (path, id) in [
            ("name", ids::APP_NAME),
            ("owners[1]", ids::OWNERS),
            ("team", ids::TEAM),
            ("domains[0]", ids::DOMAIN),
            ("upstream.endpoints[0]", ids::UPSTREAM),
            ("upstreams.api.tls.sni", ids::UPSTREAM),
            ("serviceClients[0].clientId", ids::SERVICE_CLIENTS),
            ("internetFacing", ids::INTERNET_FACING),
            ("dataSensitivity", ids::DATA_SENSITIVITY),
            ("waf.mode", ids::WAF_MODE),
            ("rateLimits[0].requests", ids::RATE_LIMIT_REQUESTS),
            ("rateLimits[0].per", ids::RATE_LIMIT_PER),
            ("rateLimits", ids::RATE_LIMIT),
        ] {
            assert_eq!(field_for_path(path, &d).as_deref(), Some(id), "{path}");
        }
        assert_eq!(field_for_path("", &d), None);
        assert_eq!(field_for_path("apiVersion", &d), None);
    }

    #[test]
    fn only_diagnostics_of_the_current_step_block_next() {
        let d = draft(&filled(), Step::App);
        let error = invalid(vec![
            diag("name", "expected lowercase letters"),
            diag("domains[0]", "expected a domain"),
        ]);
        let check = assess(Step::App, &d, Some(&error));
        assert!(check.blocks());
        assert_eq!(
            check.errors_for(ids::APP_NAME),
            ["expected lowercase letters"]
        );
        assert_eq!(check.errors_for(ids::DOMAIN), [] as [String; 0]);
        assert_eq!(check.notes.len(), 1);
        assert_eq!(check.notes[0].step, Some(Step::Domain));

        let later_only = invalid(vec![diag("domains[0]", "expected a domain")]);
        let check = assess(Step::App, &d, Some(&later_only));
        assert!(!check.blocks(), "a later step's problem does not block");
    }

    #[test]
    fn placeholder_problems_are_not_shown() {
        let fields = WizardFields {
            app_name: "orders".into(),
            owners: "demo".into(),
            ..WizardFields::default()
        };
        let d = draft(&fields, Step::App);
        let error = invalid(vec![diag("upstream.endpoints[0]", "unreachable")]);
        let check = assess(Step::App, &d, Some(&error));
        assert!(check.notes.is_empty() && !check.blocks());
    }

    #[test]
    fn errors_without_diagnostics_block_the_step() {
        let d = draft(&filled(), Step::Domain);
        let conflict = ApiError::Graphql {
            message: "orders.localhost/ is already routed by app demo".into(),
            code: Some("CONFLICT".into()),
            diagnostics: vec![],
        };
        let check = assess(Step::Domain, &d, Some(&conflict));
        assert!(check.blocks());
        assert_eq!(check.general.len(), 1);
        let check = assess(Step::Domain, &d, Some(&ApiError::SignedOut));
        assert!(check.signed_out && check.blocks());
        let check = assess(Step::Domain, &d, Some(&ApiError::Transport("down".into())));
        assert!(check.blocks());
        assert!(!assess(Step::Domain, &d, None).blocks());
    }

    #[test]
    fn on_review_every_problem_blocks() {
        let d = draft(&filled(), Step::Review);
        let error = invalid(vec![diag("name", "taken"), diag("", "document problem")]);
        let check = assess(Step::Review, &d, Some(&error));
        assert!(check.blocks());
        assert_eq!(check.general.len(), 2, "{check:?}");
    }

    #[test]
    fn next_moves_only_when_the_check_passes() {
        let mut state = WizardState::default();
        assert!(state.begin_check());
        assert!(
            !state.begin_check(),
            "a second Next while checking is ignored"
        );
        let blocking = StepCheck {
            general: vec!["no".into()],
            ..StepCheck::default()
        };
        assert!(!state.finish_check(Step::App, blocking));
        assert_eq!(state.step, Step::App);
        assert!(state.check.blocks());

        assert!(state.begin_check());
        assert!(state.finish_check(Step::App, StepCheck::default()));
        assert_eq!(state.step, Step::Domain);
        assert_eq!(state.furthest, Step::Domain);
        assert!(!state.check.blocks());
    }

    #[test]
    fn back_and_jumps_stay_within_reached_steps() {
        let mut state = WizardState::default();
        for step in [Step::App, Step::Domain, Step::Upstream] {
            state.begin_check();
            assert!(state.finish_check(step, StepCheck::default()));
        }
        assert_eq!(state.step, Step::Access);
        state.back();
        assert_eq!(state.step, Step::Upstream);
        assert!(state.go_to(Step::Access), "reached before");
        assert!(!state.go_to(Step::Protection), "never reached");
        assert!(state.go_to(Step::App));
        assert_eq!(state.furthest, Step::Access);
    }

    #[test]
    fn a_stale_result_after_going_back_is_dropped() {
        let mut state = WizardState::default();
        state.begin_check();
        state.finish_check(Step::App, StepCheck::default());
        state.begin_check();
        state.back();
        assert!(!state.finish_check(Step::Domain, StepCheck::default()));
        assert_eq!(state.step, Step::App);
        assert!(!state.checking);
    }

    #[test]
    fn error_summary_names_fields_by_their_labels() {
        assert_eq!(field_label(ids::APP_NAME), "App name");
        assert_eq!(field_label("route-1-allow"), "Route 2: allowed populations");
        assert_eq!(field_label("population-0-claims"), "Population 1: claims");
        assert_eq!(field_label("route-x-path"), "route-x-path");
        assert_eq!(field_label("mystery"), "mystery");
    }

    #[test]
    fn lists_and_claims_are_split_as_typed() {
        assert_eq!(split_list(" a, b\nc  d,,"), vec!["a", "b", "c", "d"]);
        assert_eq!(
            parse_claims("acr = mfa\n\ndepartment= finance, audit\nbroken"),
            vec![
                ("acr".to_string(), vec!["mfa".to_string()]),
                (
                    "department".to_string(),
                    vec!["finance".to_string(), "audit".to_string()]
                ),
                ("broken".to_string(), vec![]),
            ]
        );
    }
}
