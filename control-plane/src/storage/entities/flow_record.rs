//! `flow_records`: the raw flows, one row per aggregate of an agent's batch, with both ends
//! attributed at the flow's time. Kept for the retention window (7 days by default).

use sea_orm::entity::prelude::*;

/// One aggregate: (direction, local address, remote address, service port, process) over an
/// agent's interval.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_records")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The reporting agent.
    pub agent_id: String,
    /// Its host name.
    pub host: String,
    /// The batch's agent epoch (unix ms).
    pub epoch_ms: i64,
    /// The batch's sequence number.
    pub sequence: i64,
    /// First sighting in the interval (unix ms): the time the ends were attributed at.
    pub at_ms: i64,
    /// Last sighting in the interval (unix ms).
    pub last_seen_ms: i64,
    /// `outbound` (this host connected), `inbound` (it accepted) or `unknown`.
    pub direction: String,
    /// This host's address.
    pub local_addr: String,
    /// This host's port when it is the server's (inbound), else unknown (ephemeral).
    pub local_port: Option<i32>,
    /// The peer's address.
    pub remote_addr: String,
    /// The peer's port when it is the server's (outbound, unknown), else unknown.
    pub remote_port: Option<i32>,
    /// The server's port.
    pub service_port: i32,
    /// The credited process id.
    pub pid: i64,
    /// Its name (`comm`).
    pub comm: String,
    /// Its executable, when the agent could read it.
    pub exe: Option<String>,
    /// Cgroup v2 id of the credited task (0: unknown).
    pub cgroup_id: i64,
    /// The container id, when the cgroup is a container's.
    pub container_id: Option<String>,
    /// The Kubernetes pod UID, when the cgroup path names one.
    pub pod_uid: Option<String>,
    /// Connections first reported in the interval.
    pub connections: i64,
    /// Connections closed in the interval.
    pub closed: i64,
    /// Payload bytes this host sent.
    pub bytes_sent: i64,
    /// Payload bytes this host received.
    pub bytes_received: i64,
    /// Segments sent.
    pub segments_sent: i64,
    /// Segments received.
    pub segments_received: i64,
    /// Segments retransmitted.
    pub retransmits: i64,
    /// The RTT histogram (`{"buckets": [[bucket, count], ...]}`).
    #[sea_orm(column_type = "JsonBinary")]
    pub rtt: Json,
    /// Median RTT in microseconds.
    pub rtt_p50_us: Option<i64>,
    /// The app on this host's side at the flow's time.
    pub local_app: Option<String>,
    /// The app on the peer's side at the flow's time; `None`: no app owned the address.
    pub remote_app: Option<String>,
    /// `internet` (a global address) or `internal` (private, loopback, link-local, shared).
    pub remote_scope: String,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
