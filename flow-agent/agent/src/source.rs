//! Sources: where records enter the pipeline.
//!
//! [`ProbeSource`] is the real one (the kernel, through [`FlowProbe`]); [`ChannelSource`]
//! feeds records from anywhere else (tests, replays).

use std::{future::Future, time::Duration};

use paved_flow_common::FlowRecord;
use tokio::sync::mpsc;

use crate::{FlowProbe, KernelCounters, ProbeError, aggregates::KernelAggregate};

/// Why a source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The kernel probe failed.
    #[error("the flow probe failed")]
    Probe(#[from] ProbeError),
}

/// A stream of kernel flow records.
pub trait FlowSource: Send {
    /// Waits until records are available and appends up to `max` of them to `out`.
    /// Returns how many were appended; 0 means the source has ended. Must be
    /// cancellation safe: dropping the future loses no record.
    fn recv_many<'a>(
        &'a mut self,
        out: &'a mut Vec<FlowRecord>,
        max: usize,
    ) -> impl Future<Output = Result<usize, SourceError>> + Send + 'a;

    /// Appends up to `max` records that are available now, without waiting.
    fn try_recv_many(&mut self, out: &mut Vec<FlowRecord>, max: usize) -> usize;

    /// Asks for interim records of connections open and unreported for at least
    /// `min_age`; they arrive through `recv_many`. Returns the connections examined.
    fn sweep_interim(&mut self, min_age: Duration) -> Result<usize, SourceError> {
        let _ = min_age;
        Ok(0)
    }

    /// Appends the aggregates summed before the source (by the kernel) since the last
    /// call, and starts new ones. Returns how many were appended.
    fn drain_aggregates(&mut self, out: &mut Vec<KernelAggregate>) -> Result<usize, SourceError> {
        let _ = out;
        Ok(0)
    }

    /// Asks the source to keep only about `rate` of the connections itself. Returns
    /// whether it does; if not, the pipeline samples the records it gets.
    fn set_sampling_rate(&mut self, rate: f64) -> bool {
        let _ = rate;
        false
    }

    /// What was counted before the source (records lost, sampled out), since it started.
    fn counters(&self) -> Result<KernelCounters, SourceError> {
        Ok(KernelCounters::default())
    }
}

/// The kernel probe as a source.
pub struct ProbeSource {
    probe: FlowProbe,
}

impl ProbeSource {
    /// Wraps a started probe.
    pub fn new(probe: FlowProbe) -> Self {
        Self { probe }
    }

    /// The probe, e.g. for its program statistics.
    pub fn probe(&self) -> &FlowProbe {
        &self.probe
    }
}

impl FlowSource for ProbeSource {
    async fn recv_many(
        &mut self,
        out: &mut Vec<FlowRecord>,
        max: usize,
    ) -> Result<usize, SourceError> {
        Ok(self.probe.recv_many(out, max).await?)
    }

    fn try_recv_many(&mut self, out: &mut Vec<FlowRecord>, max: usize) -> usize {
        let mut appended = 0;
        while appended < max {
            let Some(record) = self.probe.try_recv() else {
                break;
            };
            out.push(record);
            appended += 1;
        }
        appended
    }

    fn sweep_interim(&mut self, min_age: Duration) -> Result<usize, SourceError> {
        let report = self.probe.sweep_interim(min_age)?;
        if report.truncated {
            tracing::warn!(
                sockets = report.sockets,
                "interim sweep stopped at its bound; the rest get interim records next time"
            );
        }
        Ok(report.sockets)
    }

    fn drain_aggregates(&mut self, out: &mut Vec<KernelAggregate>) -> Result<usize, SourceError> {
        Ok(self.probe.drain_aggregates(out)?)
    }

    fn set_sampling_rate(&mut self, rate: f64) -> bool {
        match self.probe.set_sampling_rate(rate) {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(error = %err, "setting the kernel's sampling rate failed; sampling records instead");
                false
            }
        }
    }

    fn counters(&self) -> Result<KernelCounters, SourceError> {
        Ok(self.probe.counters()?)
    }
}

/// Records sent from elsewhere in the process.
pub struct ChannelSource {
    rx: mpsc::Receiver<FlowRecord>,
}

impl ChannelSource {
    /// A source and the sender that feeds it; the source ends when every sender is
    /// dropped.
    pub fn new(capacity: usize) -> (mpsc::Sender<FlowRecord>, Self) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (tx, Self { rx })
    }
}

impl FlowSource for ChannelSource {
    async fn recv_many(
        &mut self,
        out: &mut Vec<FlowRecord>,
        max: usize,
    ) -> Result<usize, SourceError> {
        Ok(self.rx.recv_many(out, max.max(1)).await)
    }

    fn try_recv_many(&mut self, out: &mut Vec<FlowRecord>, max: usize) -> usize {
        let mut appended = 0;
        while appended < max {
            let Ok(record) = self.rx.try_recv() else {
                break;
            };
            out.push(record);
            appended += 1;
        }
        appended
    }
}
