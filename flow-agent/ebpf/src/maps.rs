//! The maps shared by the programs; sizes are fixed so kernel memory use is bounded.

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
};
use paved_flow_common::{
    AGGREGATE_SLOTS, AggregateSlot, FlowRecord, KernelOffsets, OpenFlow, PORT_WORDS, ProbeConfig,
    SlotBits, counter,
};

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

/// Interim records, and closes in per-connection mode or past a full aggregate map,
/// for user space (`names::RECORDS_MAP`).
#[map(name = "FLOW_RECORDS")]
pub static FLOW_RECORDS: RingBuf = RingBuf::with_byte_size(RECORD_RING_BYTES, 0);

/// Closed connections summed per key, per CPU (`names::AGGREGATE_MAPS[0]`).
#[map(name = "FLOW_AGGREGATES_0")]
pub static FLOW_AGGREGATES_0: PerCpuArray<AggregateSlot> =
    PerCpuArray::with_max_entries(AGGREGATE_SLOTS, 0);

/// The other aggregate table (`names::AGGREGATE_MAPS[1]`).
#[map(name = "FLOW_AGGREGATES_1")]
pub static FLOW_AGGREGATES_1: PerCpuArray<AggregateSlot> =
    PerCpuArray::with_max_entries(AGGREGATE_SLOTS, 0);

/// Which slots of `FLOW_AGGREGATES_0` are in use, one bit per slot, per CPU
/// (`names::SLOTS_USED_MAPS[0]`): user space reads only those.
#[map(name = "FLOW_SLOTS_USED_0")]
pub static FLOW_SLOTS_USED_0: PerCpuArray<SlotBits> = PerCpuArray::with_max_entries(1, 0);

/// As `FLOW_SLOTS_USED_0`, for `FLOW_AGGREGATES_1`.
#[map(name = "FLOW_SLOTS_USED_1")]
pub static FLOW_SLOTS_USED_1: PerCpuArray<SlotBits> = PerCpuArray::with_max_entries(1, 0);

/// Kernel structure offsets written by the loader before attaching (`names::OFFSETS_MAP`).
#[map(name = "KERNEL_OFFSETS")]
pub static KERNEL_OFFSETS: Array<KernelOffsets> = Array::with_max_entries(1, 0);

/// Run-time settings written by user space (`names::CONFIG_MAP`).
#[map(name = "PROBE_CONFIG")]
pub static PROBE_CONFIG: Array<ProbeConfig> = Array::with_max_entries(1, 0);

/// Per-CPU counters (`names::COUNTERS_MAP`, indices in `paved_flow_common::counter`).
#[map(name = "PROBE_COUNTERS")]
pub static PROBE_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Adds one to this CPU's counter `index`.
#[inline(always)]
pub fn count(index: u32) {
    // Per-CPU slot: no other CPU writes it and the programs are not re-entered on this
    // CPU while they run, so a plain increment is exact (BPF has no portable atomic
    // fetch-add from Rust: the target lacks `atomic-cas`).
    if let Some(counter) = PROBE_COUNTERS.get_ptr_mut(index) {
        // SAFETY: the pointer is this CPU's live array slot.
        unsafe { *counter += 1 };
    }
}

/// The settings now, or the defaults before user space wrote any.
#[inline(always)]
pub fn config() -> ProbeConfig {
    match PROBE_CONFIG.get(0) {
        Some(config) => *config,
        None => ProbeConfig::DEFAULT,
    }
}

// The ring buffer's size must be a power-of-two multiple of the page size.
const _: () = assert!(RECORD_RING_BYTES.is_power_of_two() && RECORD_RING_BYTES >= 4096);
const _: () = assert!(core::mem::size_of::<FlowRecord>() <= 256);

/// Local ports that take connections, one bit per port (`names::SERVER_PORTS_MAP`):
/// set by the bind programs, kept and cleared by user space from the listeners it sees.
/// One 8 KiB value: every lookup lands in the same two pages (a per-port array of
/// 256 KiB costs a TLB miss on most closes, since client ports are spread over it).
#[map(name = "SERVER_PORTS")]
pub static SERVER_PORTS: Array<[u64; PORT_WORDS]> = Array::with_max_entries(1, 0);
