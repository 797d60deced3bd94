//! The generic cell rate algorithm (GCRA): a rate limit whose whole state is one number,
//! the theoretical arrival time (TAT) of the next request.
//!
//! A request at time `t` is allowed when the TAT it leaves behind is no further than
//! `burst × T` ahead of `t` (`T`, the emission interval, is `1 / rate`). So a client that
//! has been idle may send `burst` requests at once, and after that exactly one request per
//! `T`. The state is 8 bytes (the TAT in nanoseconds, little-endian), which is what the
//! plugin keeps in shared data and updates with compare-and-swap.

use std::fmt;

const NANOS_PER_SECOND: f64 = 1e9;

/// A rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Nanoseconds between two requests at the steady rate (`T`).
    interval_ns: u64,
    /// Requests allowed at once after idling.
    burst: u32,
}

/// A limit that cannot be enforced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitError {
    /// The rate is zero, negative, not a number, or above one request per nanosecond.
    Rate(f64),
    /// The burst is zero: no request could ever pass.
    Burst,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::Rate(r) => write!(
                f,
                "rate must be a positive number of requests per second at most 1e9, found {r}"
            ),
            LimitError::Burst => f.write_str("burst must be at least 1"),
        }
    }
}

impl std::error::Error for LimitError {}

/// What a limit says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the request may pass.
    pub allowed: bool,
    /// The state to store when allowed (`None` when denied: the state does not change).
    pub new_state: Option<[u8; 8]>,
    /// Requests that could still pass right now after this one.
    pub remaining: u32,
    /// When denied, how long until this request would be allowed (nanoseconds).
    pub retry_after_ns: u64,
    /// How long until the full burst is available again (nanoseconds).
    pub reset_ns: u64,
}

impl Limit {
    /// A limit of `rate_per_second` requests per second with `burst` at once.
    pub fn new(rate_per_second: f64, burst: u32) -> Result<Limit, LimitError> {
        if !(rate_per_second.is_finite()
            && rate_per_second > 0.0
            && rate_per_second <= NANOS_PER_SECOND)
        {
            return Err(LimitError::Rate(rate_per_second));
        }
        if burst == 0 {
            return Err(LimitError::Burst);
        }
        Ok(Limit {
            interval_ns: ((NANOS_PER_SECOND / rate_per_second).round() as u64).max(1),
            burst,
        })
    }

    /// The steady rate, in requests per second.
    pub fn rate_per_second(&self) -> f64 {
        NANOS_PER_SECOND / self.interval_ns as f64
    }

    /// Requests allowed at once after idling.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The emission interval `T`, in nanoseconds.
    pub fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// Decides a request of `cost` units at `now_ns` given the stored state (absent or
    /// unreadable: a client never seen, or seen long ago).
    pub fn check(&self, state: Option<&[u8]>, now_ns: u64, cost: u32) -> Outcome {
        let tat = decode(state).unwrap_or(now_ns).max(now_ns);
        let window = self.interval_ns.saturating_mul(u64::from(self.burst));
        let increment = self.interval_ns.saturating_mul(u64::from(cost));
        let new_tat = tat.saturating_add(increment);
        let ahead = new_tat - now_ns;
        if ahead <= window {
            Outcome {
                allowed: true,
                new_state: Some(new_tat.to_le_bytes()),
                remaining: ((window - ahead) / self.interval_ns).min(u64::from(u32::MAX)) as u32,
                retry_after_ns: 0,
                reset_ns: ahead,
            }
        } else {
            Outcome {
                allowed: false,
                new_state: None,
                remaining: ((window.saturating_sub(tat - now_ns)) / self.interval_ns) as u32,
                retry_after_ns: ahead - window,
                reset_ns: tat - now_ns,
            }
        }
    }
}

