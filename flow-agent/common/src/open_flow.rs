//! What the kernel remembers about a connection between its open and its close, and the
//! calling convention of the interim sweep that reports on it while it is open.

use crate::COMM_LEN;

/// The value of the `OPEN_FLOWS` LRU hash, keyed by the socket's kernel address.
///
/// Shared with user space so the agent can list the open sockets (the keys) for the
/// interim sweep; user space never writes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFlow {
    /// `bpf_ktime_get_ns` at the open.
    pub start_ns: u64,
    /// Cgroup of the credited task.
    pub cgroup_id: u64,
    /// Retransmissions seen by `tcp_retransmit_skb`.
    pub retransmits: u64,
    /// `bpf_ktime_get_ns` of the last record about this flow (the open until the first
    /// interim record): the sweep skips flows reported more recently than it is asked.
    pub last_report_ns: u64,
    /// The counters the last interim record carried (zero before one): the close adds
    /// only what came after them to its aggregate.
    pub reported: ReportedCounters,
    /// Thread id of the credited task.
    pub pid: u32,
    /// Process id of the credited task.
    pub tgid: u32,
    /// `comm` of the credited task.
    pub comm: [u8; COMM_LEN],
    /// A `Direction` as `u8`.
    pub direction: u8,
    /// 1 once an interim record reported the connection (it was counted then).
    pub reported_once: u8,
    /// 1 once the credited task is the socket's owner: the task that connected, or
    /// the one that closed an inbound socket (see `ebpf/src/set_state.rs`).
    pub owner_known: u8,
    /// Explicit padding, always zero.
    pub pad: [u8; 5],
}

/// Cumulative counters of a connection as of its last interim record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportedCounters {
    /// `tcp_sock.bytes_acked`.
    pub bytes_acked: u64,
    /// `tcp_sock.bytes_received`.
    pub bytes_received: u64,
    /// `tcp_sock.segs_in`.
    pub segs_in: u32,
    /// `tcp_sock.segs_out`.
    pub segs_out: u32,
    /// `tcp_sock.total_retrans`.
    pub total_retrans: u32,
    /// Explicit padding, always zero.
    pub pad: u32,
}

impl ReportedCounters {
    /// Nothing reported yet.
    pub const ZERO: Self = Self {
        bytes_acked: 0,
        bytes_received: 0,
        segs_in: 0,
        segs_out: 0,
        total_retrans: 0,
        pad: 0,
    };
}

// 4 u64 + 32 + 2 u32 + 16 + 3 + 5 = 96 bytes, no implicit padding.
const _: () = assert!(core::mem::size_of::<OpenFlow>() == 96);

/// How user space asks for interim records: it runs the sweep program with
/// `BPF_PROG_TEST_RUN`, passing twelve `u64` arguments (the most a raw tracepoint
/// program can receive).
pub mod sweep {
    /// Argument 0: the minimum time in nanoseconds since a flow's last report for it
    /// to get an interim record now.
    pub const ARG_MIN_AGE_NS: usize = 0;
    /// Arguments 1..=11: socket addresses (keys of `OPEN_FLOWS`); 0 ends the list.
    pub const SOCKETS_PER_RUN: usize = 11;
    /// Number of `u64` arguments the program reads.
    pub const ARGS: usize = 1 + SOCKETS_PER_RUN;
}
