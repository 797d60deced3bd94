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

/// The 8 bytes of a 16-byte address from byte `at` (0 or 8) as one word, for hashing.
#[inline(always)]
pub(crate) fn address_word(address: &[u8; 16], at: usize) -> u64 {
    let mut word = [0u8; 8];
    let mut i = 0;
    while i < 8 {
        word[i] = address[(at + i) & 15];
        i += 1;
    }
    u64::from_ne_bytes(word)
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
