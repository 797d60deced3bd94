//! Reads of tracepoint record fields at the offsets fixed in `paved_flow_common::kernel`.

use aya_ebpf::{EbpfContext, programs::TracePointContext};
use paved_flow_common::kernel::TracepointField;

/// Loads `field` from the tracepoint record as a `T` by a direct context access.
///
/// # Safety
/// `T` must be exactly `field.size` bytes, and `field.offset` a multiple of `T`'s
/// alignment: the verifier accepts only aligned loads within the record, and the loader
/// checked the offsets against the kernel's `format` file.
#[inline(always)]
pub unsafe fn load<T: Copy>(ctx: &TracePointContext, field: TracepointField) -> T {
    // SAFETY: forwarded to the caller (see above); the context is valid for the
    // duration of the program.
    unsafe { core::ptr::read(ctx.as_ptr().cast::<u8>().add(field.offset).cast::<T>()) }
}
