//! `audit_log`: one row per mutation, append-only (database triggers refuse UPDATE and DELETE).

use sea_orm::entity::prelude::*;

/// An audit record.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    /// Row id, increasing with time.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// When.
    pub at: DateTimeUtc,
    /// Who (user name, `token:<name>` or `system`).
    pub actor: String,
    /// `person` or `tool`.
    pub actor_kind: String,
    /// What, such as `app.apply`, `app.rollback`, `app.delete`, `token.create`.
    pub action: String,
    /// Kind of the target: `app`, `token`, `user`, `client`.
    pub target_kind: String,
    /// The target's name or id.
    pub target: String,
    /// The app concerned, when there is one (for filtering).
    pub app: Option<String>,
    /// State before (JSON), when there was one.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub before: Option<Json>,
    /// State after (JSON), when there is one.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub after: Option<Json>,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
