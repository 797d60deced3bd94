//! The agent's runtime-reconfigurable settings, delivered through a `watch` channel.
//!
//! A new [`FlowConfig`] sent on the channel takes effect without a restart: the port
//! filters and the sampling rate from the next record on, the interval from the
//! interval in progress (shortened or lengthened). An invalid one is refused with a
//! logged [`ConfigError`] and the previous one stays in force.

use std::{fmt, str::FromStr, time::Duration};

/// Shortest aggregation interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest aggregation interval accepted.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// Default aggregation interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default bound on aggregates per batch: keeps an encoded batch (about 450 bytes per
/// aggregate) well under NATS's default 1 MiB message limit.
pub const DEFAULT_MAX_FLOWS_PER_BATCH: usize = 1_000;

/// What the agent reports and how often.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowConfig {
    /// Aggregation and export interval (default 10 s).
    pub interval: Duration,
    /// Fraction of connections kept, in (0, 1] (default 1: all). The choice is made per
    /// connection (a hash of its identity), so all records of a kept connection are
    /// kept. Sums are not scaled; batches carry the rate.
    pub sampling_rate: f64,
    /// Which service ports are reported.
    pub ports: PortFilter,
    /// Aggregates per batch; an interval with more is sent as several batches.
    pub max_flows_per_batch: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_INTERVAL,
            sampling_rate: 1.0,
            ports: PortFilter::default(),
            max_flows_per_batch: DEFAULT_MAX_FLOWS_PER_BATCH,
        }
    }
}

impl FlowConfig {
    /// Checks the bounds of every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&self.interval) {
            return Err(ConfigError::Interval {
                interval: self.interval,
            });
        }
        if !(self.sampling_rate > 0.0 && self.sampling_rate <= 1.0) {
            return Err(ConfigError::SamplingRate {
                rate: self.sampling_rate,
            });
        }
        if self.max_flows_per_batch == 0 {
            return Err(ConfigError::MaxFlowsPerBatch);
        }
        for range in self.ports.include.iter().chain(&self.ports.exclude) {
            if range.first > range.last {
                return Err(ConfigError::PortRange { range: *range });
            }
        }
        Ok(())
    }
}

/// Why a [`FlowConfig`] was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The interval is outside [`MIN_INTERVAL`]..=[`MAX_INTERVAL`].
    #[error("interval {interval:?} is outside 1 s ..= 1 h")]
    Interval {
        /// The refused interval.
        interval: Duration,
    },
    /// The sampling rate is not in (0, 1].
    #[error("sampling rate {rate} is not in (0, 1]")]
    SamplingRate {
        /// The refused rate.
        rate: f64,
    },
    /// Zero aggregates per batch.
    #[error("max_flows_per_batch must be at least 1")]
    MaxFlowsPerBatch,
    /// A port range whose first port is above its last.
    #[error("port range {range} is empty")]
    PortRange {
        /// The refused range.
        range: PortRange,
    },
    /// A port range that does not parse.
    #[error("`{text}` is not a port or a port range (`443`, `8000-8999`)")]
    PortRangeSyntax {
        /// The text.
        text: String,
    },
}

/// An inclusive range of ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range (inclusive).
    pub last: u16,
}

impl PortRange {
    /// A range of one port.
    pub const fn single(port: u16) -> Self {
        Self {
            first: port,
            last: port,
        }
    }

    /// Whether `port` is in the range.
    pub const fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

impl FromStr for PortRange {
    type Err = ConfigError;

    /// Parses `443` or `8000-8999`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || ConfigError::PortRangeSyntax {
            text: text.to_owned(),
        };
        let (first, last) = match text.trim().split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (text.trim(), text.trim()),
        };
        let range = Self {
            first: first.parse().map_err(|_| syntax())?,
            last: last.parse().map_err(|_| syntax())?,
        };
        if range.first > range.last {
            return Err(ConfigError::PortRange { range });
        }
        Ok(range)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Which service ports are reported. The service port is the server's: the remote port
/// of an outbound connection, the local (listening) port of an inbound one, the remote
/// port when the direction is unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortFilter {
    /// When not empty, only these service ports are reported.
    pub include: Vec<PortRange>,
    /// These service ports are never reported (checked after `include`).
    pub exclude: Vec<PortRange>,
}

impl PortFilter {
    /// Whether a flow with this service port is reported.
    pub fn allows(&self, service_port: u16) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.contains(service_port)))
            && !self.exclude.iter().any(|r| r.contains(service_port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_and_print() {
        assert_eq!("443".parse::<PortRange>(), Ok(PortRange::single(443)));
        assert_eq!(
            " 8000 - 8999 ".parse::<PortRange>(),
            Ok(PortRange {
                first: 8000,
                last: 8999
            })
        );
        assert!("x".parse::<PortRange>().is_err());
        assert!("9-1".parse::<PortRange>().is_err());
        assert!("70000".parse::<PortRange>().is_err());
        assert_eq!(PortRange { first: 1, last: 5 }.to_string(), "1-5");
    }

    #[test]
    fn include_then_exclude() {
        let filter = PortFilter {
            include: vec!["8000-8999".parse().expect("range")],
            exclude: vec![PortRange::single(8080)],
        };
        assert!(filter.allows(8000));
        assert!(!filter.allows(8080));
        assert!(!filter.allows(443));
        assert!(PortFilter::default().allows(1));
    }

    #[test]
    fn out_of_bounds_settings_are_refused() {
        let ok = FlowConfig::default();
        ok.validate().expect("defaults are valid");
        let bad = FlowConfig {
            interval: Duration::from_millis(10),
            ..ok.clone()
        };
        assert!(matches!(bad.validate(), Err(ConfigError::Interval { .. })));
        let bad = FlowConfig {
            sampling_rate: 1.5,
            ..ok.clone()
        };
        assert!(matches!(
            bad.validate(),
            Err(ConfigError::SamplingRate { .. })
        ));
        let bad = FlowConfig {
            ports: PortFilter {
                include: vec![PortRange { first: 9, last: 1 }],
                exclude: vec![],
            },
            ..ok
        };
        assert!(matches!(bad.validate(), Err(ConfigError::PortRange { .. })));
    }
}
