//! GraphQL object, input and enum types over the stored records.

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, Enum, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::loaders::{IntentVersionLoader, VersionCountLoader};
use super::to_gql;
use crate::auth::{ActorKind, Scope};
use crate::services::{self, ChangeKind, ControlPlane, FieldChange, GatewayState};
use crate::storage::entities::{api_token, app, audit_log, gateway, intent_version};

/// Person or tool.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "ActorKind")]
pub enum GqlActorKind {
    /// A person signed in with OpenID Connect.
    Person,
    /// A tool with an API token.
    Tool,
}

impl GqlActorKind {
    pub(crate) fn from_stored(s: &str) -> GqlActorKind {
        match ActorKind::parse(s) {
            Some(ActorKind::Person) => GqlActorKind::Person,
            _ => GqlActorKind::Tool,
        }
    }

    pub(crate) fn to_kind(self) -> ActorKind {
        match self {
            GqlActorKind::Person => ActorKind::Person,
            GqlActorKind::Tool => ActorKind::Tool,
        }
    }
}

/// A scope of an API token.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "TokenScope")]
pub enum GqlScope {
    /// `apps:read`: read apps (limited to named apps or teams when the token is).
    AppsRead,
    /// `apps:write`: change the named apps or the apps of the named teams.
    AppsWrite,
    /// `admin`: everything.
    Admin,
    /// `gateway`: fetch snapshots and report their status.
    Gateway,
}

impl From<GqlScope> for Scope {
    fn from(s: GqlScope) -> Scope {
        match s {
            GqlScope::AppsRead => Scope::AppsRead,
            GqlScope::AppsWrite => Scope::AppsWrite,
            GqlScope::Admin => Scope::Admin,
            GqlScope::Gateway => Scope::Gateway,
        }
    }
}

impl From<Scope> for GqlScope {
    fn from(s: Scope) -> GqlScope {
        match s {
            Scope::AppsRead => GqlScope::AppsRead,
            Scope::AppsWrite => GqlScope::AppsWrite,
            Scope::Admin => GqlScope::Admin,
            Scope::Gateway => GqlScope::Gateway,
        }
    }
}

/// The state of a gateway.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "GatewayState")]
pub enum GqlGatewayState {
    /// It has not reported on any version yet.
    Pending,
    /// It ACKed its last version.
    Ack,
    /// It NACKed its last version (and serves the one before).
    Nack,
}

/// Kind of a field change.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "ChangeKind")]
pub enum GqlChangeKind {
    /// The field is new.
    Added,
    /// The field is gone.
    Removed,
    /// The field's value changed.
    Changed,
}

/// An app.
pub struct AppObject(pub app::Model);

