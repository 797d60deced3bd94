//! Kernel structure offsets that user space finds in BTF and hands to the BPF programs.
//!
//! `bpf-linker` emits no CO-RE relocations for Rust code, so the programs cannot ask
//! the loader to patch field accesses. Instead the loader reads the offsets from
//! `/sys/kernel/btf/vmlinux` and stores them in a one-entry array map; the programs
//! read each field with `bpf_probe_read_kernel(base + offset)`.

/// Marks an offset the loader could not find; the program then skips that read.
pub const OFFSET_UNKNOWN: u32 = u32::MAX;

/// Byte offsets of the counters read from `struct tcp_sock` at close.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSockOffsets {
    /// Offset of `bytes_acked` (`u64`).
    pub bytes_acked: u32,
    /// Offset of `bytes_received` (`u64`).
    pub bytes_received: u32,
    /// Offset of `segs_in` (`u32`).
    pub segs_in: u32,
    /// Offset of `segs_out` (`u32`).
    pub segs_out: u32,
    /// Offset of `total_retrans` (`u32`).
    pub total_retrans: u32,
    /// Offset of `srtt_us` (`u32`, RTT in microseconds shifted left by 3).
    pub srtt_us: u32,
    /// Offset of `write_seq` (`u32`, one past the last byte the application wrote).
    pub write_seq: u32,
    /// Offset of `snd_una` (`u32`, the first byte not yet acknowledged).
    pub snd_una: u32,
}

/// Byte offsets of the endpoints in `struct sock_common` (the first member of every
/// `struct sock`, so they are offsets from the socket address too).
///
/// The interim sweep reads them because it runs outside any tracepoint that would
/// carry the addresses; at close the tracepoint record has them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOffsets {
    /// `skc_daddr` (`__be32`, remote IPv4 address).
    pub daddr: u32,
    /// `skc_rcv_saddr` (`__be32`, local IPv4 address).
    pub rcv_saddr: u32,
    /// `skc_dport` (`__be16`, remote port in network order).
    pub dport: u32,
    /// `skc_num` (`__u16`, local port in host order).
    pub num: u32,
    /// `skc_family` (`unsigned short`).
    pub family: u32,
    /// `skc_v6_daddr` (`struct in6_addr`).
    pub v6_daddr: u32,
    /// `skc_v6_rcv_saddr` (`struct in6_addr`).
    pub v6_rcv_saddr: u32,
    /// `skc_cookie` (`atomic64_t`): non-zero once anything asked for the socket's
    /// cookie, e.g. a `sock_diag` dump (the interim sweep).
    pub cookie: u32,
}

/// Everything the loader passes to the programs, stored at index 0 of the offsets map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    /// Where the flow counters are.
    pub tcp_sock: TcpSockOffsets,
    /// Where the endpoints are, for interim records.
    pub sock: SockOffsets,
}

impl TcpSockOffsets {
    /// Every offset unknown: the programs emit records with zero counters.
    pub const UNKNOWN: Self = Self {
        bytes_acked: OFFSET_UNKNOWN,
        bytes_received: OFFSET_UNKNOWN,
        segs_in: OFFSET_UNKNOWN,
        segs_out: OFFSET_UNKNOWN,
        total_retrans: OFFSET_UNKNOWN,
        srtt_us: OFFSET_UNKNOWN,
        write_seq: OFFSET_UNKNOWN,
        snd_una: OFFSET_UNKNOWN,
    };
}

impl SockOffsets {
    /// Every offset unknown: interim records carry no endpoints (and are not emitted).
    pub const UNKNOWN: Self = Self {
        daddr: OFFSET_UNKNOWN,
        rcv_saddr: OFFSET_UNKNOWN,
        dport: OFFSET_UNKNOWN,
        num: OFFSET_UNKNOWN,
        family: OFFSET_UNKNOWN,
        v6_daddr: OFFSET_UNKNOWN,
        v6_rcv_saddr: OFFSET_UNKNOWN,
        cookie: OFFSET_UNKNOWN,
    };
}

impl KernelOffsets {
    /// Nothing known (no BTF).
    pub const UNKNOWN: Self = Self {
        tcp_sock: TcpSockOffsets::UNKNOWN,
        sock: SockOffsets::UNKNOWN,
    };
}

// 8 + 8 `u32`s, no padding: part of the kernel/user contract.
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 64);
