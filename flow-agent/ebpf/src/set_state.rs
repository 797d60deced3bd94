//! `sock:inet_sock_set_state`: remembers opens, reports closes (per-connection mode).

use core::mem::MaybeUninit;

use aya_ebpf::{
    helpers::generated::bpf_ktime_get_ns, macros::tracepoint, programs::TracePointContext,
};
use paved_flow_common::{
    Direction, FlowRecord, OpenFlow, RecordKind, ReportedCounters, address_bytes, counter,
    kernel::{AF_INET, AF_INET6, IPPROTO_TCP, inet_sock_set_state as tp, tcp_state},
    sample_hash, v4_mapped_words,
};

use crate::{
    context::load,
    emit,
    maps::{OPEN_FLOWS, config, count},
    record::zeroed_in,
    task::Task,
    tcp_sock,
};

/// Entry point; the name is `names::SET_STATE_PROGRAM`.
#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    // SAFETY: `newstate` is an aligned i32 and `protocol` an aligned u16 in the record.
    let (newstate, protocol) = unsafe {
        (
            load::<i32>(&ctx, tp::NEWSTATE),
            load::<u16>(&ctx, tp::PROTOCOL),
        )
    };
    // The filter every transition pays: only TCP opens, owners' closes and final
    // closes go further.
    if protocol != IPPROTO_TCP {
        return 0;
    }
    match newstate {
        tcp_state::SYN_SENT => on_open(&ctx, Direction::Outbound),
        tcp_state::SYN_RECV => on_open(&ctx, Direction::Inbound),
        tcp_state::FIN_WAIT1 | tcp_state::LAST_ACK => on_owner_close(&ctx),
        tcp_state::CLOSE => on_close(&ctx),
        _ => {}
    }
    0
}

/// Starts tracking the socket. An active open runs in the `connect()` of its owner,
/// which is credited now; a passive open runs while the kernel handles the client's
/// packet, on behalf of whoever was interrupted, so its owner is learnt later.
#[inline(always)]
fn on_open(ctx: &TracePointContext, direction: Direction) {
    // SAFETY: `skaddr` is an aligned 8-byte pointer field.
    let sk = unsafe { load::<u64>(ctx, tp::SKADDR) };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let mut flow = OpenFlow {
        start_ns: now,
        cgroup_id: 0,
        retransmits: 0,
        last_report_ns: now,
        reported: ReportedCounters::ZERO,
        pid: 0,
        tgid: 0,
        comm: [0; paved_flow_common::COMM_LEN],
        direction: direction as u8,
        reported_once: 0,
        owner_known: 0,
        pad: [0; 5],
    };
    if direction == Direction::Outbound {
        credit(&mut flow, &Task::current());
    }
    // A full LRU evicts its oldest entry, so this only fails on kernel memory pressure;
    // the close is then reported with an unknown direction, which is the best we can do.
    let _ = OPEN_FLOWS.insert(sk, flow, 0);
}

/// The socket's owner closes it (`close()` or `shutdown()`: `FIN_WAIT1` when this side
/// closes first, `LAST_ACK` when the peer did), in the owner's own system call: the
/// moment an inbound flow learns its owner. (`tcplife` credits at the same moments;
/// following the descriptor from `accept()` cost about as much as the rest of the
/// open path.)
#[inline(always)]
fn on_owner_close(ctx: &TracePointContext) {
    // SAFETY: `skaddr` is an aligned 8-byte pointer field.
    let sk = unsafe { load::<u64>(ctx, tp::SKADDR) };
    if let Some(open) = OPEN_FLOWS.get_ptr_mut(sk) {
        // SAFETY: the pointer is a live map value from a successful lookup; the socket
        // is locked by its owner here, so no other state change races this write.
        unsafe {
            if (*open).owner_known == 0 {
                credit(&mut *open, &Task::current());
            }
        }
    }
}

/// Credits `flow` to `task`.
#[inline(always)]
fn credit(flow: &mut OpenFlow, task: &Task) {
    flow.pid = task.pid;
    flow.tgid = task.tgid;
    flow.comm = task.comm;
    flow.cgroup_id = task.cgroup_id;
    flow.owner_known = 1;
}

/// Reports a closing socket (summed into the active aggregate map, or as a record) and
/// forgets it.
#[inline(always)]
fn on_close(ctx: &TracePointContext) {
    // SAFETY: aligned fields of the record, sizes matching the types.
    let (sk, oldstate) = unsafe { (load::<u64>(ctx, tp::SKADDR), load::<i32>(ctx, tp::OLDSTATE)) };
    // A listener closing (or a socket that never connected) is not a flow.
    if oldstate == tcp_state::LISTEN {
        return;
    }
    let settings = config();
    if settings.sample_threshold != u32::MAX && sample_hash(sk) > settings.sample_threshold {
        count(counter::SAMPLED_OUT);
        let _ = OPEN_FLOWS.remove(sk);
        return;
    }

    let mut slot = MaybeUninit::uninit();
    let record = zeroed_in(&mut slot);
    record.kind = RecordKind::Closed as u8;
    // SAFETY: helper without arguments.
    record.end_ns = unsafe { bpf_ktime_get_ns() };
    if let Some(open) = OPEN_FLOWS.get_ptr(sk) {
        // SAFETY: the pointer comes from a successful lookup; the entry is copied at once.
        let open = unsafe { *open };
        record.start_ns = open.start_ns;
        record.cgroup_id = open.cgroup_id;
        record.pid = open.pid;
        record.tgid = open.tgid;
        record.comm = open.comm;
        record.direction = open.direction;
        record.retransmits_seen = open.retransmits as u32;
    } else {
        // Opened before the probe started (or evicted): credit whoever closes it.
        let task = Task::current();
        record.cgroup_id = task.cgroup_id;
        record.pid = task.pid;
        record.tgid = task.tgid;
        record.comm = task.comm;
        record.direction = Direction::Unknown as u8;
    }
    fill_endpoints(ctx, record);
    tcp_sock::fill_counters(sk, record);

    // Cumulative counters: user space subtracts what the interim records carried.
    emit::output(record);
    let _ = OPEN_FLOWS.remove(sk);
}

/// Copies ports and addresses (v4-mapped for IPv4) from the tracepoint record.
#[inline(always)]
fn fill_endpoints(ctx: &TracePointContext, record: &mut FlowRecord) {
    // SAFETY: every field is read with a type of its exact size at an aligned offset:
    // u16 at 24/26/28, u32 for the 4-byte addresses at 32/36, [u64; 2] for the 16-byte
    // addresses at 40/56.
    unsafe {
        record.sport = load::<u16>(ctx, tp::SPORT);
        record.dport = load::<u16>(ctx, tp::DPORT);
        record.family = load::<u16>(ctx, tp::FAMILY);
        if record.family == AF_INET {
            record.saddr = address_bytes(v4_mapped_words(load::<u32>(ctx, tp::SADDR)));
            record.daddr = address_bytes(v4_mapped_words(load::<u32>(ctx, tp::DADDR)));
        } else if record.family == AF_INET6 {
            record.saddr = address_bytes(load::<[u64; 2]>(ctx, tp::SADDR_V6));
            record.daddr = address_bytes(load::<[u64; 2]>(ctx, tp::DADDR_V6));
        }
    }
}
