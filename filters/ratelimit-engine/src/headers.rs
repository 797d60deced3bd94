//! Response headers that tell clients about their limit: `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` (IETF draft "RateLimit header fields for
//! HTTP", delta-seconds form) on every response, and `Retry-After` on 429.

use crate::gcra::Outcome;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// What the client is told: the quota, what is left, and when it is whole again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed at once (the burst).
    pub limit: u32,
    /// Requests still allowed now.
    pub remaining: u32,
    /// Nanoseconds until the full quota is available.
    pub reset_ns: u64,
    /// When denied: nanoseconds until a retry can pass.
    pub retry_after_ns: Option<u64>,
}

impl Quota {
    /// The quota one limit's outcome describes.
    pub fn from_outcome(limit: u32, outcome: &Outcome) -> Quota {
        Quota {
            limit,
            remaining: outcome.remaining,
            reset_ns: outcome.reset_ns,
            retry_after_ns: (!outcome.allowed).then_some(outcome.retry_after_ns),
        }
    }

    /// Of two quotas (a request checked against several limits), the one to report: a
    /// denial before an allowance, then the one with the fewest requests left.
    pub fn tightest(self, other: Quota) -> Quota {
        match (self.retry_after_ns, other.retry_after_ns) {
            (Some(a), Some(b)) => {
                if a >= b {
                    self
                } else {
                    other
                }
            }
            (Some(_), None) => self,
            (None, Some(_)) => other,
            (None, None) => {
                if self.remaining <= other.remaining {
                    self
                } else {
                    other
                }
            }
        }
    }

    /// The response headers, names lowercase. `retry-after` only for a denial.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-remaining", self.remaining.to_string()),
            ("ratelimit-reset", ceil_seconds(self.reset_ns).to_string()),
        ];
        if let Some(retry) = self.retry_after_ns {
            // At least 1: `Retry-After: 0` invites an immediate retry that fails again.
            out.push(("retry-after", ceil_seconds(retry).max(1).to_string()));
        }
        out
    }
}

/// Nanoseconds rounded up to whole seconds.
pub fn ceil_seconds(ns: u64) -> u64 {
    ns.div_ceil(NANOS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcra::Limit;

    #[test]
    fn headers_report_limit_remaining_and_reset_in_whole_seconds() {
        let limit = Limit::new(1.0, 3).unwrap();
        let outcome = limit.check(None, 0, 1);
        let headers = Quota::from_outcome(3, &outcome).headers();
        assert_eq!(
            headers,
            vec![
                ("ratelimit-limit", "3".to_string()),
                ("ratelimit-remaining", "2".to_string()),
                ("ratelimit-reset", "1".to_string()),
            ]
        );
    }

    #[test]
    fn a_denial_adds_retry_after_of_at_least_one_second() {
        let limit = Limit::new(10.0, 1).unwrap();
        let first = limit.check(None, 0, 1);
        let denied = limit.check(first.new_state.as_ref().map(|s| s.as_slice()), 0, 1);
        let headers = Quota::from_outcome(1, &denied).headers();
        assert!(
            headers.contains(&("retry-after", "1".to_string())),
            "{headers:?}"
        );
        assert!(headers.contains(&("ratelimit-remaining", "0".to_string())));
    }

    #[test]
    fn the_tightest_quota_is_reported() {
        let q = |remaining, retry| Quota {
            limit: 10,
            remaining,
            reset_ns: 0,
            retry_after_ns: retry,
        };
        assert_eq!(q(5, None).tightest(q(2, None)), q(2, None));
        assert_eq!(q(5, None).tightest(q(0, Some(3))), q(0, Some(3)));
        assert_eq!(q(0, Some(1)).tightest(q(0, Some(9))), q(0, Some(9)));
    }
}
