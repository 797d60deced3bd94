//! Summing a released connection into the active aggregate table.

use aya_ebpf::helpers::{
    bpf_get_current_comm,
    generated::{bpf_get_current_cgroup_id, bpf_ktime_get_coarse_ns},
};
use paved_flow_common::{
    AGGREGATE_SLOTS, AggregateKey, AggregateSlot, COMM_LEN, Direction, RTT_BUCKETS, SLOT_PROBES,
    rtt_bucket, slot_bit, slot_index,
};

use crate::{
    maps::{FLOW_AGGREGATES_0, FLOW_AGGREGATES_1, FLOW_SLOTS_USED_0, FLOW_SLOTS_USED_1},
    release::Closed,
};

/// Adds the connection `closed` (owned by the current task) under its key to the
/// table `active` names (0 or 1). Returns `false` when the key's slots are all taken
/// by other keys, and the caller writes a record to the ring buffer instead.
#[inline(always)]
pub fn add(closed: &Closed, active: u32) -> bool {
    let key = AggregateKey {
        local_addr: closed.ends.local,
        remote_addr: closed.ends.remote,
        cgroup_id: 0,
        tgid: closed.tgid(),
        service_port: if closed.direction == Direction::Inbound as u8 {
            closed.ends.local_port
        } else {
            closed.ends.remote_port
        },
        direction: closed.direction,
        pad: 0,
    };
    let first = slot_index(&key);
    // Unrolled by the compiler (a constant trip count): no loop for the verifier.
    for probe in 0..SLOT_PROBES {
        let index = (first + probe) & (AGGREGATE_SLOTS - 1);
        let slot = if active == 0 {
            FLOW_AGGREGATES_0.get_ptr_mut(index)
        } else {
            FLOW_AGGREGATES_1.get_ptr_mut(index)
        };
        let Some(slot) = slot else {
            return false;
        };
        // SAFETY: `slot` is this CPU's copy of a live array element. Only the release
        // program writes the tables, and a program does not nest on its own CPU, so
        // plain read-modify-writes are exact.
        let slot = unsafe { &mut *slot };
        if slot.value.closed == 0 {
            claim(slot, key, closed);
            mark_used(index, active);
        } else if !slot.key.same_flow(&key) {
            continue;
        }
        sum(slot, closed);
        return true;
    }
    false
}

/// Makes an empty slot `key`'s: what is the same for every connection of the key is
/// read once here (the task's cgroup and name), not on every close.
#[inline(always)]
fn claim(slot: &mut AggregateSlot, mut key: AggregateKey, closed: &Closed) {
    // SAFETY: helper without arguments, allowed in cgroup socket programs.
    key.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    slot.key = key;
    // SAFETY: helper without arguments, allowed in cgroup socket programs; the coarse
    // clock (jiffies) is precise enough for a first-seen time and cheaper.
    slot.value.first_ns = unsafe { bpf_ktime_get_coarse_ns() };
    slot.value.pid = closed.pid_tgid as u32;
    slot.value.comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
}

/// Records that slot `index` of table `active` is in use, for user space.
#[inline(always)]
fn mark_used(index: u32, active: u32) {
    let used = if active == 0 {
        FLOW_SLOTS_USED_0.get_ptr_mut(0)
    } else {
        FLOW_SLOTS_USED_1.get_ptr_mut(0)
    };
    if let Some(used) = used {
        let (word, bit) = slot_bit(index);
        // SAFETY: this CPU's copy of a live value; `word` < SLOT_WORDS by construction.
        unsafe { (*used)[word] |= bit };
    }
}

/// Adds `closed`'s counters to `slot`.
#[inline(always)]
fn sum(slot: &mut AggregateSlot, closed: &Closed) {
    let (v, c) = (&mut slot.value, &closed.counters);
    v.connections += 1;
    v.closed += 1;
    v.bytes_acked += c.bytes_acked;
    v.bytes_received += c.bytes_received;
    v.segs_in += u64::from(c.segs_in);
    v.segs_out += u64::from(c.segs_out);
    v.total_retrans += c.total_retrans;
    if c.srtt_us > 0 {
        let bucket = rtt_bucket(c.srtt_us);
        if bucket < RTT_BUCKETS {
            v.rtt[bucket] += 1;
        }
    }
}
