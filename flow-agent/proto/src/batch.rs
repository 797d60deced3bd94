//! The batch an agent sends per interval, and its validation.

use std::{fmt, net::IpAddr};

use serde::{Deserialize, Serialize};

use crate::{
    RttHistogram,
    error::{AgentIdError, BatchError},
};

/// The format version this build writes.
pub const SCHEMA_VERSION: u32 = 1;
/// The format versions this build reads.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];
/// Largest encoded batch accepted (a full interval of a busy host is far below this).
pub const MAX_BATCH_BYTES: usize = 16 << 20;
/// Most aggregates in one batch.
pub const MAX_FLOWS_PER_BATCH: usize = 200_000;
/// Longest interval a batch may cover: one hour.
pub const MAX_INTERVAL_MS: u64 = 3_600_000;
/// Longest agent id, in bytes.
pub const MAX_AGENT_ID_LEN: usize = 64;
/// Longest text field (process name, executable path, container id).
const MAX_TEXT_LEN: usize = 4096;
/// How far outside its interval an aggregate's first/last sighting may lie: records are
/// assigned to the interval open when they are read, a little after the kernel wrote
/// them, and wall clocks step.
const SEEN_SLACK_MS: u64 = 60_000;

/// A validated agent identifier: 1 to 64 of `[A-Za-z0-9_-]`, so it is safe as a NATS
/// subject token and a file name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgentId(String);

impl AgentId {
    /// Checks `id` against the rules above.
    pub fn new(id: impl Into<String>) -> Result<Self, AgentIdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(AgentIdError::Empty);
        }
        if id.len() > MAX_AGENT_ID_LEN {
            return Err(AgentIdError::TooLong {
                len: id.len(),
                max: MAX_AGENT_ID_LEN,
            });
        }
        if let Some(found) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(AgentIdError::BadCharacter { found });
        }
        Ok(Self(id))
    }

    /// A valid id derived from any text (a host name, say): other characters become
    /// `-`, and the result is cut to the maximum length; empty text gives `agent`.
    pub fn sanitized(text: &str) -> Self {
        let mut id: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(MAX_AGENT_ID_LEN)
            .collect();
        if id.is_empty() {
            id.push_str("agent");
        }
        Self(id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AgentId {
    type Error = AgentIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<AgentId> for String {
    fn from(id: AgentId) -> Self {
        id.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What identifies a batch: stable across retries and restarts, so a store can ignore a
/// batch it already has and JetStream can drop a republished one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId {
    /// The agent that built it.
    pub agent_id: AgentId,
    /// When that agent process started (unix ms): sequences restart with the process.
    pub epoch_ms: u64,
    /// Position in the agent process's sequence of batches, from 0.
    pub sequence: u64,
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.agent_id, self.epoch_ms, self.sequence)
    }
}

/// Which side opened the connection, as seen from the reporting host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// This host connected out (it is the client).
    Outbound,
    /// This host accepted (it is the server).
    Inbound,
    /// The open was not seen (the connection predates the agent).
    Unknown,
}

/// The process credited with the flows of an aggregate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Process id (the kernel's tgid).
    pub pid: u32,
    /// Thread name (`comm`) at the open, lossily decoded.
    pub comm: String,
    /// Executable path, when the agent could read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
}

/// The container a cgroup belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// The container runtime's id (64 hex digits for Docker, containerd, CRI-O, Podman).
    pub id: String,
    /// The Kubernetes pod UID, when the cgroup path names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
}

/// One (local address, remote address, service port, direction, process) over one
/// interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowAggregate {
    /// Who opened the connections.
    pub direction: Direction,
    /// This host's address (IPv4 for v4-mapped addresses).
    pub local_addr: IpAddr,
    /// The peer's address.
    pub remote_addr: IpAddr,
    /// The server's port: the remote port of an outbound flow, the local (listening)
    /// port of an inbound one, and the remote port when the direction is unknown. The
    /// client's ephemeral port is not kept: it would make every connection its own
    /// aggregate.
    pub service_port: u16,
    /// The credited process.
    pub process: ProcessInfo,
    /// Cgroup v2 id of the credited task (0 if unknown).
    pub cgroup_id: u64,
    /// The container of that cgroup; absent when it is not a container's (or unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    /// Connections reported for the first time in this interval (opened in it, or
    /// long-lived ones on their first interim report, or unknown ones at close).
    pub connections: u64,
    /// Connections that closed in this interval.
    pub closed: u64,
    /// Payload bytes this host sent and the peer acknowledged, in this interval.
    pub bytes_sent: u64,
    /// Payload bytes this host received, in this interval.
    pub bytes_received: u64,
    /// TCP segments sent in this interval.
    pub segments_sent: u64,
    /// TCP segments received in this interval.
    pub segments_received: u64,
    /// Segments retransmitted in this interval.
    pub retransmits: u64,
    /// Smoothed RTT of each report (interim or close), in microseconds.
    pub rtt: RttHistogram,
    /// When the first report of the interval was written (unix ms).
    pub first_seen_ms: u64,
    /// When the last report of the interval was written (unix ms).
    pub last_seen_ms: u64,
}

