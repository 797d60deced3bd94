//! The agent's JetStream publisher.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use paved_flow_proto::{AgentId, FlowBatch, encode_batch};
use tokio::sync::OnceCell;

use super::{NatsError, StreamSettings};
use crate::sink::{FlowSink, SinkError, SinkFuture};

const SINK: &str = "nats";

/// Publishes each batch to `<prefix>.<agent id>` and waits for JetStream's ack.
pub struct NatsSink {
    js: jetstream::Context,
    client: async_nats::Client,
    settings: StreamSettings,
    subject: String,
    stream_ready: OnceCell<()>,
    ack_timeout: Duration,
}

impl NatsSink {
    /// A sink publishing for `agent` through `client`.
    pub fn new(client: async_nats::Client, settings: StreamSettings, agent: &AgentId) -> Self {
        Self {
            js: jetstream::new(client.clone()),
            client,
            subject: settings.subject_for(agent),
            settings,
            stream_ready: OnceCell::new(),
            ack_timeout: Duration::from_secs(5),
        }
    }

    /// Connects to `url` (retrying in the background if NATS is away) and makes a sink.
    pub async fn connect(
        url: &str,
        settings: StreamSettings,
        agent: &AgentId,
    ) -> Result<Self, NatsError> {
        let client = super::connect(url, &format!("paved-flow-agent-{agent}")).await?;
        Ok(Self::new(client, settings, agent))
    }

    /// Sets how long a publish waits for JetStream's ack (default 5 s).
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// The subject this sink publishes to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    async fn publish(&self, batch: &FlowBatch) -> Result<(), SinkError> {
        // Declared lazily, not at construction: NATS may be away when the agent starts.
        self.stream_ready
            .get_or_try_init(|| async { self.settings.ensure(&self.js).await.map(|_| ()) })
            .await
            .map_err(|err| SinkError::unavailable(SINK, err))?;

        let payload = encode_batch(batch).map_err(SinkError::Encode)?;
        let max = self.client.max_payload();
        if max > 0 && payload.len() > max {
            // Retrying cannot help; the agent bounds batch sizes well below 1 MiB.
            return Err(SinkError::Rejected {
                sink: SINK,
                reason: format!(
                    "the batch is {} bytes, above the server's max_payload of {max}",
                    payload.len()
                ),
            });
        }
        let id = batch.id().to_string();
        let publish = PublishMessage::build()
            .payload(payload.into())
            .message_id(&id);
        let exchange = async {
            let ack = self
                .js
                .send_publish(self.subject.clone(), publish)
                .await
                .map_err(|err| SinkError::unavailable(SINK, err))?;
            ack.await.map_err(|err| SinkError::unavailable(SINK, err))
        };
        let ack = tokio::time::timeout(self.ack_timeout, exchange)
            .await
            .map_err(|_| {
                SinkError::unavailable(
                    SINK,
                    format!("no publish ack within {:?}", self.ack_timeout),
                )
            })??;
        tracing::debug!(batch = %id, stream = %ack.stream, seq = ack.sequence, duplicate = ack.duplicate, "flow batch published");
        Ok(())
    }
}

impl FlowSink for NatsSink {
    fn name(&self) -> &'static str {
        SINK
    }

    fn send<'a>(&'a self, batch: &'a FlowBatch) -> SinkFuture<'a> {
        Box::pin(self.publish(batch))
    }
}
