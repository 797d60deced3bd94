//! `snapshots`: every compiled gateway configuration, by monotonically increasing version.

use sea_orm::entity::prelude::*;

/// A compiled snapshot.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "snapshots")]
pub struct Model {
    /// The snapshot's version (1, 2, ...), also inside the JSON.
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i64,
    /// The snapshot as JSON text, exactly as served to gateways (it holds private keys of the
    /// managed certificates: never expose it outside the gateway endpoint).
    pub snapshot: String,
    /// What caused it (`app.apply hello`, `startup`, `certificate renewal`, ...).
    pub reason: String,
    /// When it was compiled.
    pub created_at: DateTimeUtc,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
