//! Record types shared by the flow agent's BPF programs and its user-space loader.
//!
//! Everything here is `#[repr(C)]` with explicit padding so that the kernel side
//! (built for `bpfel-unknown-none`) and user space agree on every byte without
//! relying on either compiler's layout choices.
#![no_std]

mod aggregate;
mod config;
pub mod kernel;
mod open_flow;
mod record;
#[cfg(feature = "user")]
mod user;

pub use aggregate::{
    AGGREGATE_SLOTS, AggregateKey, AggregateSlot, AggregateValue, PORT_WORDS, PortBits,
    ProbeConfig, RTT_BUCKETS, SLOT_PROBES, SLOT_WORDS, SlotBits, counter, has_port, port_bit,
    report_mode, rtt_bucket, rtt_bucket_value, sample_hash, slot_bit, slot_index,
};
pub use config::{KernelOffsets, OFFSET_UNKNOWN, SockOffsets, TcpSockOffsets};
pub use open_flow::{OpenFlow, ReportedCounters, sweep};
pub use record::{COMM_LEN, Direction, FlowRecord, RecordKind};

/// The 16 bytes of an address as two native-endian words, in memory order: how the BPF
/// programs carry addresses (they have no unaligned access, so a byte array costs them
/// a load or store per byte).
#[inline(always)]
pub const fn address_words(bytes: &[u8; 16]) -> [u64; 2] {
    let mut words = [[0u8; 8]; 2];
    let mut i = 0;
    while i < 16 {
        words[i / 8][i % 8] = bytes[i];
        i += 1;
    }
    [u64::from_ne_bytes(words[0]), u64::from_ne_bytes(words[1])]
}

/// The 16 bytes of an address carried as [`address_words`].
#[inline(always)]
pub const fn address_bytes(words: [u64; 2]) -> [u8; 16] {
    let (a, b) = (words[0].to_ne_bytes(), words[1].to_ne_bytes());
    [
        a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], b[0], b[1], b[2], b[3], b[4], b[5], b[6],
        b[7],
    ]
}

/// An IPv4 address (as loaded from memory: network order) as the words of its
/// v4-mapped IPv6 form `::ffff:a.b.c.d`.
#[inline(always)]
pub const fn v4_mapped_words(addr: u32) -> [u64; 2] {
    // Memory order of the second word: 0, 0, 0xff, 0xff, then the address's bytes.
    let high = if cfg!(target_endian = "little") {
        0xffff_0000 | ((addr as u64) << 32)
    } else {
        (0xffff << 32) | addr as u64
    };
    [0, high]
}

