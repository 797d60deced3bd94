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
                    SinkError::unavailable(
                        SINK,
                        format!("no answer within {:?}", self.ack_timeout),
                    )
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
