//! Every GraphQL document the UI sends, with the types of their answers, in one place so a
//! change of the schema (control-plane/schema.graphql) is one edit here. `schema_tests` checks
//! every document against that file.

use serde::{Deserialize, Serialize};

/// The caller: for the greeting, the default owner and team suggestions.
pub const ME: &str = "query Me { me { name kind role teams } }";

/// The caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// Name in the audit log (a person's user name).
    pub name: String,
    /// `PERSON` or `TOOL`.
    #[serde(default)]
    pub kind: String,
    /// A person's role.
    #[serde(default)]
    pub role: Option<String>,
    /// Teams.
    #[serde(default)]
    pub teams: Vec<String>,
}

/// Answer of [`ME`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeData {
    /// The caller.
    pub me: Me,
}

/// A request seen by a gateway.
pub const TRAFFIC_RECORD_FIELDS: &str =
    "time gateway app route method path status latencyMs deniedBy wafRules requestId";

/// A request seen by a gateway (one access-log record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficRecord {
    /// When (RFC 3339).
    pub time: String,
    /// The gateway that served it.
    #[serde(default)]
    pub gateway: String,
    /// The app.
    #[serde(default)]
    pub app: String,
    /// The route's path prefix.
    #[serde(default)]
    pub route: String,
    /// HTTP method.
    #[serde(default)]
    pub method: String,
    /// Path (secret-looking query values redacted by the gateway).
    #[serde(default)]
    pub path: String,
    /// Response status (0: none).
    #[serde(default)]
    pub status: i64,
    /// Latency in milliseconds.
    #[serde(default)]
    pub latency_ms: f64,
    /// The filter that denied it.
    #[serde(default)]
    pub denied_by: Option<String>,
    /// WAF rules that fired.
    #[serde(default)]
    pub waf_rules: Vec<String>,
    /// The gateway's request id.
    #[serde(default)]
    pub request_id: String,
}

/// A gateway and what it serves.
pub const GATEWAY_FIELDS: &str =
    "id state versionServed versionDelivered lastReportedVersion error upToDate lastSeen";

/// A gateway and the snapshot version it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gateway {
    /// Its id.
    pub id: String,
    /// `ACK`, `NACK` or `PENDING`.
    pub state: String,
    /// The snapshot version it serves.
    #[serde(default)]
    pub version_served: Option<i64>,
    /// The last version sent to it.
    #[serde(default)]
    pub version_delivered: Option<i64>,
    /// The last version it reported on.
    #[serde(default)]
    pub last_reported_version: Option<i64>,
    /// The error of its last NACK.
    #[serde(default)]
    pub error: Option<String>,
    /// Serves the latest snapshot.
    #[serde(default)]
    pub up_to_date: bool,
    /// Last seen (RFC 3339).
    #[serde(default)]
    pub last_seen: Option<String>,
}

/// Adoption of the paved road at the end of one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptionDay {
    /// The day (`2025-03-01`).
    pub day: String,
    /// Apps that existed.
    pub apps: i64,
    /// Of those, paved.
    pub paved: i64,
    /// `paved / apps` (0 to 1).
    pub rate: f64,
}

/// Adoption of the paved road.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Adoption {
    /// Apps.
    pub apps: i64,
    /// Paved apps.
    pub paved: i64,
    /// `paved / apps` (0 to 1).
    pub rate: f64,
    /// Day by day, oldest first.
    #[serde(default)]
    pub trend: Vec<AdoptionDay>,
}

/// The dashboard's data.
pub fn dashboard_query() -> String {
    format!(
        "query Dashboard($days: Int!, $denials: Int!, $limit: Int!) {{
  adoption(days: $days) {{ apps paved rate trend {{ day apps paved rate }} }}
  recentDenials(limit: $denials) {{ {TRAFFIC_RECORD_FIELDS} }}
  wafHits(limit: $limit) {{ {TRAFFIC_RECORD_FIELDS} }}
  gateways {{ {GATEWAY_FIELDS} }}
  snapshotVersion
}}"
    )
}

/// Answer of [`dashboard_query`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardData {
    /// Adoption now and day by day.
    pub adoption: Adoption,
    /// Latest denied requests.
    pub recent_denials: Vec<TrafficRecord>,
    /// Latest requests on which a WAF rule fired.
    pub waf_hits: Vec<TrafficRecord>,
    /// Gateways.
    pub gateways: Vec<Gateway>,
    /// The latest snapshot.
    pub snapshot_version: Option<i64>,
}

