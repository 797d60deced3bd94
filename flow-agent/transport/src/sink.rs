//! The agent's side of a transport.

use std::{future::Future, pin::Pin};

use paved_flow_proto::FlowBatch;

/// Any error, boxed, as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What [`FlowSink::send`] returns: a boxed future, so sinks can be chosen at run time
/// (`Arc<dyn FlowSink>`). One allocation per batch, i.e. per interval, is nothing.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// Where an agent delivers its batches.
pub trait FlowSink: Send + Sync {
    /// A short name for logs and metrics (`channel`, `nats`).
    fn name(&self) -> &'static str;

    /// Delivers `batch`. `Ok` means the receiving side has it durably (a JetStream
    /// publish ack, a collector's acknowledgement); the caller may then forget it. An
    /// error that [`SinkError::is_retryable`] means the batch should be kept and sent
    /// again later; sending the same batch twice is harmless (receivers dedupe by
    /// [`FlowBatch::id`]).
    fn send<'a>(&'a self, batch: &'a FlowBatch) -> SinkFuture<'a>;
}

/// Why a sink did not take a batch.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The receiving side is away or did not answer in time: keep the batch, retry.
    #[error("the {sink} sink is unavailable")]
    Unavailable {
        /// The sink's name.
        sink: &'static str,
        /// What happened.
        #[source]
        source: BoxError,
    },
    /// The receiving side refused this batch for good (it is malformed in its eyes):
    /// retrying would fail the same way.
    #[error("the {sink} sink rejected the batch: {reason}")]
    Rejected {
        /// The sink's name.
        sink: &'static str,
        /// The receiver's reason.
        reason: String,
    },
    /// The batch could not be encoded (a bug, not a transport problem).
    #[error("encoding the batch failed")]
    Encode(#[source] serde_json::Error),
}

impl SinkError {
    /// Whether sending the same batch later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// An [`SinkError::Unavailable`] from any error.
    pub fn unavailable(sink: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            sink,
            source: source.into(),
        }
    }
}
