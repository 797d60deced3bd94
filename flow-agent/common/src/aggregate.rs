//! In-kernel aggregation: what the release path adds up per flow key, and the probe's
//! run-time settings.
//!
//! Writing one ring-buffer record per closing socket and summing in user space cost
//! about a third of the probe (the ring writes, then the per-record work in user
//! space). Instead the release program adds each connection to a per-CPU table of
//! [`AggregateSlot`]s keyed by [`AggregateKey`] — the same key the agent's batches use —
//! and user space reads the sums once per interval. Two such tables take turns: the
//! programs write the one [`ProbeConfig::active_aggregates`] names, and the agent flips
//! it before reading the other (see `flow-agent/agent/src/aggregates.rs`).
//!
//! The table is an array probed by a hash of the key ([`slot_index`], at most
//! [`SLOT_PROBES`] slots), not a BPF hash map: a hash map lookup is a helper call that
//! hashes the key and walks a bucket list, and on the development VM it cost about as
//! much as everything else the program does together. An array lookup is inlined by the
//! verifier; a key that finds its few slots taken goes to the ring buffer instead.

use crate::COMM_LEN;

/// Smoothed RTTs below this many microseconds are their own bucket.
pub const RTT_EXACT: u32 = 16;
/// log2 of the buckets per power of two above [`RTT_EXACT`]: 8 buckets, so a bucket's
/// midpoint is within 1/16 of any value in it.
pub const RTT_SUB_BITS: u32 = 3;
/// Highest power of two with buckets of its own (2^24 µs ≈ 16.8 s); larger values go
/// to the last bucket.
pub const RTT_MAX_EXPONENT: u32 = 24;
/// Buckets of the in-kernel RTT histogram: 16 exact ones, then 8 for each power of two
/// from 2^4 to 2^24.
pub const RTT_BUCKETS: usize = (RTT_EXACT + (RTT_MAX_EXPONENT - 3) * (1 << RTT_SUB_BITS)) as usize;

/// The bucket of a smoothed RTT in microseconds. Loop-free, for the verifier: the
/// exponent is found by a fixed binary search.
#[inline(always)]
pub const fn rtt_bucket(rtt_us: u32) -> usize {
    if rtt_us < RTT_EXACT {
        return rtt_us as usize;
    }
    let mut exponent = 0;
    let mut v = rtt_us;
    if v >= 1 << 16 {
        v >>= 16;
        exponent += 16;
    }
    if v >= 1 << 8 {
        v >>= 8;
        exponent += 8;
    }
    if v >= 1 << 4 {
        v >>= 4;
        exponent += 4;
    }
    if v >= 1 << 2 {
        v >>= 2;
        exponent += 2;
    }
    if v >= 1 << 1 {
        exponent += 1;
    }
    if exponent > RTT_MAX_EXPONENT {
        return RTT_BUCKETS - 1;
    }
    let sub = (rtt_us >> (exponent - RTT_SUB_BITS)) & ((1 << RTT_SUB_BITS) - 1);
    (RTT_EXACT + (exponent - 4) * (1 << RTT_SUB_BITS) + sub) as usize
}

/// The value a bucket stands for: exact below [`RTT_EXACT`], else the bucket's midpoint.
pub const fn rtt_bucket_value(bucket: usize) -> u32 {
    let bucket = if bucket >= RTT_BUCKETS {
        RTT_BUCKETS - 1
    } else {
        bucket
    } as u32;
    if bucket < RTT_EXACT {
        return bucket;
    }
    let index = bucket - RTT_EXACT;
    let exponent = 4 + index / (1 << RTT_SUB_BITS);
    let sub = index % (1 << RTT_SUB_BITS);
    let width = 1u32 << (exponent - RTT_SUB_BITS);
    (1u32 << exponent) + sub * width + width / 2
}

/// What a closing connection is summed under.
///
/// Addresses are 16 bytes (IPv4 v4-mapped), as in [`crate::FlowRecord`], carried as
/// two words ([`crate::address_words`]) so the release program moves and compares
/// them in two steps, not sixteen. The client's ephemeral port is not part of the key:
/// it would make every connection its own sum.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AggregateKey {
    /// This host's address ([`AggregateKey::local_bytes`] for its bytes).
    pub local_addr: [u64; 2],
    /// The peer's address ([`AggregateKey::remote_bytes`] for its bytes).
    pub remote_addr: [u64; 2],
    /// Cgroup v2 id of the credited task.
    pub cgroup_id: u64,
    /// Process id (tgid) of the credited task.
    pub tgid: u32,
    /// The server's port: the local one for inbound, the remote one otherwise.
    pub service_port: u16,
    /// A [`crate::Direction`] as `u8`.
    pub direction: u8,
    /// Always zero.
    pub pad: u8,
}

