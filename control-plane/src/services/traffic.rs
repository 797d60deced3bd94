//! Traffic: the access-log records gateways ship (`POST /v1/gateways/{id}/traffic`), their
//! validation and storage, retention, and the reads behind the dashboards (per-app summaries,
//! latest requests, latest denials and WAF detections).
//!
//! A record is the JSON object the `accesslog` filter writes (one line of the gateway's access
//! log); the control plane reads `time`, `request_id`, `app`, `route`, `method`, `path`,
//! `status`, `latency_ms`, `client_ip`, `identity`, `decisions` and `details.waf.rules`, and
//! ignores the rest. Which filter denied a request is derived from `decisions`: the filter whose
//! decision is `deny` or `deny:<reason>`.

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Select, Set, TryInsertResult,
};
use serde_json::{Map, Value};

use super::ControlPlane;
use super::apps::{find_app, may_read_stored, require_reader};
use super::gateways::check_gateway_id;
use crate::auth::Principal;
use crate::storage::entities::{app, traffic_record};
use crate::storage::strings_json;
use crate::{Error, Result};

/// Most records in one batch.
pub const MAX_TRAFFIC_BATCH: usize = 1000;
/// Largest request body of `POST /v1/gateways/{id}/traffic`.
pub const MAX_TRAFFIC_BODY_BYTES: usize = 4 << 20;
/// How long records are kept by default.
pub const DEFAULT_TRAFFIC_RETENTION: Duration = Duration::from_secs(7 * 86_400);
/// How often records past the retention window are pruned.
pub const TRAFFIC_PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Longest window of a summary (`App.traffic(since:)`): the hourly buckets stay bounded.
pub const MAX_SUMMARY_WINDOW: Duration = Duration::from_secs(31 * 86_400);
/// Most records a list returns.
pub const MAX_TRAFFIC_LIST: usize = 500;

/// Longest app name (a DNS label).
pub const MAX_APP_CHARS: usize = 63;
/// Longest gateway request id.
pub const MAX_REQUEST_ID_CHARS: usize = 128;
/// Longest route (path prefix).
pub const MAX_ROUTE_CHARS: usize = 1024;
/// Longest method.
pub const MAX_METHOD_CHARS: usize = 32;
/// Longest path (query included).
pub const MAX_PATH_CHARS: usize = 4096;
/// Longest client address.
pub const MAX_CLIENT_IP_CHARS: usize = 64;
/// Longest identity subject.
pub const MAX_SUBJECT_CHARS: usize = 512;
/// Most filter decisions in one record.
pub const MAX_DECISIONS: usize = 32;
/// Longest filter name in `decisions`.
pub const MAX_FILTER_CHARS: usize = 64;
/// Longest decision value.
pub const MAX_DECISION_CHARS: usize = 256;
/// Most WAF rules in one record.
pub const MAX_WAF_RULES: usize = 64;
/// Longest WAF rule id.
pub const MAX_WAF_RULE_CHARS: usize = 64;
/// Largest latency accepted (one day).
pub const MAX_LATENCY_MS: f64 = 86_400_000.0;
/// How far in the future a record's time may be (gateway clocks drift a little).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// Filters in chain order: when several decisions say `deny` (it should be one), the first
/// filter of the chain is the one that denied.
const CHAIN_ORDER: [&str; 6] = ["authn", "authz", "waf", "ratelimit", "cors", "headers"];
/// Rows per INSERT: keeps statements under SQLite's and PostgreSQL's parameter limits.
const INSERT_CHUNK: usize = 200;

/// A record that breaks a rule: the field and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RecordError {
    /// The field, such as `status` or `decisions.waf`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> RecordError {
    RecordError {
        field: field.into(),
        message: message.into(),
    }
}

/// A validated traffic record, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficRecordInput {
    /// When the request started.
    pub time: DateTime<Utc>,
    /// The gateway's request id.
    pub request_id: String,
    /// The app.
    pub app: String,
    /// The route's path prefix.
    pub route: String,
    /// The method.
    pub method: String,
    /// The (redacted) path.
    pub path: String,
    /// The response status.
    pub status: i32,
    /// Latency in milliseconds.
    pub latency_ms: f64,
    /// The client address.
    pub client_ip: String,
    /// The identity subject.
    pub subject: Option<String>,
    /// The filter that denied the request.
    pub denied_by: Option<String>,
    /// The WAF rules that fired.
    pub waf_rules: Vec<String>,
}

