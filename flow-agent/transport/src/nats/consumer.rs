//! The collectors' JetStream pull consumer.
//!
//! Every collector binds the same durable consumer, so JetStream hands each message to
//! one of them (the pull-consumer form of a queue group) and redelivers what a crashed
//! collector left unacknowledged.

use std::{future::Future, sync::Arc, time::Duration};

use async_nats::jetstream::{
    self, AckKind,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
};
use futures_util::{FutureExt, StreamExt};
use paved_flow_proto::decode_batch;

use super::{NatsError, StreamSettings};
use crate::{BatchStore, ConsumerStats, StoreError};

/// How a collector consumes the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// Durable consumer name shared by all collectors of a deployment.
    pub durable: String,
    /// How long a delivered message may stay unacknowledged before redelivery.
    pub ack_wait: Duration,
    /// Deliveries of one message before JetStream gives up on it.
    pub max_deliver: i64,
    /// Messages pulled per request.
    pub fetch_batch: usize,
    /// How long one pull request waits for messages.
    pub fetch_expires: Duration,
    /// Delay before a batch whose store failed transiently is redelivered, and before
    /// pulling again after NATS errors.
    pub retry_delay: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            durable: "paved-flow-collectors".into(),
            ack_wait: Duration::from_secs(60),
            max_deliver: 50,
            fetch_batch: 64,
            fetch_expires: Duration::from_secs(1),
            retry_delay: Duration::from_secs(5),
        }
    }
}

/// A bound durable pull consumer.
pub struct NatsConsumer {
    consumer: PullConsumer,
    settings: ConsumerSettings,
    stats: Arc<ConsumerStats>,
}

impl NatsConsumer {
    /// Declares the stream if needed and binds (creating if needed) the durable consumer.
    pub async fn bind(
        client: async_nats::Client,
        stream: &StreamSettings,
        settings: ConsumerSettings,
    ) -> Result<Self, NatsError> {
        let js = jetstream::new(client);
        let handle = stream.ensure(&js).await?;
        let config = pull::Config {
            durable_name: Some(settings.durable.clone()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: settings.ack_wait,
            max_deliver: settings.max_deliver,
            deliver_policy: DeliverPolicy::All,
            filter_subject: stream.all_subjects(),
            ..Default::default()
        };
        let consumer = handle
            .get_or_create_consumer(&settings.durable, config)
            .await
            .map_err(|err| {
                NatsError::new(
                    format!("binding consumer {} on {}", settings.durable, stream.stream),
                    err,
                )
            })?;
        Ok(Self {
            consumer,
            settings,
            stats: Arc::new(ConsumerStats::default()),
        })
    }

    /// The counters of this consumer.
    pub fn stats(&self) -> Arc<ConsumerStats> {
        Arc::clone(&self.stats)
    }

    /// Consumes until `shutdown` completes: each message is decoded and validated, then
    /// handed to `store`, and acknowledged only once `store` succeeded. A malformed
    /// message is terminated (never redelivered) and counted; a transient store failure
    /// is negatively acknowledged with [`ConsumerSettings::retry_delay`]. NATS errors
    /// are logged and the pull retried: a collector outlives NATS outages. `shutdown`
    /// is checked between pulls, so a batch in the middle of `store` is completed.
    pub async fn run<S, F>(&self, store: &S, shutdown: F)
    where
        S: BatchStore + ?Sized,
        F: Future<Output = ()>,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            if shutdown.as_mut().now_or_never().is_some() {
                return;
            }
            // Not raced against `shutdown`: a batch being stored is finished and
            // acknowledged, never abandoned half-way; a pull ends within
            // `fetch_expires` when idle, so shutdown waits at most that long.
            if let Err(err) = self.pull_once(store).await {
                tracing::warn!(error = %err, source = %err.source, "pulling flow batches failed; retrying");
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(self.settings.retry_delay) => {}
                }
            }
        }
    }

    /// One pull: waits up to [`ConsumerSettings::fetch_expires`] for up to
    /// [`ConsumerSettings::fetch_batch`] messages and handles each. Returns how many
    /// were handled (stored or rejected).
    pub async fn pull_once<S: BatchStore + ?Sized>(&self, store: &S) -> Result<usize, NatsError> {
        let mut messages = self
            .consumer
            .batch()
            .max_messages(self.settings.fetch_batch)
            .expires(self.settings.fetch_expires)
            .messages()
            .await
            .map_err(|err| NatsError::new("pulling messages", err))?;
        let mut handled = 0;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|err| NatsError::new("receiving a message", err))?;
            self.handle(store, message).await;
            handled += 1;
        }
        Ok(handled)
    }

    async fn handle<S: BatchStore + ?Sized>(&self, store: &S, message: jetstream::Message) {
        let (stream_seq, delivered) = message
            .info()
            .map(|info| (info.stream_sequence, info.delivered))
            .unwrap_or((0, 0));
        let subject = message.subject.to_string();
        let batch = match decode_batch(&message.payload) {
            Ok(batch) => batch,
            Err(err) => {
                tracing::warn!(%subject, stream_seq, error = %err, "terminating a malformed flow batch message");
                self.stats.malformed();
                if let Err(ack) = message.ack_with(AckKind::Term).await {
                    tracing::warn!(%subject, stream_seq, error = %ack, "terminating a message failed; it may come back");
                }
                return;
            }
        };
        let id = batch.id();
        match store.store(batch).await {
            Ok(()) => {
                // Confirmed ack: a lost ack would redeliver, and the store would see the
                // batch twice (it dedupes by id, but this keeps that rare).
                if let Err(err) = message.double_ack().await {
                    tracing::warn!(batch = %id, stream_seq, error = %err, "acknowledging a stored flow batch failed; it may be redelivered");
                    self.stats.ack_failed();
                }
                self.stats.stored();
                tracing::debug!(batch = %id, stream_seq, delivered, "flow batch stored");
            }
            Err(StoreError::Retry(err)) => {
                tracing::warn!(batch = %id, stream_seq, delivered, error = %err, "storing a flow batch failed; it will be redelivered");
                self.stats.retried();
                let _ = message
                    .ack_with(AckKind::Nak(Some(self.settings.retry_delay)))
                    .await;
            }
            Err(StoreError::Reject(err)) => {
                tracing::warn!(batch = %id, stream_seq, error = %err, "the store rejected a flow batch; terminating it");
                self.stats.rejected();
                let _ = message.ack_with(AckKind::Term).await;
            }
        }
    }
}