/// Whether an app is on the paved road.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PavedStatus {
    /// Sign-in on every non-public route and a blocking WAF on every route.
    pub paved: bool,
    /// What is missing.
    #[serde(default)]
    pub gaps: Vec<String>,
}

/// One page of the catalog (`apps` with the caller's filter).
pub const CATALOG: &str = "query Catalog($filter: AppFilterInput, $first: Int!, $after: String) {
  apps(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { name team owners domains currentVersion updatedAt paved { paved gaps } }
  }
}";

/// Apps fetched per catalog request (the API's complexity limit allows about 100).
pub const CATALOG_PAGE: i64 = 50;

/// An app as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSummary {
    /// Name.
    pub name: String,
    /// Owning team.
    #[serde(default)]
    pub team: Option<String>,
    /// Owners.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Domains.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Current version.
    #[serde(default)]
    pub current_version: Option<i64>,
    /// Last change (RFC 3339).
    #[serde(default)]
    pub updated_at: String,
    /// Paved status.
    #[serde(default)]
    pub paved: Option<PavedStatus>,
}

/// Pagination of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    /// More follow.
    pub has_next_page: bool,
    /// Cursor for the next page.
    #[serde(default)]
    pub end_cursor: Option<String>,
}

/// A page of apps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppPage {
    /// Matching apps in all pages.
    pub total_count: i64,
    /// Pagination.
    pub page_info: PageInfo,
    /// The apps.
    pub nodes: Vec<AppSummary>,
}

/// Answer of [`CATALOG`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogData {
    /// The page.
    pub apps: AppPage,
}

/// One app with everything its page shows.
pub fn app_query() -> String {
    format!(
        "query AppPage($name: String!, $versions: Int!, $limit: Int!) {{
  app(name: $name) {{
    name team owners domains currentVersion snapshotVersion createdAt updatedAt deletedAt versionCount
    current {{ version text intent author actorKind action rolledBackFrom createdAt }}
    versions(first: $versions) {{ version author actorKind action rolledBackFrom createdAt }}
    rollout {{ snapshotVersion gatewaysTotal gatewaysUpToDate gatewaysFailed }}
    paved {{ paved gaps }}
    traffic {{ since until requests denied wafHits deniedByFilter {{ filter count }} byHour {{ hour requests denied wafHits }} }}
    recentRequests(limit: $limit) {{ {TRAFFIC_RECORD_FIELDS} }}
  }}
  wafHits(limit: $limit, app: $name) {{ {TRAFFIC_RECORD_FIELDS} }}
  gateways {{ {GATEWAY_FIELDS} }}
}}"
    )
}

/// A version of an app's intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntentVersion {
    /// Version number.
    pub version: i64,
    /// The intent as written (only asked for the current version).
    #[serde(default)]
    pub text: Option<String>,
    /// The intent as parsed, defaults filled (only asked for the current version).
    #[serde(default)]
    pub intent: Option<serde_json::Value>,
    /// Who applied it.
    #[serde(default)]
    pub author: String,
    /// `PERSON` or `TOOL`.
    #[serde(default)]
    pub actor_kind: String,
    /// `apply` or `rollback`.
    #[serde(default)]
    pub action: String,
    /// For a rollback, the version restored.
    #[serde(default)]
    pub rolled_back_from: Option<i64>,
    /// When (RFC 3339).
    #[serde(default)]
    pub created_at: String,
}

/// Roll-out of an app's last change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// The snapshot version concerned.
    #[serde(default)]
    pub snapshot_version: Option<i64>,
    /// Gateways known.
    pub gateways_total: i64,
    /// Gateways serving it.
    pub gateways_up_to_date: i64,
    /// Gateways that refused it.
    pub gateways_failed: i64,
}

/// Denials of one filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterCount {
    /// The filter.
    pub filter: String,
    /// Requests it denied.
    pub count: i64,
}

/// One hour of traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficBucket {
    /// Start of the hour (RFC 3339).
    pub hour: String,
    /// Requests.
    pub requests: i64,
    /// Denied requests.
    pub denied: i64,
    /// Requests with a WAF hit.
    #[serde(default)]
    pub waf_hits: i64,
}

