//! Export: delivering batches to a [`FlowSink`](paved_flow_transport::FlowSink), with
//! retries and a bounded backlog (on disk, or in memory) while the sink is away.

pub mod backlog;
pub mod exporter;
pub mod spool;