/// What an ingested batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// Records stored.
    pub stored: u64,
    /// Records already stored (same gateway and request id: a retried batch).
    pub duplicates: u64,
}

/// Traffic of one app over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficSummary {
    /// Start of the window.
    pub since: DateTime<Utc>,
    /// End of the window (when the summary was computed).
    pub until: DateTime<Utc>,
    /// Requests.
    pub requests: u64,
    /// Requests a filter denied.
    pub denied: u64,
    /// Denied requests by filter, most first.
    pub denied_by_filter: Vec<(String, u64)>,
    /// Requests on which at least one WAF rule fired (blocked or only detected).
    pub waf_hits: u64,
    /// Requests by status class (`2xx`, `4xx`, ..., `none` when there was no response).
    pub status_classes: Vec<(String, u64)>,
    /// One bucket per hour of the window, oldest first, empty hours included.
    pub by_hour: Vec<HourBucket>,
}

/// Requests in one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourBucket {
    /// Start of the hour (UTC).
    pub hour: DateTime<Utc>,
    /// Requests.
    pub requests: u64,
    /// Requests a filter denied.
    pub denied: u64,
    /// Requests on which a WAF rule fired.
    pub waf_hits: u64,
}

fn text<'a>(
    record: &'a Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<&'a str>, RecordError> {
    match record.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let chars = s.chars().count();
            if chars > max {
                return Err(bad(
                    field,
                    format!("expected at most {max} characters, found {chars}"),
                ));
            }
            if s.chars().any(char::is_control) {
                return Err(bad(field, "control characters are not allowed"));
            }
            Ok(Some(s))
        }
        Some(other) => Err(bad(
            field,
            format!("expected a string, found {}", kind(other)),
        )),
    }
}

fn required<'a>(
    record: &'a Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<&'a str, RecordError> {
    match text(record, field, max)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(bad(field, "required, a non-empty string")),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Validates one record (a JSON object as the access log writes it). `now` bounds its time.
pub fn parse_traffic_record(
    value: &Value,
    now: DateTime<Utc>,
) -> Result<TrafficRecordInput, RecordError> {
    let Value::Object(record) = value else {
        return Err(bad(
            "(record)",
            format!("expected an object, found {}", kind(value)),
        ));
    };
    let time_text = required(record, "time", 64)?;
    let time = DateTime::parse_from_rfc3339(time_text)
        .map_err(|e| {
            bad(
                "time",
                format!("expected an RFC 3339 time such as 2025-01-31T12:00:00.000Z: {e}"),
            )
        })?
        .with_timezone(&Utc);
    let skew = TimeDelta::from_std(MAX_CLOCK_SKEW).unwrap_or(TimeDelta::MAX);
    if time > now + skew {
        return Err(bad(
            "time",
            format!("{time_text} is more than an hour in the future (check the gateway's clock)"),
        ));
    }
    let status = match record.get("status") {
        Some(Value::Number(n)) => {
            n.as_i64()
                .filter(|s| (0..=999).contains(s))
                .ok_or_else(|| {
                    bad(
                        "status",
                        format!("expected an integer from 0 to 999, found {n}"),
                    )
                })?
        }
        Some(other) => {
            return Err(bad(
                "status",
                format!("expected an integer from 0 to 999, found {}", kind(other)),
            ));
        }
        None => return Err(bad("status", "required, an integer from 0 to 999")),
    };
    let latency_ms = match record.get("latency_ms") {
        None | Some(Value::Null) => 0.0,
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|l| l.is_finite() && (0.0..=MAX_LATENCY_MS).contains(l))
            .ok_or_else(|| {
                bad(
                    "latency_ms",
                    format!("expected milliseconds from 0 to {MAX_LATENCY_MS}, found {n}"),
                )
            })?,
        Some(other) => {
            return Err(bad(
                "latency_ms",
                format!("expected a number, found {}", kind(other)),
            ));
        }
    };
    let method = required(record, "method", MAX_METHOD_CHARS)?;
    if !method.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "method",
            format!("expected an HTTP method, found `{method}`"),
        ));
    }
    Ok(TrafficRecordInput {
        time: time
            .duration_trunc(TimeDelta::milliseconds(1))
            .unwrap_or(time),
        request_id: required(record, "request_id", MAX_REQUEST_ID_CHARS)?.to_string(),
        app: required(record, "app", MAX_APP_CHARS)?.to_string(),
        route: text(record, "route", MAX_ROUTE_CHARS)?
            .unwrap_or("/")
            .to_string(),
        method: method.to_string(),
        path: required(record, "path", MAX_PATH_CHARS)?.to_string(),
        status: i32::try_from(status).unwrap_or(0),
        latency_ms,
        client_ip: text(record, "client_ip", MAX_CLIENT_IP_CHARS)?
            .unwrap_or_default()
            .to_string(),
        subject: text(record, "identity", MAX_SUBJECT_CHARS)?
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        denied_by: denied_by(record.get("decisions"))?,
        waf_rules: waf_rules(record.get("details"))?,
    })
}

