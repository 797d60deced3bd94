//! GraphQL types of traffic and adoption: per-app summaries and latest requests (fields of
//! `App`), the latest denials and WAF detections, and adoption of the paved road (fields of
//! `Query`).

use async_graphql::{Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};

use crate::services::{self, Adoption, PavedStatus, TrafficSummary};
use crate::storage::entities::traffic_record;

/// A request seen by a gateway (one access-log record).
pub struct TrafficRecordObject(pub traffic_record::Model);

#[Object(name = "TrafficRecord")]
impl TrafficRecordObject {
    /// When the request started.
    async fn time(&self) -> DateTime<Utc> {
        self.0.time
    }
    /// The gateway that served it.
    async fn gateway(&self) -> &str {
        &self.0.gateway
    }
    /// The app.
    async fn app(&self) -> &str {
        &self.0.app
    }
    /// The route's path prefix.
    async fn route(&self) -> &str {
        &self.0.route
    }
    /// The HTTP method.
    async fn method(&self) -> &str {
        &self.0.method
    }
    /// The path (secret-looking query values are `REDACTED`).
    async fn path(&self) -> &str {
        &self.0.path
    }
    /// The response status (0: no response).
    async fn status(&self) -> i32 {
        self.0.status
    }
    /// Milliseconds from the request's start to its end.
    async fn latency_ms(&self) -> f64 {
        self.0.latency_ms
    }
    /// The client's address.
    async fn client_ip(&self) -> &str {
        &self.0.client_ip
    }
    /// The signed-in subject, if any.
    async fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }
    /// The filter that denied the request (`authn`, `authz`, `waf`, `ratelimit`, `cors`, ...).
    async fn denied_by(&self) -> Option<&str> {
        self.0.denied_by.as_deref()
    }
    /// Ids of the WAF rules that fired (blocked when `deniedBy` is `waf`, detected otherwise).
    async fn waf_rules(&self) -> Vec<String> {
        self.0.waf_rule_list()
    }
    /// The gateway's request id (`X-Request-Id`, the reference users quote).
    async fn request_id(&self) -> &str {
        &self.0.request_id
    }
}

/// Denied requests of one filter.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct FilterCount {
    /// The filter.
    pub filter: String,
    /// Requests it denied.
    pub count: i64,
}

/// Requests of one status class.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct StatusClassCount {
    /// `1xx` to `5xx`, or `none` when there was no response.
    pub status_class: String,
    /// Requests.
    pub count: i64,
}

/// Requests in one hour, for charts.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct TrafficBucket {
    /// Start of the hour (UTC).
    pub hour: DateTime<Utc>,
    /// Requests.
    pub requests: i64,
    /// Requests a filter denied.
    pub denied: i64,
    /// Requests on which a WAF rule fired.
    pub waf_hits: i64,
}

/// An app's traffic over a window.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
#[graphql(name = "TrafficSummary")]
pub struct TrafficSummaryObject {
    /// Start of the window.
    pub since: DateTime<Utc>,
    /// End of the window (now).
    pub until: DateTime<Utc>,
    /// Requests.
    pub requests: i64,
    /// Requests a filter denied.
    pub denied: i64,
    /// Denied requests by filter, most first.
    pub denied_by_filter: Vec<FilterCount>,
    /// Requests on which at least one WAF rule fired (blocked or detected).
    pub waf_hits: i64,
    /// Requests by status class.
    pub status_classes: Vec<StatusClassCount>,
    /// One bucket per hour of the window, oldest first, empty hours included.
    pub by_hour: Vec<TrafficBucket>,
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl From<TrafficSummary> for TrafficSummaryObject {
    fn from(s: TrafficSummary) -> Self {
        TrafficSummaryObject {
            since: s.since,
            until: s.until,
            requests: count(s.requests),
            denied: count(s.denied),
            denied_by_filter: s
                .denied_by_filter
                .into_iter()
                .map(|(filter, n)| FilterCount {
                    filter,
                    count: count(n),
                })
                .collect(),
            waf_hits: count(s.waf_hits),
            status_classes: s
                .status_classes
                .into_iter()
                .map(|(status_class, n)| StatusClassCount {
                    status_class,
                    count: count(n),
                })
                .collect(),
            by_hour: s
                .by_hour
                .into_iter()
                .map(|b| TrafficBucket {
                    hour: b.hour,
                    requests: count(b.requests),
                    denied: count(b.denied),
                    waf_hits: count(b.waf_hits),
                })
                .collect(),
        }
    }
}

/// Whether an app is on the paved road (docs/control-plane.md, "Paved apps").
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
#[graphql(name = "PavedStatus")]
pub struct PavedStatusObject {
    /// Sign-in on every non-public route and a blocking WAF on every route.
    pub paved: bool,
    /// What is missing, one line each (`host/path: ...`); empty when paved.
    pub gaps: Vec<String>,
}

impl From<PavedStatus> for PavedStatusObject {
    fn from(s: PavedStatus) -> Self {
        PavedStatusObject {
            paved: s.paved,
            gaps: s.gaps,
        }
    }
}

/// Adoption at the end of one day.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct AdoptionDay {
    /// The day (UTC).
    pub day: NaiveDate,
    /// Apps that existed.
    pub apps: i64,
    /// Of those, paved.
    pub paved: i64,
    /// `paved / apps`, from 0 to 1 (0 without apps).
    pub rate: f64,
}

/// Adoption of the paved road over the apps the caller may read.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
#[graphql(name = "Adoption")]
pub struct AdoptionObject {
    /// Apps (not deleted).
    pub apps: i64,
    /// Of those, paved.
    pub paved: i64,
    /// `paved / apps`, from 0 to 1 (0 without apps).
    pub rate: f64,
    /// One entry per day, oldest first; the last is today, as of now.
    pub trend: Vec<AdoptionDay>,
}

impl From<Adoption> for AdoptionObject {
    fn from(a: Adoption) -> Self {
        AdoptionObject {
            apps: count(a.apps),
            paved: count(a.paved),
            rate: a.rate,
            trend: a
                .trend
                .into_iter()
                .map(|d: services::AdoptionDay| AdoptionDay {
                    day: d.day,
                    apps: count(d.apps),
                    paved: count(d.paved),
                    rate: d.rate,
                })
                .collect(),
        }
    }
}

/// Records as GraphQL objects.
pub(crate) fn records(list: Vec<traffic_record::Model>) -> Vec<TrafficRecordObject> {
    list.into_iter().map(TrafficRecordObject).collect()
}
