//! Reading a field of a kernel structure at an offset the loader found in BTF.
//!
//! Two ways, one interface ([`KernelMemory`]): a `bpf_probe_read_kernel` helper call per
//! field ([`ProbeRead`], any kernel with BTF), or plain loads through a pointer the
//! verifier knows as untrusted read-only memory ([`DirectLoad`]), which it compiles to
//! loads with a fault handler — no call per field. Where the release program spends
//! its time, the helper calls were about two fifths of it (docs/flow-telemetry.md).

use aya_ebpf::helpers::bpf_probe_read_kernel;
use paved_flow_common::{OFFSET_UNKNOWN, kfunc};

/// Kernel memory that fields can be read from at byte offsets.
pub trait KernelMemory: Copy {
    /// Reads a `T` at `offset`, or `None` when the offset is unknown or the read faults.
    fn read<T: Copy>(self, offset: u32) -> Option<T>;
}

/// Reads through `bpf_probe_read_kernel`, from the address `.0`.
#[derive(Clone, Copy)]
pub struct ProbeRead(pub u64);

impl KernelMemory for ProbeRead {
    #[inline(always)]
    fn read<T: Copy>(self, offset: u32) -> Option<T> {
        if offset == OFFSET_UNKNOWN {
            return None;
        }
        let addr = self.0.wrapping_add(u64::from(offset)) as *const T;
        // SAFETY: bpf_probe_read_kernel copies through the kernel's fault-handling path,
        // so a wrong address yields an error, never a crash.
        unsafe { bpf_probe_read_kernel(addr) }.ok()
    }
}

/// Reads with plain loads from a pointer `bpf_rdonly_cast(address, 0)` returned.
///
/// The verifier types that pointer "untrusted read-only memory": loads through it at
/// any offset are allowed and become loads with an exception-table entry, so a fault
/// reads 0 instead of crashing (there is no error to see). Writes are refused.
#[derive(Clone, Copy)]
pub struct DirectLoad(*const u8);

impl DirectLoad {
    /// Casts the kernel address `address` (the program's context, a `struct sock *`).
    ///
    /// The call is to the reserved helper number [`kfunc::RDONLY_CAST`], which the
    /// loader rewrites into a call of the kfunc `bpf_rdonly_cast`; the verifier then
    /// replaces that call by a register move, so the cast itself costs nothing.
    #[inline(always)]
    pub fn cast(address: u64) -> Self {
        // SAFETY: the same calling convention aya-ebpf uses for helpers: a function
        // pointer whose value is the helper number; the loader makes it the kfunc
        // `void *bpf_rdonly_cast(const void *obj, u32 btf_id)`, and btf_id 0 asks for
        // untyped memory.
        let rdonly_cast: unsafe extern "C" fn(u64, u32) -> *const u8 =
            unsafe { core::mem::transmute(kfunc::RDONLY_CAST as usize) };
        Self(unsafe { rdonly_cast(address, 0) })
    }
}

impl KernelMemory for DirectLoad {
    #[inline(always)]
    fn read<T: Copy>(self, offset: u32) -> Option<T> {
        if offset == OFFSET_UNKNOWN {
            return None;
        }
        // SAFETY: the verifier turns this load into one that cannot fault the kernel
        // (see the type's documentation); unaligned fields do not occur at BTF offsets
        // of naturally aligned members.
        Some(unsafe { core::ptr::read(self.0.wrapping_add(offset as usize).cast::<T>()) })
    }
}
