//! `intent_versions`: every accepted version of every app's intent, never changed.

use sea_orm::entity::prelude::*;

/// One version of an app's intent.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "intent_versions")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The app (`apps.id`).
    pub app_id: i64,
    /// Version number within the app, from 1.
    pub version: i32,
    /// The intent as written (YAML).
    pub text: String,
    /// The intent as parsed (JSON, defaults filled).
    #[sea_orm(column_type = "JsonBinary")]
    pub intent: Json,
    /// SHA-256 (hex) of the parsed intent's canonical JSON: equal hashes, equal intents.
    pub content_hash: String,
    /// Who applied it.
    pub author: String,
    /// `person` or `tool`.
    pub actor_kind: String,
    /// `apply` or `rollback`.
    pub action: String,
    /// For a rollback, the version whose content this one restores.
    pub rolled_back_from: Option<i32>,
    /// When it was applied.
    pub created_at: DateTimeUtc,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
