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
}

/// Byte offsets to go from the current task to the `struct sock` behind a descriptor:
/// `task->files->fdt->fd[n]->private_data` (a `struct socket`) `->sk`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdWalkOffsets {
    /// `task_struct.files` (pointer).
    pub task_files: u32,
    /// `files_struct.fdt` (pointer).
    pub files_fdt: u32,
    /// `fdtable.fd` (pointer to the array of `struct file *`).
    pub fdtable_fd: u32,
    /// `fdtable.max_fds` (`unsigned int`).
    pub fdtable_max_fds: u32,
    /// `file.private_data` (pointer; the `struct socket` for a socket).
    pub file_private_data: u32,
    /// `socket.sk` (pointer).
    pub socket_sk: u32,
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
}

/// Everything the loader passes to the programs, stored at index 0 of the offsets map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    /// Where the flow counters are.
    pub tcp_sock: TcpSockOffsets,
    /// How to find the socket an `accept` returned.
    pub fd_walk: FdWalkOffsets,
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
    };
}

impl FdWalkOffsets {
    /// Every offset unknown: inbound flows keep the task current at the passive open.
    pub const UNKNOWN: Self = Self {
        task_files: OFFSET_UNKNOWN,
        files_fdt: OFFSET_UNKNOWN,
        fdtable_fd: OFFSET_UNKNOWN,
        fdtable_max_fds: OFFSET_UNKNOWN,
        file_private_data: OFFSET_UNKNOWN,
        socket_sk: OFFSET_UNKNOWN,
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
    };
}

impl KernelOffsets {
    /// Nothing known (no BTF).
    pub const UNKNOWN: Self = Self {
        tcp_sock: TcpSockOffsets::UNKNOWN,
        fd_walk: FdWalkOffsets::UNKNOWN,
        sock: SockOffsets::UNKNOWN,
    };
}

// 6 + 6 + 7 `u32`s, no padding: part of the kernel/user contract.
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 76);
