//! The Paved flow agent's user space.
//!
//! * [`FlowProbe`] loads the TCP lifecycle BPF programs built from `flow-agent/ebpf`
//!   and turns the kernel's ring buffer into [`FlowRecord`]s (and asks the kernel for
//!   interim records of long-lived connections).
//! * [`FlowAgent`] runs the pipeline, in the vocabulary of sources → transforms →
//!   sinks: a [`source`] of records, the [`transform`]s (port filters and sampling,
//!   process and container enrichment, per-interval aggregation), and [`export`] of
//!   versioned batches ([`paved_flow_proto::FlowBatch`]) to a
//!   [`FlowSink`](paved_flow_transport::FlowSink) with retries and a bounded backlog.
//!   Its [`config`] changes at run time through a `watch` channel; its [`metrics`] say
//!   what it saw, dropped and exported.
//!
//! See `flow-agent/README.md` for how the BPF object is built, how kernel structure
//! offsets are found without CO-RE, and `docs/flow-telemetry.md` for the pipeline.

mod agent;
pub mod aggregates;
pub mod btf;
mod cgroup;
pub mod clock;
pub mod config;
mod error;
pub mod export;
pub mod flow;
pub mod identity;
mod kfunc;
pub mod metrics;
mod probe;
mod record;
mod server_ports;
pub mod sock_diag;
mod socket_sweep;
pub mod source;
mod tracefs;
pub mod transform;

pub use agent::{AgentError, AgentHandle, AgentSettings, FlowAgent};
pub use config::{FlowConfig, PortFilter, PortRange};
pub use error::ProbeError;
pub use export::{
    backlog::BacklogSettings,
    exporter::{ExportSettings, RetryPolicy},
    spool::SpoolSettings,
};
pub use identity::AgentIdentity;
pub use metrics::{AgentMetrics, MetricsSnapshot};
pub use paved_flow_common::{Direction, FlowRecord, RecordKind};
pub use paved_flow_transport as transport;
pub use paved_flow_transport::{FlowSink, SinkError};
pub use probe::{
    DEFAULT_POLL_INTERVAL, FlowProbe, KernelCounters, ProbeOptions, ProgramStats, ReportMode,
    SocketReads, SweepReport, enable_bpf_stats, program_stats_by_id,
};
pub use source::{ChannelSource, FlowSource, ProbeSource, SourceError};
