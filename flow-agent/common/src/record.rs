//! The per-connection record the kernel emits.

/// Length of a task's `comm` in the kernel (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// Which side opened the connection, as seen from this host.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The probe saw neither open (the connection predates the probe, or its entry was evicted).
    Unknown = 0,
    /// Active open (`connect`, state `SYN_SENT`): this host is the client.
    Outbound = 1,
    /// Passive open (`SYN_RECV` from a listener): this host is the server.
    Inbound = 2,
}

impl Direction {
    /// Decodes the wire value; unknown values map to [`Direction::Unknown`].
    pub const fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Outbound,
            2 => Self::Inbound,
            _ => Self::Unknown,
        }
    }
}

/// Whether a record closes a flow or reports on one still open.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// The socket reached `TCP_CLOSE`; the counters are final.
    Closed = 1,
    /// A snapshot of a connection still open, emitted by the interim sweep: counters are
    /// cumulative since the open, like those of the final record.
    Interim = 2,
}

impl RecordKind {
    /// Decodes the wire value; `None` for values this build does not know.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Closed),
            2 => Some(Self::Interim),
            _ => None,
        }
    }
}

/// One TCP connection's summary, written by the kernel into the ring buffer.
///
/// Addresses are always 16 bytes: IPv4 is stored v4-mapped (`::ffff:a.b.c.d`).
/// "Local" and "remote" are from this host's socket: for an inbound flow the local
/// port is the listening port. Counters come from `struct tcp_sock` at close (or at the
/// sweep, for an interim record) and are cumulative over the connection's life; a counter
/// whose offset the loader could not find in the kernel's BTF stays 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// `bpf_ktime_get_ns` at the open (0 when the open was not seen).
    pub start_ns: u64,
    /// `bpf_ktime_get_ns` when the record was emitted.
    pub end_ns: u64,
    /// `tcp_sock.bytes_acked`: payload bytes sent and acknowledged by the peer.
    pub bytes_acked: u64,
    /// `tcp_sock.bytes_received`: payload bytes received in order.
    pub bytes_received: u64,
    /// Cgroup v2 id of the task credited with the flow.
    pub cgroup_id: u64,
    /// `tcp_sock.segs_in`: segments received.
    pub segs_in: u32,
    /// `tcp_sock.segs_out`: segments sent.
    pub segs_out: u32,
    /// `tcp_sock.total_retrans`: retransmitted segments over the connection's life.
    pub total_retrans: u32,
    /// Smoothed RTT in microseconds (`tcp_sock.srtt_us >> 3`).
    pub srtt_us: u32,
    /// `tcp:tcp_retransmit_skb` events counted by the probe while the flow was tracked.
    pub retransmits_seen: u32,
    /// Thread id (kernel `pid`) of the task credited with the flow.
    pub pid: u32,
    /// Process id (kernel `tgid`) of the task credited with the flow.
    pub tgid: u32,
    /// Local address (v4-mapped for IPv4).
    pub saddr: [u8; 16],
    /// Remote address (v4-mapped for IPv4).
    pub daddr: [u8; 16],
    /// Local port, host byte order.
    pub sport: u16,
    /// Remote port, host byte order.
    pub dport: u16,
    /// Address family of the socket (`AF_INET` = 2, `AF_INET6` = 10).
    pub family: u16,
    /// A [`Direction`] as `u8`.
    pub direction: u8,
    /// A [`RecordKind`] as `u8`.
    pub kind: u8,
    /// `comm` of the task credited with the flow, NUL-padded.
    pub comm: [u8; COMM_LEN],
    /// Always zero; makes the padding explicit so every byte is defined.
    pub reserved: [u8; 4],
    /// The socket's cookie when it has one (records of the release path; 0 otherwise):
    /// what ties a connection's interim records read through `sock_diag` to its close.
    pub cookie: u64,
}

impl FlowRecord {
    /// An all-zero record, the starting point the kernel fills in.
    pub const fn zeroed() -> Self {
        Self {
            start_ns: 0,
            end_ns: 0,
            bytes_acked: 0,
            bytes_received: 0,
            cgroup_id: 0,
            segs_in: 0,
            segs_out: 0,
            total_retrans: 0,
            srtt_us: 0,
            retransmits_seen: 0,
            pid: 0,
            tgid: 0,
            saddr: [0; 16],
            daddr: [0; 16],
            sport: 0,
            dport: 0,
            family: 0,
            direction: 0,
            kind: 0,
            comm: [0; COMM_LEN],
            reserved: [0; 4],
            cookie: 0,
        }
    }

    /// The decoded direction.
    pub const fn direction(&self) -> Direction {
        Direction::from_u8(self.direction)
    }

    /// The decoded kind, `None` if the kernel side is newer than this build.
    pub const fn kind(&self) -> Option<RecordKind> {
        RecordKind::from_u8(self.kind)
    }

    /// `comm` up to its first NUL byte.
    pub fn comm_bytes(&self) -> &[u8] {
        let end = self
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.comm.len());
        &self.comm[..end]
    }

    /// The sampling hash of the connection's endpoints: the same for every report of
    /// one connection, whoever computes it (the release program, or user space for an
    /// interim record read through `sock_diag`).
    #[inline(always)]
    pub fn endpoint_hash(&self) -> u32 {
        crate::endpoint_hash(
            crate::address_words(&self.saddr),
            crate::address_words(&self.daddr),
            self.sport,
            self.dport,
        )
    }

    /// Duration of the flow in nanoseconds, 0 when the open was not seen.
    pub const fn duration_ns(&self) -> u64 {
        if self.start_ns == 0 {
            0
        } else {
            self.end_ns.saturating_sub(self.start_ns)
        }
    }
}

// The layout is part of the kernel/user contract: make any change to it deliberate.
// 5 u64 + 7 u32 + 2*16 + 3 u16 + 2 u8 + 16 + 4 + u64 = 136, with no implicit padding.
const _: () = assert!(core::mem::size_of::<FlowRecord>() == 136);
const _: () = assert!(core::mem::align_of::<FlowRecord>() == 8);