/// The sums of one [`AggregateKey`] on one CPU since user space last read the map.
///
/// Counters are increments: a connection that already had interim records adds only
/// what came after the last one (the open flow remembers what was reported).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AggregateValue {
    /// `bpf_ktime_get_coarse_ns` of the first close summed here (0: nothing summed
    /// yet). The last close's time is not kept: a clock read on every close cost more
    /// than it told (user space takes the time it reads the table as the latest).
    pub first_ns: u64,
    /// Payload bytes sent and acknowledged.
    pub bytes_acked: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Segments received.
    pub segs_in: u64,
    /// Segments sent.
    pub segs_out: u64,
    /// Connections reported for the first time (no interim record before the close).
    pub connections: u32,
    /// Connections closed.
    pub closed: u32,
    /// Retransmitted segments (`tcp_sock.total_retrans`).
    pub total_retrans: u32,
    /// Thread id of the first task credited here.
    pub pid: u32,
    /// `comm` of the first task credited here.
    pub comm: [u8; COMM_LEN],
    /// Connections per smoothed-RTT bucket ([`rtt_bucket`]).
    pub rtt: [u32; RTT_BUCKETS],
}

/// Slots per CPU in each aggregate table: distinct keys one CPU can sum in one interval
/// (more go to the ring buffer). 1,024 slots of 856 bytes: 856 KiB per CPU per table.
pub const AGGREGATE_SLOTS: u32 = 1_024;

/// `u64` words of a slot-use bitmap ([`SlotBits`]).
pub const SLOT_WORDS: usize = AGGREGATE_SLOTS as usize / 64;

/// One bit per slot of an aggregate table: set when the slot is claimed.
pub type SlotBits = [u64; SLOT_WORDS];

/// The word and the bit of slot `index` in a [`SlotBits`] (the word is masked, so it is
/// in range whatever `index` is).
#[inline(always)]
pub const fn slot_bit(index: u32) -> (usize, u64) {
    (
        ((index >> 6) as usize) & (SLOT_WORDS - 1),
        1 << (index & 63),
    )
}

/// Slots a key may occupy, from [`slot_index`] on (linear probing).
pub const SLOT_PROBES: u32 = 4;

/// One entry of an aggregate table: a key and its sums. Empty while `value.closed` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AggregateSlot {
    /// What the slot sums.
    pub key: AggregateKey,
    /// The sums.
    pub value: AggregateValue,
}

impl AggregateSlot {
    /// An empty slot (all zeros).
    pub const EMPTY: Self = Self {
        key: AggregateKey {
            local_addr: [0; 2],
            remote_addr: [0; 2],
            cgroup_id: 0,
            tgid: 0,
            service_port: 0,
            direction: 0,
            pad: 0,
        },
        value: AggregateValue {
            first_ns: 0,
            bytes_acked: 0,
            bytes_received: 0,
            segs_in: 0,
            segs_out: 0,
            connections: 0,
            closed: 0,
            total_retrans: 0,
            pid: 0,
            comm: [0; COMM_LEN],
            rtt: [0; RTT_BUCKETS],
        },
    };
}

impl AggregateKey {
    /// The 16 bytes of this host's address.
    pub const fn local_bytes(&self) -> [u8; 16] {
        crate::address_bytes(self.local_addr)
    }

    /// The 16 bytes of the peer's address.
    pub const fn remote_bytes(&self) -> [u8; 16] {
        crate::address_bytes(self.remote_addr)
    }

    /// Whether `self` and `other` name the same flow, `cgroup_id` aside: the cgroup is
    /// learnt once per slot (it follows from the process), not on every close.
    #[inline(always)]
    pub fn same_flow(&self, other: &Self) -> bool {
        // Word by word: a comparison of the arrays may become a `bcmp` call, which is a
        // byte loop in BPF.
        self.local_addr[0] == other.local_addr[0]
            && self.local_addr[1] == other.local_addr[1]
            && self.remote_addr[0] == other.remote_addr[0]
            && self.remote_addr[1] == other.remote_addr[1]
            && self.tgid == other.tgid
            && self.service_port == other.service_port
            && self.direction == other.direction
    }
}

