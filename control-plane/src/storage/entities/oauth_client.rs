//! `oauth_clients`: relying parties of the built-in OpenID provider.

use sea_orm::entity::prelude::*;

/// A registered client.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_clients")]
pub struct Model {
    /// The client id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub client_id: String,
    /// A human name.
    pub name: String,
    /// SHA-256 (hex) of the client secret; `None` for public clients (PKCE only).
    pub secret_hash: Option<String>,
    /// Registered redirect URIs (JSON array), compared exactly (a host `*.example.com`
    /// matches one label).
    #[sea_orm(column_type = "JsonBinary")]
    pub redirect_uris: Json,
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
    /// The redirect URIs as strings.
    pub fn redirect_uri_list(&self) -> Vec<String> {
        super::super::json_strings(&self.redirect_uris)
    }
}
