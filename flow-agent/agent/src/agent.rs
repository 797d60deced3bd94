//! [`FlowAgent`]: wires a source, the transforms and a sink into running tasks.
//!
//! Two tasks: the pipeline (source → filter → aggregate, and at each interval's end the
//! interim sweep and the batch) and the exporter (batches → sink, with retries and the
//! backlog). They are joined by a bounded queue of batches, so a slow sink never
//! blocks reading the kernel's ring buffer.

use std::{sync::Arc, time::Duration};

use paved_flow_common::{FlowRecord, RecordKind};
use paved_flow_proto::{BatchStats, FlowBatch, SCHEMA_VERSION};
use paved_flow_transport::FlowSink;
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
    time::Instant,
};

use crate::{
    FlowProbe, KernelCounters, ProbeError,
    aggregates::KernelAggregate,
    clock::KtimeClock,
    config::{ConfigError, FlowConfig},
    export::{
        backlog::Backlog,
        exporter::{ExportSettings, Exporter},
        spool::SpoolError,
    },
    identity::{AgentIdentity, unix_ms_now},
    metrics::{AgentMetrics, MetricsSnapshot},
    source::{FlowSource, ProbeSource, SourceError},
    transform::{
        aggregate::Aggregator,
        enrich::{EnrichSettings, Enricher},
        filter::{RecordFilter, Verdict},
    },
};

/// Everything about the agent that is fixed at start (the rest is [`FlowConfig`]).
#[derive(Clone, Debug)]
pub struct AgentSettings {
    /// Who the agent is.
    pub identity: AgentIdentity,
    /// How batches are delivered.
    pub export: ExportSettings,
    /// Where process and container information is read.
    pub enrich: EnrichSettings,
    /// Most records handled per wakeup.
    pub read_batch: usize,
    /// Batches queued between the pipeline and the exporter.
    pub export_queue: usize,
}

impl AgentSettings {
    /// Defaults for `identity`.
    pub fn new(identity: AgentIdentity) -> Self {
        Self {
            identity,
            export: ExportSettings::default(),
            enrich: EnrichSettings::default(),
            read_batch: 4_096,
            export_queue: 64,
        }
    }
}

