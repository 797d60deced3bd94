//! `cgroup/sock_release` and `cgroup/post_bind*`: aggregate mode.
//!
//! The release hook runs once per socket, in the `close()` of the process that owns it
//! (attached to the root cgroup, it sees every socket on the host), so the owner, the
//! endpoints and the final counters are at hand at once and nothing about the open has
//! to be remembered: one run per socket instead of one per state change (five per
//! socket for `inet_sock_set_state`), and no map keyed by socket. Received bytes are
//! final at that point (data arriving after `close()` is refused with a reset); sent
//! bytes are the acknowledged ones plus what is still in flight.
//!
//! Direction comes from [`SERVER_PORTS`]: a socket whose local port takes connections
//! was accepted. The bind hooks mark a TCP socket's port when it is bound (a server
//! binds before it listens, so its first connection is already inbound); user space
//! adds the listeners it sees and clears ports nobody listens on.
//!
//! A socket with a cookie may have had interim records (the agent's `sock_diag` sweep
//! gives a cookie to every socket it reads), so its close goes to the ring buffer with
//! the cookie, and user space subtracts what the interim records carried.
//!
//! [`SERVER_PORTS`]: crate::maps::SERVER_PORTS

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_ktime_get_coarse_ns},
    macros::cgroup_sock,
    programs::SockContext,
};
use paved_flow_common::{
    Direction, FlowRecord, RecordKind, counter, has_port,
    kernel::{AF_INET, AF_INET6, IPPROTO_TCP, tcp_state},
    port_bit, report_mode,
};

use crate::{
    aggregate, emit, field,
    maps::{KERNEL_OFFSETS, SERVER_PORTS, config, count},
    set_state::{bytes16, v4_mapped},
    sock, tcp_sock,
};

/// `cgroup/sock*` programs return 1 ("allowed"); the release hook ignores the verdict.
const ALLOW: i32 = 1;

/// Entry point; the name is `names::RELEASE_PROGRAM`.
#[cgroup_sock(sock_release)]
pub fn flow_release(ctx: SockContext) -> i32 {
    // SAFETY: the context is the releasing socket, valid while the program runs; the
    // verifier allows these reads for this attach type.
    let (protocol, state, family) = unsafe {
        (
            (*ctx.sock).protocol,
            (*ctx.sock).state as i32,
            (*ctx.sock).family,
        )
    };
    if protocol != u32::from(IPPROTO_TCP) {
        return ALLOW;
    }
    // Only sockets that got as far as a connection: not listeners, not a `connect()`
    // still in progress. (A socket closed before it connected has no peer port.)
    if matches!(
        state,
        tcp_state::LISTEN | tcp_state::SYN_SENT | tcp_state::SYN_RECV
    ) {
        return ALLOW;
    }
    let Some(offsets) = KERNEL_OFFSETS.get(0) else {
        return ALLOW;
    };
    // The kernel address of the socket, for the probe reads of what the context does
    // not expose (the local end, the counters).
    let sk = ctx.sock as u64;
    let mut record = FlowRecord::zeroed();
    record.kind = RecordKind::Closed as u8;
    if !fill_endpoints(&ctx, sk, family, &offsets.sock, &mut record) || record.dport == 0 {
        return ALLOW;
    }
    let settings = config();
    if settings.sample_threshold != u32::MAX && record.endpoint_hash() > settings.sample_threshold {
        count(counter::SAMPLED_OUT);
        return ALLOW;
    }
    // SAFETY: helper without arguments, allowed in cgroup socket programs; the coarse
    // clock (jiffies) is precise enough for first/last-seen times and much cheaper.
    record.end_ns = unsafe { bpf_ktime_get_coarse_ns() };
    let pid_tgid = bpf_get_current_pid_tgid();
    record.pid = pid_tgid as u32;
    record.tgid = (pid_tgid >> 32) as u32;
    record.direction = if takes_connections(record.sport) {
        Direction::Inbound as u8
    } else {
        Direction::Outbound as u8
    };
    tcp_sock::fill_counters_with(sk, &offsets.tcp_sock, &mut record);
    // After a reset (`CLOSE`) what was not acknowledged was never delivered.
    if state == tcp_state::ESTABLISHED || state == tcp_state::CLOSE_WAIT {
        tcp_sock::add_unacknowledged(sk, &offsets.tcp_sock, &mut record);
    }
    record.cookie = sock::cookie(sk, offsets.sock.cookie);

    if settings.mode == report_mode::AGGREGATE && record.cookie == 0 {
        if aggregate::add(&record, settings.active_aggregates) {
            return ALLOW;
        }
        count(counter::AGGREGATE_FULL);
    }
    // Per-connection detail: the task's name and cgroup (the aggregate path reads them
    // once per key).
    let task = crate::task::Task::current();
    record.comm = task.comm;
    record.cgroup_id = task.cgroup_id;
    emit::output(&record);
    ALLOW
}