/// The filter whose decision is `deny` or `deny:<reason>` (first in chain order).
fn denied_by(decisions: Option<&Value>) -> Result<Option<String>, RecordError> {
    let decisions = match decisions {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(d)) => d,
        Some(other) => {
            return Err(bad(
                "decisions",
                format!(
                    "expected an object of filter → decision, found {}",
                    kind(other)
                ),
            ));
        }
    };
    if decisions.len() > MAX_DECISIONS {
        return Err(bad(
            "decisions",
            format!(
                "expected at most {MAX_DECISIONS} decisions, found {}",
                decisions.len()
            ),
        ));
    }
    let mut denying = Vec::new();
    for (filter, decision) in decisions {
        let field = format!("decisions.{filter}");
        if filter.is_empty()
            || filter.chars().count() > MAX_FILTER_CHARS
            || !filter
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(bad(
                field,
                format!(
                    "a filter name is 1 to {MAX_FILTER_CHARS} letters, digits, `-`, `_` or `.`"
                ),
            ));
        }
        let Value::String(decision) = decision else {
            return Err(bad(
                field,
                format!("expected a string, found {}", kind(decision)),
            ));
        };
        if decision.chars().count() > MAX_DECISION_CHARS {
            return Err(bad(
                field,
                format!("expected at most {MAX_DECISION_CHARS} characters"),
            ));
        }
        if decision == "deny" || decision.starts_with("deny:") {
            denying.push(filter.as_str());
        }
    }
    let rank = |f: &str| {
        CHAIN_ORDER
            .iter()
            .position(|c| *c == f)
            .unwrap_or(usize::MAX)
    };
    denying.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    Ok(denying.first().map(|f| (*f).to_string()))
}

/// The WAF rules that fired: `details.waf.rules`, a comma-separated string (a single numeric
/// rule id arrives as a number) or an array.
fn waf_rules(details: Option<&Value>) -> Result<Vec<String>, RecordError> {
    const FIELD: &str = "details.waf.rules";
    let rules = match details {
        Some(Value::Object(d)) => match d.get("waf") {
            Some(Value::Object(w)) => w.get("rules"),
            _ => None,
        },
        None | Some(Value::Null) => None,
        Some(other) => {
            return Err(bad(
                "details",
                format!("expected an object, found {}", kind(other)),
            ));
        }
    };
    let list: Vec<String> = match rules {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Number(n)) => vec![n.to_string()],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.trim().to_string()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(bad(
                    format!("{FIELD}[{i}]"),
                    format!("expected a rule id, found {}", kind(other)),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|r| !r.is_empty())
            .collect(),
        Some(other) => {
            return Err(bad(
                FIELD,
                format!(
                    "expected rule ids (a string or an array), found {}",
                    kind(other)
                ),
            ));
        }
    };
    if list.len() > MAX_WAF_RULES {
        return Err(bad(
            FIELD,
            format!(
                "expected at most {MAX_WAF_RULES} rules, found {}",
                list.len()
            ),
        ));
    }
    if let Some(rule) = list
        .iter()
        .find(|r| r.chars().count() > MAX_WAF_RULE_CHARS || r.chars().any(|c| c.is_control()))
    {
        return Err(bad(
            FIELD,
            format!(
                "a rule id is at most {MAX_WAF_RULE_CHARS} printable characters, found `{}`",
                rule.chars().take(80).collect::<String>()
            ),
        ));
    }
    Ok(list)
}