/// The agent's counters for the interval, so a collector sees what the batch is missing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchStats {
    /// Records read from the kernel.
    pub records: u64,
    /// Of those, interim records.
    pub interim_records: u64,
    /// Records the kernel lost because the ring buffer was full.
    pub dropped_in_kernel: u64,
    /// Records left out by the port filters.
    pub filtered: u64,
    /// Records left out by sampling.
    pub sampled_out: u64,
    /// Records left out because the interval already had the most aggregates the agent
    /// keeps (a bound against address scans).
    #[serde(default)]
    pub overflowed: u64,
}

/// Everything an agent reports for one interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowBatch {
    /// Format version ([`SCHEMA_VERSION`] when written by this build).
    pub version: u32,
    /// The reporting agent.
    pub agent_id: AgentId,
    /// The host name of the reporting agent.
    pub host: String,
    /// When the agent process started (unix ms).
    pub epoch_ms: u64,
    /// Sequence number within the agent process, from 0.
    pub sequence: u64,
    /// Start of the interval (unix ms, inclusive).
    pub interval_start_ms: u64,
    /// End of the interval (unix ms, exclusive).
    pub interval_end_ms: u64,
    /// Fraction of connections kept by sampling (1.0: all). Sums are not scaled.
    pub sampling_rate: f64,
    /// The agent's counters for the interval.
    pub stats: BatchStats,
    /// The aggregates.
    pub flows: Vec<FlowAggregate>,
}

impl FlowBatch {
    /// The batch's identity.
    pub fn id(&self) -> BatchId {
        BatchId {
            agent_id: self.agent_id.clone(),
            epoch_ms: self.epoch_ms,
            sequence: self.sequence,
        }
    }

    /// Checks every rule of the format; the error names the first field that breaks one.
    pub fn validate(&self) -> Result<(), BatchError> {
        if !SUPPORTED_VERSIONS.contains(&self.version) {
            return Err(BatchError::UnsupportedVersion {
                found: self.version,
                supported: SUPPORTED_VERSIONS,
            });
        }
        check_text("host", &self.host, false)?;
        if self.interval_end_ms <= self.interval_start_ms {
            return Err(BatchError::invalid(
                "interval_end_ms",
                format!(
                    "{} is not after interval_start_ms {}",
                    self.interval_end_ms, self.interval_start_ms
                ),
            ));
        }
        if self.interval_end_ms - self.interval_start_ms > MAX_INTERVAL_MS {
            return Err(BatchError::invalid(
                "interval_end_ms",
                format!("the interval is longer than {MAX_INTERVAL_MS} ms"),
            ));
        }
        if !(self.sampling_rate > 0.0 && self.sampling_rate <= 1.0) {
            return Err(BatchError::invalid(
                "sampling_rate",
                format!("{} is not in (0, 1]", self.sampling_rate),
            ));
        }
        if self.flows.len() > MAX_FLOWS_PER_BATCH {
            return Err(BatchError::invalid(
                "flows",
                format!(
                    "{} aggregates, more than {MAX_FLOWS_PER_BATCH}",
                    self.flows.len()
                ),
            ));
        }
        let earliest = self.interval_start_ms.saturating_sub(SEEN_SLACK_MS);
        let latest = self.interval_end_ms.saturating_add(SEEN_SLACK_MS);
        for (i, flow) in self.flows.iter().enumerate() {
            let at = |field: &str| format!("flows[{i}].{field}");
            check_text(&at("process.comm"), &flow.process.comm, true)?;
            if let Some(exe) = &flow.process.exe {
                check_text(&at("process.exe"), exe, false)?;
            }
            if let Some(container) = &flow.container {
                check_text(&at("container.id"), &container.id, false)?;
                if let Some(pod) = &container.pod_uid {
                    check_text(&at("container.pod_uid"), pod, false)?;
                }
            }
            if flow.first_seen_ms > flow.last_seen_ms {
                return Err(BatchError::invalid(
                    at("first_seen_ms"),
                    format!(
                        "{} is after last_seen_ms {}",
                        flow.first_seen_ms, flow.last_seen_ms
                    ),
                ));
            }
            if flow.first_seen_ms < earliest || flow.last_seen_ms > latest {
                return Err(BatchError::invalid(
                    at("first_seen_ms"),
                    format!(
                        "[{}, {}] lies outside the batch interval [{}, {})",
                        flow.first_seen_ms,
                        flow.last_seen_ms,
                        self.interval_start_ms,
                        self.interval_end_ms
                    ),
                ));
            }
            flow.rtt
                .check()
                .map_err(|problem| BatchError::invalid(at("rtt"), problem))?;
        }
        Ok(())
    }
}

fn check_text(path: &str, text: &str, may_be_empty: bool) -> Result<(), BatchError> {
    if !may_be_empty && text.is_empty() {
        return Err(BatchError::invalid(path, "is empty"));
    }
    if text.len() > MAX_TEXT_LEN {
        return Err(BatchError::invalid(
            path,
            format!("{} bytes long, more than {MAX_TEXT_LEN}", text.len()),
        ));
    }
    Ok(())
}