#[Object(name = "App")]
impl AppObject {
    /// The app's name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Owning team.
    async fn team(&self) -> Option<&str> {
        self.0.team.as_deref()
    }
    /// Owners.
    async fn owners(&self) -> Vec<String> {
        self.0.owner_list()
    }
    /// Domains.
    async fn domains(&self) -> Vec<String> {
        self.0.domain_list()
    }
    /// Number of the current intent version (null once deleted).
    async fn current_version(&self) -> Option<i32> {
        self.0.current_version
    }
    /// The snapshot that first carried the app's last change.
    async fn snapshot_version(&self) -> Option<i64> {
        self.0.snapshot_version
    }
    /// First applied.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Deleted at.
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
    /// The current intent.
    async fn current(&self, ctx: &Context<'_>) -> Result<Option<IntentVersionObject>> {
        let Some(id) = self.0.current_version_id else {
            return Ok(None);
        };
        let loader = ctx.data::<DataLoader<IntentVersionLoader>>()?;
        Ok(loader.load_one(id).await?.map(IntentVersionObject))
    }
    /// How many versions the app has.
    async fn version_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let loader = ctx.data::<DataLoader<VersionCountLoader>>()?;
        Ok(loader.load_one(self.0.id).await?.unwrap_or(0))
    }
    /// Past and current intents, newest first.
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity")]
    async fn versions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many (1 to 500, default 20).")] first: Option<i32>,
        #[graphql(desc = "Only versions older than this one.")] before: Option<i32>,
    ) -> Result<Vec<IntentVersionObject>> {
        let (cp, who) = super::roots::caller(ctx)?;
        Ok(cp
            .intent_versions(
                &who,
                &self.0.name,
                Some(i64::from(first.unwrap_or(20))),
                before,
            )
            .await
            .map_err(to_gql)?
            .into_iter()
            .map(IntentVersionObject)
            .collect())
    }
    /// One version.
    async fn version(&self, ctx: &Context<'_>, version: i32) -> Result<IntentVersionObject> {
        let (cp, who) = super::roots::caller(ctx)?;
        cp.intent_version(&who, &self.0.name, version)
            .await
            .map(IntentVersionObject)
            .map_err(to_gql)
    }
    /// How far the app's last change has rolled out to the gateways.
    async fn rollout(&self, ctx: &Context<'_>) -> Result<Rollout> {
        let cp = ctx.data::<ControlPlane>()?;
        rollout(cp, self.0.snapshot_version).await.map_err(to_gql)
    }
    /// Traffic from `since` (default: the last 24 hours; at most 31 days back) to now, from the
    /// gateways' access logs.
    #[graphql(complexity = "10 + child_complexity")]
    async fn traffic(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Start of the window (default: 24 hours ago).")] since: Option<
            DateTime<Utc>,
        >,
    ) -> Result<super::traffic::TrafficSummaryObject> {
        let (cp, who) = super::roots::caller(ctx)?;
        cp.traffic_summary(&who, &self.0, since)
            .await
            .map(Into::into)
            .map_err(to_gql)
    }
    /// The latest requests, newest first.
    #[graphql(complexity = "limit.max(1) as usize * child_complexity")]
    async fn recent_requests(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many (1 to 500).", default = 50)] limit: i32,
    ) -> Result<Vec<super::traffic::TrafficRecordObject>> {
        let (cp, who) = super::roots::caller(ctx)?;
        cp.recent_requests(&who, &self.0, Some(i64::from(limit)))
            .await
            .map(super::traffic::records)
            .map_err(to_gql)
    }
    /// Whether the current intent is paved (sign-in on every non-public route, a blocking WAF
    /// on every route), and what is missing.
    #[graphql(complexity = 5)]
    async fn paved(&self, ctx: &Context<'_>) -> Result<super::traffic::PavedStatusObject> {
        let (cp, who) = super::roots::caller(ctx)?;
        cp.app_paved_status(&who, &self.0)
            .await
            .map(Into::into)
            .map_err(to_gql)
    }
}

/// Roll-out of a snapshot version over the gateways.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// The snapshot version concerned.
    pub snapshot_version: Option<i64>,
    /// Gateways known.
    pub gateways_total: i32,
    /// Gateways serving that version or a later one.
    pub gateways_up_to_date: i32,
    /// Gateways that NACKed that version or a later one.
    pub gateways_failed: i32,
}

pub(crate) async fn rollout(cp: &ControlPlane, version: Option<i64>) -> crate::Result<Rollout> {
    let gateways = cp.list_gateways(&crate::Principal::system()).await?;
    let v = version.unwrap_or(i64::MAX);
    let count =
        |f: &dyn Fn(&gateway::Model) -> bool| gateways.iter().filter(|g| f(g)).count() as i32;
    Ok(Rollout {
        snapshot_version: version,
        gateways_total: gateways.len() as i32,
        gateways_up_to_date: count(&|g| g.version_served.is_some_and(|s| s >= v)),
        gateways_failed: count(&|g| {
            g.state == "nack" && g.last_reported_version.is_some_and(|r| r >= v)
        }),
    })
}

/// One version of an app's intent.
pub struct IntentVersionObject(pub intent_version::Model);