/// An app's traffic over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSummary {
    /// Start of the window.
    #[serde(default)]
    pub since: String,
    /// End of the window.
    #[serde(default)]
    pub until: String,
    /// Requests.
    pub requests: i64,
    /// Denied requests.
    pub denied: i64,
    /// Requests with a WAF hit.
    pub waf_hits: i64,
    /// Denials by filter, most first.
    #[serde(default)]
    pub denied_by_filter: Vec<FilterCount>,
    /// Hour by hour, oldest first.
    #[serde(default)]
    pub by_hour: Vec<TrafficBucket>,
}

/// An app with its history, status and traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppDetail {
    /// Name.
    pub name: String,
    /// Owning team.
    #[serde(default)]
    pub team: Option<String>,
    /// Owners.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Domains.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Current version (none once deleted).
    #[serde(default)]
    pub current_version: Option<i64>,
    /// The snapshot that first carried the last change.
    #[serde(default)]
    pub snapshot_version: Option<i64>,
    /// First applied.
    #[serde(default)]
    pub created_at: String,
    /// Last changed.
    #[serde(default)]
    pub updated_at: String,
    /// Deleted at.
    #[serde(default)]
    pub deleted_at: Option<String>,
    /// Number of versions.
    #[serde(default)]
    pub version_count: i64,
    /// The current intent.
    #[serde(default)]
    pub current: Option<IntentVersion>,
    /// Latest versions, newest first.
    #[serde(default)]
    pub versions: Vec<IntentVersion>,
    /// Roll-out of the last change.
    pub rollout: Rollout,
    /// Paved status.
    #[serde(default)]
    pub paved: Option<PavedStatus>,
    /// Traffic of the last 24 hours.
    #[serde(default)]
    pub traffic: Option<TrafficSummary>,
    /// Latest requests.
    #[serde(default)]
    pub recent_requests: Vec<TrafficRecord>,
}

/// Answer of [`app_query`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppData {
    /// The app.
    pub app: AppDetail,
    /// Its latest WAF hits.
    pub waf_hits: Vec<TrafficRecord>,
    /// Gateways.
    pub gateways: Vec<Gateway>,
}

/// Differences between two versions.
pub const DIFF: &str = "query Diff($app: String!, $from: Int!, $to: Int!) {
  diff(app: $app, from: $from, to: $to) { app from to textDiff changes { path kind before after } }
}";

/// A difference at one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Field path.
    pub path: String,
    /// `ADDED`, `REMOVED` or `CHANGED`.
    pub kind: String,
    /// Before.
    #[serde(default)]
    pub before: Option<serde_json::Value>,
    /// After.
    #[serde(default)]
    pub after: Option<serde_json::Value>,
}

/// Differences between two versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntentDiff {
    /// The app.
    pub app: String,
    /// Older version.
    pub from: i64,
    /// Newer version.
    pub to: i64,
    /// Unified diff.
    pub text_diff: String,
    /// Field-level changes.
    #[serde(default)]
    pub changes: Vec<FieldChange>,
}

/// Answer of [`DIFF`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffData {
    /// The diff.
    pub diff: IntentDiff,
}

/// Makes a version's content current again.
pub const ROLLBACK: &str = "mutation Rollback($name: String!, $version: Int!) {
  rollbackApp(name: $name, version: $version) { created snapshotVersion version { version rolledBackFrom } }
}";

/// The result of applyIntent and rollbackApp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResult {
    /// Whether a new version was made.
    pub created: bool,
    /// The snapshot published for the change.
    #[serde(default)]
    pub snapshot_version: Option<i64>,
    /// The app's current version.
    pub version: IntentVersion,
}

/// Answer of [`ROLLBACK`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackData {
    /// The result.
    pub rollback_app: ApplyResult,
}

/// Validates an intent and shows what applying it would change.
pub const PLAN: &str = "mutation Plan($yaml: String!) {
  planIntent(yaml: $yaml) { app newApp changed currentVersion textDiff changes { path kind before after } }
}";

/// What applying an intent would change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The app.
    pub app: String,
    /// Whether the app is new.
    pub new_app: bool,
    /// Whether applying makes a new version.
    pub changed: bool,
    /// The current version.
    #[serde(default)]
    pub current_version: Option<i64>,
    /// Unified diff.
    #[serde(default)]
    pub text_diff: String,
    /// Field-level changes.
    #[serde(default)]
    pub changes: Vec<FieldChange>,
}