/// Validates a whole batch: the first bad record fails it, named by index and field.
pub fn parse_traffic_batch(
    records: &[Value],
    now: DateTime<Utc>,
) -> Result<Vec<TrafficRecordInput>> {
    if records.len() > MAX_TRAFFIC_BATCH {
        return Err(Error::BadRequest(format!(
            "a batch holds at most {MAX_TRAFFIC_BATCH} records, found {}",
            records.len()
        )));
    }
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            parse_traffic_record(record, now)
                .map_err(|e| Error::BadRequest(format!("records[{i}].{e}; nothing was stored")))
        })
        .collect()
}

fn limit_arg(limit: Option<i64>) -> Result<u64> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=MAX_TRAFFIC_LIST as i64).contains(&n) => Ok(n as u64),
        Some(n) => Err(Error::BadRequest(format!(
            "`limit` must be between 1 and {MAX_TRAFFIC_LIST}, found {n}"
        ))),
    }
}

fn status_class(class: i64) -> String {
    if class <= 0 {
        "none".to_string()
    } else {
        format!("{class}xx")
    }
}

/// Start of the hour of `t`.
fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// SQL giving a record's hour as `YYYY-MM-DDTHH:00:00Z`. SQLite stores times as RFC 3339 text,
/// PostgreSQL as `timestamptz`.
fn hour_sql(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            r#"to_char(date_trunc('hour', "time" AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24":00:00Z"')"#
        }
        _ => r#"strftime('%Y-%m-%dT%H:00:00Z', "time")"#,
    }
}

/// Which apps a caller may see traffic of: `None` for all of them.
pub(crate) async fn readable_app_names(
    cp: &ControlPlane,
    who: &Principal,
) -> Result<Option<Vec<String>>> {
    require_reader(who)?;
    if who.can_read_all() {
        return Ok(None);
    }
    // Deleted apps keep their rows (team, owners): their recent traffic stays visible to the
    // same people.
    Ok(Some(
        app::Entity::find()
            .all(cp.store().db())
            .await?
            .into_iter()
            .filter(|a| may_read_stored(who, a))
            .map(|a| a.name)
            .collect(),
    ))
}

impl ControlPlane {
    /// Stores a batch of access-log records shipped by gateway `gateway_id`: every record is
    /// validated first, and one bad record refuses the whole batch (`BAD_REQUEST` naming its
    /// index and field). Records already stored (same gateway and request id) are skipped, so a
    /// gateway may resend a batch whose answer it lost.
    pub async fn ingest_traffic(
        &self,
        who: &Principal,
        gateway_id: &str,
        records: &[Value],
    ) -> Result<Ingested> {
        check_gateway_id(gateway_id)?;
        if !who.can_act_as_gateway() {
            return Err(Error::Forbidden("a `gateway` token is required".into()));
        }
        let parsed = parse_traffic_batch(records, Utc::now())?;
        let total = parsed.len() as u64;
        let mut stored = 0u64;
        if !parsed.is_empty() {
            // Not `begin_write`: traffic does not change snapshots, so it need not queue behind
            // the writers' lock; the transaction keeps a batch all-or-nothing.
            let tx = self.store().begin().await?;
            for chunk in parsed.chunks(INSERT_CHUNK) {
                let rows = chunk.iter().map(|r| traffic_record::ActiveModel {
                    time: Set(r.time),
                    gateway: Set(gateway_id.to_string()),
                    app: Set(r.app.clone()),
                    route: Set(r.route.clone()),
                    method: Set(r.method.clone()),
                    path: Set(r.path.clone()),
                    status: Set(r.status),
                    latency_ms: Set(r.latency_ms),
                    client_ip: Set(r.client_ip.clone()),
                    subject: Set(r.subject.clone()),
                    denied_by: Set(r.denied_by.clone()),
                    waf_rules: Set((!r.waf_rules.is_empty()).then(|| strings_json(&r.waf_rules))),
                    request_id: Set(r.request_id.clone()),
                    ..Default::default()
                });
                let result = traffic_record::Entity::insert_many(rows)
                    .on_conflict_do_nothing_on([
                        traffic_record::Column::Gateway,
                        traffic_record::Column::RequestId,
                    ])
                    .exec_without_returning(&tx)
                    .await?;
                if let TryInsertResult::Inserted(n) = result {
                    stored += n;
                }
            }
            tx.commit().await?;
        }
        self.gateway_polled(gateway_id, None).await?;
        let duplicates = total.saturating_sub(stored);
        tracing::debug!(gateway = %gateway_id, stored, duplicates, "traffic batch stored");
        Ok(Ingested { stored, duplicates })
    }

