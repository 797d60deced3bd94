//! `api_tokens`: tools' credentials. Only a SHA-256 digest of each secret is stored; the public
//! prefix finds the row.

use sea_orm::entity::prelude::*;

/// An API token.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// A name chosen by its creator (recorded in the audit log as `token:<name>`).
    pub name: String,
    /// Public lookup prefix, part of the token string.
    #[sea_orm(unique)]
    pub prefix: String,
    /// SHA-256 (hex) of the whole token string.
    pub secret_hash: String,
    /// Scopes (JSON array of `apps:read`, `apps:write`, `admin`, `gateway`).
    #[sea_orm(column_type = "JsonBinary")]
    pub scopes: Json,
    /// Apps the token is limited to (JSON array).
    #[sea_orm(column_type = "JsonBinary")]
    pub apps: Json,
    /// Teams the token is limited to (JSON array).
    #[sea_orm(column_type = "JsonBinary")]
    pub teams: Json,
    /// Who created it.
    pub created_by: String,
    /// `person` or `tool`.
    pub created_by_kind: String,
    /// Created.
    pub created_at: DateTimeUtc,
    /// Expiry, if any.
    pub expires_at: Option<DateTimeUtc>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<DateTimeUtc>,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The scopes (unknown stored values are skipped).
    pub fn scope_list(&self) -> Vec<crate::Scope> {
        super::super::json_strings(&self.scopes)
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    /// The apps it is limited to.
    pub fn app_list(&self) -> Vec<String> {
        super::super::json_strings(&self.apps)
    }

    /// The teams it is limited to.
    pub fn team_list(&self) -> Vec<String> {
        super::super::json_strings(&self.teams)
    }
}
