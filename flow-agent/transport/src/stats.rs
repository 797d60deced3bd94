//! Counters of a receiving side.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of a consumer, shared with whoever reports metrics.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    stored: AtomicU64,
    malformed: AtomicU64,
    rejected: AtomicU64,
    retried: AtomicU64,
    ack_failures: AtomicU64,
}

/// A copy of [`ConsumerStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumerStatsSnapshot {
    /// Batches stored and acknowledged.
    pub stored: u64,
    /// Messages that were not valid batches (terminated, never redelivered).
    pub malformed: u64,
    /// Valid batches the store refused for good (terminated).
    pub rejected: u64,
    /// Batches whose store failed transiently (negatively acknowledged, redelivered).
    pub retried: u64,
    /// Acknowledgements that could not be confirmed (the batch may be redelivered; the
    /// store dedupes it).
    pub ack_failures: u64,
}

impl ConsumerStats {
    pub(crate) fn stored(&self) {
        self.stored.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn ack_failed(&self) {
        self.ack_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> ConsumerStatsSnapshot {
        ConsumerStatsSnapshot {
            stored: self.stored.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            ack_failures: self.ack_failures.load(Ordering::Relaxed),
        }
    }
}