/// Fills family, ports and addresses (v4-mapped for IPv4): the peer's from the context,
/// the local end with probe reads (the context hides it from this attach type).
/// Returns `false` for a family other than IPv4/IPv6 or a failed read.
#[inline(always)]
fn fill_endpoints(
    ctx: &SockContext,
    sk: u64,
    family: u32,
    offsets: &paved_flow_common::SockOffsets,
    record: &mut FlowRecord,
) -> bool {
    let Some(local_port) = field::read::<u16>(sk, offsets.num) else {
        return false;
    };
    record.sport = local_port;
    // SAFETY: reads of the context the verifier allows for this attach type; the port
    // is the low 16 bits of its field, in network order.
    unsafe {
        record.dport = u16::from_be((*ctx.sock).dst_port);
        if family == u32::from(AF_INET) {
            record.family = AF_INET;
            record.daddr = v4_mapped((*ctx.sock).dst_ip4);
            let Some(local) = field::read::<u32>(sk, offsets.rcv_saddr) else {
                return false;
            };
            record.saddr = v4_mapped(local);
            true
        } else if family == u32::from(AF_INET6) {
            record.family = AF_INET6;
            let d = (*ctx.sock).dst_ip6;
            record.daddr = bytes16([
                u64::from(d[0]) | (u64::from(d[1]) << 32),
                u64::from(d[2]) | (u64::from(d[3]) << 32),
            ]);
            let Some(local) = field::read::<[u64; 2]>(sk, offsets.v6_rcv_saddr) else {
                return false;
            };
            record.saddr = bytes16(local);
            true
        } else {
            false
        }
    }
}

/// Whether local port `port` takes connections (a listener holds it).
#[inline(always)]
fn takes_connections(port: u16) -> bool {
    match SERVER_PORTS.get(0) {
        Some(bits) => has_port(bits, port),
        None => false,
    }
}

/// `cgroup/post_bind4`: marks the port a TCP socket was bound to.
#[cgroup_sock(post_bind4)]
pub fn flow_bind4(ctx: SockContext) -> i32 {
    mark_bound(&ctx);
    ALLOW
}

/// `cgroup/post_bind6`: as [`flow_bind4`], for IPv6 sockets.
#[cgroup_sock(post_bind6)]
pub fn flow_bind6(ctx: SockContext) -> i32 {
    mark_bound(&ctx);
    ALLOW
}

/// Marks the local port of a TCP socket that was just bound: servers bind before they
/// listen, so their accepted sockets count as inbound from the first connection on.
#[inline(always)]
fn mark_bound(ctx: &SockContext) {
    // SAFETY: the context is the bound socket; these reads are allowed after a bind.
    let (protocol, port) = unsafe { ((*ctx.sock).protocol, (*ctx.sock).src_port) };
    if protocol != u32::from(IPPROTO_TCP) || port == 0 || port > 0xffff {
        return;
    }
    if let Some(bits) = SERVER_PORTS.get_ptr_mut(0) {
        let (word, bit) = port_bit(port as u16);
        // SAFETY: `word` < PORT_WORDS, within the live value. Not atomic: a bind on
        // another CPU setting a bit of the same word at the same instant can lose one
        // of the two; user space puts back every port it sees listening, once per
        // interval.
        unsafe { (*bits)[word] |= bit };
    }
}