#[Object(name = "IntentVersion")]
impl IntentVersionObject {
    /// Version number within the app.
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// The intent as written (YAML).
    async fn text(&self) -> &str {
        &self.0.text
    }
    /// The intent as parsed, defaults filled.
    async fn intent(&self) -> Json<Value> {
        Json(self.0.intent.clone())
    }
    /// SHA-256 of the parsed intent.
    async fn content_hash(&self) -> &str {
        &self.0.content_hash
    }
    /// Who applied it.
    async fn author(&self) -> &str {
        &self.0.author
    }
    /// Whether a person or a tool applied it.
    async fn actor_kind(&self) -> GqlActorKind {
        GqlActorKind::from_stored(&self.0.actor_kind)
    }
    /// `apply` or `rollback`.
    async fn action(&self) -> &str {
        &self.0.action
    }
    /// For a rollback, the version restored.
    async fn rolled_back_from(&self) -> Option<i32> {
        self.0.rolled_back_from
    }
    /// When.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Pagination state.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct PageInfo {
    /// More items follow.
    pub has_next_page: bool,
    /// Pass as `after` for the next page.
    pub end_cursor: Option<String>,
}

/// A page of apps.
#[derive(SimpleObject)]
pub struct AppConnection {
    /// The apps.
    pub nodes: Vec<AppObject>,
    /// Apps matching the filter in all pages.
    pub total_count: i64,
    /// Pagination.
    pub page_info: PageInfo,
}

/// Filters of the `apps` query.
#[derive(InputObject, Debug, Default, Clone)]
pub struct AppFilterInput {
    /// Apps of this team.
    pub team: Option<String>,
    /// Apps whose name contains this.
    pub name_contains: Option<String>,
    /// Apps serving this domain.
    pub domain: Option<String>,
    /// Include deleted apps.
    #[graphql(default)]
    pub include_deleted: bool,
}

impl From<AppFilterInput> for services::AppFilter {
    fn from(f: AppFilterInput) -> Self {
        services::AppFilter {
            team: f.team,
            name_contains: f.name_contains,
            domain: f.domain,
            include_deleted: f.include_deleted,
        }
    }
}

/// A difference at one field.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "FieldChange")]
pub struct FieldChangeObject {
    /// Field path, such as `routes[1].upstream`.
    pub path: String,
    /// Added, removed or changed.
    pub kind: GqlChangeKind,
    /// Value before.
    pub before: Option<Json<Value>>,
    /// Value after.
    pub after: Option<Json<Value>>,
}

impl From<FieldChange> for FieldChangeObject {
    fn from(c: FieldChange) -> Self {
        FieldChangeObject {
            path: c.path.clone(),
            kind: match c.kind() {
                ChangeKind::Added => GqlChangeKind::Added,
                ChangeKind::Removed => GqlChangeKind::Removed,
                ChangeKind::Changed => GqlChangeKind::Changed,
            },
            before: c.before.map(Json),
            after: c.after.map(Json),
        }
    }
}

/// What applying an intent would change.
#[derive(SimpleObject)]
#[graphql(name = "Plan")]
pub struct PlanObject {
    /// The app.
    pub app: String,
    /// Whether the app is new.
    pub new_app: bool,
    /// Whether applying would make a new version.
    pub changed: bool,
    /// The current version.
    pub current_version: Option<i32>,
    /// Content hash of the planned intent.
    pub content_hash: String,
    /// Field-level changes.
    pub changes: Vec<FieldChangeObject>,
    /// Unified diff of the texts.
    pub text_diff: String,
}

/// Differences between two versions.
#[derive(SimpleObject)]
#[graphql(name = "IntentDiff")]
pub struct DiffObject {
    /// The app.
    pub app: String,
    /// Older version.
    pub from: i32,
    /// Newer version.
    pub to: i32,
    /// Field-level changes.
    pub changes: Vec<FieldChangeObject>,
    /// Unified diff of the texts.
    pub text_diff: String,
}

/// The result of applyIntent and rollbackApp.
#[derive(SimpleObject)]
pub struct ApplyResult {
    /// The app.
    pub app: AppObject,
    /// Its current version.
    pub version: IntentVersionObject,
    /// Whether a new version was made.
    pub created: bool,
    /// The snapshot published for the change.
    pub snapshot_version: Option<i64>,
}

