//! The Paved flow agent's user space: loads the TCP lifecycle BPF programs built from
//! `flow-agent/ebpf` and turns the kernel's ring buffer into [`FlowRecord`]s.
//!
//! See `flow-agent/README.md` for how the BPF object is built and how kernel structure
//! offsets are found without CO-RE.

pub mod btf;
mod error;
mod probe;
mod record;
mod tracefs;

pub use error::ProbeError;
pub use paved_flow_common::{Direction, FlowRecord, RecordKind};
pub use probe::{
    DEFAULT_POLL_INTERVAL, FlowProbe, ProgramStats, SweepReport, enable_bpf_stats,
};
