//! `gateways`: each gateway that polled, with the version it serves and its last ACK or NACK.

use sea_orm::entity::prelude::*;

/// A gateway.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "gateways")]
pub struct Model {
    /// The id the gateway chose (`/v1/gateways/{id}/...`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// First request.
    pub first_seen: DateTimeUtc,
    /// Last request.
    pub last_seen: DateTimeUtc,
    /// Last version sent to it.
    pub version_delivered: Option<i64>,
    /// Last version it ACKed: the one it serves.
    pub version_served: Option<i64>,
    /// Last version it reported on (ACK or NACK).
    pub last_reported_version: Option<i64>,
    /// `pending` (never reported), `ack` or `nack`.
    pub state: String,
    /// The error of the last NACK.
    pub error: Option<String>,
    /// When it last reported.
    pub reported_at: Option<DateTimeUtc>,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