/// The result of deleteApp.
#[derive(SimpleObject)]
pub struct DeleteResult {
    /// The app.
    pub app: String,
    /// The snapshot published without it.
    pub snapshot_version: i64,
}

/// A gateway.
pub struct GatewayObject(pub gateway::Model, pub Option<i64>);

#[Object(name = "Gateway")]
impl GatewayObject {
    /// Its id.
    async fn id(&self) -> &str {
        &self.0.id
    }
    /// First seen.
    async fn first_seen(&self) -> DateTime<Utc> {
        self.0.first_seen
    }
    /// Last seen.
    async fn last_seen(&self) -> DateTime<Utc> {
        self.0.last_seen
    }
    /// The version it serves (its last ACK).
    async fn version_served(&self) -> Option<i64> {
        self.0.version_served
    }
    /// The last version sent to it.
    async fn version_delivered(&self) -> Option<i64> {
        self.0.version_delivered
    }
    /// The last version it reported on.
    async fn last_reported_version(&self) -> Option<i64> {
        self.0.last_reported_version
    }
    /// ACK, NACK or pending.
    async fn state(&self) -> GqlGatewayState {
        match GatewayState::parse(&self.0.state) {
            GatewayState::Pending => GqlGatewayState::Pending,
            GatewayState::Ack => GqlGatewayState::Ack,
            GatewayState::Nack => GqlGatewayState::Nack,
        }
    }
    /// The error of its last NACK.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// When it last reported.
    async fn reported_at(&self) -> Option<DateTime<Utc>> {
        self.0.reported_at
    }
    /// Whether it serves the latest snapshot.
    async fn up_to_date(&self) -> bool {
        self.1.is_some() && self.0.version_served == self.1
    }
}

/// An audit record.
pub struct AuditEntryObject(pub audit_log::Model);

#[Object(name = "AuditEntry")]
impl AuditEntryObject {
    /// Row id (increasing).
    async fn id(&self) -> String {
        self.0.id.to_string()
    }
    /// When.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// Who.
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    /// Person or tool.
    async fn actor_kind(&self) -> GqlActorKind {
        GqlActorKind::from_stored(&self.0.actor_kind)
    }
    /// What (`app.apply`, `app.rollback`, `app.delete`, `token.create`, ...).
    async fn action(&self) -> &str {
        &self.0.action
    }
    /// Kind of target (`app`, `token`, `user`, `client`).
    async fn target_kind(&self) -> &str {
        &self.0.target_kind
    }
    /// The target.
    async fn target(&self) -> &str {
        &self.0.target
    }
    /// The app concerned.
    async fn app(&self) -> Option<&str> {
        self.0.app.as_deref()
    }
    /// State before.
    async fn before(&self) -> Option<Json<Value>> {
        self.0.before.clone().map(Json)
    }
    /// State after.
    async fn after(&self) -> Option<Json<Value>> {
        self.0.after.clone().map(Json)
    }
}

/// A page of audit records.
#[derive(SimpleObject)]
pub struct AuditConnection {
    /// The records, newest first.
    pub nodes: Vec<AuditEntryObject>,
    /// Records matching the filter.
    pub total_count: i64,
    /// Pagination.
    pub page_info: PageInfo,
}

