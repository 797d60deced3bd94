//! How flow batches travel from agents to collectors.
//!
//! The vocabulary: an agent hands each [`FlowBatch`](paved_flow_proto::FlowBatch) to a
//! [`FlowSink`], which answers `Ok` only once the receiving side has taken durable
//! responsibility for it; on the receiving side a collector supplies a [`BatchStore`],
//! and a batch is acknowledged only after `store` succeeded.
//!
//! Two transports:
//! * [`channel`]: in-process, for `paved up` (agent and collector in one process). The
//!   sink waits for the receiver's acknowledgement, so the semantics match JetStream.
//! * [`nats`]: NATS JetStream. [`nats::NatsSink`] publishes to the stream (default
//!   `PAVED_FLOWS`, subject `paved.flows.<agent>`) and waits for the publish ack, with
//!   the batch id as `Nats-Msg-Id` so a retried publish is not stored twice;
//!   [`nats::NatsConsumer`] is a durable pull consumer that any number of collectors
//!   bind to by the same name, sharing the work.
//!
//! A malformed batch is rejected at the receiving side (terminated, logged, counted) and
//! never blocks the ones behind it.

pub mod channel;
pub mod nats;
mod sink;
mod stats;
mod store;

pub use sink::{BoxError, FlowSink, SinkError, SinkFuture};
pub use stats::{ConsumerStats, ConsumerStatsSnapshot};
pub use store::{BatchStore, StoreError, StoreFuture};
