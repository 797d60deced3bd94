//! Converting the kernel's record timestamps to wall-clock time.
//!
//! `bpf_ktime_get_ns` is `CLOCK_MONOTONIC`. The offset to the wall clock is sampled
//! again at every interval, so a stepped wall clock (NTP) is followed within one
//! interval.

use std::time::{SystemTime, UNIX_EPOCH};

/// Maps monotonic nanoseconds to Unix milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct KtimeClock {
    /// Wall-clock ns minus monotonic ns at the last refresh.
    offset_ns: i128,
}

impl KtimeClock {
    /// A clock with the offset of now.
    pub fn new() -> Self {
        let mut clock = Self { offset_ns: 0 };
        clock.refresh();
        clock
    }

    /// Samples the offset again.
    pub fn refresh(&mut self) {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        self.offset_ns = wall - i128::from(monotonic_ns());
    }

    /// Unix milliseconds of a `bpf_ktime_get_ns` value.
    pub fn to_unix_ms(&self, ktime_ns: u64) -> u64 {
        let wall_ns = i128::from(ktime_ns) + self.offset_ns;
        u64::try_from(wall_ns.max(0) / 1_000_000).unwrap_or(u64::MAX)
    }
}

impl Default for KtimeClock {
    fn default() -> Self {
        Self::new()
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_in_ktime_maps_to_now_on_the_wall_clock() {
        let clock = KtimeClock::new();
        let mapped = clock.to_unix_ms(monotonic_ns());
        let wall = crate::identity::unix_ms_now();
        assert!(mapped.abs_diff(wall) < 1_000, "{mapped} vs {wall}");
    }
}
