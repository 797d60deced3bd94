//! The query, mutation and subscription roots.

use async_graphql::{Context, ID, Object, Result, Subscription};
use futures_util::{Stream, StreamExt, stream};
use tokio_stream::wrappers::BroadcastStream;

use super::types::*;
use super::{RequestAuth, to_gql};
use crate::Error;
use crate::auth::{Access, Principal};
use crate::services::{AuditFilter, ControlPlane, Event, NewToken, Page};

/// The control plane and the authenticated caller, or `UNAUTHENTICATED`.
pub(crate) fn caller(ctx: &Context<'_>) -> Result<(ControlPlane, Principal)> {
    let cp = ctx.data::<ControlPlane>()?.clone();
    match &ctx.data::<RequestAuth>()?.0 {
        Ok(Some(p)) => Ok((cp, p.clone())),
        Ok(None) => Err(to_gql(Error::Unauthenticated(
            "send `Authorization: Bearer <API token or access token>`".into(),
        ))),
        Err(message) => Err(to_gql(Error::Unauthenticated(message.clone()))),
    }
}

fn first_arg(first: Option<i32>) -> Option<i64> {
    first.map(i64::from)
}

fn page_info<T>(page: &Page<T>) -> PageInfo {
    PageInfo {
        has_next_page: page.has_next,
        end_cursor: page.end_cursor.clone(),
    }
}

fn parse_id(id: &ID) -> Result<i64> {
    id.parse::<i64>()
        .map_err(|_| to_gql(Error::BadRequest(format!("invalid id `{}`", id.as_str()))))
}

async fn gateway_objects(cp: &ControlPlane, who: &Principal) -> crate::Result<Vec<GatewayObject>> {
    let latest = cp.latest_snapshot().map(|s| s.version);
    Ok(cp
        .list_gateways(who)
        .await?
        .into_iter()
        .map(|g| GatewayObject(g, latest))
        .collect())
}

