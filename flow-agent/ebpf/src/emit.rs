//! Writing records into the ring buffer, waking user space only when it is worth it.
//!
//! A plain `bpf_ringbuf_output` wakes the consumer (an `irq_work` self-interrupt, then
//! an epoll wakeup and a context switch) for every record that finds it caught up: at
//! thousands of connections per second that costs more than everything else the probe
//! does. So records are written with `BPF_RB_NO_WAKEUP` and user space drains the ring
//! on a short timer; only when the ring holds more than [`WAKEUP_THRESHOLD`] bytes does
//! a record force a wakeup, so a burst is drained before the ring overflows.

use paved_flow_common::{FlowRecord, counter};

use crate::maps::{FLOW_RECORDS, RECORD_RING_BYTES, count};

/// `BPF_RB_NO_WAKEUP` (include/uapi/linux/bpf.h).
const RB_NO_WAKEUP: u64 = 1;
/// `BPF_RB_FORCE_WAKEUP`.
const RB_FORCE_WAKEUP: u64 = 2;
/// `BPF_RB_AVAIL_DATA`: bytes written and not yet consumed.
const RB_AVAIL_DATA: u64 = 0;

/// Unconsumed bytes above which a record wakes user space: a quarter of the ring.
const WAKEUP_THRESHOLD: u64 = RECORD_RING_BYTES as u64 / 4;

/// Writes `record`; counts it as dropped when the ring is full. Returns whether it was
/// written.
#[inline(always)]
pub fn output(record: &FlowRecord) -> bool {
    let pending = FLOW_RECORDS.query(RB_AVAIL_DATA);
    let flags = if pending >= WAKEUP_THRESHOLD {
        RB_FORCE_WAKEUP
    } else {
        RB_NO_WAKEUP
    };
    if FLOW_RECORDS.output::<FlowRecord>(record, flags).is_ok() {
        true
    } else {
        count(counter::RING_DROPPED);
        false
    }
}
