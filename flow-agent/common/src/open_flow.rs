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
    /// Thread id of the credited task.
    pub pid: u32,
    /// Process id of the credited task.
    pub tgid: u32,
    /// `comm` of the credited task.
    pub comm: [u8; COMM_LEN],
    /// A `Direction` as `u8`.
    pub direction: u8,
    /// Explicit padding, always zero.
    pub pad: [u8; 7],
}

// 4 u64 + 2 u32 + 16 + 1 + 7 = 64 bytes, no implicit padding.
const _: () = assert!(core::mem::size_of::<OpenFlow>() == 64);

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
