//! The backlog of undelivered batches: the on-disk [`Spool`], or a bounded queue in
//! memory when no directory is configured (lost on exit, still bounded).

use std::collections::VecDeque;

use paved_flow_proto::{FlowBatch, encode_batch};

use super::spool::{Spool, SpoolError, SpoolSettings};

/// Where undelivered batches wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BacklogSettings {
    /// In files in a directory: survives restarts.
    Disk(SpoolSettings),
    /// In memory, at most this many batches.
    Memory {
        /// Most batches kept.
        max_batches: usize,
    },
}

impl Default for BacklogSettings {
    fn default() -> Self {
        Self::Memory { max_batches: 360 }
    }
}

#[derive(Debug)]
enum Inner {
    Disk(Spool),
    Memory {
        queue: VecDeque<(FlowBatch, u64)>,
        bytes: u64,
        max_batches: usize,
    },
}

/// Undelivered batches, oldest first, bounded: over the bound the oldest are dropped.
#[derive(Debug)]
pub struct Backlog {
    inner: Inner,
}

impl Backlog {
    /// Opens the backlog (a spool picks up batches left by an earlier run).
    pub fn open(settings: &BacklogSettings) -> Result<Self, SpoolError> {
        let inner = match settings {
            BacklogSettings::Disk(spool) => Inner::Disk(Spool::open(spool.clone())?),
            BacklogSettings::Memory { max_batches } => Inner::Memory {
                queue: VecDeque::new(),
                bytes: 0,
                max_batches: (*max_batches).max(1),
            },
        };
        Ok(Self { inner })
    }

    /// Appends a batch; returns how many old batches were dropped.
    pub fn push(&mut self, batch: FlowBatch) -> Result<u64, SpoolError> {
        match &mut self.inner {
            Inner::Disk(spool) => spool.push(&batch),
            Inner::Memory {
                queue,
                bytes,
                max_batches,
            } => {
                // The size only feeds the metrics; an estimate from the JSON is enough.
                let size = encode_batch(&batch).map(|j| j.len() as u64).unwrap_or(0);
                queue.push_back((batch, size));
                *bytes += size;
                let mut dropped = 0;
                while queue.len() > *max_batches {
                    if let Some((_, size)) = queue.pop_front() {
                        *bytes = bytes.saturating_sub(size);
                    }
                    dropped += 1;
                }
                Ok(dropped)
            }
        }
    }

    /// The oldest batch.
    pub fn front(&mut self) -> Option<Result<FlowBatch, SpoolError>> {
        match &mut self.inner {
            Inner::Disk(spool) => spool.front(),
            Inner::Memory { queue, .. } => queue.front().map(|(b, _)| Ok(b.clone())),
        }
    }

    /// Removes the oldest batch.
    pub fn pop_front(&mut self) {
        match &mut self.inner {
            Inner::Disk(spool) => spool.pop_front(),
            Inner::Memory { queue, bytes, .. } => {
                if let Some((_, size)) = queue.pop_front() {
                    *bytes = bytes.saturating_sub(size);
                }
            }
        }
    }

    /// Batches waiting.
    pub fn len(&self) -> usize {
        match &self.inner {
            Inner::Disk(spool) => spool.len(),
            Inner::Memory { queue, .. } => queue.len(),
        }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> u64 {
        match &self.inner {
            Inner::Disk(spool) => spool.bytes(),
            Inner::Memory { bytes, .. } => *bytes,
        }
    }

    /// Interval end of the oldest waiting batch.
    pub fn oldest_interval_end_ms(&self) -> Option<u64> {
        match &self.inner {
            Inner::Disk(spool) => spool.oldest_interval_end_ms(),
            Inner::Memory { queue, .. } => queue.front().map(|(b, _)| b.interval_end_ms),
        }
    }

    /// Whether the backlog survives a restart.
    pub fn is_durable(&self) -> bool {
        matches!(self.inner, Inner::Disk(_))
    }
}
