//! Metrics that plugins define (`proxy_define_metric`), exported in Prometheus' text format
//! on the gateway's `/metrics` alongside the host's own.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::abi::{HostResult, MetricType, Status};

/// Upper bounds of histogram buckets: powers of 4 from 1 to about 4^15 (~10^9).
const BUCKETS: [u64; 16] = {
    let mut b = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        b[i] = 1u64 << (2 * i);
        i += 1;
    }
    b
};

#[derive(Debug)]
enum Value {
    Counter(AtomicU64),
    Gauge(AtomicI64),
    Histogram {
        buckets: [AtomicU64; 16],
        count: AtomicU64,
        sum: AtomicU64,
    },
}

#[derive(Debug)]
struct Metric {
    name: String,
    value: Value,
}

/// Every plugin-defined metric of the process, by ID. Defining a name twice yields the same
/// ID, so every instance of a plugin shares its metrics.
#[derive(Debug, Default)]
pub struct MetricsRegistry {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_name: HashMap<String, u32>,
    metrics: Vec<std::sync::Arc<Metric>>,
}

/// At most this many metrics: names come from plugins, and each costs memory forever.
const MAX_METRICS: usize = 10_000;

impl MetricsRegistry {
    /// Defines (or finds) the metric `name` of the given type.
    pub fn define(&self, kind: MetricType, name: &str) -> HostResult<u32> {
        if name.is_empty() || name.len() > 256 {
            return Err(Status::BadArgument);
        }
        let mut inner = self.inner.write().map_err(|_| Status::InternalFailure)?;
        if let Some(&id) = inner.by_name.get(name) {
            let same_kind = matches!(
                (&inner.metrics[id as usize].value, kind),
                (Value::Counter(_), MetricType::Counter)
                    | (Value::Gauge(_), MetricType::Gauge)
                    | (Value::Histogram { .. }, MetricType::Histogram)
            );
            return if same_kind {
                Ok(id)
            } else {
                Err(Status::BadArgument)
            };
        }
        if inner.metrics.len() >= MAX_METRICS {
            return Err(Status::InternalFailure);
        }
        let value = match kind {
            MetricType::Counter => Value::Counter(AtomicU64::new(0)),
            MetricType::Gauge => Value::Gauge(AtomicI64::new(0)),
            MetricType::Histogram => Value::Histogram {
                buckets: Default::default(),
                count: AtomicU64::new(0),
                sum: AtomicU64::new(0),
            },
        };
        let id = inner.metrics.len() as u32;
        inner.metrics.push(std::sync::Arc::new(Metric {
            name: name.to_owned(),
            value,
        }));
        inner.by_name.insert(name.to_owned(), id);
        Ok(id)
    }

    fn metric(&self, id: u32) -> HostResult<std::sync::Arc<Metric>> {
        let inner = self.inner.read().map_err(|_| Status::InternalFailure)?;
        inner
            .metrics
            .get(id as usize)
            .cloned()
            .ok_or(Status::NotFound)
    }

    /// Adds `offset` to a counter (which only goes up) or a gauge.
    pub fn increment(&self, id: u32, offset: i64) -> HostResult {
        match &self.metric(id)?.value {
            Value::Counter(c) if offset >= 0 => {
                c.fetch_add(offset as u64, Ordering::Relaxed);
                Ok(())
            }
            Value::Gauge(g) => {
                g.fetch_add(offset, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(Status::BadArgument),
        }
    }

    /// Sets a counter or gauge to `value`, or records `value` in a histogram.
    pub fn record(&self, id: u32, value: u64) -> HostResult {
        match &self.metric(id)?.value {
            Value::Counter(c) => c.store(value, Ordering::Relaxed),
            Value::Gauge(g) => g.store(value as i64, Ordering::Relaxed),
            Value::Histogram {
                buckets,
                count,
                sum,
            } => {
                if let Some(i) = BUCKETS.iter().position(|bound| value <= *bound) {
                    buckets[i].fetch_add(1, Ordering::Relaxed);
                }
                count.fetch_add(1, Ordering::Relaxed);
                sum.fetch_add(value, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The value of a counter or gauge; histograms have no single value.
    pub fn get(&self, id: u32) -> HostResult<u64> {
        match &self.metric(id)?.value {
            Value::Counter(c) => Ok(c.load(Ordering::Relaxed)),
            Value::Gauge(g) => Ok(g.load(Ordering::Relaxed) as u64),
            Value::Histogram { .. } => Err(Status::BadArgument),
        }
    }

    /// Every metric in Prometheus' text exposition format, names prefixed with `prefix`.
    pub fn render_prometheus(&self, prefix: &str) -> String {
        let Ok(inner) = self.inner.read() else {
            return String::new();
        };
        let mut out = String::new();
        for metric in &inner.metrics {
            let name = format!("{prefix}{}", sanitize(&metric.name));
            // Writing into a String cannot fail.
            let _ = match &metric.value {
                Value::Counter(c) => writeln!(
                    out,
                    "# TYPE {name} counter\n{name} {}",
                    c.load(Ordering::Relaxed)
                ),
                Value::Gauge(g) => writeln!(
                    out,
                    "# TYPE {name} gauge\n{name} {}",
                    g.load(Ordering::Relaxed)
                ),
                Value::Histogram {
                    buckets,
                    count,
                    sum,
                } => {
                    let _ = writeln!(out, "# TYPE {name} histogram");
                    let mut cumulative = 0;
                    for (bound, bucket) in BUCKETS.iter().zip(buckets) {
                        cumulative += bucket.load(Ordering::Relaxed);
                        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
                    }
                    let total = count.load(Ordering::Relaxed);
                    writeln!(
                        out,
                        "{name}_bucket{{le=\"+Inf\"}} {total}\n{name}_sum {}\n{name}_count {total}",
                        sum.load(Ordering::Relaxed)
                    )
                }
            };
        }
        out
    }
}

/// Prometheus metric names allow `[a-zA-Z0-9_:]`; plugins use dots and dashes too.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_histograms_follow_envoy_semantics() {
        let registry = MetricsRegistry::default();
        let counter = registry
            .define(MetricType::Counter, "req.total")
            .expect("defined");
        assert_eq!(
            registry.define(MetricType::Counter, "req.total"),
            Ok(counter)
        );
        assert_eq!(
            registry.define(MetricType::Gauge, "req.total"),
            Err(Status::BadArgument)
        );
        registry.increment(counter, 2).expect("counter up");
        assert_eq!(registry.increment(counter, -1), Err(Status::BadArgument));
        assert_eq!(registry.get(counter), Ok(2));

        let gauge = registry
            .define(MetricType::Gauge, "in_flight")
            .expect("defined");
        registry.increment(gauge, 5).expect("up");
        registry.increment(gauge, -2).expect("down");
        assert_eq!(registry.get(gauge), Ok(3));

        let histogram = registry
            .define(MetricType::Histogram, "size")
            .expect("defined");
        registry.record(histogram, 3).expect("recorded");
        registry.record(histogram, 100).expect("recorded");
        assert_eq!(registry.get(histogram), Err(Status::BadArgument));
        assert_eq!(registry.get(999), Err(Status::NotFound));

        let text = registry.render_prometheus("wasm_");
        assert!(text.contains("wasm_req_total 2"), "{text}");
        assert!(text.contains("wasm_in_flight 3"), "{text}");
        assert!(text.contains("wasm_size_bucket{le=\"4\"} 1"), "{text}");
        assert!(text.contains("wasm_size_count 2"), "{text}");
        assert!(text.contains("wasm_size_sum 103"), "{text}");
    }
}