/// Encodes a batch as JSON.
pub fn encode_batch(batch: &FlowBatch) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(batch)
}

/// Decodes and validates a batch: the only way bytes from the network or the disk
/// should become a [`FlowBatch`].
pub fn decode_batch(bytes: &[u8]) -> Result<FlowBatch, BatchError> {
    if bytes.len() > MAX_BATCH_BYTES {
        return Err(BatchError::TooLarge {
            size: bytes.len(),
            max: MAX_BATCH_BYTES,
        });
    }
    // Read the version first, so a batch of a newer format is reported as such rather
    // than as a shape error about whatever field changed.
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let versioned: Versioned = serde_json::from_slice(bytes).map_err(BatchError::Json)?;
    if !SUPPORTED_VERSIONS.contains(&versioned.version) {
        return Err(BatchError::UnsupportedVersion {
            found: versioned.version,
            supported: SUPPORTED_VERSIONS,
        });
    }
    let batch: FlowBatch = serde_json::from_slice(bytes).map_err(BatchError::Json)?;
    batch.validate()?;
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn sample() -> FlowBatch {
        let mut rtt = RttHistogram::default();
        rtt.record(40);
        FlowBatch {
            version: SCHEMA_VERSION,
            agent_id: AgentId::new("node-1").expect("valid id"),
            host: "node-1.example".into(),
            epoch_ms: 1_700_000_000_000,
            sequence: 7,
            interval_start_ms: 1_700_000_010_000,
            interval_end_ms: 1_700_000_020_000,
            sampling_rate: 1.0,
            stats: BatchStats::default(),
            flows: vec![FlowAggregate {
                direction: Direction::Outbound,
                local_addr: Ipv4Addr::new(10, 0, 0, 1).into(),
                remote_addr: Ipv4Addr::new(10, 0, 0, 2).into(),
                service_port: 443,
                process: ProcessInfo {
                    pid: 42,
                    comm: "curl".into(),
                    exe: None,
                },
                cgroup_id: 1,
                container: None,
                connections: 1,
                closed: 1,
                bytes_sent: 100,
                bytes_received: 2_000,
                segments_sent: 3,
                segments_received: 4,
                retransmits: 0,
                rtt,
                first_seen_ms: 1_700_000_011_000,
                last_seen_ms: 1_700_000_011_000,
            }],
        }
    }

    #[test]
    fn a_batch_survives_the_json_round_trip() {
        let batch = sample();
        let bytes = encode_batch(&batch).expect("encodes");
        assert_eq!(decode_batch(&bytes).expect("decodes"), batch);
        assert_eq!(batch.id().to_string(), "node-1.1700000000000.7");
    }

    #[test]
    fn garbage_and_wrong_shapes_are_json_errors() {
        assert!(matches!(
            decode_batch(b"not json"),
            Err(BatchError::Json(_))
        ));
        assert!(matches!(
            decode_batch(b"{\"version\":1}"),
            Err(BatchError::Json(_))
        ));
        let err = decode_batch(b"{\"version\":1,\"agent_id\":\"a.b\"}").expect_err("bad id");
        assert!(err.to_string().contains("agent id"), "{err}");
    }

    #[test]
    fn a_newer_version_is_named_as_such() {
        let err = decode_batch(b"{\"version\":2,\"whatever\":true}").expect_err("v2");
        assert!(
            matches!(err, BatchError::UnsupportedVersion { found: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn rule_breaking_fields_are_named_in_the_error() {
        let mut batch = sample();
        batch.interval_end_ms = batch.interval_start_ms;
        let err =
            decode_batch(&encode_batch(&batch).expect("encodes")).expect_err("empty interval");
        assert!(err.to_string().contains("interval_end_ms"), "{err}");

        let mut batch = sample();
        batch.flows[0].first_seen_ms = 1;
        let err = batch.validate().expect_err("outside interval");
        assert!(err.to_string().contains("flows[0].first_seen_ms"), "{err}");

        let mut batch = sample();
        batch.sampling_rate = 0.0;
        assert!(batch.validate().is_err());

        let mut batch = sample();
        batch.flows[0].rtt.buckets.push((1, 1));
        let err = batch.validate().expect_err("unsorted");
        assert!(err.to_string().contains("flows[0].rtt"), "{err}");
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let big = vec![b' '; MAX_BATCH_BYTES + 1];
        assert!(matches!(
            decode_batch(&big),
            Err(BatchError::TooLarge { .. })
        ));
    }

    #[test]
    fn agent_ids_are_subject_and_file_name_safe() {
        assert!(AgentId::new("node_1-a").is_ok());
        assert_eq!(AgentId::new(""), Err(AgentIdError::Empty));
        assert_eq!(
            AgentId::new("a.b"),
            Err(AgentIdError::BadCharacter { found: '.' })
        );
        assert!(AgentId::new("x".repeat(65)).is_err());
        assert_eq!(
            AgentId::sanitized("web.prod.internal").as_str(),
            "web-prod-internal"
        );
        assert_eq!(AgentId::sanitized("").as_str(), "agent");
    }
}
