//! `flow_batches`: one row per flow batch stored, so a batch delivered twice (a lost
//! acknowledgement) is stored once. Pruned with the raw flows.

use sea_orm::entity::prelude::*;

/// A stored flow batch.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_batches")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The reporting agent.
    pub agent_id: String,
    /// When that agent process started (unix ms); with `sequence`, the batch id.
    pub epoch_ms: i64,
    /// Position in the agent process's sequence of batches.
    pub sequence: i64,
    /// The agent's host name.
    pub host: String,
    /// Start of the batch's interval (unix ms).
    pub interval_start_ms: i64,
    /// End of the batch's interval (unix ms, exclusive).
    pub interval_end_ms: i64,
    /// Fraction of connections the agent kept (sums are not scaled).
    pub sampling_rate: f64,
    /// Aggregates in the batch.
    pub flows: i32,
    /// The agent's counters for the interval (records, drops, filtered, sampled out).
    #[sea_orm(column_type = "JsonBinary")]
    pub stats: Json,
    /// When the control plane stored it (unix ms).
    pub received_ms: i64,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
