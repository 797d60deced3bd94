//! `external_identities`: the `users` row of each person who signs in through an external
//! OpenID provider, keyed by the provider's issuer and the person's subject there.

use sea_orm::entity::prelude::*;

/// A person at an external provider.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "external_identities")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The provider's issuer (unique with `subject`).
    pub issuer: String,
    /// The `sub` claim at that provider.
    pub subject: String,
    /// The `users` row (unique).
    pub user_id: i64,
    /// First sign-in.
    pub created_at: DateTimeUtc,
    /// Last sign-in.
    pub last_sign_in_at: DateTimeUtc,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
