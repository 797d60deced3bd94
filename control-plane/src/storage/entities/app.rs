//! `apps`: one row per app ever applied; deleted apps keep their row and history.

use sea_orm::entity::prelude::*;

/// An app.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "apps")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The app's name (unique).
    #[sea_orm(unique)]
    pub name: String,
    /// Owning team of the current intent.
    pub team: Option<String>,
    /// Owners of the current intent (JSON array of strings).
    #[sea_orm(column_type = "JsonBinary")]
    pub owners: Json,
    /// Domains of the current intent (JSON array of strings).
    #[sea_orm(column_type = "JsonBinary")]
    pub domains: Json,
    /// Number of the current intent version; `None` once deleted.
    pub current_version: Option<i32>,
    /// Row id of the current intent version.
    pub current_version_id: Option<i64>,
    /// The snapshot that first carried the app's last change.
    pub snapshot_version: Option<i64>,
    /// When the app was first applied.
    pub created_at: DateTimeUtc,
    /// When the app last changed.
    pub updated_at: DateTimeUtc,
    /// When the app was deleted.
    pub deleted_at: Option<DateTimeUtc>,
}

/// No relations are declared: queries join by id explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The owners as strings.
    pub fn owner_list(&self) -> Vec<String> {
        super::super::json_strings(&self.owners)
    }

    /// The domains as strings.
    pub fn domain_list(&self) -> Vec<String> {
        super::super::json_strings(&self.domains)
    }
}
