//! Summing a closing connection into the active aggregate map.

use paved_flow_common::{
    AggregateKey, Direction, FlowRecord, RTT_BUCKETS, ReportedCounters, counter, rtt_bucket,
};

use crate::maps::{FLOW_AGGREGATES_0, FLOW_AGGREGATES_1, ZERO_AGGREGATE, count};

/// `BPF_NOEXIST`.
const BPF_NOEXIST: u64 = 1;

/// Adds the closing connection in `record` to map `active` (0 or 1) under its key.
/// `reported` holds what its interim records already carried, `counted` whether one
/// of them counted the connection. Returns `false` when the map is full: the caller
/// writes the record to the ring buffer instead.
#[inline(always)]
pub fn add(record: &FlowRecord, reported: &ReportedCounters, counted: bool, active: u32) -> bool {
    let key = AggregateKey {
        local_addr: record.saddr,
        remote_addr: record.daddr,
        cgroup_id: record.cgroup_id,
        tgid: record.tgid,
        service_port: if record.direction == Direction::Inbound as u8 {
            record.sport
        } else {
            record.dport
        },
        direction: record.direction,
        pad: 0,
    };
    let map = if active == 0 {
        &FLOW_AGGREGATES_0
    } else {
        &FLOW_AGGREGATES_1
    };
    let value = match map.get_ptr_mut(key) {
        Some(value) => value,
        None => {
            let Some(zero) = ZERO_AGGREGATE.get_ptr(0) else {
                return false;
            };
            // SAFETY: `zero` points at a live map value; the helper copies it. A racing
            // insert of the same key on another CPU makes this one fail with EEXIST,
            // and the lookup below finds that one.
            // By reference on purpose: by value, the 816-byte value would be copied onto
            // the 512-byte BPF stack.
            #[allow(clippy::needless_borrows_for_generic_args)]
            let _ = map.insert(key, unsafe { &*zero }, BPF_NOEXIST);
            match map.get_ptr_mut(key) {
                Some(value) => value,
                // The map is full (or out of memory).
                None => return false,
            }
        }
    };
    // SAFETY: `value` is this CPU's slot of a live per-CPU map value. Only programs on
    // this CPU write it and they do not nest, so plain read-modify-writes are exact.
    let v = unsafe { &mut *value };
    if v.first_ns == 0 {
        v.first_ns = record.end_ns;
        v.pid = record.pid;
        v.comm = record.comm;
    }
    v.last_ns = record.end_ns;
    v.connections += u32::from(!counted);
    v.closed += 1;
    v.bytes_acked += record.bytes_acked.saturating_sub(reported.bytes_acked);
    v.bytes_received += record
        .bytes_received
        .saturating_sub(reported.bytes_received);
    v.segs_in += u64::from(record.segs_in.saturating_sub(reported.segs_in));
    v.segs_out += u64::from(record.segs_out.saturating_sub(reported.segs_out));
    v.total_retrans += record.total_retrans.saturating_sub(reported.total_retrans);
    if record.srtt_us > 0 {
        let bucket = rtt_bucket(record.srtt_us);
        if bucket < RTT_BUCKETS {
            v.rtt[bucket] += 1;
        }
    }
    count(counter::AGGREGATED);
    true
}