/// Queries.
pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// The caller.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        let (_, who) = caller(ctx)?;
        let (role, teams, scopes) = match &who.access {
            Access::Person { role, teams, .. } => {
                (Some(role.as_str().to_string()), teams.clone(), vec![])
            }
            Access::Token { scopes, teams, .. } => (
                None,
                teams.clone(),
                scopes.iter().map(|s| GqlScope::from(*s)).collect(),
            ),
            Access::System => (None, vec![], vec![GqlScope::Admin]),
        };
        Ok(Me {
            name: who.name.clone(),
            kind: who.kind.into(),
            role,
            teams,
            scopes,
        })
    }

    /// Whether the control plane reaches an upstream URL (`http`/`https`): one `HEAD` request
    /// with a 3 s bound, no redirect followed. For callers that may change some app (the
    /// onboarding wizard); internal addresses are allowed (docs/ui-hosting.md).
    async fn check_upstream(&self, ctx: &Context<'_>, url: String) -> Result<UpstreamCheckObject> {
        let (cp, who) = caller(ctx)?;
        cp.check_upstream(&who, &url)
            .await
            .map(Into::into)
            .map_err(to_gql)
    }

    /// Apps the caller may read, by name.
    #[graphql(complexity = "first.unwrap_or(50).max(1) as usize * child_complexity")]
    async fn apps(
        &self,
        ctx: &Context<'_>,
        filter: Option<AppFilterInput>,
        #[graphql(desc = "Page size, 1 to 500 (default 50).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> Result<AppConnection> {
        let (cp, who) = caller(ctx)?;
        let page = cp
            .list_apps(
                &who,
                &filter.unwrap_or_default().into(),
                first_arg(first),
                after.as_deref(),
            )
            .await
            .map_err(to_gql)?;
        Ok(AppConnection {
            page_info: page_info(&page),
            total_count: page.total as i64,
            nodes: page.items.into_iter().map(AppObject).collect(),
        })
    }

    /// One app, with its current and past intents.
    async fn app(&self, ctx: &Context<'_>, name: String) -> Result<AppObject> {
        let (cp, who) = caller(ctx)?;
        cp.get_app(&who, &name).await.map(AppObject).map_err(to_gql)
    }

    /// Differences between two versions of an app's intent.
    async fn diff(&self, ctx: &Context<'_>, app: String, from: i32, to: i32) -> Result<DiffObject> {
        let (cp, who) = caller(ctx)?;
        let d = cp
            .diff_versions(&who, &app, from, to)
            .await
            .map_err(to_gql)?;
        Ok(DiffObject {
            app: d.app,
            from: d.from,
            to: d.to,
            changes: d.changes.into_iter().map(Into::into).collect(),
            text_diff: d.text_diff,
        })
    }

    /// Gateways and the version each serves.
    async fn gateways(&self, ctx: &Context<'_>) -> Result<Vec<GatewayObject>> {
        let (cp, who) = caller(ctx)?;
        gateway_objects(&cp, &who).await.map_err(to_gql)
    }

    /// The latest snapshot version.
    async fn snapshot_version(&self, ctx: &Context<'_>) -> Result<Option<i64>> {
        let (cp, _) = caller(ctx)?;
        Ok(cp.latest_snapshot().map(|s| s.version))
    }

    /// The audit log, newest first.
    #[graphql(complexity = "first.unwrap_or(50).max(1) as usize * child_complexity")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilterInput>,
        #[graphql(desc = "Page size, 1 to 500 (default 50).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> Result<AuditConnection> {
        let (cp, who) = caller(ctx)?;
        let f = filter.unwrap_or_default();
        let filter = AuditFilter {
            app: f.app,
            actor: f.actor,
            actor_kind: f.actor_kind.map(GqlActorKind::to_kind),
            action: f.action,
            since: f.since,
        };
        let page = cp
            .audit_log(&who, &filter, first_arg(first), after.as_deref())
            .await
            .map_err(to_gql)?;
        Ok(AuditConnection {
            page_info: page_info(&page),
            total_count: page.total as i64,
            nodes: page.items.into_iter().map(AuditEntryObject).collect(),
        })
    }

    /// The latest denied requests, newest first, of `app` or of every app the caller may read.
    #[graphql(complexity = "limit.max(1) as usize * child_complexity")]
    async fn recent_denials(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many (1 to 500).", default = 50)] limit: i32,
        #[graphql(desc = "Only this app.")] app: Option<String>,
    ) -> Result<Vec<super::traffic::TrafficRecordObject>> {
        let (cp, who) = caller(ctx)?;
        cp.recent_denials(&who, app.as_deref(), Some(i64::from(limit)))
            .await
            .map(super::traffic::records)
            .map_err(to_gql)
    }

    /// The latest requests on which a WAF rule fired (blocked or only detected), newest first,
    /// of `app` or of every app the caller may read.
    #[graphql(complexity = "limit.max(1) as usize * child_complexity")]
    async fn waf_hits(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many (1 to 500).", default = 50)] limit: i32,
        #[graphql(desc = "Only this app.")] app: Option<String>,
    ) -> Result<Vec<super::traffic::TrafficRecordObject>> {
        let (cp, who) = caller(ctx)?;
        cp.waf_hits(&who, app.as_deref(), Some(i64::from(limit)))
            .await
            .map(super::traffic::records)
            .map_err(to_gql)
    }

    /// Adoption of the paved road over the apps the caller may read: now, and day by day over
    /// the last `days` days (from the intent version history).
    #[graphql(complexity = "10 + days.max(1) as usize + child_complexity")]
    async fn adoption(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Days of trend (1 to 366).", default = 30)] days: i32,
    ) -> Result<super::traffic::AdoptionObject> {
        let (cp, who) = caller(ctx)?;
        cp.adoption(&who, Some(i64::from(days)))
            .await
            .map(Into::into)
            .map_err(to_gql)
    }

    /// An app's inbound (who connected to it) and outbound (what it connected to)
    /// dependencies from flow telemetry over a time range. Readers of everything may also
    /// ask for inventory apps and hosts (`host:<agent id>`).
    #[graphql(complexity = "20 + child_complexity")]
    async fn app_dependencies(
        &self,
        ctx: &Context<'_>,
        app: String,
        range: Option<super::flows::FlowRangeInput>,
    ) -> Result<super::flows::AppDependenciesObject> {
        let (cp, who) = caller(ctx)?;
        let range = super::flows::FlowRangeInput::range(range).map_err(to_gql)?;
        cp.app_dependencies(&who, &app, range)
            .await
            .map(Into::into)
            .map_err(to_gql)
    }

    /// The dependency graph over a time range, for a drawn map: nodes with stable ids, and
    /// edges from `source` (client) to `target` (server), the largest `first` by bytes.
    #[graphql(complexity = "50 + child_complexity")]
    async fn flow_graph(
        &self,
        ctx: &Context<'_>,
        range: Option<super::flows::FlowRangeInput>,
        #[graphql(desc = "Only edges of this app.")] app: Option<String>,
        #[graphql(desc = "Keep edges to or from addresses no app owns.", default = true)]
        include_addresses: bool,
        #[graphql(
            desc = "Draw addresses no app owns as two nodes, `internet` and `internal`.",
            default = false
        )]
        collapse_addresses: bool,
        #[graphql(desc = "Most edges (1 to 5000, default 500).")] first: Option<i32>,
    ) -> Result<super::flows::FlowGraphObject> {
        let (cp, who) = caller(ctx)?;
        let range = super::flows::FlowRangeInput::range(range).map_err(to_gql)?;
        cp.flow_graph(
            &who,
            range,
            app.as_deref(),
            include_addresses,
            collapse_addresses,
            first_arg(first),
        )
        .await
        .map(Into::into)
        .map_err(to_gql)
    }

    /// The busiest client-to-server pairs over a time range.
    #[graphql(complexity = "20 + child_complexity")]
    async fn top_talkers(
        &self,
        ctx: &Context<'_>,
        range: Option<super::flows::FlowRangeInput>,
        #[graphql(default)] by: super::flows::GqlTalkerOrder,
        #[graphql(desc = "How many (1 to 500, default 10).")] first: Option<i32>,
    ) -> Result<Vec<super::flows::FlowEdgeObject>> {
        let (cp, who) = caller(ctx)?;
        let range = super::flows::FlowRangeInput::range(range).map_err(to_gql)?;
        cp.top_talkers(&who, range, by.into(), first_arg(first))
            .await
            .map(|e| super::flows::edges(&e))
            .map_err(to_gql)
    }

    /// Client-to-server pairs never seen before `since`, newest first, with their traffic
    /// since then.
    #[graphql(complexity = "20 + child_complexity")]
    async fn new_flow_edges(
        &self,
        ctx: &Context<'_>,
        since: chrono::DateTime<chrono::Utc>,
        #[graphql(desc = "How many (1 to 500, default 100).")] first: Option<i32>,
    ) -> Result<Vec<super::flows::FlowEdgeObject>> {
        let (cp, who) = caller(ctx)?;
        cp.new_flow_edges(&who, since, first_arg(first))
            .await
            .map(|e| super::flows::edges(&e))
            .map_err(to_gql)
    }

    /// Addresses no app owned that were connected to over a time range, by bytes: egress
    /// to the internet, or unknown internal services.
    #[graphql(complexity = "20 + child_complexity")]
    async fn unowned_flows(
        &self,
        ctx: &Context<'_>,
        range: Option<super::flows::FlowRangeInput>,
        #[graphql(desc = "Only internet or only internal addresses.")] scope: Option<
            super::flows::GqlAddressScope,
        >,
        #[graphql(desc = "How many (1 to 500, default 100).")] first: Option<i32>,
    ) -> Result<Vec<super::flows::UnownedDestinationObject>> {
        let (cp, who) = caller(ctx)?;
        let range = super::flows::FlowRangeInput::range(range).map_err(to_gql)?;
        cp.unowned_destinations(&who, range, scope.map(Into::into), first_arg(first))
            .await
            .map(|d| d.iter().map(Into::into).collect())
            .map_err(to_gql)
    }

    /// Address leases: which app held which addresses when (gateway upstreams, the static
    /// inventory, agents' hosts), holding at `at` (default now) or all with `includeEnded`.
    #[graphql(complexity = "20 + child_complexity")]
    async fn address_leases(
        &self,
        ctx: &Context<'_>,
        app: Option<String>,
        source: Option<super::flows::GqlLeaseSource>,
        at: Option<chrono::DateTime<chrono::Utc>>,
        #[graphql(default = false)] include_ended: bool,
        #[graphql(desc = "How many (1 to 500, default 100).")] first: Option<i32>,
    ) -> Result<Vec<super::flows::AddressLeaseObject>> {
        let (cp, who) = caller(ctx)?;
        let filter = crate::services::flows::LeaseFilter {
            app,
            source: source.map(Into::into),
            at,
            include_ended,
        };
        cp.address_leases(&who, &filter, first_arg(first))
            .await
            .map(|l| l.into_iter().map(Into::into).collect())
            .map_err(to_gql)
    }

    /// API tokens: all for admins, otherwise the caller's own.
    async fn tokens(&self, ctx: &Context<'_>) -> Result<Vec<ApiTokenObject>> {
        let (cp, who) = caller(ctx)?;
        Ok(cp
            .list_tokens(&who)
            .await
            .map_err(to_gql)?
            .into_iter()
            .map(ApiTokenObject)
            .collect())
    }
}

