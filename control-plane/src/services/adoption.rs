//! Adoption of the paved road: which apps are *paved*, how many, and how that changed day by
//! day.
//!
//! An app is **paved** when its intent, compiled alone with the default platform settings
//! (`paved_model::compile::compile_one`), gives at least one route and every route's filter
//! chain has:
//!
//! 1. unless the route is declared `public: true`: `authn` in `required` mode and `authz` not
//!    admitting anonymous requests (a sign-in is needed, and the populations are enforced);
//! 2. on every route, public ones included: `waf` in `block` mode with an anomaly threshold no
//!    higher than the paved default ([`PAVED_MAX_ANOMALY_THRESHOLD`]; a higher one blocks
//!    almost nothing).
//!
//! Rule exclusions, rate limits and headers do not count. The trend replays the intent version
//! history: on each day, the version current at the end of that day (UTC) of each app that
//! existed then (a deletion, from the audit log, ends an app until it is applied again).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use paved_model::Intent;
use paved_model::compile::{self, CompileOptions};
use paved_model::plugin_config::{self, AuthnConfig, AuthnMode, AuthzConfig, WafConfig, WafMode};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::ControlPlane;
use super::apps::{may_read_stored, require_reader};
use crate::auth::Principal;
use crate::storage::entities::{app, audit_log, intent_version};
use crate::{Error, Result};

/// Highest WAF anomaly threshold a paved app may have (the paved default).
pub const PAVED_MAX_ANOMALY_THRESHOLD: u32 = 5;
/// Longest trend, in days.
pub const MAX_TREND_DAYS: i64 = 366;

/// Whether an app is paved, and what is missing when it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PavedStatus {
    /// Paved: authn on every non-public route and a blocking WAF on every route.
    pub paved: bool,
    /// What keeps it from being paved, one line each (`host/path: ...`).
    pub gaps: Vec<String>,
}

/// Adoption now and day by day.
#[derive(Debug, Clone, PartialEq)]
pub struct Adoption {
    /// Apps the caller may read (not deleted).
    pub apps: u64,
    /// Of those, paved.
    pub paved: u64,
    /// `paved / apps` (0 without apps).
    pub rate: f64,
    /// One entry per day, oldest first, the last one today (as of now).
    pub trend: Vec<AdoptionDay>,
}

/// Adoption at the end of one day.
#[derive(Debug, Clone, PartialEq)]
pub struct AdoptionDay {
    /// The day (UTC).
    pub day: NaiveDate,
    /// Apps that existed at the end of the day.
    pub apps: u64,
    /// Of those, paved.
    pub paved: u64,
    /// `paved / apps` (0 without apps).
    pub rate: f64,
}

fn rate(paved: u64, apps: u64) -> f64 {
    if apps == 0 {
        0.0
    } else {
        paved as f64 / apps as f64
    }
}

fn config<T: serde::de::DeserializeOwned>(plugin: &paved_model::snapshot::Plugin) -> Option<T> {
    serde_json::from_value(plugin.config.0.clone()).ok()
}

