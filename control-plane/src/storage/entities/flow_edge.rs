//! `flow_edges`: client-to-server sums per hour (the collector's `EdgeStats`), where an end is
//! an app (`app`) or an address no app owned (`address`).

use sea_orm::entity::prelude::*;

/// One (hour, client, server) edge.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_edges")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Start of the hour (unix ms).
    pub hour_ms: i64,
    /// `app` or `address`.
    pub client_kind: String,
    /// The client's app id or address.
    pub client: String,
    /// `app` or `address`.
    pub server_kind: String,
    /// The server's app id or address.
    pub server: String,
    /// Connections first reported in the hour.
    pub connections: i64,
    /// Payload bytes from client to server.
    pub bytes_to_server: i64,
    /// Payload bytes from server to client.
    pub bytes_to_client: i64,
    /// Retransmitted segments.
    pub retransmits: i64,
    /// Aggregates summed in.
    pub flows: i64,
    /// The merged RTT histogram (`{"buckets": [[bucket, count], ...]}`).
    #[sea_orm(column_type = "JsonBinary")]
    pub rtt: Json,
    /// Median RTT of the hour, in microseconds.
    pub rtt_p50_us: Option<i64>,
    /// 99th percentile RTT of the hour, in microseconds.
    pub rtt_p99_us: Option<i64>,
    /// Server ports seen (JSON array of numbers, at most 64).
    #[sea_orm(column_type = "JsonBinary")]
    pub service_ports: Json,
    /// Earliest sighting (unix ms).
    pub first_seen_ms: i64,
    /// Latest sighting (unix ms).
    pub last_seen_ms: i64,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
