//! The task the current program runs on behalf of.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, generated::bpf_get_current_cgroup_id,
};
use paved_flow_common::COMM_LEN;

/// pid, tgid, comm and cgroup of the current task.
pub struct Task {
    /// Thread id.
    pub pid: u32,
    /// Process id.
    pub tgid: u32,
    /// `comm`, NUL-padded (zeros if the helper failed).
    pub comm: [u8; COMM_LEN],
    /// Cgroup v2 id.
    pub cgroup_id: u64,
}

impl Task {
    /// Reads the current task's identity.
    #[inline(always)]
    pub fn current() -> Self {
        let pid_tgid = bpf_get_current_pid_tgid();
        Self {
            // Low half is the thread id, high half the process id.
            pid: pid_tgid as u32,
            tgid: (pid_tgid >> 32) as u32,
            comm: bpf_get_current_comm().unwrap_or([0; COMM_LEN]),
            // SAFETY: helper without arguments, allowed for tracing programs.
            cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        }
    }
}
