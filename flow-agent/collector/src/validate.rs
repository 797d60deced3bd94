//! What a collector accepts, on top of the wire format's rules.

use std::time::Duration;

use paved_flow_proto::{BatchError, FlowBatch, decode_batch};

/// Why a batch was refused.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    /// The bytes are not a valid batch (the error names the field).
    #[error(transparent)]
    Format(#[from] BatchError),
    /// The interval ends too far in the future: the agent's clock is wrong.
    #[error(
        "batch interval ends at {end_ms}, {ahead_ms} ms ahead of the collector's clock (more than {max_ms} ms)"
    )]
    FromTheFuture {
        /// End of the batch's interval.
        end_ms: u64,
        /// How far ahead.
        ahead_ms: u64,
        /// The allowed skew.
        max_ms: u64,
    },
    /// The interval ended before the retention window: it would be pruned at once.
    #[error("batch interval ended at {end_ms}, older than the {max_age_ms} ms retention window")]
    TooOld {
        /// End of the batch's interval.
        end_ms: u64,
        /// The retention window.
        max_age_ms: u64,
    },
}

/// The collector's acceptance policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchValidator {
    /// How far ahead of the collector's clock an interval may end.
    pub max_clock_skew: Duration,
    /// How old an interval may be (the raw flows' retention).
    pub max_age: Duration,
}

impl Default for BatchValidator {
    fn default() -> Self {
        Self {
            max_clock_skew: Duration::from_secs(300),
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl BatchValidator {
    /// Decodes bytes and checks them against the format and this policy at `now_ms`.
    pub fn decode(&self, bytes: &[u8], now_ms: u64) -> Result<FlowBatch, ValidationError> {
        let batch = decode_batch(bytes)?;
        self.check(&batch, now_ms)?;
        Ok(batch)
    }

    /// Checks a decoded batch against the format and this policy at `now_ms`.
    pub fn check(&self, batch: &FlowBatch, now_ms: u64) -> Result<(), ValidationError> {
        batch.validate()?;
        let max_ms = self.max_clock_skew.as_millis() as u64;
        if batch.interval_end_ms > now_ms.saturating_add(max_ms) {
            return Err(ValidationError::FromTheFuture {
                end_ms: batch.interval_end_ms,
                ahead_ms: batch.interval_end_ms - now_ms,
                max_ms,
            });
        }
        let max_age_ms = self.max_age.as_millis() as u64;
        if batch.interval_end_ms < now_ms.saturating_sub(max_age_ms) {
            return Err(ValidationError::TooOld {
                end_ms: batch.interval_end_ms,
                max_age_ms,
            });
        }
        Ok(())
    }
}
