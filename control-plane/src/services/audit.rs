//! Queries of the audit log (rows are written by each mutation, see [`super::audit`]).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::apps::{may_read_stored, require_reader};
use super::{ControlPlane, Page, page_size};
use crate::Result;
use crate::auth::Principal;
use crate::storage::entities::{app, audit_log};

/// Filters of [`ControlPlane::audit_log`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Rows about this app.
    pub app: Option<String>,
    /// Rows by this actor.
    pub actor: Option<String>,
    /// Rows by people (`person`) or tools (`tool`).
    pub actor_kind: Option<crate::ActorKind>,
    /// Rows of this action (`app.apply`, `token.create`, ...).
    pub action: Option<String>,
    /// Rows at or after this time.
    pub since: Option<DateTime<Utc>>,
}

impl ControlPlane {
    /// Audit rows, newest first, `first` at a time, older than the cursor `after` (a row id).
    /// Admins and security reviewers see every row; others see the rows of the apps they may
    /// read.
    pub async fn audit_log(
        &self,
        who: &Principal,
        filter: &AuditFilter,
        first: Option<i64>,
        after: Option<&str>,
    ) -> Result<Page<audit_log::Model>> {
        require_reader(who)?;
        let first = page_size(first)?;
        let mut q = audit_log::Entity::find().order_by_desc(audit_log::Column::Id);
        if let Some(a) = &filter.app {
            q = q.filter(audit_log::Column::App.eq(a.as_str()));
        }
        if let Some(a) = &filter.actor {
            q = q.filter(audit_log::Column::Actor.eq(a.as_str()));
        }
        if let Some(k) = filter.actor_kind {
            q = q.filter(audit_log::Column::ActorKind.eq(k.as_str()));
        }
        if let Some(a) = &filter.action {
            q = q.filter(audit_log::Column::Action.eq(a.as_str()));
        }
        if let Some(t) = filter.since {
            q = q.filter(audit_log::Column::At.gte(t));
        }
        if !who.can_read_all() {
            let visible: Vec<String> = app::Entity::find()
                .all(self.store().db())
                .await?
                .into_iter()
                .filter(|a| may_read_stored(who, a))
                .map(|a| a.name)
                .collect();
            q = q.filter(audit_log::Column::App.is_in(visible));
        }
        let total = sea_orm::PaginatorTrait::count(q.clone(), self.store().db()).await? as usize;
        if let Some(cursor) = after {
            let id: i64 = cursor
                .parse()
                .map_err(|_| crate::Error::BadRequest(format!("invalid cursor `{cursor}`")))?;
            q = q.filter(audit_log::Column::Id.lt(id));
        }
        let mut rows = q.limit(first as u64 + 1).all(self.store().db()).await?;
        let has_next = rows.len() > first;
        rows.truncate(first);
        Ok(Page {
            end_cursor: rows.last().map(|r| r.id.to_string()),
            items: rows,
            total,
            has_next,
        })
    }
}
