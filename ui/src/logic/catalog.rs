//! The catalog's search and filters, read from and written to the page's query string
//! (`/apps?q=pay&team=people&paved=no`), so a filtered list is a plain link and the form works
//! without JavaScript.

use crate::queries::AppSummary;

/// Which apps to show by paved status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PavedFilter {
    /// All apps.
    #[default]
    Any,
    /// Paved apps only.
    Paved,
    /// Apps not on the paved road.
    NotPaved,
}

impl PavedFilter {
    /// From the `paved` query parameter (`yes`, `no`, anything else: any).
    pub fn from_param(value: Option<&str>) -> PavedFilter {
        match value {
            Some("yes") => PavedFilter::Paved,
            Some("no") => PavedFilter::NotPaved,
            _ => PavedFilter::Any,
        }
    }

    /// The query parameter value.
    pub fn param(self) -> &'static str {
        match self {
            PavedFilter::Any => "",
            PavedFilter::Paved => "yes",
            PavedFilter::NotPaved => "no",
        }
    }

    /// Whether `app` passes.
    pub fn admits(self, app: &AppSummary) -> bool {
        let paved = app.paved.as_ref().is_some_and(|p| p.paved);
        match self {
            PavedFilter::Any => true,
            PavedFilter::Paved => paved,
            PavedFilter::NotPaved => !paved,
        }
    }
}

/// The catalog's search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CatalogQuery {
    /// Text the app name must contain.
    pub q: String,
    /// Team.
    pub team: String,
    /// Paved status.
    pub paved: PavedFilter,
}

impl CatalogQuery {
    /// From the query string's parameters (`q`, `team`, `paved`).
    pub fn from_params(q: Option<&str>, team: Option<&str>, paved: Option<&str>) -> CatalogQuery {
        CatalogQuery {
            q: q.unwrap_or("").trim().to_string(),
            team: team.unwrap_or("").trim().to_string(),
            paved: PavedFilter::from_param(paved),
        }
    }

    /// The API's `AppFilterInput` (name and team filter on the server; paved status is not an
    /// API filter, so it is applied to the answer).
    pub fn api_filter(&self) -> serde_json::Value {
        let mut filter = serde_json::Map::new();
        if !self.q.is_empty() {
            filter.insert("nameContains".into(), self.q.clone().into());
        }
        if !self.team.is_empty() {
            filter.insert("team".into(), self.team.clone().into());
        }
        serde_json::Value::Object(filter)
    }

    /// Whether any filter is set.
    pub fn is_filtered(&self) -> bool {
        !self.q.is_empty() || !self.team.is_empty() || self.paved != PavedFilter::Any
    }
}

/// The apps of `apps` that pass the paved filter.
pub fn apply(apps: Vec<AppSummary>, query: &CatalogQuery) -> Vec<AppSummary> {
    apps.into_iter().filter(|a| query.paved.admits(a)).collect()
}

/// Team names to suggest: the caller's and those of the listed apps, sorted, once each.
pub fn team_suggestions(my_teams: &[String], apps: &[AppSummary]) -> Vec<String> {
    let mut teams: Vec<String> = my_teams
        .iter()
        .cloned()
        .chain(apps.iter().filter_map(|a| a.team.clone()))
        .filter(|t| !t.is_empty())
        .collect();
    teams.sort();
    teams.dedup();
    teams
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::PavedStatus;
    use serde_json::json;

    fn app(name: &str, team: Option<&str>, paved: Option<bool>) -> AppSummary {
        AppSummary {
            name: name.into(),
            team: team.map(str::to_string),
            owners: vec![],
            domains: vec![],
            current_version: Some(1),
            updated_at: String::new(),
            paved: paved.map(|paved| PavedStatus {
                paved,
                gaps: vec![],
            }),
        }
    }

    #[test]
    fn query_parameters_become_the_api_filter() {
        let q = CatalogQuery::from_params(Some(" pay "), Some("people"), Some("no"));
        assert_eq!(
            q.api_filter(),
            json!({"nameContains": "pay", "team": "people"})
        );
        assert_eq!(q.paved, PavedFilter::NotPaved);
        assert!(q.is_filtered());
        let none = CatalogQuery::from_params(None, Some(""), Some("whatever"));
        assert_eq!(none.api_filter(), json!({}));
        assert!(!none.is_filtered());
    }

    #[test]
    fn paved_filter_keeps_matching_apps_and_unknown_status_counts_as_not_paved() {
        let apps = vec![
            app("a", None, Some(true)),
            app("b", None, Some(false)),
            app("c", None, None),
        ];
        let only = |p| {
            let q = CatalogQuery {
                paved: p,
                ..CatalogQuery::default()
            };
            apply(apps.clone(), &q)
                .into_iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(only(PavedFilter::Any), ["a", "b", "c"]);
        assert_eq!(only(PavedFilter::Paved), ["a"]);
        assert_eq!(only(PavedFilter::NotPaved), ["b", "c"]);
        assert_eq!(
            PavedFilter::from_param(Some(PavedFilter::Paved.param())),
            PavedFilter::Paved
        );
    }

    #[test]
    fn team_suggestions_merge_mine_and_listed_ones() {
        let apps = vec![
            app("a", Some("web"), None),
            app("b", Some("api"), None),
            app("c", None, None),
        ];
        assert_eq!(
            team_suggestions(&["web".into(), "ops".into()], &apps),
            ["api", "ops", "web"]
        );
    }
}
