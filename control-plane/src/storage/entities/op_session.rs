//! `op_sessions`: sign-in sessions of the built-in OpenID provider (single sign-on across apps).

use sea_orm::entity::prelude::*;

/// A sign-in session.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "op_sessions")]
pub struct Model {
    /// SHA-256 (hex) of the session cookie's value.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id_hash: String,
    /// The user.
    pub user_id: i64,
    /// When the user authenticated.
    pub auth_time: DateTimeUtc,
    /// Expiry.
    pub expires_at: DateTimeUtc,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
