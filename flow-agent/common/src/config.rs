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

/// Everything the loader passes to the programs, stored at index 0 of the offsets map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    /// Where the flow counters are.
    pub tcp_sock: TcpSockOffsets,
    /// How to find the socket an `accept` returned.
    pub fd_walk: FdWalkOffsets,
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

impl KernelOffsets {
    /// Nothing known (no BTF).
    pub const UNKNOWN: Self = Self {
        tcp_sock: TcpSockOffsets::UNKNOWN,
        fd_walk: FdWalkOffsets::UNKNOWN,
    };
}

const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 48);
