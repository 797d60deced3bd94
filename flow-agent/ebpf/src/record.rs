//! Building a [`FlowRecord`] on the BPF stack.

use core::mem::{MaybeUninit, align_of, size_of};

use paved_flow_common::FlowRecord;

/// Eight-byte words in a [`FlowRecord`].
const WORDS: usize = size_of::<FlowRecord>() / 8;
const _: () = assert!(size_of::<FlowRecord>().is_multiple_of(8) && align_of::<FlowRecord>() == 8);

/// Zeroes `slot` with eight-byte stores and hands it back as a record to fill in.
///
/// `FlowRecord::zeroed()` compiles to a call of `memset`, which in BPF is a loop that
/// stores one byte per iteration: 136 of them, about 550 instructions, for every record.
/// Volatile stores cannot be merged back into a `memset`.
#[inline(always)]
pub fn zeroed_in(slot: &mut MaybeUninit<FlowRecord>) -> &mut FlowRecord {
    let words = slot.as_mut_ptr().cast::<u64>();
    let mut i = 0;
    while i < WORDS {
        // SAFETY: `i < WORDS`: within the record, which is 8-aligned (asserted above).
        unsafe { words.add(i).write_volatile(0) };
        i += 1;
    }
    // SAFETY: every byte is written, and all zeros is a valid record (integers and byte
    // arrays only).
    unsafe { slot.assume_init_mut() }
}
