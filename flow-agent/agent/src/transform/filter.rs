//! Port filters and sampling.

use std::hash::{Hash, Hasher};

use paved_flow_common::FlowRecord;

use crate::{
    config::{FlowConfig, PortFilter},
    flow::{FlowId, service_port},
};

/// What the filter decided for a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Counted.
    Keep,
    /// Its service port is filtered out.
    Filtered,
    /// Its connection is not in the sample.
    SampledOut,
}

/// The record filter of one configuration.
#[derive(Clone, Debug)]
pub struct RecordFilter {
    ports: PortFilter,
    /// Keep a connection when its hash is below this (`u64::MAX`: keep all).
    threshold: u64,
    sampling: bool,
}

impl RecordFilter {
    /// The filter for `config` (assumed valid). `sample` says whether it samples
    /// records itself (not when the source already does, as the kernel probe does).
    pub fn new(config: &FlowConfig, sample: bool) -> Self {
        let rate = config.sampling_rate.clamp(0.0, 1.0);
        Self {
            ports: config.ports.clone(),
            threshold: (rate * u64::MAX as f64) as u64,
            sampling: sample && rate < 1.0,
        }
    }

    /// Whether the port filters keep flows to service port `port`.
    pub fn allows_port(&self, port: u16) -> bool {
        self.ports.allows(port)
    }

    /// Decides for one record. Sampling hashes the connection's identity, so all
    /// records of one connection get the same answer.
    pub fn check(&self, record: &FlowRecord) -> Verdict {
        if !self.ports.allows(service_port(record)) {
            return Verdict::Filtered;
        }
        if self.sampling {
            // SipHash with fixed keys: deterministic across records and restarts.
            let mut hasher = std::hash::DefaultHasher::new();
            FlowId::of(record).hash(&mut hasher);
            if hasher.finish() > self.threshold {
                return Verdict::SampledOut;
            }
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use paved_flow_common::Direction;

    use super::*;
    use crate::config::PortRange;

    fn record(start_ns: u64, sport: u16, dport: u16) -> FlowRecord {
        let mut r = FlowRecord::zeroed();
        r.start_ns = start_ns;
        r.sport = sport;
        r.dport = dport;
        r.direction = Direction::Outbound as u8;
        r
    }

    #[test]
    fn ports_are_filtered_on_the_service_port() {
        let filter = RecordFilter::new(
            &FlowConfig {
                ports: PortFilter {
                    include: vec![],
                    exclude: vec![PortRange::single(22)],
                },
                ..FlowConfig::default()
            },
            true,
        );
        assert_eq!(filter.check(&record(1, 50_000, 22)), Verdict::Filtered);
        assert_eq!(filter.check(&record(1, 22, 443)), Verdict::Keep);
    }

    #[test]
    fn sampling_keeps_about_the_rate_and_is_stable_per_connection() {
        let filter = RecordFilter::new(
            &FlowConfig {
                sampling_rate: 0.25,
                ..FlowConfig::default()
            },
            true,
        );
        let kept = (0..10_000u64)
            .filter(|&i| filter.check(&record(i + 1, 40_000, 443)) == Verdict::Keep)
            .count();
        assert!((2_000..3_000).contains(&kept), "{kept}");
        let r = record(77, 40_000, 443);
        let first = filter.check(&r);
        assert!((0..10).all(|_| filter.check(&r) == first));
    }

    #[test]
    fn a_source_that_samples_itself_is_not_sampled_again() {
        let filter = RecordFilter::new(
            &FlowConfig {
                sampling_rate: 0.01,
                ..FlowConfig::default()
            },
            false,
        );
        assert!((0..1_000u64).all(|i| filter.check(&record(i + 1, 40_000, 443)) == Verdict::Keep));
        assert!(filter.allows_port(443));
    }
}
