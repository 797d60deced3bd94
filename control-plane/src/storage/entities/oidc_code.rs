//! `oidc_codes`: pending authorization codes (single use, short-lived; only digests stored).

use sea_orm::entity::prelude::*;

/// An authorization code.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oidc_codes")]
pub struct Model {
    /// SHA-256 (hex) of the code.
    #[sea_orm(primary_key, auto_increment = false)]
    pub code_hash: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the request (must be repeated at the token endpoint).
    pub redirect_uri: String,
    /// The user.
    pub user_id: i64,
    /// Granted scopes, space separated.
    pub scope: String,
    /// The request's nonce.
    pub nonce: Option<String>,
    /// PKCE `S256` challenge.
    pub code_challenge: String,
    /// When the user authenticated.
    pub auth_time: DateTimeUtc,
    /// Expiry.
    pub expires_at: DateTimeUtc,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
