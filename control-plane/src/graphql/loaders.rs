//! DataLoaders: batch the per-app lookups of list queries (N apps → one query).

use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use crate::services::ControlPlane;
use crate::storage::entities::intent_version;

/// Intent versions by row id (an app's current version).
pub struct IntentVersionLoader(pub ControlPlane);

impl Loader<i64> for IntentVersionLoader {
    type Value = intent_version::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        self.0
            .intent_versions_by_id(keys)
            .await
            .map_err(super::to_gql)
    }
}

/// Number of intent versions by app id.
pub struct VersionCountLoader(pub ControlPlane);

impl Loader<i64> for VersionCountLoader {
    type Value = i64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        self.0.version_counts(keys).await.map_err(super::to_gql)
    }
}