    /// Deletes records older than `before`; returns how many.
    pub async fn prune_traffic(&self, before: DateTime<Utc>) -> Result<u64> {
        let deleted = traffic_record::Entity::delete_many()
            .filter(traffic_record::Column::Time.lt(before))
            .exec(self.store().db())
            .await?
            .rows_affected;
        if deleted > 0 {
            tracing::info!(deleted, before = %before, "pruned traffic records");
        }
        Ok(deleted)
    }

    /// Deletes records older than [`ControlPlane::traffic_retention`]; returns how many.
    pub async fn prune_expired_traffic(&self) -> Result<u64> {
        let retention = TimeDelta::from_std(self.traffic_retention()).unwrap_or(TimeDelta::MAX);
        let before = Utc::now()
            .checked_sub_signed(retention)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        self.prune_traffic(before).await
    }

    /// How long traffic records are kept (pruned hourly past it).
    pub fn traffic_retention(&self) -> Duration {
        Duration::from_secs(
            self.inner
                .traffic_retention_secs
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Changes how long traffic records are kept (default 7 days); the next pruning round uses
    /// it.
    pub fn set_traffic_retention(&self, retention: Duration) {
        self.inner
            .traffic_retention_secs
            .store(retention.as_secs(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Prunes records past [`ControlPlane::traffic_retention`] every `every`, the first time
    /// after `first`, for as long as the control plane exists (the task holds no strong
    /// reference to it). Started by [`ControlPlane::start`].
    pub(crate) fn spawn_traffic_retention(
        &self,
        first: Duration,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        self.spawn_periodic(first, move |cp| async move {
            if let Err(e) = cp.prune_expired_traffic().await {
                tracing::warn!(error = %e, "pruning traffic records failed; retrying later");
            }
            every
        })
    }

    /// Traffic of an app the caller may read, from `since` (default: the last 24 hours, at most
    /// 31 days back) to now.
    pub async fn traffic_summary(
        &self,
        who: &Principal,
        app: &app::Model,
        since: Option<DateTime<Utc>>,
    ) -> Result<TrafficSummary> {
        require_reader(who)?;
        if !may_read_stored(who, app) {
            return Err(Error::NotFound(format!("app `{}`", app.name)));
        }
        let until = Utc::now();
        let since = since.unwrap_or(until - TimeDelta::hours(24));
        let window = TimeDelta::from_std(MAX_SUMMARY_WINDOW).unwrap_or(TimeDelta::MAX);
        if since > until || since < until - window {
            return Err(Error::BadRequest(format!(
                "`since` must be within the last {} days",
                MAX_SUMMARY_WINDOW.as_secs() / 86_400
            )));
        }
        let db = self.store().db();
        let base = || -> Select<traffic_record::Entity> {
            traffic_record::Entity::find()
                .filter(traffic_record::Column::App.eq(app.name.as_str()))
                .filter(traffic_record::Column::Time.gte(since))
        };
        let by_filter: Vec<(Option<String>, i64)> = base()
            .select_only()
            .column(traffic_record::Column::DeniedBy)
            .column_as(traffic_record::Column::Id.count(), "n")
            .group_by(traffic_record::Column::DeniedBy)
            .into_tuple()
            .all(db)
            .await?;
        let mut requests = 0u64;
        let mut denied_by_filter = Vec::new();
        for (filter, n) in by_filter {
            let n = u64::try_from(n).unwrap_or(0);
            requests += n;
            if let Some(filter) = filter {
                denied_by_filter.push((filter, n));
            }
        }
        denied_by_filter.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let denied = denied_by_filter.iter().map(|(_, n)| n).sum();
        let waf_hits = base()
            .filter(traffic_record::Column::WafRules.is_not_null())
            .count(db)
            .await?;
        let class = "CAST(status / 100 AS BIGINT)";
        let classes: Vec<(i64, i64)> = base()
            .select_only()
            .column_as(Expr::cust(class), "class")
            .column_as(traffic_record::Column::Id.count(), "n")
            .group_by(Expr::cust(class))
            .order_by_asc(Expr::cust(class))
            .into_tuple()
            .all(db)
            .await?;
        let status_classes = classes
            .into_iter()
            .map(|(c, n)| (status_class(c), u64::try_from(n).unwrap_or(0)))
            .collect();
        let hour = hour_sql(self.store().backend());
        let hours: Vec<(String, i64, i64, i64)> = base()
            .select_only()
            .column_as(Expr::cust(hour), "hour")
            .column_as(traffic_record::Column::Id.count(), "n")
            .column_as(traffic_record::Column::DeniedBy.count(), "denied")
            .column_as(traffic_record::Column::WafRules.count(), "waf")
            .group_by(Expr::cust(hour))
            .into_tuple()
            .all(db)
            .await?;
        let mut counted = std::collections::HashMap::new();
        for (h, n, d, w) in hours {
            match DateTime::parse_from_rfc3339(&h) {
                Ok(t) => {
                    counted.insert(t.with_timezone(&Utc), (n, d, w));
                }
                Err(e) => tracing::warn!(hour = %h, error = %e, "unreadable hour bucket"),
            }
        }
        let mut by_hour = Vec::new();
        let mut h = hour_of(since);
        while h <= until {
            let (n, d, w) = counted.get(&h).copied().unwrap_or((0, 0, 0));
            by_hour.push(HourBucket {
                hour: h,
                requests: u64::try_from(n).unwrap_or(0),
                denied: u64::try_from(d).unwrap_or(0),
                waf_hits: u64::try_from(w).unwrap_or(0),
            });
            h += TimeDelta::hours(1);
        }
        Ok(TrafficSummary {
            since,
            until,
            requests,
            denied,
            denied_by_filter,
            waf_hits,
            status_classes,
            by_hour,
        })
    }

    /// The latest requests of an app the caller may read, newest first.
    pub async fn recent_requests(
        &self,
        who: &Principal,
        app: &app::Model,
        limit: Option<i64>,
    ) -> Result<Vec<traffic_record::Model>> {
        require_reader(who)?;
        if !may_read_stored(who, app) {
            return Err(Error::NotFound(format!("app `{}`", app.name)));
        }
        let limit = limit_arg(limit)?;
        Ok(traffic_record::Entity::find()
            .filter(traffic_record::Column::App.eq(app.name.as_str()))
            .order_by_desc(traffic_record::Column::Time)
            .order_by_desc(traffic_record::Column::Id)
            .limit(limit)
            .all(self.store().db())
            .await?)
    }

    /// The latest denied requests, newest first, of `app` or of every app the caller may read.
    pub async fn recent_denials(
        &self,
        who: &Principal,
        app: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Vec<traffic_record::Model>> {
        self.latest_across_apps(
            who,
            app,
            limit,
            traffic_record::Column::DeniedBy.is_not_null(),
        )
        .await
    }

    /// The latest requests on which a WAF rule fired (blocked or detected), newest first, of
    /// `app` or of every app the caller may read.
    pub async fn waf_hits(
        &self,
        who: &Principal,
        app: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Vec<traffic_record::Model>> {
        self.latest_across_apps(
            who,
            app,
            limit,
            traffic_record::Column::WafRules.is_not_null(),
        )
        .await
    }

    async fn latest_across_apps(
        &self,
        who: &Principal,
        app: Option<&str>,
        limit: Option<i64>,
        condition: sea_orm::sea_query::SimpleExpr,
    ) -> Result<Vec<traffic_record::Model>> {
        let limit = limit_arg(limit)?;
        let mut query = traffic_record::Entity::find().filter(condition);
        match app {
            Some(name) => {
                require_reader(who)?;
                // Admins and reviewers also see apps that have no row (gateways configured by
                // file); others only apps they may read.
                if !who.can_read_all() {
                    match find_app(self.store().db(), name).await? {
                        Some(a) if may_read_stored(who, &a) => {}
                        _ => return Err(Error::NotFound(format!("app `{name}`"))),
                    }
                }
                query = query.filter(traffic_record::Column::App.eq(name));
            }
            None => {
                if let Some(names) = readable_app_names(self, who).await? {
                    if names.is_empty() {
                        return Ok(Vec::new());
                    }
                    query = query.filter(traffic_record::Column::App.is_in(names));
                }
            }
        }
        Ok(query
            .order_by_desc(traffic_record::Column::Time)
            .order_by_desc(traffic_record::Column::Id)
            .limit(limit)
            .all(self.store().db())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> Value {
        json!({
            "time": "2025-03-01T10:00:00.123Z",
            "request_id": "r1",
            "app": "shop",
            "route": "/",
            "method": "GET",
            "path": "/search?q=x",
            "status": 403,
            "latency_ms": 1.5,
            "client_ip": "10.0.0.1",
            "identity": "alice",
            "headers": {"user-agent": "curl"},
            "decisions": {"authn": "allow", "authz": "allow:any", "waf": "deny"},
            "details": {"waf": {"rules": "942100,941110", "score": 10}}
        })
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-02T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn an_access_log_record_gives_the_denying_filter_and_the_waf_rules() {
        let r = parse_traffic_record(&record(), now()).expect("valid");
        assert_eq!(r.denied_by.as_deref(), Some("waf"));
        assert_eq!(r.waf_rules, ["942100", "941110"]);
        assert_eq!(r.subject.as_deref(), Some("alice"));
        assert_eq!(r.status, 403);
    }

    #[test]
    fn a_single_numeric_rule_and_a_reasoned_deny_are_read() {
        let mut v = record();
        v["details"]["waf"]["rules"] = json!(942100);
        v["decisions"] = json!({"waf": "detect", "authn": "deny:expired"});
        let r = parse_traffic_record(&v, now()).expect("valid");
        assert_eq!(r.waf_rules, ["942100"]);
        assert_eq!(r.denied_by.as_deref(), Some("authn"));
    }

    #[test]
    fn bad_fields_are_named() {
        for (patch, field) in [
            (json!({"status": 1000}), "status"),
            (json!({"status": "200"}), "status"),
            (json!({"time": "yesterday"}), "time"),
            (json!({"time": "2025-03-03T00:00:00Z"}), "time"),
            (json!({"app": ""}), "app"),
            (json!({"latency_ms": -1}), "latency_ms"),
            (json!({"path": "x".repeat(MAX_PATH_CHARS + 1)}), "path"),
            (json!({"decisions": {"waf": 1}}), "decisions.waf"),
            (json!({"method": "GE T"}), "method"),
        ] {
            let mut v = record();
            for (k, val) in patch.as_object().expect("object") {
                v[k] = val.clone();
            }
            let e = parse_traffic_record(&v, now()).expect_err(field);
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn a_batch_error_names_the_index() {
        let mut bad = record();
        bad["status"] = json!(-5);
        let e = parse_traffic_batch(&[record(), bad], now()).expect_err("refused");
        assert!(e.to_string().starts_with("records[1].status:"), "{e}");
    }
}