/// Mutations.
pub struct MutationRoot;

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Validates an intent and shows what applying it would change. Changes nothing.
    async fn plan_intent(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The paved.yaml text.")] yaml: String,
        #[graphql(desc = "Its file name, for error positions (default paved.yaml).")]
        source: Option<String>,
    ) -> Result<PlanObject> {
        let (cp, who) = caller(ctx)?;
        let p = cp
            .plan_intent(&who, &yaml, source.as_deref().unwrap_or("paved.yaml"))
            .await
            .map_err(to_gql)?;
        Ok(PlanObject {
            app: p.app,
            new_app: p.new_app,
            changed: p.changed,
            current_version: p.current_version,
            content_hash: p.content_hash,
            changes: p.changes.into_iter().map(Into::into).collect(),
            text_diff: p.text_diff,
        })
    }

    /// Applies an intent: a new version unless the content equals the current version's.
    async fn apply_intent(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The paved.yaml text.")] yaml: String,
        #[graphql(desc = "Its file name, for error positions (default paved.yaml).")]
        source: Option<String>,
    ) -> Result<ApplyResult> {
        let (cp, who) = caller(ctx)?;
        let a = cp
            .apply_intent(&who, &yaml, source.as_deref().unwrap_or("paved.yaml"))
            .await
            .map_err(to_gql)?;
        Ok(ApplyResult {
            app: AppObject(a.app),
            version: IntentVersionObject(a.version),
            created: a.created,
            snapshot_version: a.snapshot_version,
        })
    }

    /// Makes an earlier version's content current again (as a new version).
    async fn rollback_app(
        &self,
        ctx: &Context<'_>,
        name: String,
        version: i32,
    ) -> Result<ApplyResult> {
        let (cp, who) = caller(ctx)?;
        let a = cp
            .rollback_app(&who, &name, version)
            .await
            .map_err(to_gql)?;
        Ok(ApplyResult {
            app: AppObject(a.app),
            version: IntentVersionObject(a.version),
            created: a.created,
            snapshot_version: a.snapshot_version,
        })
    }

    /// Deletes an app (its history and audit trail stay).
    async fn delete_app(&self, ctx: &Context<'_>, name: String) -> Result<DeleteResult> {
        let (cp, who) = caller(ctx)?;
        let d = cp.delete_app(&who, &name).await.map_err(to_gql)?;
        Ok(DeleteResult {
            app: d.app,
            snapshot_version: d.snapshot_version,
        })
    }

    /// Creates an API token; its secret is in the result and never shown again.
    async fn create_token(
        &self,
        ctx: &Context<'_>,
        input: CreateTokenInput,
    ) -> Result<CreatedTokenObject> {
        let (cp, who) = caller(ctx)?;
        let created = cp
            .create_token(
                &who,
                NewToken {
                    name: input.name,
                    scopes: input.scopes.into_iter().map(Into::into).collect(),
                    apps: input.apps,
                    teams: input.teams,
                    expires_at: input.expires_at,
                },
            )
            .await
            .map_err(to_gql)?;
        Ok(CreatedTokenObject {
            token: ApiTokenObject(created.token),
            secret: created.secret,
        })
    }

    /// Replaces the static address inventory (admins only): `text` (one `<prefix> <app>
    /// [port]` per line, `#` comments) or `entries`. Nothing changes when an entry is wrong;
    /// the error names every wrong line or entry.
    async fn upload_inventory(
        &self,
        ctx: &Context<'_>,
        text: Option<String>,
        entries: Option<Vec<super::flows::InventoryEntryInput>>,
    ) -> Result<super::flows::InventoryUploadResultObject> {
        use crate::services::flows::InventoryUpload;
        let (cp, who) = caller(ctx)?;
        let upload = match (text, entries) {
            (Some(text), None) => InventoryUpload::Text(text),
            (None, Some(entries)) => {
                InventoryUpload::Entries(entries.into_iter().map(Into::into).collect())
            }
            _ => {
                return Err(to_gql(Error::BadRequest(
                    "give either `text` or `entries`".into(),
                )));
            }
        };
        cp.upload_inventory(&who, &upload)
            .await
            .map(Into::into)
            .map_err(to_gql)
    }

    /// Revokes an API token.
    async fn revoke_token(&self, ctx: &Context<'_>, id: ID) -> Result<ApiTokenObject> {
        let (cp, who) = caller(ctx)?;
        let id = parse_id(&id)?;
        cp.revoke_token(&who, id)
            .await
            .map(ApiTokenObject)
            .map_err(to_gql)
    }
}