/// The TAT stored in a state, if it is one.
pub fn decode(state: Option<&[u8]>) -> Option<u64> {
    let bytes: [u8; 8] = state?.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    /// Runs requests at the given times against one state, returning which passed.
    fn run(limit: &Limit, times: &[u64]) -> Vec<bool> {
        let mut state: Option<[u8; 8]> = None;
        times
            .iter()
            .map(|&t| {
                let outcome = limit.check(state.as_ref().map(|s| s.as_slice()), t, 1);
                if let Some(s) = outcome.new_state {
                    state = Some(s);
                }
                outcome.allowed
            })
            .collect()
    }

    #[test]
    fn a_burst_passes_at_once_and_the_next_request_is_denied() {
        let limit = Limit::new(10.0, 5).unwrap();
        let got = run(&limit, &[0; 6]);
        assert_eq!(got, vec![true, true, true, true, true, false]);
    }

    #[test]
    fn after_the_burst_exactly_the_rate_passes() {
        // 10 per second: one request every 100 ms once the burst of 5 is spent.
        let limit = Limit::new(10.0, 5).unwrap();
        let mut state = None;
        let mut passed = 0;
        // Hammer every millisecond for 10 seconds.
        for ms in 0..10_000u64 {
            let o = limit.check(
                state.as_ref().map(|s: &[u8; 8]| s.as_slice()),
                ms * 1_000_000,
                1,
            );
            if let Some(s) = o.new_state {
                state = Some(s);
                passed += 1;
            }
        }
        // 5 at once, then one per 100 ms for the remaining 9.999 s: 5 + 99 (the 100th
        // comes at exactly 10 s, outside the run).
        assert_eq!(passed, 5 + 99);
    }

    #[test]
    fn requests_exactly_one_interval_apart_always_pass_at_burst_one() {
        let limit = Limit::new(2.0, 1).unwrap();
        let times: Vec<u64> = (0..20).map(|i| i * SECOND / 2).collect();
        assert!(run(&limit, &times).into_iter().all(|ok| ok));
        assert_eq!(run(&limit, &[0, SECOND / 2 - 1]), vec![true, false]);
    }

    #[test]
    fn a_denied_request_says_when_to_retry_and_leaves_the_state_alone() {
        let limit = Limit::new(1.0, 2).unwrap();
        let first = limit.check(None, 0, 1);
        assert_eq!(
            (first.allowed, first.remaining, first.reset_ns),
            (true, 1, SECOND)
        );
        let second = limit.check(first.new_state.as_ref().map(|s| s.as_slice()), 0, 1);
        assert_eq!(
            (second.allowed, second.remaining, second.reset_ns),
            (true, 0, 2 * SECOND)
        );
        let third = limit.check(second.new_state.as_ref().map(|s| s.as_slice()), 0, 1);
        assert!(!third.allowed);
        assert_eq!(third.new_state, None);
        assert_eq!(third.retry_after_ns, SECOND);
        assert_eq!(third.remaining, 0);
        let later = limit.check(second.new_state.as_ref().map(|s| s.as_slice()), SECOND, 1);
        assert!(later.allowed);
    }

    #[test]
    fn an_idle_client_gets_its_whole_burst_back() {
        let limit = Limit::new(100.0, 10).unwrap();
        let mut state = None;
        for _ in 0..10 {
            state = limit
                .check(state.as_ref().map(|s: &[u8; 8]| s.as_slice()), 0, 1)
                .new_state
                .or(state);
        }
        let o = limit.check(state.as_ref().map(|s| s.as_slice()), 3600 * SECOND, 1);
        assert_eq!((o.allowed, o.remaining), (true, 9));
    }

    #[test]
    fn invalid_limits_are_refused() {
        assert_eq!(Limit::new(0.0, 1), Err(LimitError::Rate(0.0)));
        assert!(Limit::new(f64::NAN, 1).is_err());
        assert_eq!(Limit::new(1.0, 0), Err(LimitError::Burst));
        assert!(decode(Some(b"short")).is_none());
    }
}
