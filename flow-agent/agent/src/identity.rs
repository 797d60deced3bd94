//! Who the agent is: its id, its host, and when this process started.

use std::time::{SystemTime, UNIX_EPOCH};

use paved_flow_proto::AgentId;

/// The identity stamped on every batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentIdentity {
    /// The agent's id (a subject token for NATS: `paved.flows.<id>`).
    pub agent_id: AgentId,
    /// The host name.
    pub host: String,
    /// When this agent process started (unix ms); with the sequence number it makes
    /// batch ids unique across restarts.
    pub epoch_ms: u64,
}

impl AgentIdentity {
    /// The identity of this host: `agent_id` if given, else one derived from the host
    /// name; the epoch is now.
    pub fn detect(agent_id: Option<AgentId>) -> Self {
        let host = hostname();
        Self {
            agent_id: agent_id.unwrap_or_else(|| AgentId::sanitized(&host)),
            host,
            epoch_ms: unix_ms_now(),
        }
    }
}

/// The kernel's host name (`/proc/sys/kernel/hostname`), `localhost` if unreadable.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Milliseconds since the Unix epoch now (0 if the clock is before 1970).
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
