//! A small mergeable RTT histogram: exact below 32 µs, then 16 buckets per power of two.
//!
//! Percentiles of percentiles are meaningless, so aggregates carry a histogram rather
//! than p50/p99 values: the collector merges the histograms of an hour's intervals and
//! reads p50/p99 from the sum. With 16 sub-buckets per octave a percentile is off by
//! at most 1/32 of its value (the bucket's midpoint is reported), and a histogram has
//! at most [`RTT_BUCKETS`] entries, stored sparsely.

use serde::{Deserialize, Serialize};

/// Values below this are their own bucket.
const EXACT: u32 = 32;
/// log2 of the sub-buckets per power of two.
const SUB_BITS: u32 = 4;
/// Number of buckets: 32 exact ones, then 16 for each power of two from 2^5 to 2^31.
pub const RTT_BUCKETS: u16 = (EXACT + (32 - 5) * (1 << SUB_BITS)) as u16;

/// Counts of RTT samples (microseconds) per bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RttHistogram {
    /// `(bucket, count)` pairs, buckets strictly ascending and below [`RTT_BUCKETS`],
    /// counts above zero.
    pub buckets: Vec<(u16, u64)>,
}

impl RttHistogram {
    /// The bucket of a value in microseconds.
    pub fn bucket_of(rtt_us: u32) -> u16 {
        if rtt_us < EXACT {
            return rtt_us as u16;
        }
        let exponent = 31 - rtt_us.leading_zeros(); // >= 5
        let sub = (rtt_us >> (exponent - SUB_BITS)) & ((1 << SUB_BITS) - 1);
        (EXACT + (exponent - 5) * (1 << SUB_BITS) + sub) as u16
    }

    /// The value reported for a bucket: exact below 32 µs, else the bucket's midpoint.
    pub fn bucket_value(bucket: u16) -> u32 {
        let bucket = u32::from(bucket.min(RTT_BUCKETS - 1));
        if bucket < EXACT {
            return bucket;
        }
        let index = bucket - EXACT;
        let exponent = 5 + index / (1 << SUB_BITS);
        let sub = index % (1 << SUB_BITS);
        let width = 1u64 << (exponent - SUB_BITS);
        let low = (1u64 << exponent) + u64::from(sub) * width;
        u32::try_from(low + width / 2).unwrap_or(u32::MAX)
    }

    /// Adds one sample.
    pub fn record(&mut self, rtt_us: u32) {
        self.add(Self::bucket_of(rtt_us), 1);
    }

    /// Adds `count` samples of the same value.
    pub fn record_n(&mut self, rtt_us: u32, count: u64) {
        self.add(Self::bucket_of(rtt_us), count);
    }

    fn add(&mut self, bucket: u16, count: u64) {
        if count == 0 {
            return;
        }
        match self.buckets.binary_search_by_key(&bucket, |&(b, _)| b) {
            Ok(i) => self.buckets[i].1 = self.buckets[i].1.saturating_add(count),
            Err(i) => self.buckets.insert(i, (bucket, count)),
        }
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Self) {
        for &(bucket, count) in &other.buckets {
            self.add(bucket, count);
        }
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .fold(0u64, |sum, &(_, c)| sum.saturating_add(c))
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The value at quantile `q` (0.0 ..= 1.0), `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<u32> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        // The rank of the sample at q, 1-based (nearest-rank method).
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for &(bucket, count) in &self.buckets {
            seen = seen.saturating_add(count);
            if seen >= rank {
                return Some(Self::bucket_value(bucket));
            }
        }
        self.buckets.last().map(|&(b, _)| Self::bucket_value(b))
    }

    /// Median RTT in microseconds.
    pub fn p50(&self) -> Option<u32> {
        self.quantile(0.5)
    }

    /// 99th percentile RTT in microseconds.
    pub fn p99(&self) -> Option<u32> {
        self.quantile(0.99)
    }

    /// Checks the invariants of the wire form; `Err` says which entry breaks which.
    pub fn check(&self) -> Result<(), String> {
        let mut previous: Option<u16> = None;
        for (i, &(bucket, count)) in self.buckets.iter().enumerate() {
            if bucket >= RTT_BUCKETS {
                return Err(format!(
                    "buckets[{i}]: bucket {bucket} is out of range (there are {RTT_BUCKETS})"
                ));
            }
            if count == 0 {
                return Err(format!("buckets[{i}]: count is 0"));
            }
            if previous.is_some_and(|p| p >= bucket) {
                return Err(format!(
                    "buckets[{i}]: bucket {bucket} is not above the previous one"
                ));
            }
            previous = Some(bucket);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact_and_large_ones_within_one_thirty_second() {
        for v in 0..EXACT {
            assert_eq!(RttHistogram::bucket_value(RttHistogram::bucket_of(v)), v);
        }
        for v in [32u32, 33, 100, 1_000, 12_345, 999_999, 50_000_000, u32::MAX] {
            let got = RttHistogram::bucket_value(RttHistogram::bucket_of(v));
            let err = (f64::from(got) - f64::from(v)).abs() / f64::from(v);
            assert!(err <= 1.0 / 32.0 + 1e-9, "{v} -> {got} ({err})");
        }
        assert_eq!(RttHistogram::bucket_of(u32::MAX), RTT_BUCKETS - 1);
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut last = 0;
        for v in (0..2_000_000u32).step_by(7) {
            let b = RttHistogram::bucket_of(v);
            assert!(b >= last);
            last = b;
        }
    }

    #[test]
    fn quantiles_follow_the_samples_and_merge_like_one_histogram() {
        let mut a = RttHistogram::default();
        let mut b = RttHistogram::default();
        for v in 1..=99u32 {
            a.record(10);
            b.record(1_000 + v);
        }
        a.record(10);
        b.record(50_000);
        let mut all = a.clone();
        all.merge(&b);
        assert_eq!(all.count(), 200);
        assert_eq!(all.p50(), Some(10));
        let p99 = all.p99().expect("samples");
        assert!((1_050..=1_130).contains(&p99), "{p99}");
        assert_eq!(all.quantile(1.0).map(|v| v > 48_000), Some(true));
        assert_eq!(RttHistogram::default().p50(), None);
        all.check().expect("merged histogram is well formed");
    }

    #[test]
    fn malformed_histograms_are_refused_with_the_entry() {
        let h = RttHistogram {
            buckets: vec![(3, 1), (3, 2)],
        };
        assert!(h.check().unwrap_err().contains("buckets[1]"));
        let h = RttHistogram {
            buckets: vec![(RTT_BUCKETS, 1)],
        };
        assert!(h.check().unwrap_err().contains("out of range"));
        let h = RttHistogram {
            buckets: vec![(1, 0)],
        };
        assert!(h.check().unwrap_err().contains("count is 0"));
    }
}