/// Answer of [`PLAN`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanData {
    /// The plan.
    pub plan_intent: Plan,
}

/// Applies an intent.
pub const APPLY: &str = "mutation Apply($yaml: String!) {
  applyIntent(yaml: $yaml) { created snapshotVersion version { version } app { name domains } }
}";

/// An applied app's name and domains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedApp {
    /// Name.
    pub name: String,
    /// Domains.
    #[serde(default)]
    pub domains: Vec<String>,
}

/// The result of applyIntent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Whether a new version was made.
    pub created: bool,
    /// The snapshot published for the change.
    #[serde(default)]
    pub snapshot_version: Option<i64>,
    /// The current version.
    pub version: IntentVersion,
    /// The app.
    pub app: AppliedApp,
}

/// Answer of [`APPLY`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyData {
    /// The result.
    pub apply_intent: Applied,
}

/// Whether the control plane reaches an upstream URL.
pub const CHECK_UPSTREAM: &str =
    "query CheckUpstream($url: String!) { checkUpstream(url: $url) { reachable status error } }";

/// The answer of a reachability check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamCheck {
    /// An HTTP response came back.
    pub reachable: bool,
    /// Its status.
    #[serde(default)]
    pub status: Option<i64>,
    /// Why not.
    #[serde(default)]
    pub error: Option<String>,
}

/// Answer of [`CHECK_UPSTREAM`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckUpstreamData {
    /// The check.
    pub check_upstream: UpstreamCheck,
}

/// The gateways, for the roll-out panel before the subscription's first event.
pub fn gateways_query() -> String {
    format!("query Gateways {{ gateways {{ {GATEWAY_FIELDS} }} snapshotVersion }}")
}

/// Answer of [`gateways_query`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaysData {
    /// Gateways.
    pub gateways: Vec<Gateway>,
    /// The latest snapshot.
    #[serde(default)]
    pub snapshot_version: Option<i64>,
}

/// The gateways' roll-out, live (subscription).
pub fn gateway_rollout_subscription() -> String {
    format!(
        "subscription Rollout {{ gatewayRollout {{ snapshotVersion event gatewayId ok error gateways {{ {GATEWAY_FIELDS} }} }} }}"
    )
}

/// A change of the gateways' roll-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutEvent {
    /// The latest snapshot.
    #[serde(default)]
    pub snapshot_version: Option<i64>,
    /// `snapshot.published`, `gateway.report` or `current`.
    #[serde(default)]
    pub event: String,
    /// Every gateway after the change.
    #[serde(default)]
    pub gateways: Vec<Gateway>,
}

/// One event of [`gateway_rollout_subscription`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutEventData {
    /// The event.
    pub gateway_rollout: RolloutEvent,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every document must at least be balanced; the control plane's tests run them for real.
    #[test]
    fn documents_have_balanced_braces() {
        for doc in [
            ME.to_string(),
            dashboard_query(),
            CATALOG.to_string(),
            app_query(),
            DIFF.to_string(),
            ROLLBACK.to_string(),
            PLAN.to_string(),
            APPLY.to_string(),
            CHECK_UPSTREAM.to_string(),
            gateways_query(),
            gateway_rollout_subscription(),
        ] {
            let open = doc.matches('{').count();
            let close = doc.matches('}').count();
            assert_eq!(open, close, "{doc}");
            assert!(!doc.contains("{{"), "format! escapes left in {doc}");
        }
    }

    #[test]
    fn answers_decode_with_optional_fields_missing() {
        let data: DashboardData = serde_json::from_value(json!({
            "adoption": {"apps": 2, "paved": 1, "rate": 0.5, "trend": [{"day": "2025-03-01", "apps": 2, "paved": 1, "rate": 0.5}]},
            "recentDenials": [{"time": "2025-03-01T10:00:00Z", "app": "a", "status": 403, "deniedBy": "waf", "wafRules": ["942100"]}],
            "wafHits": [],
            "gateways": [{"id": "gw-1", "state": "ACK", "versionServed": 7, "upToDate": true}],
            "snapshotVersion": 7
        }))
        .expect("decodes");
        assert_eq!(data.adoption.trend.len(), 1);
        assert_eq!(data.recent_denials[0].denied_by.as_deref(), Some("waf"));
        assert_eq!(data.gateways[0].version_served, Some(7));
    }
}
