//! `certificates`: the internal CA and the certificates issued for app domains.

use sea_orm::entity::prelude::*;

/// A certificate with its key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "certificates")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `ca`, `leaf`, or `acme-account` (an ACME account's credentials, in `key_pem`).
    pub kind: String,
    /// The domain (for `leaf`), the CA's name, or the ACME directory URL (`acme-account`).
    pub domain: String,
    /// Which issuer made it (`internal-ca`, ...).
    pub issuer: String,
    /// PEM of the certificate chain.
    pub cert_pem: String,
    /// PEM of the private key.
    pub key_pem: String,
    /// Start of validity.
    pub not_before: DateTimeUtc,
    /// End of validity.
    pub not_after: DateTimeUtc,
    /// Created.
    pub created_at: DateTimeUtc,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