/// Why the agent could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The initial configuration is invalid.
    #[error("invalid flow agent configuration")]
    Config(#[from] ConfigError),
    /// The spool directory could not be opened.
    #[error("opening the flow batch spool failed")]
    Spool(#[from] SpoolError),
    /// The source failed.
    #[error("the flow source failed")]
    Source(#[from] SourceError),
    /// A task panicked or was cancelled.
    #[error("a flow agent task failed")]
    Task(#[from] tokio::task::JoinError),
}

impl From<ProbeError> for AgentError {
    fn from(err: ProbeError) -> Self {
        Self::Source(SourceError::Probe(err))
    }
}

/// Starts agents.
pub struct FlowAgent;

impl FlowAgent {
    /// Loads the kernel probe and runs the agent on it.
    pub fn start(
        settings: AgentSettings,
        sink: Arc<dyn FlowSink>,
        config: watch::Receiver<FlowConfig>,
    ) -> Result<AgentHandle, AgentError> {
        let probe = FlowProbe::start()?;
        Self::spawn(settings, ProbeSource::new(probe), sink, config)
    }

    /// Runs the agent on any source. Must be called inside a tokio runtime.
    pub fn spawn<S: FlowSource + 'static>(
        settings: AgentSettings,
        mut source: S,
        sink: Arc<dyn FlowSink>,
        mut config: watch::Receiver<FlowConfig>,
    ) -> Result<AgentHandle, AgentError> {
        let initial = config.borrow_and_update().clone();
        initial.validate()?;
        let backlog = Backlog::open(&settings.export.backlog)?;
        let metrics = Arc::new(AgentMetrics::default());
        let (batches_tx, batches_rx) = mpsc::channel(settings.export_queue.max(1));
        let exporter = Exporter::new(sink, backlog, settings.export.retry, Arc::clone(&metrics));
        let exporter = tokio::spawn(exporter.run(batches_rx, settings.export.drain_on_shutdown));

        let (stop_tx, stop_rx) = oneshot::channel();
        let (flush_tx, flush_rx) = mpsc::channel(4);
        let mut aggregator = Aggregator::new();
        aggregator.set_guard_age_ns(sweep_min_age(initial.interval).as_nanos() as u64);
        let source_samples = source.set_sampling_rate(initial.sampling_rate);
        let pipeline = Pipeline {
            source,
            config,
            config_open: true,
            filter: RecordFilter::new(&initial, !source_samples),
            config_now: initial.clone(),
            aggregator,
            enricher: Enricher::new(&settings.enrich),
            clock: KtimeClock::new(),
            identity: settings.identity.clone(),
            sequence: 0,
            interval_start_ms: unix_ms_now(),
            interval_started: Instant::now(),
            counters_before: KernelCounters::default(),
            kernel_aggregates: Vec::new(),
            batches: batches_tx,
            metrics: Arc::clone(&metrics),
            buf: Vec::with_capacity(settings.read_batch.max(1)),
            read_batch: settings.read_batch.max(1),
        };
        tracing::info!(agent = %settings.identity.agent_id, host = %settings.identity.host, interval = ?initial.interval, "flow agent started");
        let pipeline = tokio::spawn(pipeline.run(stop_rx, flush_rx));
        Ok(AgentHandle {
            metrics,
            stop: Some(stop_tx),
            flush: flush_tx,
            pipeline,
            exporter,
        })
    }
}

/// A running agent.
pub struct AgentHandle {
    metrics: Arc<AgentMetrics>,
    stop: Option<oneshot::Sender<()>>,
    flush: mpsc::Sender<oneshot::Sender<()>>,
    pipeline: JoinHandle<Result<(), AgentError>>,
    exporter: JoinHandle<()>,
}

impl AgentHandle {
    /// The agent's metrics now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// The live metrics, to share with a metrics endpoint.
    pub fn metrics_handle(&self) -> Arc<AgentMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Ends the interval in progress now (sweep, batch, export queue) and returns once
    /// its batches are queued for export; the next interval starts now.
    pub async fn flush_now(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.flush.send(done_tx).await.is_ok() {
            let _ = done_rx.await;
        }
    }

    /// Stops: the interval in progress is ended and exported (or kept in the backlog),
    /// the exporter tries the backlog once more, then both tasks end.
    pub async fn shutdown(mut self) -> Result<(), AgentError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = self.pipeline.await?;
        // The pipeline dropped its end of the batch queue: the exporter drains and ends.
        self.exporter.await?;
        result
    }
}

/// The sweep asks for connections unreported for half an interval: every long-lived
/// connection then gets one interim record per interval, and connections younger than
/// that are left to their final record.
fn sweep_min_age(interval: Duration) -> Duration {
    interval / 2
}

struct Pipeline<S> {
    source: S,
    config: watch::Receiver<FlowConfig>,
    config_open: bool,
    config_now: FlowConfig,
    filter: RecordFilter,
    aggregator: Aggregator,
    enricher: Enricher,
    clock: KtimeClock,
    identity: AgentIdentity,
    sequence: u64,
    interval_start_ms: u64,
    interval_started: Instant,
    counters_before: KernelCounters,
    kernel_aggregates: Vec<KernelAggregate>,
    batches: mpsc::Sender<FlowBatch>,
    metrics: Arc<AgentMetrics>,
    buf: Vec<FlowRecord>,
    read_batch: usize,
}

impl<S: FlowSource> Pipeline<S> {
    async fn run(
        mut self,
        mut stop: oneshot::Receiver<()>,
        mut flush: mpsc::Receiver<oneshot::Sender<()>>,
    ) -> Result<(), AgentError> {
        loop {
            let next_flush = self.interval_started + self.config_now.interval;
            tokio::select! {
                biased;
                _ = &mut stop => {
                    // No sweep at shutdown: the connections stay open beyond the agent.
                    self.end_interval(false);
                    return Ok(());
                }
                changed = self.config.changed(), if self.config_open => {
                    if changed.is_ok() {
                        self.apply_config();
                    } else {
                        // The sender is gone: the configuration is final.
                        self.config_open = false;
                    }
                }
                Some(done) = flush.recv() => {
                    self.end_interval(true);
                    let _ = done.send(());
                }
                () = tokio::time::sleep_until(next_flush) => self.end_interval(true),
                received = self.source.recv_many(&mut self.buf, self.read_batch) => {
                    match received {
                        Ok(0) => {
                            self.end_interval(false);
                            tracing::info!("flow source ended");
                            return Ok(());
                        }
                        Ok(_) => self.process(),
                        Err(err) => {
                            self.end_interval(false);
                            return Err(err.into());
                        }
                    }
                }
            }
        }
    }

    fn apply_config(&mut self) {
        let next = self.config.borrow_and_update().clone();
        if next == self.config_now {
            return;
        }
        if let Err(err) = next.validate() {
            tracing::warn!(error = %err, "refusing an invalid flow agent configuration; keeping the current one");
            self.metrics.config_refused();
            return;
        }
        tracing::info!(interval = ?next.interval, sampling_rate = next.sampling_rate, include = ?next.ports.include, exclude = ?next.ports.exclude, "flow agent configuration updated");
        let source_samples = self.source.set_sampling_rate(next.sampling_rate);
        self.filter = RecordFilter::new(&next, !source_samples);
        self.aggregator
            .set_guard_age_ns(sweep_min_age(next.interval).as_nanos() as u64);
        // A new interval takes effect on the interval in progress: the loop computes
        // the next flush from its start.
        self.config_now = next;
        self.metrics.config_applied();
    }

    /// Filters and aggregates the records in `buf`.
    fn process(&mut self) {
        let (mut interim, mut filtered, mut sampled_out) = (0u64, 0u64, 0u64);
        let count = self.buf.len() as u64;
        for record in self.buf.drain(..) {
            if record.kind() == Some(RecordKind::Interim) {
                interim += 1;
            }
            match self.filter.check(&record) {
                Verdict::Keep => {
                    let at_ms = self.clock.to_unix_ms(record.end_ns);
                    self.aggregator.add(&record, at_ms, &mut self.enricher);
                }
                Verdict::Filtered => filtered += 1,
                Verdict::SampledOut => sampled_out += 1,
            }
        }
        let stats = self.aggregator.stats_mut();
        stats.records += count;
        stats.interim_records += interim;
        stats.filtered += filtered;
        stats.sampled_out += sampled_out;
        self.metrics.add_records(count, interim);
        self.metrics.add_left_out(filtered, sampled_out, 0);
    }

    /// Adds the kernel's aggregates of the interval (closed connections summed in the
    /// kernel), with the port filters applied to their keys.
    fn process_kernel_aggregates(&mut self) {
        if let Err(err) = self.source.drain_aggregates(&mut self.kernel_aggregates) {
            tracing::warn!(error = %err, "reading the kernel's flow aggregates failed; what was not read stays in the kernel's maps for a later interval");
        }
        let (mut closed, mut filtered) = (0u64, 0u64);
        for aggregate in self.kernel_aggregates.drain(..) {
            let count = u64::from(aggregate.value.closed);
            closed += count;
            if !self.filter.allows_port(aggregate.key.service_port) {
                filtered += count;
                continue;
            }
            let first_ms = self.clock.to_unix_ms(aggregate.value.first_ns);
            let last_ms = self.clock.to_unix_ms(aggregate.last_ns);
            self.aggregator
                .add_kernel(&aggregate, first_ms, last_ms, &mut self.enricher);
        }
        let stats = self.aggregator.stats_mut();
        stats.records += closed;
        stats.filtered += filtered;
        self.metrics.add_records(closed, 0);
        self.metrics.add_left_out(filtered, 0, 0);
    }

    /// Ends the interval: interim sweep (so long connections report their bytes in it),
    /// the records already in the ring, the kernel's aggregates, then the batches.
    fn end_interval(&mut self, sweep: bool) {
        if sweep {
            match self
                .source
                .sweep_interim(sweep_min_age(self.config_now.interval))
            {
                Ok(_) => self.metrics.sweep(),
                Err(err) => tracing::warn!(error = %err, "interim sweep failed"),
            }
        }
        // Bounded: a source producing faster than this loop must not stall the flush.
        for _ in 0..64 {
            let got = self.source.try_recv_many(&mut self.buf, self.read_batch);
            self.process();
            if got < self.read_batch {
                break;
            }
        }

        self.process_kernel_aggregates();

        let end_ms = unix_ms_now().max(self.interval_start_ms + 1);
        // A failed read keeps the previous totals, so the next read's difference covers
        // both intervals instead of counting everything since the start again.
        let counters = match self.source.counters() {
            Ok(counters) => counters,
            Err(err) => {
                tracing::warn!(error = %err, "reading the kernel's counters failed; they are counted at the next interval");
                self.counters_before
            }
        };
        let dropped = counters
            .ring_dropped
            .saturating_sub(self.counters_before.ring_dropped);
        let sampled_out = counters
            .sampled_out
            .saturating_sub(self.counters_before.sampled_out);
        self.counters_before = counters;
        self.metrics.set_dropped_kernel(counters.ring_dropped);
        self.metrics.add_left_out(0, sampled_out, 0);
        self.aggregator.stats_mut().sampled_out += sampled_out;
        // Connections unreported for three intervals lost their final record.
        let forget_after_ms = 3 * self.config_now.interval.as_millis() as u64;
        let (flows, mut stats) =
            self.aggregator
                .take(self.interval_start_ms, end_ms, forget_after_ms);
        stats.dropped_in_kernel = dropped;
        self.metrics.add_left_out(0, 0, stats.overflowed);
        self.metrics
            .set_tracked(self.aggregator.tracked_connections() as u64);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "the kernel dropped flow records: the ring buffer was full"
            );
        }

        let per_batch = self.config_now.max_flows_per_batch.max(1);
        let mut chunks: Vec<Vec<_>> = Vec::new();
        let mut flows = flows.into_iter().peekable();
        while flows.peek().is_some() {
            chunks.push(flows.by_ref().take(per_batch).collect());
        }
        if chunks.is_empty() {
            // An empty batch still says the agent is alive and carries its counters.
            chunks.push(Vec::new());
        }
        for (i, chunk) in chunks.into_iter().enumerate() {
            let batch = FlowBatch {
                version: SCHEMA_VERSION,
                agent_id: self.identity.agent_id.clone(),
                host: self.identity.host.clone(),
                epoch_ms: self.identity.epoch_ms,
                sequence: self.sequence,
                interval_start_ms: self.interval_start_ms,
                interval_end_ms: end_ms,
                sampling_rate: self.config_now.sampling_rate,
                // The interval's counters go with its first batch only.
                stats: if i == 0 {
                    std::mem::take(&mut stats)
                } else {
                    BatchStats::default()
                },
                flows: chunk,
            };
            self.sequence += 1;
            self.metrics.batch_built();
            match self.batches.try_send(batch) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(batch)) => {
                    tracing::error!(batch = %batch.id(), "the export queue is full; dropping a flow batch");
                    self.metrics.lost(1);
                }
                Err(mpsc::error::TrySendError::Closed(batch)) => {
                    tracing::error!(batch = %batch.id(), "the exporter is gone; dropping a flow batch");
                    self.metrics.lost(1);
                }
            }
        }
        self.enricher.end_interval();
        self.clock.refresh();
        self.interval_start_ms = end_ms;
        self.interval_started = Instant::now();
    }
}
