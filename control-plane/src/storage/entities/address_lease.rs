//! `address_leases`: which app held an address prefix (or one port of it) when, from the
//! gateway's upstreams, the static inventory, and the agents' own hosts.

use sea_orm::entity::prelude::*;

/// One app's hold on a prefix for a time.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "address_leases")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `gateway_upstream`, `resolved_upstream`, `static_inventory`, `agent_host` or
    /// `kubernetes_pod`.
    pub source: String,
    /// The prefix, canonical (`10.0.0.0/24`, `10.0.0.9/32`, `2001:db8::/32`).
    pub prefix: String,
    /// Only this port of it (a service endpoint), or every port.
    pub port: Option<i32>,
    /// The app (or `host:<agent id>` for an agent's host).
    pub app: String,
    /// Start of validity (unix ms, inclusive).
    pub valid_from_ms: i64,
    /// End of validity (unix ms, exclusive); `None` while it holds.
    pub valid_to_ms: Option<i64>,
    /// The leases' revision when the row last changed (one more than the highest before):
    /// collectors reload their tables when the highest revision moves.
    pub revision: i64,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
