//! `signing_keys`: the OpenID provider's ES256 keys, so tokens survive restarts.

use sea_orm::entity::prelude::*;

/// A signing key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    /// Key id (`kid`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// `ES256`.
    pub algorithm: String,
    /// PKCS#8 PEM of the private key.
    pub private_key_pem: String,
    /// Whether new tokens are signed with it.
    pub active: bool,
    /// Created.
    pub created_at: DateTimeUtc,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
