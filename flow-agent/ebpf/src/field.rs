//! Reading a field of a kernel structure at an offset the loader found in BTF.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use paved_flow_common::OFFSET_UNKNOWN;

/// Reads a `T` at `base + offset`, or `None` when the offset is unknown or the read
/// faults.
#[inline(always)]
pub fn read<T>(base: u64, offset: u32) -> Option<T> {
    if offset == OFFSET_UNKNOWN {
        return None;
    }
    let addr = base.wrapping_add(u64::from(offset)) as *const T;
    // SAFETY: bpf_probe_read_kernel copies through the kernel's fault-handling path, so
    // a wrong address yields an error, never a crash.
    unsafe { bpf_probe_read_kernel(addr) }.ok()
}
