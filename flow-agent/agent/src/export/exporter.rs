//! The exporter task: delivers batches in order, retrying with exponential backoff and
//! keeping undelivered ones in the backlog.
//!
//! Order is kept: while anything waits in the backlog, new batches queue behind it.
//! A batch leaves the backlog only when the sink acknowledged it (or rejected it for
//! good, which is counted and logged).

use std::{sync::Arc, time::Duration};

use paved_flow_proto::FlowBatch;
use paved_flow_transport::FlowSink;
use tokio::{sync::mpsc, time::Instant};

use super::backlog::{Backlog, BacklogSettings};
use crate::{identity::unix_ms_now, metrics::AgentMetrics};

/// Backoff between delivery attempts while the sink is away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First delay after a failure.
    pub initial: Duration,
    /// Longest delay (the delay doubles up to this).
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// How the agent exports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSettings {
    /// Backoff while the sink is away.
    pub retry: RetryPolicy,
    /// Where undelivered batches wait.
    pub backlog: BacklogSettings,
    /// How long a shutdown keeps trying to deliver the backlog before leaving it (on
    /// disk) for the next start.
    pub drain_on_shutdown: Duration,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            backlog: BacklogSettings::default(),
            drain_on_shutdown: Duration::from_secs(5),
        }
    }
}

enum Outcome {
    Delivered,
    Retry,
    Rejected,
}

pub(crate) struct Exporter {
    sink: Arc<dyn FlowSink>,
    backlog: Backlog,
    retry: RetryPolicy,
    backoff: Duration,
    next_attempt: Option<Instant>,
    sink_down: bool,
    metrics: Arc<AgentMetrics>,
}

impl Exporter {
    pub(crate) fn new(
        sink: Arc<dyn FlowSink>,
        backlog: Backlog,
        retry: RetryPolicy,
        metrics: Arc<AgentMetrics>,
    ) -> Self {
        let mut exporter = Self {
            sink,
            backlog,
            retry,
            backoff: retry.initial,
            next_attempt: None,
            sink_down: false,
            metrics,
        };
        if !exporter.backlog.is_empty() {
            // Batches left by an earlier run go first.
            exporter.next_attempt = Some(Instant::now());
        }
        exporter.publish_backlog();
        exporter
    }

    /// Runs until the pipeline closes the channel, then tries to deliver the backlog
    /// for at most `drain_on_shutdown`.
    pub(crate) async fn run(
        mut self,
        mut batches: mpsc::Receiver<FlowBatch>,
        drain_on_shutdown: Duration,
    ) {
        loop {
            let retry_at = self.next_attempt.filter(|_| !self.backlog.is_empty());
            tokio::select! {
                received = batches.recv() => match received {
                    Some(batch) => self.accept(batch).await,
                    None => break,
                },
                () = sleep_until_some(retry_at) => self.drain().await,
            }
        }
        if !self.backlog.is_empty() {
            let _ = tokio::time::timeout(drain_on_shutdown, self.drain()).await;
        }
        let left = self.backlog.len();
        if left > 0 {
            if self.backlog.is_durable() {
                tracing::info!(
                    batches = left,
                    "undelivered flow batches stay in the spool for the next start"
                );
            } else {
                tracing::warn!(
                    batches = left,
                    "undelivered flow batches are lost at shutdown (no spool directory)"
                );
                self.metrics.lost(left as u64);
            }
        }
    }

    async fn accept(&mut self, batch: FlowBatch) {
        if self.backlog.is_empty() {
            match self.deliver(&batch).await {
                Outcome::Delivered | Outcome::Rejected => return,
                Outcome::Retry => self.schedule_retry(),
            }
        }
        self.enqueue(batch);
    }

    fn enqueue(&mut self, batch: FlowBatch) {
        let id = batch.id();
        match self.backlog.push(batch) {
            Ok(dropped) => {
                if dropped > 0 {
                    tracing::warn!(
                        dropped,
                        "flow batch backlog full: dropped the oldest batches"
                    );
                    self.metrics.buffer_dropped(dropped);
                }
            }
            Err(err) => {
                tracing::error!(batch = %id, error = %err, source = ?std::error::Error::source(&err), "keeping an undelivered flow batch failed; it is lost");
                self.metrics.lost(1);
            }
        }
        if self.next_attempt.is_none() {
            self.next_attempt = Some(Instant::now() + self.backoff);
        }
        self.publish_backlog();
    }

    /// Delivers from the backlog, oldest first, until it is empty or the sink fails.
    async fn drain(&mut self) {
        while let Some(front) = self.backlog.front() {
            let batch = match front {
                Ok(batch) => batch,
                Err(err) => {
                    tracing::error!(error = %err, "a spooled flow batch is unreadable; skipping it");
                    self.metrics.lost(1);
                    // A corrupt file is already removed; an unreadable one must go too,
                    // or it would block everything behind it.
                    if !matches!(err, super::spool::SpoolError::Corrupt { .. }) {
                        self.backlog.pop_front();
                    }
                    continue;
                }
            };
            match self.deliver(&batch).await {
                Outcome::Delivered | Outcome::Rejected => {
                    self.backlog.pop_front();
                    self.publish_backlog();
                }
                Outcome::Retry => {
                    self.schedule_retry();
                    return;
                }
            }
        }
        self.backoff = self.retry.initial;
        self.next_attempt = None;
        self.publish_backlog();
    }

    async fn deliver(&mut self, batch: &FlowBatch) -> Outcome {
        match self.sink.send(batch).await {
            Ok(()) => {
                if self.sink_down {
                    tracing::info!(
                        sink = self.sink.name(),
                        backlog = self.backlog.len(),
                        "flow sink is back"
                    );
                    self.sink_down = false;
                }
                let latency = unix_ms_now().saturating_sub(batch.interval_end_ms);
                self.metrics.exported(batch.flows.len() as u64, latency);
                Outcome::Delivered
            }
            Err(err) if err.is_retryable() => {
                self.metrics.export_failed();
                if !self.sink_down {
                    tracing::warn!(sink = self.sink.name(), batch = %batch.id(), error = %err, source = ?std::error::Error::source(&err), "flow sink unavailable; keeping batches until it is back");
                    self.sink_down = true;
                }
                Outcome::Retry
            }
            Err(err) => {
                tracing::error!(sink = self.sink.name(), batch = %batch.id(), error = %err, "flow sink rejected a batch; dropping it");
                self.metrics.rejected();
                Outcome::Rejected
            }
        }
    }

    fn schedule_retry(&mut self) {
        self.next_attempt = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(self.retry.max);
    }

    fn publish_backlog(&self) {
        self.metrics.set_backlog(
            self.backlog.len() as u64,
            self.backlog.bytes(),
            self.backlog.oldest_interval_end_ms(),
        );
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
