//! The flow telemetry wire format shared by the flow agent and the collectors.
//!
//! An agent aggregates the kernel's per-connection records over an interval (10 s by
//! default) and ships one [`FlowBatch`] per interval: who it is ([`BatchId`]: agent id,
//! the agent's start time and a sequence number), the host, the interval's bounds, and
//! one [`FlowAggregate`] per (local address, remote address, service port, direction,
//! process) with byte, connection and retransmission sums and an RTT histogram.
//!
//! Batches travel as JSON. [`decode_batch`] is the one way in for bytes from the
//! network or the disk: it bounds the size, parses, and [`FlowBatch::validate`]s, so a
//! malformed batch is an error naming the field, never a panic or a half-read batch.
//!
//! Versioning: `version` is the format's major version; a collector accepts only the
//! versions it knows ([`SUPPORTED_VERSIONS`]). Adding an optional field does not bump
//! it (unknown fields are ignored by older readers); changing a field's meaning does.

mod batch;
mod error;
mod rtt;

pub use batch::{
    AgentId, BatchId, BatchStats, ContainerInfo, Direction, FlowAggregate, FlowBatch,
    MAX_AGENT_ID_LEN, MAX_BATCH_BYTES, MAX_FLOWS_PER_BATCH, MAX_INTERVAL_MS, ProcessInfo,
    SCHEMA_VERSION, SUPPORTED_VERSIONS, decode_batch, encode_batch,
};
pub use error::{AgentIdError, BatchError};
pub use rtt::{RTT_BUCKETS, RttHistogram};
