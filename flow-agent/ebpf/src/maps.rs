//! The maps shared by the programs; sizes are fixed so kernel memory use is bounded.

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
};
use paved_flow_common::{FlowRecord, KernelOffsets, OpenFlow};

/// Connections tracked at once. LRU: when full, the oldest open is forgotten and its
/// close is reported with `Direction::Unknown` instead of failing the insert.
const MAX_OPEN_FLOWS: u32 = 65_536;

/// Room for 8192 records (+8 bytes of header each) between two user-space polls.
pub const RECORD_RING_BYTES: u32 = 8192 * 256;

/// `BPF_F_NO_COMMON_LRU`: one LRU list per CPU instead of one behind a global lock.
/// Every open inserts and every close deletes, so the LRU's bookkeeping is on the hot
/// path; per-CPU lists make it cheaper (each CPU evicts from its own share of the
/// entries, which only matters when the map is full).
const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;

/// Open connections by socket address.
#[map(name = "OPEN_FLOWS")]
pub static OPEN_FLOWS: LruHashMap<u64, OpenFlow> =
    LruHashMap::with_max_entries(MAX_OPEN_FLOWS, BPF_F_NO_COMMON_LRU);

/// Closed-flow and interim records for user space (`names::RECORDS_MAP`).
#[map(name = "FLOW_RECORDS")]
pub static FLOW_RECORDS: RingBuf = RingBuf::with_byte_size(RECORD_RING_BYTES, 0);

/// Kernel structure offsets written by the loader before attaching (`names::OFFSETS_MAP`).
#[map(name = "KERNEL_OFFSETS")]
pub static KERNEL_OFFSETS: Array<KernelOffsets> = Array::with_max_entries(1, 0);

/// Records lost because the ring buffer was full (index 0, per CPU), summed by user space.
#[map(name = "DROPPED_RECORDS")]
pub static DROPPED_RECORDS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

// The ring buffer's size must be a power-of-two multiple of the page size.
const _: () = assert!(RECORD_RING_BYTES.is_power_of_two() && RECORD_RING_BYTES >= 4096);
const _: () = assert!(core::mem::size_of::<FlowRecord>() <= 256);
