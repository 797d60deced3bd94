//! The agent's own metrics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use crate::identity::unix_ms_now;

/// Live counters and gauges, shared by the pipeline's tasks.
#[derive(Debug, Default)]
pub struct AgentMetrics {
    records_seen: AtomicU64,
    interim_records: AtomicU64,
    records_dropped_kernel: AtomicU64,
    records_filtered: AtomicU64,
    records_sampled_out: AtomicU64,
    records_overflowed: AtomicU64,
    interim_sweeps: AtomicU64,
    tracked_connections: AtomicU64,
    batches_built: AtomicU64,
    batches_exported: AtomicU64,
    flows_exported: AtomicU64,
    batches_rejected: AtomicU64,
    batches_lost: AtomicU64,
    export_failures: AtomicU64,
    batches_buffered: AtomicU64,
    buffer_bytes: AtomicU64,
    buffer_dropped: AtomicU64,
    oldest_pending_end_ms: AtomicU64,
    last_export_latency_ms: AtomicU64,
    config_updates: AtomicU64,
    config_rejected: AtomicU64,
}

/// The metrics at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MetricsSnapshot {
    /// Records read from the kernel (interim and final).
    pub records_seen: u64,
    /// Of those, interim records.
    pub interim_records: u64,
    /// Records the kernel lost because the ring buffer was full.
    pub records_dropped_kernel: u64,
    /// Records left out by the port filters.
    pub records_filtered: u64,
    /// Records left out by sampling.
    pub records_sampled_out: u64,
    /// Records left out because an interval had the most aggregates kept.
    pub records_overflowed: u64,
    /// Interim sweeps run.
    pub interim_sweeps: u64,
    /// Long-lived connections followed across intervals now.
    pub tracked_connections: u64,
    /// Batches built (one or more per interval).
    pub batches_built: u64,
    /// Batches the sink acknowledged.
    pub batches_exported: u64,
    /// Aggregates in those batches.
    pub flows_exported: u64,
    /// Batches the sink refused for good.
    pub batches_rejected: u64,
    /// Batches lost inside the agent (exporter queue full, or the backlog could not be
    /// written).
    pub batches_lost: u64,
    /// Failed delivery attempts.
    pub export_failures: u64,
    /// Batches waiting in the backlog now.
    pub batches_buffered: u64,
    /// Bytes of the backlog on disk now.
    pub buffer_bytes: u64,
    /// Batches dropped from the backlog (oldest first) to respect its bound.
    pub buffer_dropped: u64,
    /// Age of the oldest undelivered batch's interval end, in ms (0 when all delivered).
    pub export_lag_ms: u64,
    /// Time from the end of the last delivered batch's interval to its acknowledgement.
    pub last_export_latency_ms: u64,
    /// Configuration updates applied.
    pub config_updates: u64,
    /// Configuration updates refused as invalid.
    pub config_rejected: u64,
}

impl AgentMetrics {
    /// The metrics now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let oldest = self.oldest_pending_end_ms.load(Relaxed);
        MetricsSnapshot {
            records_seen: self.records_seen.load(Relaxed),
            interim_records: self.interim_records.load(Relaxed),
            records_dropped_kernel: self.records_dropped_kernel.load(Relaxed),
            records_filtered: self.records_filtered.load(Relaxed),
            records_sampled_out: self.records_sampled_out.load(Relaxed),
            records_overflowed: self.records_overflowed.load(Relaxed),
            interim_sweeps: self.interim_sweeps.load(Relaxed),
            tracked_connections: self.tracked_connections.load(Relaxed),
            batches_built: self.batches_built.load(Relaxed),
            batches_exported: self.batches_exported.load(Relaxed),
            flows_exported: self.flows_exported.load(Relaxed),
            batches_rejected: self.batches_rejected.load(Relaxed),
            batches_lost: self.batches_lost.load(Relaxed),
            export_failures: self.export_failures.load(Relaxed),
            batches_buffered: self.batches_buffered.load(Relaxed),
            buffer_bytes: self.buffer_bytes.load(Relaxed),
            buffer_dropped: self.buffer_dropped.load(Relaxed),
            export_lag_ms: if oldest == 0 {
                0
            } else {
                unix_ms_now().saturating_sub(oldest)
            },
            last_export_latency_ms: self.last_export_latency_ms.load(Relaxed),
            config_updates: self.config_updates.load(Relaxed),
            config_rejected: self.config_rejected.load(Relaxed),
        }
    }

    pub(crate) fn add_records(&self, seen: u64, interim: u64) {
        self.records_seen.fetch_add(seen, Relaxed);
        self.interim_records.fetch_add(interim, Relaxed);
    }
    pub(crate) fn add_left_out(&self, filtered: u64, sampled_out: u64, overflowed: u64) {
        self.records_filtered.fetch_add(filtered, Relaxed);
        self.records_sampled_out.fetch_add(sampled_out, Relaxed);
        self.records_overflowed.fetch_add(overflowed, Relaxed);
    }
    pub(crate) fn set_dropped_kernel(&self, total: u64) {
        self.records_dropped_kernel.store(total, Relaxed);
    }
    pub(crate) fn sweep(&self) {
        self.interim_sweeps.fetch_add(1, Relaxed);
    }
    pub(crate) fn set_tracked(&self, tracked: u64) {
        self.tracked_connections.store(tracked, Relaxed);
    }
    pub(crate) fn batch_built(&self) {
        self.batches_built.fetch_add(1, Relaxed);
    }
    pub(crate) fn exported(&self, flows: u64, latency_ms: u64) {
        self.batches_exported.fetch_add(1, Relaxed);
        self.flows_exported.fetch_add(flows, Relaxed);
        self.last_export_latency_ms.store(latency_ms, Relaxed);
    }
    pub(crate) fn rejected(&self) {
        self.batches_rejected.fetch_add(1, Relaxed);
    }
    pub(crate) fn lost(&self, batches: u64) {
        self.batches_lost.fetch_add(batches, Relaxed);
    }
    pub(crate) fn export_failed(&self) {
        self.export_failures.fetch_add(1, Relaxed);
    }
    pub(crate) fn set_backlog(&self, batches: u64, bytes: u64, oldest_end_ms: Option<u64>) {
        self.batches_buffered.store(batches, Relaxed);
        self.buffer_bytes.store(bytes, Relaxed);
        self.oldest_pending_end_ms
            .store(oldest_end_ms.unwrap_or(0), Relaxed);
    }
    pub(crate) fn buffer_dropped(&self, batches: u64) {
        self.buffer_dropped.fetch_add(batches, Relaxed);
    }
    pub(crate) fn config_applied(&self) {
        self.config_updates.fetch_add(1, Relaxed);
    }
    pub(crate) fn config_refused(&self) {
        self.config_rejected.fetch_add(1, Relaxed);
    }
}
