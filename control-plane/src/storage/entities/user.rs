//! `users`: local users of the built-in OpenID provider and their roles.

use sea_orm::entity::prelude::*;

/// A local user.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// Row id, also the `sub` claim.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Login name (unique).
    #[sea_orm(unique)]
    pub username: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    /// `app-owner`, `security-reviewer` or `admin`.
    pub role: String,
    /// Teams (JSON array of strings).
    #[sea_orm(column_type = "JsonBinary")]
    pub teams: Json,
    /// Groups, sent in the `groups` claim (JSON array of strings).
    #[sea_orm(column_type = "JsonBinary")]
    pub groups: Json,
    /// A disabled user cannot sign in.
    pub disabled: bool,
    /// Created.
    pub created_at: DateTimeUtc,
    /// Last changed.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The teams as strings.
    pub fn team_list(&self) -> Vec<String> {
        super::super::json_strings(&self.teams)
    }

    /// The groups as strings.
    pub fn group_list(&self) -> Vec<String> {
        super::super::json_strings(&self.groups)
    }
}