/// Subscriptions (graphql-transport-ws at `/graphql/ws`).
pub struct SubscriptionRoot;

async fn app_status(
    cp: &ControlPlane,
    who: &Principal,
    name: &str,
    event: &str,
) -> Option<AppStatusEvent> {
    let a = match cp.get_app(who, name).await {
        Ok(a) => Some(a),
        Err(Error::NotFound(_)) => None,
        Err(e) => {
            e.log_if_internal();
            return None;
        }
    };
    let snapshot_version = a.as_ref().and_then(|a| a.snapshot_version);
    let rollout = rollout(cp, snapshot_version).await.ok()?;
    Some(AppStatusEvent {
        app: name.to_string(),
        event: event.to_string(),
        current_version: a.as_ref().and_then(|a| a.current_version),
        deleted: a.is_none(),
        rollout,
    })
}

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The status of one app: first its current status, then one event per change of the app
    /// and per gateway report.
    async fn app_status(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> Result<impl Stream<Item = AppStatusEvent> + use<>> {
        let (cp, who) = caller(ctx)?;
        // Subscribe before reading the current state, so that no change falls in between.
        let events = BroadcastStream::new(cp.subscribe_events());
        cp.get_app(&who, &name).await.map_err(to_gql)?;
        let first = {
            let (cp, who, name) = (cp.clone(), who.clone(), name.clone());
            stream::once(async move { app_status(&cp, &who, &name, "current").await })
        };
        let updates = events.then(move |ev| {
            let (cp, who, name) = (cp.clone(), who.clone(), name.clone());
            async move {
                let event = match ev.ok()? {
                    Event::AppChanged { app, action, .. } if app == name => action,
                    Event::GatewayReported { .. } => "gateway.report".to_string(),
                    _ => return None,
                };
                app_status(&cp, &who, &name, &event).await
            }
        });
        Ok(first.chain(updates).filter_map(|e| async move { e }))
    }

    /// The gateways' roll-out: first the current state, then one event per published snapshot
    /// and per gateway report.
    async fn gateway_rollout(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = RolloutEvent> + use<>> {
        let (cp, who) = caller(ctx)?;
        crate::services::require_reader(&who).map_err(to_gql)?;
        let events = BroadcastStream::new(cp.subscribe_events());
        let make = |cp: ControlPlane, who: Principal, ev: Option<Event>| async move {
            let gateways = gateway_objects(&cp, &who).await.ok()?;
            let snapshot_version = cp.latest_snapshot().map(|s| s.version);
            let mut out = RolloutEvent {
                snapshot_version,
                event: "current".into(),
                gateway_id: None,
                reported_version: None,
                ok: None,
                error: None,
                gateways,
            };
            match ev {
                None => {}
                Some(Event::SnapshotPublished { .. }) => out.event = "snapshot.published".into(),
                Some(Event::GatewayReported {
                    gateway_id,
                    version,
                    ok,
                    error,
                }) => {
                    out.event = "gateway.report".into();
                    out.gateway_id = Some(gateway_id);
                    out.reported_version = Some(version);
                    out.ok = Some(ok);
                    out.error = error;
                }
                Some(Event::AppChanged { .. }) => return None,
            }
            Some(out)
        };
        let first = stream::once(make(cp.clone(), who.clone(), None));
        let updates = events.then(move |ev| {
            let (cp, who) = (cp.clone(), who.clone());
            async move {
                match ev.ok() {
                    Some(ev) => make(cp, who, Some(ev)).await,
                    None => None,
                }
            }
        });
        Ok(first.chain(updates).filter_map(|e| async move { e }))
    }
}
