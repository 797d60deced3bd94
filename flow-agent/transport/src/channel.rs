//! In-process transport for `paved up`: a bounded channel with acknowledgements.
//!
//! The sink waits for the receiver's answer, so "delivered" means "stored", as with
//! JetStream; a receiver that is gone or slow makes the sink unavailable, and the
//! agent buffers.

use std::{sync::Arc, time::Duration};

use paved_flow_proto::FlowBatch;
use tokio::sync::{mpsc, oneshot};

use crate::{
    BatchStore, ConsumerStats, StoreError,
    sink::{FlowSink, SinkError, SinkFuture},
};

const SINK: &str = "channel";

/// How long [`ChannelSink::send`] waits for the receiver by default.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates a connected sink and receiver holding at most `capacity` batches in flight.
pub fn channel(capacity: usize) -> (ChannelSink, ChannelReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        ChannelSink {
            tx,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
        },
        ChannelReceiver {
            rx,
            stats: Arc::new(ConsumerStats::default()),
        },
    )
}

/// The agent's end.
#[derive(Clone, Debug)]
pub struct ChannelSink {
    tx: mpsc::Sender<Delivery>,
    ack_timeout: Duration,
}

impl ChannelSink {
    /// Sets how long a send waits for room in the channel plus the receiver's answer.
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }
}

impl FlowSink for ChannelSink {
    fn name(&self) -> &'static str {
        SINK
    }

    fn send<'a>(&'a self, batch: &'a FlowBatch) -> SinkFuture<'a> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let delivery = Delivery {
                batch: batch.clone(),
                reply,
            };
            let exchange = async {
                self.tx
                    .send(delivery)
                    .await
                    .map_err(|_| SinkError::unavailable(SINK, "the receiver is gone"))?;
                answer.await.map_err(|_| {
                    SinkError::unavailable(SINK, "the receiver dropped the batch unanswered")
                })
            };
            let outcome = tokio::time::timeout(self.ack_timeout, exchange)
                .await
                .map_err(|_| {
                    SinkError::unavailable(SINK, format!("no answer within {:?}", self.ack_timeout))
                })??;
            match outcome {
                Reply::Stored => Ok(()),
                Reply::Retry(why) => Err(SinkError::unavailable(SINK, why)),
                Reply::Rejected(reason) => Err(SinkError::Rejected { sink: SINK, reason }),
            }
        })
    }
}

/// The receiver's answer.
#[derive(Debug)]
enum Reply {
    Stored,
    Retry(String),
    Rejected(String),
}

/// One batch waiting for the receiver's answer; dropping it unanswered makes the sender
/// retry later.
#[derive(Debug)]
pub struct Delivery {
    batch: FlowBatch,
    reply: oneshot::Sender<Reply>,
}

impl Delivery {
    /// The batch.
    pub fn batch(&self) -> &FlowBatch {
        &self.batch
    }

    /// Confirms the batch is stored.
    pub fn ack(self) {
        // The sender may have timed out and gone; it then sends again, and the store
        // dedupes by batch id.
        let _ = self.reply.send(Reply::Stored);
    }

    /// Asks the sender to send it again later.
    pub fn retry_later(self, why: impl Into<String>) {
        let _ = self.reply.send(Reply::Retry(why.into()));
    }

    /// Refuses the batch for good.
    pub fn reject(self, reason: impl Into<String>) {
        let _ = self.reply.send(Reply::Rejected(reason.into()));
    }
}

/// The collector's end.
#[derive(Debug)]
pub struct ChannelReceiver {
    rx: mpsc::Receiver<Delivery>,
    stats: Arc<ConsumerStats>,
}

impl ChannelReceiver {
    /// The next batch, `None` once every sink is dropped.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// The counters of [`ChannelReceiver::serve`].
    pub fn stats(&self) -> Arc<ConsumerStats> {
        Arc::clone(&self.stats)
    }

    /// Validates and stores every batch until all sinks are dropped, acknowledging each
    /// one only after `store` succeeded.
    pub async fn serve<S: BatchStore + ?Sized>(mut self, store: &S) {
        while let Some(delivery) = self.rx.recv().await {
            if let Err(err) = delivery.batch.validate() {
                tracing::warn!(batch = %delivery.batch.id(), error = %err, "rejecting a malformed flow batch");
                self.stats.malformed();
                delivery.reject(err.to_string());
                continue;
            }
            let id = delivery.batch.id();
            match store.store(delivery.batch.clone()).await {
                Ok(()) => {
                    self.stats.stored();
                    delivery.ack();
                }
                Err(StoreError::Retry(err)) => {
                    tracing::warn!(batch = %id, error = %err, "storing a flow batch failed; the agent will resend it");
                    self.stats.retried();
                    delivery.retry_later(err.to_string());
                }
                Err(StoreError::Reject(err)) => {
                    tracing::warn!(batch = %id, error = %err, "the store rejected a flow batch");
                    self.stats.rejected();
                    delivery.reject(err.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use paved_flow_proto::{AgentId, BatchStats, SCHEMA_VERSION};

    use super::*;

    fn batch(sequence: u64) -> FlowBatch {
        FlowBatch {
            version: SCHEMA_VERSION,
            agent_id: AgentId::new("a").expect("id"),
            host: "h".into(),
            epoch_ms: 1,
            sequence,
            interval_start_ms: 10,
            interval_end_ms: 20,
            sampling_rate: 1.0,
            stats: BatchStats::default(),
            flows: vec![],
        }
    }

    #[tokio::test]
    async fn a_send_succeeds_only_once_the_store_succeeded() {
        let (sink, receiver) = channel(2);
        let stats = receiver.stats();
        let stored = Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = {
            let stored = Arc::clone(&stored);
            move |batch: FlowBatch| {
                let stored = Arc::clone(&stored);
                async move {
                    if batch.sequence == 1 {
                        return Err(StoreError::Retry("database away".into()));
                    }
                    stored.lock().expect("lock").push(batch.sequence);
                    Ok(())
                }
            }
        };
        let server = tokio::spawn(async move { receiver.serve(&store).await });
        sink.send(&batch(0)).await.expect("stored");
        let err = sink.send(&batch(1)).await.expect_err("store failed");
        assert!(err.is_retryable(), "{err}");
        let mut bad = batch(2);
        bad.interval_end_ms = bad.interval_start_ms;
        let err = sink.send(&bad).await.expect_err("malformed");
        assert!(matches!(err, SinkError::Rejected { .. }), "{err}");
        drop(sink);
        server.await.expect("server ends when the sink is dropped");
        assert_eq!(*stored.lock().expect("lock"), vec![0]);
        let stats = stats.snapshot();
        assert_eq!((stats.stored, stats.retried, stats.malformed), (1, 1, 1));
    }

    #[tokio::test]
    async fn without_a_receiver_the_sink_is_unavailable() {
        let (sink, receiver) = channel(1);
        drop(receiver);
        let err = sink.send(&batch(0)).await.expect_err("nobody listens");
        assert!(err.is_retryable());
        let (sink, _receiver) = channel(1);
        let sink = sink.with_ack_timeout(Duration::from_millis(50));
        let err = sink.send(&batch(0)).await.expect_err("nobody answers");
        assert!(err.is_retryable());
    }
}
