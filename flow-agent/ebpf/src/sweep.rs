//! `flow_sweep`: interim records for connections still open.
//!
//! Why a program run on demand rather than a hook: a quiet long-lived connection goes
//! through no state change and no retransmission, so no TCP hook fires for it between
//! its open and its close; hooks that fire per packet (`tcp:tcp_probe`) would put a
//! cost on every segment of every connection. Instead user space lists the keys of
//! `OPEN_FLOWS` once per interval and runs this program through `BPF_PROG_TEST_RUN`
//! (raw tracepoint programs accept it since Linux 5.10), eleven sockets per run. The
//! program reads each socket's counters like the close path does and emits an
//! `Interim` record. It is loop-free (the eleven slots are unrolled), so the verifier
//! sees a short straight line, and it costs nothing between sweeps.

use core::mem::MaybeUninit;

use aya_ebpf::{
    helpers::generated::bpf_ktime_get_ns, macros::raw_tracepoint, programs::RawTracePointContext,
};
use paved_flow_common::{
    RecordKind, ReportedCounters, SockOffsets, TcpSockOffsets, counter, sample_hash, sweep,
};

use crate::{
    emit,
    field::ProbeRead,
    maps::{KERNEL_OFFSETS, OPEN_FLOWS, config, count},
    record::zeroed_in,
    sock, tcp_sock,
};

/// Entry point; the name is `names::SWEEP_PROGRAM`. Never attached.
#[raw_tracepoint]
pub fn flow_sweep(ctx: RawTracePointContext) -> u32 {
    let min_age: u64 = ctx.arg(sweep::ARG_MIN_AGE_NS);
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // The context can only be read at constant offsets, hence one line per slot.
    report(ctx.arg(1), now, min_age);
    report(ctx.arg(2), now, min_age);
    report(ctx.arg(3), now, min_age);
    report(ctx.arg(4), now, min_age);
    report(ctx.arg(5), now, min_age);
    report(ctx.arg(6), now, min_age);
    report(ctx.arg(7), now, min_age);
    report(ctx.arg(8), now, min_age);
    report(ctx.arg(9), now, min_age);
    report(ctx.arg(10), now, min_age);
    report(ctx.arg(11), now, min_age);
    0
}

const _: () = assert!(sweep::SOCKETS_PER_RUN == 11 && sweep::ARGS == 12);

/// Emits an interim record for the socket at `sk` if it is still tracked and was last
/// reported at least `min_age` ns ago. A separate function (a BPF-to-BPF call) so the
/// record's stack slot is shared by the eleven calls.
#[inline(never)]
fn report(sk: u64, now: u64, min_age: u64) {
    if sk == 0 {
        return;
    }
    // The socket may have closed since user space listed it: its entry is gone then,
    // and the close record has already carried the final counters.
    let Some(open) = OPEN_FLOWS.get_ptr_mut(sk) else {
        return;
    };
    // SAFETY: the pointer comes from a successful lookup; the entry is copied at once.
    let flow = unsafe { *open };
    if now.saturating_sub(flow.last_report_ns) < min_age {
        return;
    }
    let threshold = config().sample_threshold;
    if threshold != u32::MAX && sample_hash(sk) > threshold {
        // Left out of the sample: its close is left out too.
        count(counter::SAMPLED_OUT);
        return;
    }
    let (tcp_offsets, sock_offsets) = match KERNEL_OFFSETS.get(0) {
        Some(offsets) => (offsets.tcp_sock, offsets.sock),
        None => (TcpSockOffsets::UNKNOWN, SockOffsets::UNKNOWN),
    };
    let mut slot = MaybeUninit::uninit();
    let record = zeroed_in(&mut slot);
    record.kind = RecordKind::Interim as u8;
    record.start_ns = flow.start_ns;
    record.end_ns = now;
    record.cgroup_id = flow.cgroup_id;
    record.pid = flow.pid;
    record.tgid = flow.tgid;
    record.comm = flow.comm;
    record.direction = flow.direction;
    record.retransmits_seen = flow.retransmits as u32;
    // Without endpoints the record could not be matched to its flow: skip it.
    if !sock::fill_endpoints(ProbeRead(sk), &sock_offsets, record) {
        return;
    }
    tcp_sock::Counters::read(ProbeRead(sk), &tcp_offsets).write_to(record);
    if !emit::output(record) {
        // Not marked as reported: the next sweep tries again.
        return;
    }
    // The close adds only what comes after these counters to its aggregate.
    // SAFETY: the pointer is a live map value (freed only after an RCU grace period,
    // which cannot end while this program runs); a racing close at worst writes into
    // an entry about to disappear.
    unsafe {
        (*open).last_report_ns = now;
        (*open).reported = ReportedCounters {
            bytes_acked: record.bytes_acked,
            bytes_received: record.bytes_received,
            segs_in: record.segs_in,
            segs_out: record.segs_out,
            total_retrans: record.total_retrans,
            pad: 0,
        };
        (*open).reported_once = 1;
    }
}