/// The first slot of `key` in an aggregate table (multiplicative hash of its fields,
/// `cgroup_id` aside).
#[inline(always)]
pub fn slot_index(key: &AggregateKey) -> u32 {
    let (local, remote) = (key.local_addr, key.remote_addr);
    let mixed = (local[0] ^ local[1]).rotate_left(23)
        ^ remote[0]
        ^ remote[1].rotate_left(41)
        ^ (u64::from(key.tgid) << 24)
        ^ (u64::from(key.service_port) << 8)
        ^ u64::from(key.direction);
    ((mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32) & (AGGREGATE_SLOTS - 1)
}

/// Indices of the per-CPU counters in `PROBE_COUNTERS` (`names::COUNTERS_MAP`).
pub mod counter {
    /// Records lost because the ring buffer was full.
    pub const RING_DROPPED: u32 = 0;
    /// Closes that found their aggregate map full and went through the ring instead.
    pub const AGGREGATE_FULL: u32 = 1;
    /// Sockets left out by sampling (at close, or their interim records).
    pub const SAMPLED_OUT: u32 = 2;
    /// Number of counters. (Closes summed into the tables are not counted on every
    /// close: the tables' `closed` sums say it.)
    pub const COUNT: u32 = 3;
}

/// How closes are reported.
pub mod report_mode {
    /// Summed per [`super::AggregateKey`] in the kernel (the default).
    pub const AGGREGATE: u32 = 0;
    /// One ring-buffer record per closing socket, with its full 4-tuple (for
    /// connection-level detail, and the tests that check the kernel's counters).
    pub const PER_CONNECTION: u32 = 1;
}

/// Run-time settings of the programs: one entry in `PROBE_CONFIG`, written by user space.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// A [`report_mode`] value.
    pub mode: u32,
    /// Which of the two aggregate maps the programs write: 0 or 1.
    pub active_aggregates: u32,
    /// Sampling: a socket is kept when [`sample_hash`] of its address is at most this
    /// (`u32::MAX` keeps every socket).
    pub sample_threshold: u32,
    /// Always zero.
    pub pad: u32,
}

impl ProbeConfig {
    /// Aggregate, map 0, no sampling.
    pub const DEFAULT: Self = Self {
        mode: report_mode::AGGREGATE,
        active_aggregates: 0,
        sample_threshold: u32::MAX,
        pad: 0,
    };
}

/// `u64` words of the server-port bitmap (`names::SERVER_PORTS_MAP`): one bit per port.
pub const PORT_WORDS: usize = 65_536 / 64;

/// The server-port bitmap: one bit per port.
pub type PortBits = [u64; PORT_WORDS];

/// The word and the bit of `port` in a [`PortBits`]. Computed on the `u16` (every word
/// index is in range): widened first and masked like [`slot_bit`], the compiler drops the
/// mask after the bind program's port check and the verifier loses the bound.
#[inline(always)]
pub const fn port_bit(port: u16) -> (usize, u64) {
    ((port >> 6) as usize, 1 << (port & 63))
}

/// Whether `port`'s bit is set in `bits`: whether the port takes connections.
#[inline(always)]
pub const fn has_port(bits: &PortBits, port: u16) -> bool {
    let (word, bit) = port_bit(port);
    bits[word] & bit != 0
}

/// The sampling hash of a socket address: the same answer for its interim records and
/// its close. Multiplicative hashing of the address without its low (alignment) bits.
#[inline(always)]
pub const fn sample_hash(sk: u64) -> u32 {
    ((sk >> 6).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

// Layouts are part of the kernel/user contract.
const _: () = assert!(core::mem::size_of::<AggregateKey>() == 48);
const _: () = assert!(core::mem::size_of::<AggregateValue>() == 72 + 4 * RTT_BUCKETS);
const _: () = assert!(core::mem::size_of::<ProbeConfig>() == 16);
const _: () = assert!(RTT_BUCKETS == 184);
const _: () = assert!(core::mem::size_of::<AggregateSlot>() == 48 + 72 + 4 * RTT_BUCKETS);
const _: () = assert!(AGGREGATE_SLOTS.is_power_of_two());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_whose_midpoint_is_within_a_sixteenth() {
        let mut previous = 0;
        for v in (0u32..100_000).chain([1 << 20, (1 << 24) + 5, (1 << 25) - 1]) {
            let b = rtt_bucket(v);
            assert!(b < RTT_BUCKETS);
            assert!(b >= previous || v == 0, "buckets are monotonic at {v}");
            previous = b;
            let mid = rtt_bucket_value(b);
            let error = (i64::from(mid) - i64::from(v)).unsigned_abs();
            assert!(error * 16 <= u64::from(v.max(1)), "{v} -> {b} -> {mid}");
        }
    }

    #[test]
    fn huge_values_go_to_the_last_bucket() {
        assert_eq!(rtt_bucket(u32::MAX), RTT_BUCKETS - 1);
        assert_eq!(rtt_bucket(1 << 25), RTT_BUCKETS - 1);
        assert_eq!(rtt_bucket((1 << 25) - 1), RTT_BUCKETS - 1);
    }

    #[test]
    fn the_sample_hash_spreads_aligned_addresses() {
        let kept = (0..10_000u64)
            .filter(|i| sample_hash(0xffff_8880_0000_0000 + i * 2048) <= u32::MAX / 4)
            .count();
        assert!((2_000..3_000).contains(&kept), "{kept}");
    }
}
