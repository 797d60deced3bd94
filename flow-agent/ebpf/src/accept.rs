//! `syscalls:sys_exit_accept{,4}`: credits an inbound flow to the task that accepted it.
//!
//! The passive open (`SYN_RECV`) happens while the kernel processes a packet, so the
//! task current at that moment is whoever was interrupted. `accept()` returns in the
//! server's own context with a descriptor for the very socket the open was recorded
//! under; the program follows `task->files->fdt->fd[ret]->private_data->sk` with
//! offsets from BTF to find it. This runs once per accept, not per packet.
//!
//! (An fexit on `inet_csk_accept` would hand over the socket directly, but the kernel
//! of the development machines refused to load it with `EPERM`, even as root; see
//! flow-agent/README.md.)

use aya_ebpf::{
    helpers::{bpf_probe_read_kernel, generated::bpf_get_current_task},
    macros::tracepoint,
    programs::TracePointContext,
};
use paved_flow_common::{Direction, FdWalkOffsets, OFFSET_UNKNOWN, kernel::sys_exit_accept as tp};

use crate::{
    context::load,
    maps::{KERNEL_OFFSETS, OPEN_FLOWS},
    task::Task,
};

/// Entry point; the name is `names::ACCEPT_PROGRAM`. Attached to both accept syscalls.
#[tracepoint]
pub fn accept_exit(ctx: TracePointContext) -> u32 {
    // SAFETY: `ret` is an aligned 8-byte field of the syscall exit record.
    let ret = unsafe { load::<i64>(&ctx, tp::RET) };
    if ret < 0 {
        return 0;
    }
    let Some(offsets) = KERNEL_OFFSETS.get(0) else {
        return 0;
    };
    let Some(sk) = socket_of_fd(&offsets.fd_walk, ret as u64) else {
        return 0;
    };
    if let Some(open) = OPEN_FLOWS.get_ptr_mut(sk) {
        let task = Task::current();
        // SAFETY: the pointer is a live map value; a racing close at worst loses this
        // update, which leaves the open-time credit in place.
        unsafe {
            if (*open).direction == Direction::Inbound as u8 {
                (*open).pid = task.pid;
                (*open).tgid = task.tgid;
                (*open).comm = task.comm;
                (*open).cgroup_id = task.cgroup_id;
            }
        }
    }
    0
}

/// Reads the pointer at `base + offset`; `None` if the offset is unknown, the read
/// faults or the pointer is NULL.
#[inline(always)]
fn read_ptr(base: u64, offset: u32) -> Option<u64> {
    if offset == OFFSET_UNKNOWN || base == 0 {
        return None;
    }
    let addr = base.wrapping_add(u64::from(offset)) as *const u64;
    // SAFETY: bpf_probe_read_kernel copies through the kernel's fault-handling path, so
    // a stale or wrong address yields an error, never a crash.
    let value = unsafe { bpf_probe_read_kernel(addr) }.ok()?;
    (value != 0).then_some(value)
}

/// The `struct sock` behind descriptor `fd` of the current task.
#[inline(always)]
fn socket_of_fd(offsets: &FdWalkOffsets, fd: u64) -> Option<u64> {
    // SAFETY: helper without arguments, allowed for tracepoint programs.
    let task = unsafe { bpf_get_current_task() };
    let files = read_ptr(task, offsets.task_files)?;
    let fdt = read_ptr(files, offsets.files_fdt)?;
    if offsets.fdtable_max_fds == OFFSET_UNKNOWN {
        return None;
    }
    let max_fds_addr = fdt.wrapping_add(u64::from(offsets.fdtable_max_fds)) as *const u32;
    // SAFETY: as in `read_ptr`, a faulting read is an error.
    let max_fds = unsafe { bpf_probe_read_kernel(max_fds_addr) }.ok()?;
    if fd >= u64::from(max_fds) {
        return None;
    }
    let fd_array = read_ptr(fdt, offsets.fdtable_fd)?;
    let file = read_ptr(fd_array.wrapping_add(fd * 8), 0)?;
    let socket = read_ptr(file, offsets.file_private_data)?;
    read_ptr(socket, offsets.socket_sk)
}
