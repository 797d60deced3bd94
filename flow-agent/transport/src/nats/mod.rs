//! NATS JetStream transport: [`NatsSink`] on agents, [`NatsConsumer`] on collectors.
//!
//! Both sides declare the same stream ([`StreamSettings`]): whichever starts first
//! creates it. Messages carry one JSON [`FlowBatch`](paved_flow_proto::FlowBatch) each,
//! on `<prefix>.<agent id>`, with the batch id as `Nats-Msg-Id`.

mod consumer;
mod sink;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use paved_flow_proto::AgentId;

pub use consumer::{ConsumerSettings, NatsConsumer};
pub use sink::NatsSink;

use crate::sink::BoxError;

/// The default stream.
pub const DEFAULT_STREAM: &str = "PAVED_FLOWS";
/// The default subject prefix; agents publish to `paved.flows.<agent id>`.
pub const DEFAULT_SUBJECT_PREFIX: &str = "paved.flows";

/// Why a NATS operation failed.
#[derive(Debug, thiserror::Error)]
#[error("NATS: {what} failed")]
pub struct NatsError {
    /// What was being done, e.g. `creating stream PAVED_FLOWS`.
    pub what: String,
    /// The client's error.
    #[source]
    pub source: BoxError,
}

impl NatsError {
    pub(crate) fn new(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// The stream that carries flow batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSettings {
    /// Stream name.
    pub stream: String,
    /// Subject prefix: agents publish to `<prefix>.<agent id>`.
    pub subject_prefix: String,
    /// How long batches stay in the stream (consumed or not).
    pub max_age: Duration,
    /// Size bound of the stream; the oldest batches go first.
    pub max_bytes: i64,
    /// Window in which a batch published twice (same `Nats-Msg-Id`) is stored once.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            stream: DEFAULT_STREAM.into(),
            subject_prefix: DEFAULT_SUBJECT_PREFIX.into(),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl StreamSettings {
    /// The subject an agent publishes to.
    pub fn subject_for(&self, agent: &AgentId) -> String {
        format!("{}.{agent}", self.subject_prefix)
    }

    /// The subjects of the stream (every agent).
    pub fn all_subjects(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }

    fn config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.all_subjects()],
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            duplicate_window: self.duplicate_window,
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        }
    }

    /// Creates the stream unless it exists (an existing stream is used as it is).
    pub async fn ensure(&self, js: &jetstream::Context) -> Result<stream::Stream, NatsError> {
        js.get_or_create_stream(self.config())
            .await
            .map_err(|err| NatsError::new(format!("creating stream {}", self.stream), err))
    }
}

/// Connects to NATS at `url` under the client name `name`. The connection is retried
/// in the background when the server is away at first, so an agent can start before
/// NATS does; requests made meanwhile fail after their timeouts.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, NatsError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|err| NatsError::new(format!("connecting to {url}"), err))
}
