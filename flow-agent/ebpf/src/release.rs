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
//! The socket's memory beyond what the context exposes is read with plain loads
//! ([`DirectLoad`]) where the kernel allows it, else with a helper call per field
//! ([`ProbeRead`]); the loader picks [`flow_release`] or [`flow_release_probe_read`].
//!
//! A socket with a cookie may have had interim records (the agent's `sock_diag` sweep
//! gives a cookie to every socket it reads), so its close goes to the ring buffer with
//! the cookie, and user space subtracts what the interim records carried.
//!
//! [`SERVER_PORTS`]: crate::maps::SERVER_PORTS

use core::mem::MaybeUninit;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_ktime_get_coarse_ns},
    macros::cgroup_sock,
    programs::SockContext,
};
use paved_flow_common::{
    Direction, FlowRecord, RecordKind, address_bytes, counter, endpoint_hash, has_port,
    kernel::{AF_INET, AF_INET6, IPPROTO_TCP, tcp_state},
    port_bit, report_mode, v4_mapped_words,
};

use crate::{
    aggregate, emit,
    field::{DirectLoad, KernelMemory, ProbeRead},
    maps::{KERNEL_OFFSETS, SERVER_PORTS, config, count},
    record::zeroed_in,
    sock, tcp_sock,
};

/// `cgroup/sock*` programs return 1 ("allowed"); the release hook ignores the verdict.
const ALLOW: i32 = 1;

/// Entry point; the name is `names::RELEASE_PROGRAM`. Needs `bpf_rdonly_cast` to
/// untyped memory in the kernel.
#[cgroup_sock(sock_release)]
pub fn flow_release(ctx: SockContext) -> i32 {
    // The context is the releasing `struct sock`.
    release(&ctx, DirectLoad::cast(ctx.sock as u64))
}

/// Entry point; the name is `names::RELEASE_PROBE_READ_PROGRAM`: [`flow_release`] for
/// kernels without that cast.
#[cgroup_sock(sock_release)]
pub fn flow_release_probe_read(ctx: SockContext) -> i32 {
    release(&ctx, ProbeRead(ctx.sock as u64))
}

/// A connection as its owner closes it: what the aggregate path sums, in words and
/// scalars only (BPF has no unaligned access: a byte array in a record costs a store
/// per byte, and zeroing a whole [`FlowRecord`] is a byte loop).
pub struct Closed {
    /// Both ends.
    pub ends: Endpoints,
    /// The final counters.
    pub counters: tcp_sock::Counters,
    /// A [`Direction`] as `u8`.
    pub direction: u8,
    /// `bpf_get_current_pid_tgid` of the closing task.
    pub pid_tgid: u64,
}

impl Closed {
    /// The closing task's process id.
    #[inline(always)]
    pub fn tgid(&self) -> u32 {
        (self.pid_tgid >> 32) as u32
    }

    /// Writes the per-connection record of this close, with the socket's `cookie`, into
    /// the zeroed `record` (the rarer path: the close of a socket the sweep has seen, or
    /// one no slot could take).
    #[inline(always)]
    fn write_record(&self, cookie: u64, record: &mut FlowRecord) {
        record.kind = RecordKind::Closed as u8;
        record.family = self.ends.family;
        record.sport = self.ends.local_port;
        record.dport = self.ends.remote_port;
        record.saddr = address_bytes(self.ends.local);
        record.daddr = address_bytes(self.ends.remote);
        self.counters.write_to(record);
        record.direction = self.direction;
        // SAFETY: helper without arguments, allowed in cgroup socket programs.
        record.end_ns = unsafe { bpf_ktime_get_coarse_ns() };
        record.pid = self.pid_tgid as u32;
        record.tgid = self.tgid();
        record.cookie = cookie;
        // The task's name and cgroup (the aggregate path reads them once per key).
        let task = crate::task::Task::current();
        record.comm = task.comm;
        record.cgroup_id = task.cgroup_id;
    }
}

/// The two ends of a connection, addresses as [`paved_flow_common::address_words`]
/// (IPv4 v4-mapped).
pub struct Endpoints {
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// This host's port.
    pub local_port: u16,
    /// The peer's port.
    pub remote_port: u16,
    /// This host's address.
    pub local: [u64; 2],
    /// The peer's address.
    pub remote: [u64; 2],
}

/// Sums or records the connection of the releasing socket, reading what the context
/// does not expose (the local end, the counters, the cookie) from `sk`.
#[inline(always)]
fn release(ctx: &SockContext, sk: impl KernelMemory) -> i32 {
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
    let Some(ends) = read_endpoints(ctx, sk, family, &offsets.sock) else {
        return ALLOW;
    };
    if ends.remote_port == 0 {
        return ALLOW;
    }
    let settings = config();
    if settings.sample_threshold != u32::MAX
        && endpoint_hash(ends.local, ends.remote, ends.local_port, ends.remote_port)
            > settings.sample_threshold
    {
        count(counter::SAMPLED_OUT);
        return ALLOW;
    }
    let mut counters = tcp_sock::Counters::read(sk, &offsets.tcp_sock);
    // After a reset (`CLOSE`) what was not acknowledged was never delivered.
    if state == tcp_state::ESTABLISHED || state == tcp_state::CLOSE_WAIT {
        counters.add_unacknowledged(sk, &offsets.tcp_sock);
    }
    let direction = if takes_connections(ends.local_port) {
        Direction::Inbound as u8
    } else {
        Direction::Outbound as u8
    };
    let closed = Closed {
        ends,
        counters,
        direction,
        pid_tgid: bpf_get_current_pid_tgid(),
    };
    let cookie = sock::cookie(sk, offsets.sock.cookie);
    if settings.mode == report_mode::AGGREGATE && cookie == 0 {
        if aggregate::add(&closed, settings.active_aggregates) {
            return ALLOW;
        }
        count(counter::AGGREGATE_FULL);
    }
    let mut slot = MaybeUninit::uninit();
    let record = zeroed_in(&mut slot);
    closed.write_record(cookie, record);
    emit::output(record);
    ALLOW
}

/// The ends of the releasing socket: the peer's from the context, the local one from
/// `sk` (the context hides it from this attach type). `None` for a family other than
/// IPv4/IPv6 or a failed read.
#[inline(always)]
fn read_endpoints(
    ctx: &SockContext,
    sk: impl KernelMemory,
    family: u32,
    offsets: &paved_flow_common::SockOffsets,
) -> Option<Endpoints> {
    let local_port = sk.read::<u16>(offsets.num)?;
    // SAFETY: reads of the context the verifier allows for this attach type; the port
    // is the low 16 bits of its field, in network order.
    let (remote_port, dst_ip4, dst_ip6) = unsafe {
        (
            u16::from_be((*ctx.sock).dst_port),
            (*ctx.sock).dst_ip4,
            (*ctx.sock).dst_ip6,
        )
    };
    if family == u32::from(AF_INET) {
        Some(Endpoints {
            family: AF_INET,
            local_port,
            remote_port,
            local: v4_mapped_words(sk.read::<u32>(offsets.rcv_saddr)?),
            remote: v4_mapped_words(dst_ip4),
        })
    } else if family == u32::from(AF_INET6) {
        let d = dst_ip6;
        Some(Endpoints {
            family: AF_INET6,
            local_port,
            remote_port,
            local: sk.read::<[u64; 2]>(offsets.v6_rcv_saddr)?,
            remote: [
                u64::from(d[0]) | (u64::from(d[1]) << 32),
                u64::from(d[2]) | (u64::from(d[3]) << 32),
            ],
        })
    } else {
        None
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