/// A hash of a connection's two ends, the same whoever computes it (the release
/// program, or user space for an interim record read through `sock_diag`): sampling
/// keeps a connection when it is at most the threshold.
#[inline(always)]
pub const fn endpoint_hash(
    local: [u64; 2],
    remote: [u64; 2],
    local_port: u16,
    remote_port: u16,
) -> u32 {
    let key = (local[0] ^ local[1]).rotate_left(17)
        ^ (remote[0] ^ remote[1])
        ^ (((local_port as u64) << 16) | remote_port as u64);
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

/// Kernel functions (kfuncs) the programs call.
///
/// aya 0.14 cannot relocate calls to kfuncs, so a program calls a reserved helper
/// number instead and the loader rewrites each such call into a call of the kfunc (see
/// `flow-agent/agent/src/kfunc.rs`) before the kernel sees the program.
pub mod kfunc {
    /// Stands for `bpf_rdonly_cast(ptr, btf_id)`. Helper numbers are below 1,000, so no
    /// helper will ever have it; an unpatched call is refused by the verifier as an
    /// unknown helper.
    pub const RDONLY_CAST: i32 = 0x7061_7601;
    /// The kfunc [`RDONLY_CAST`] stands for, by its name in the kernel's BTF.
    pub const RDONLY_CAST_NAME: &str = "bpf_rdonly_cast";
}

/// Names shared by the BPF object and its loader, so a rename breaks the build, not the run.
pub mod names {
    /// Ring buffer that carries [`crate::FlowRecord`]s to user space.
    pub const RECORDS_MAP: &str = "FLOW_RECORDS";
    /// One-entry array holding the [`crate::KernelOffsets`] found in the kernel's BTF.
    pub const OFFSETS_MAP: &str = "KERNEL_OFFSETS";
    /// Per-CPU counters of the programs, indexed by [`crate::counter`].
    pub const COUNTERS_MAP: &str = "PROBE_COUNTERS";
    /// One-entry array holding the [`crate::ProbeConfig`] written by user space.
    pub const CONFIG_MAP: &str = "PROBE_CONFIG";
    /// Which slots of each of [`AGGREGATE_MAPS`] are in use ([`crate::SlotBits`], per CPU).
    pub const SLOTS_USED_MAPS: [&str; 2] = ["FLOW_SLOTS_USED_0", "FLOW_SLOTS_USED_1"];
    /// The two per-CPU tables of [`crate::AggregateSlot`]s the programs take turns in.
    pub const AGGREGATE_MAPS: [&str; 2] = ["FLOW_AGGREGATES_0", "FLOW_AGGREGATES_1"];
    /// LRU hash of the connections open now, by socket address ([`crate::OpenFlow`]).
    pub const OPEN_FLOWS_MAP: &str = "OPEN_FLOWS";
    /// Program attached to `sock:inet_sock_set_state`.
    pub const SET_STATE_PROGRAM: &str = "inet_sock_set_state";
    /// Program attached to `cgroup/sock_release` of the root cgroup: sums each TCP
    /// connection when its owner closes it.
    pub const RELEASE_PROGRAM: &str = "flow_release";
    /// [`RELEASE_PROGRAM`] reading the socket with `bpf_probe_read_kernel`, for kernels
    /// without `bpf_rdonly_cast` to untyped memory (no `BPF_FEAT_RDONLY_CAST_TO_VOID` in
    /// their BTF).
    pub const RELEASE_PROBE_READ_PROGRAM: &str = "flow_release_probe_read";
    /// `cgroup/post_bind4` program: marks the ports TCP sockets bind to.
    pub const BIND4_PROGRAM: &str = "flow_bind4";
    /// `cgroup/post_bind6` program: as [`BIND4_PROGRAM`], for IPv6.
    pub const BIND6_PROGRAM: &str = "flow_bind6";
    /// Bitmap of the local ports that take connections (listeners).
    pub const SERVER_PORTS_MAP: &str = "SERVER_PORTS";
    /// Program attached to `tcp:tcp_retransmit_skb`.
    pub const RETRANSMIT_PROGRAM: &str = "tcp_retransmit_skb";
    /// Raw tracepoint program never attached: user space runs it with
    /// `BPF_PROG_TEST_RUN` to emit interim records (see [`crate::sweep`]).
    pub const SWEEP_PROGRAM: &str = "flow_sweep";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_words_and_bytes_are_inverse() {
        let bytes: [u8; 16] = core::array::from_fn(|i| i as u8 * 17);
        assert_eq!(address_bytes(address_words(&bytes)), bytes);
    }

    #[test]
    fn v4_mapped_words_hold_the_v4_mapped_bytes() {
        let addr = u32::from_ne_bytes([192, 0, 2, 7]);
        assert_eq!(
            address_bytes(v4_mapped_words(addr)),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7]
        );
    }

    #[test]
    fn the_endpoint_hash_depends_on_every_part_of_both_ends() {
        let (a, b) = (v4_mapped_words(0x0100_007f), v4_mapped_words(0x0200_007f));
        let base = endpoint_hash(a, b, 40_000, 443);
        assert_ne!(
            base,
            endpoint_hash(b, a, 40_000, 443),
            "the ends are ordered"
        );
        assert_ne!(base, endpoint_hash(a, b, 40_001, 443));
        assert_ne!(base, endpoint_hash(a, b, 40_000, 444));
    }
}