/// Filters of the `auditLog` query.
#[derive(InputObject, Debug, Default, Clone)]
pub struct AuditFilterInput {
    /// Records about this app.
    pub app: Option<String>,
    /// Records by this actor.
    pub actor: Option<String>,
    /// Records by people or by tools.
    pub actor_kind: Option<GqlActorKind>,
    /// Records of this action.
    pub action: Option<String>,
    /// Records at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// An API token (never its secret).
pub struct ApiTokenObject(pub api_token::Model);

#[Object(name = "ApiToken")]
impl ApiTokenObject {
    /// Its id.
    async fn id(&self) -> String {
        self.0.id.to_string()
    }
    /// Its name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The public prefix (`pvd_<prefix>_...`).
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    /// Scopes.
    async fn scopes(&self) -> Vec<GqlScope> {
        self.0
            .scope_list()
            .into_iter()
            .map(GqlScope::from)
            .collect()
    }
    /// Apps it is limited to.
    async fn apps(&self) -> Vec<String> {
        self.0.app_list()
    }
    /// Teams it is limited to.
    async fn teams(&self) -> Vec<String> {
        self.0.team_list()
    }
    /// Who created it.
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    /// Created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Expiry.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// Revocation time.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// Neither revoked nor expired.
    async fn active(&self) -> bool {
        self.0.revoked_at.is_none() && self.0.expires_at.is_none_or(|t| t > Utc::now())
    }
}

/// A created token, with its secret shown this once.
#[derive(SimpleObject)]
#[graphql(name = "CreatedToken")]
pub struct CreatedTokenObject {
    /// The token.
    pub token: ApiTokenObject,
    /// The token string: store it now, it is not shown again.
    pub secret: String,
}

/// Input of createToken.
#[derive(InputObject, Debug, Clone)]
pub struct CreateTokenInput {
    /// A name.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<GqlScope>,
    /// Apps it is limited to.
    #[graphql(default)]
    pub apps: Vec<String>,
    /// Teams it is limited to.
    #[graphql(default)]
    pub teams: Vec<String>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The caller.
#[derive(SimpleObject)]
pub struct Me {
    /// Name in the audit log.
    pub name: String,
    /// Person or tool.
    pub kind: GqlActorKind,
    /// A person's role (`app-owner`, `security-reviewer`, `admin`).
    pub role: Option<String>,
    /// A person's teams, or the teams a token is limited to.
    pub teams: Vec<String>,
    /// A token's scopes.
    pub scopes: Vec<GqlScope>,
}

/// A change of an app's status.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct AppStatusEvent {
    /// The app.
    pub app: String,
    /// What happened (`app.apply`, `app.rollback`, `app.delete`, `gateway.report`, or
    /// `current` for the first event).
    pub event: String,
    /// The current intent version (null once deleted).
    pub current_version: Option<i32>,
    /// Whether the app is deleted.
    pub deleted: bool,
    /// Roll-out of the app's last change.
    pub rollout: Rollout,
}

/// A change of the gateways' roll-out.
#[derive(SimpleObject)]
pub struct RolloutEvent {
    /// The latest snapshot version.
    pub snapshot_version: Option<i64>,
    /// `snapshot.published`, `gateway.report`, or `current` for the first event.
    pub event: String,
    /// The gateway that reported, for reports.
    pub gateway_id: Option<String>,
    /// The version it reported on.
    pub reported_version: Option<i64>,
    /// ACK (true) or NACK (false).
    pub ok: Option<bool>,
    /// The NACK's error.
    pub error: Option<String>,
    /// Every gateway after the change.
    pub gateways: Vec<GatewayObject>,
}

impl From<ActorKind> for GqlActorKind {
    fn from(k: ActorKind) -> Self {
        match k {
            ActorKind::Person => GqlActorKind::Person,
            ActorKind::Tool => GqlActorKind::Tool,
        }
    }
}

/// Whether the control plane reached an upstream (`checkUpstream`).
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
#[graphql(name = "UpstreamCheck")]
pub struct UpstreamCheckObject {
    /// An HTTP response came back, whatever its status.
    pub reachable: bool,
    /// Its status code.
    pub status: Option<i32>,
    /// Why it was not reachable: `timed out`, `connection refused`, `host name not resolved`,
    /// `TLS handshake failed`, `could not connect` or `no valid HTTP response`.
    pub error: Option<String>,
}

impl From<services::UpstreamCheck> for UpstreamCheckObject {
    fn from(c: services::UpstreamCheck) -> Self {
        UpstreamCheckObject {
            reachable: c.reachable,
            status: c.status.map(i32::from),
            error: c.error,
        }
    }
}