/// Whether an intent is paved (see the module documentation for the definition).
pub fn paved_status(intent: &Intent) -> PavedStatus {
    let snapshot = match compile::compile_one(intent, &CompileOptions::default()) {
        Ok(s) => s,
        Err(e) => {
            return PavedStatus {
                paved: false,
                gaps: vec![format!("the intent does not compile: {e}")],
            };
        }
    };
    let public: HashSet<(String, String)> = intent
        .resolved_routes()
        .iter()
        .filter(|r| r.route.public)
        .flat_map(|r| {
            r.domains
                .iter()
                .map(|d| (d.to_ascii_lowercase(), r.route.path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut gaps: Vec<String> = Vec::new();
    let mut gap = |g: String| {
        if !gaps.contains(&g) {
            gaps.push(g);
        }
    };
    let routes: Vec<_> = snapshot
        .routes
        .iter()
        .filter(|r| r.app.as_deref() == Some(intent.name.as_str()))
        .collect();
    if routes.is_empty() {
        gap("no routes".into());
    }
    for route in routes {
        let at = format!("{}{}", route.host, route.path_prefix);
        let find = |name: &str| {
            route
                .plugins
                .iter()
                .find(|p| p.builtin.as_deref() == Some(name))
        };
        if !public.contains(&(route.host.clone(), route.path_prefix.clone())) {
            match find(plugin_config::AUTHN).map(config::<AuthnConfig>) {
                None => gap(format!("{at}: no authn filter")),
                Some(None) => gap(format!("{at}: unreadable authn configuration")),
                Some(Some(c)) if c.mode != AuthnMode::Required => {
                    gap(format!("{at}: authn does not require a sign-in"))
                }
                Some(Some(_)) => {}
            }
            match find(plugin_config::AUTHZ).map(config::<AuthzConfig>) {
                None => gap(format!("{at}: no authz filter")),
                Some(None) => gap(format!("{at}: unreadable authz configuration")),
                Some(Some(c)) if c.anonymous => {
                    gap(format!("{at}: authz admits anonymous requests"))
                }
                Some(Some(_)) => {}
            }
        }
        match find(plugin_config::WAF).map(config::<WafConfig>) {
            None => gap(format!("{at}: no WAF (waf.mode is off)")),
            Some(None) => gap(format!("{at}: unreadable WAF configuration")),
            Some(Some(c)) => {
                if c.mode != WafMode::Block {
                    gap(format!("{at}: WAF detects only (waf.mode is not block)"));
                }
                if c.anomaly_threshold > PAVED_MAX_ANOMALY_THRESHOLD {
                    gap(format!(
                        "{at}: WAF anomaly threshold {} is above the paved {PAVED_MAX_ANOMALY_THRESHOLD}",
                        c.anomaly_threshold
                    ));
                }
            }
        }
    }
    PavedStatus {
        paved: gaps.is_empty(),
        gaps,
    }
}

/// The paved status of a stored intent version (JSON as stored).
fn stored_status(v: &intent_version::Model) -> PavedStatus {
    match serde_json::from_value::<Intent>(v.intent.clone()) {
        Ok(intent) => paved_status(&intent),
        Err(e) => {
            tracing::warn!(version_id = v.id, error = %e, "stored intent does not decode");
            PavedStatus {
                paved: false,
                gaps: vec!["the stored intent does not decode".into()],
            }
        }
    }
}

/// One app's history: (when, paved?) for each version, `None` for a deletion.
type Timeline = Vec<(DateTime<Utc>, Option<bool>)>;

/// Apps and paved apps at `t`.
fn count_at(timelines: &[Timeline], t: DateTime<Utc>) -> (u64, u64) {
    let mut apps = 0;
    let mut paved = 0;
    for timeline in timelines {
        let last = timeline.iter().take_while(|(at, _)| *at <= t).last();
        if let Some((_, Some(p))) = last {
            apps += 1;
            if *p {
                paved += 1;
            }
        }
    }
    (apps, paved)
}

impl ControlPlane {
    /// Whether the app's current intent is paved.
    pub async fn app_paved_status(&self, who: &Principal, a: &app::Model) -> Result<PavedStatus> {
        require_reader(who)?;
        if !may_read_stored(who, a) {
            return Err(Error::NotFound(format!("app `{}`", a.name)));
        }
        let current = match a.current_version_id.filter(|_| a.deleted_at.is_none()) {
            Some(id) => {
                intent_version::Entity::find_by_id(id)
                    .one(self.store().db())
                    .await?
            }
            None => None,
        };
        Ok(match current {
            Some(v) => stored_status(&v),
            None => PavedStatus {
                paved: false,
                gaps: vec!["the app is deleted".into()],
            },
        })
    }

    /// Adoption over the apps the caller may read: now, and for each of the last `days` days
    /// (default 30, at most 366) from the intent version history.
    pub async fn adoption(&self, who: &Principal, days: Option<i64>) -> Result<Adoption> {
        require_reader(who)?;
        let days = days.unwrap_or(30);
        if !(1..=MAX_TREND_DAYS).contains(&days) {
            return Err(Error::BadRequest(format!(
                "`days` must be between 1 and {MAX_TREND_DAYS}, found {days}"
            )));
        }
        let db = self.store().db();
        // Visibility is today's: an app is counted on past days when the caller may read it now.
        let apps: Vec<app::Model> = app::Entity::find()
            .all(db)
            .await?
            .into_iter()
            .filter(|a| may_read_stored(who, a))
            .collect();
        let ids: Vec<i64> = apps.iter().map(|a| a.id).collect();
        let names: Vec<String> = apps.iter().map(|a| a.name.clone()).collect();
        let versions = if ids.is_empty() {
            Vec::new()
        } else {
            intent_version::Entity::find()
                .filter(intent_version::Column::AppId.is_in(ids))
                .order_by_asc(intent_version::Column::CreatedAt)
                .order_by_asc(intent_version::Column::Version)
                .all(db)
                .await?
        };
        let deletions = if names.is_empty() {
            Vec::new()
        } else {
            audit_log::Entity::find()
                .filter(audit_log::Column::Action.eq("app.delete"))
                .filter(audit_log::Column::App.is_in(names))
                .all(db)
                .await?
        };
        // Many versions share content (rollbacks, re-applies): compile each content once.
        let mut by_hash: HashMap<String, bool> = HashMap::new();
        let mut timelines: HashMap<i64, Timeline> = HashMap::new();
        for v in &versions {
            let paved = match by_hash.get(&v.content_hash) {
                Some(p) => *p,
                None => {
                    let p = stored_status(v).paved;
                    by_hash.insert(v.content_hash.clone(), p);
                    p
                }
            };
            timelines
                .entry(v.app_id)
                .or_default()
                .push((v.created_at, Some(paved)));
        }
        let id_of: HashMap<&str, i64> = apps.iter().map(|a| (a.name.as_str(), a.id)).collect();
        for d in &deletions {
            if let Some(id) = d.app.as_deref().and_then(|n| id_of.get(n)) {
                timelines.entry(*id).or_default().push((d.at, None));
            }
        }
        for a in &apps {
            // The row's own deletion time backs the audit log up.
            if let Some(at) = a.deleted_at {
                timelines.entry(a.id).or_default().push((at, None));
            }
        }
        let timelines: Vec<Timeline> = timelines
            .into_values()
            .map(|mut t| {
                // A deletion and the version before it share no instant; on a tie the
                // deletion (None) sorts after the version, so the app ends deleted.
                t.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.is_none().cmp(&b.1.is_none())));
                t
            })
            .collect();
        let now = Utc::now();
        let today = now.date_naive();
        let mut trend = Vec::new();
        for back in (0..days).rev() {
            let day = today - TimeDelta::days(back);
            let end = if back == 0 {
                now
            } else {
                day.and_time(NaiveTime::MIN).and_utc() + TimeDelta::days(1)
                    - TimeDelta::microseconds(1)
            };
            let (apps, paved) = count_at(&timelines, end);
            trend.push(AdoptionDay {
                day,
                apps,
                paved,
                rate: rate(paved, apps),
            });
        }
        let (apps, paved) = count_at(&timelines, now);
        Ok(Adoption {
            apps,
            paved,
            rate: rate(paved, apps),
            trend,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(extra: &str) -> Intent {
        let text = format!(
            "apiVersion: paved.dev/v1\nname: shop\nowners: [a@example.com]\ndomains: [shop.example.com]\nupstream: 127.0.0.1:9000\n{extra}"
        );
        Intent::from_yaml_str(&text, "paved.yaml").expect("valid intent")
    }

    #[test]
    fn the_minimal_intent_is_paved() {
        let s = paved_status(&intent(""));
        assert!(s.paved, "{:?}", s.gaps);
    }

    #[test]
    fn a_detecting_or_lenient_waf_is_not_paved() {
        let s = paved_status(&intent("waf: {mode: detect}\n"));
        assert!(!s.paved);
        assert!(s.gaps[0].contains("detects only"), "{:?}", s.gaps);
        let s = paved_status(&intent("waf: {mode: off}\n"));
        assert!(s.gaps[0].contains("no WAF"), "{:?}", s.gaps);
        let s = paved_status(&intent("waf: {anomalyThreshold: 50}\n"));
        assert!(s.gaps[0].contains("threshold 50"), "{:?}", s.gaps);
    }

    #[test]
    fn public_routes_need_the_waf_but_no_sign_in() {
        let s = paved_status(&intent("routes: [{path: /, public: true}]\n"));
        assert!(s.paved, "{:?}", s.gaps);
        let s = paved_status(&intent(
            "routes: [{path: /, public: true}]\nwaf: {mode: detect}\n",
        ));
        assert!(!s.paved);
    }

    #[test]
    fn counts_follow_the_version_current_at_each_instant() {
        let t = |h: i64| DateTime::<Utc>::UNIX_EPOCH + TimeDelta::hours(h);
        let timelines = vec![
            vec![(t(1), Some(false)), (t(5), Some(true))],
            vec![(t(2), Some(true)), (t(3), None), (t(6), Some(true))],
        ];
        assert_eq!(count_at(&timelines, t(0)), (0, 0));
        assert_eq!(count_at(&timelines, t(2)), (2, 1));
        assert_eq!(count_at(&timelines, t(4)), (1, 0));
        assert_eq!(count_at(&timelines, t(6)), (2, 2));
    }
}
