//! Kernel ABI facts both sides rely on: constants and the tracepoint record layouts.
//!
//! The BPF programs read tracepoint fields at the fixed offsets below (direct context
//! loads are the cheapest access there is). These layouts have not changed since the
//! tracepoints appeared (Linux 4.16), but the loader still checks every one of them
//! against the running kernel's `format` file in tracefs before attaching, so a kernel
//! that moves a field makes the load fail with a clear error instead of producing
//! garbage records.

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u16 = 6;

/// TCP states as the kernel numbers them (`include/net/tcp_states.h`).
pub mod tcp_state {
    /// `TCP_ESTABLISHED`.
    pub const ESTABLISHED: i32 = 1;
    /// `TCP_SYN_SENT`: an active open (`connect`).
    pub const SYN_SENT: i32 = 2;
    /// `TCP_SYN_RECV`: a passive open (child socket cloned from a listener).
    pub const SYN_RECV: i32 = 3;
    /// `TCP_FIN_WAIT1`: this side closed (or shut down) first, in the owner's system call.
    pub const FIN_WAIT1: i32 = 4;
    /// `TCP_CLOSE`: the socket is done; its counters are final.
    pub const CLOSE: i32 = 7;
    /// `TCP_CLOSE_WAIT`: the peer closed; this side has not yet.
    pub const CLOSE_WAIT: i32 = 8;
    /// `TCP_LAST_ACK`: the peer closed first and this side closed now, in the owner's
    /// system call.
    pub const LAST_ACK: i32 = 9;
    /// `TCP_LISTEN`.
    pub const LISTEN: i32 = 10;
}

/// One field of a tracepoint record read at a fixed offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracepointField {
    /// Field name as in the tracepoint's `format` file.
    pub name: &'static str,
    /// Byte offset within the record.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
}

const fn field(name: &'static str, offset: usize, size: usize) -> TracepointField {
    TracepointField { name, offset, size }
}

/// Layout of `sock:inet_sock_set_state`.
pub mod inet_sock_set_state {
    use super::{TracepointField, field};

    /// Tracepoint category.
    pub const CATEGORY: &str = "sock";
    /// Tracepoint name.
    pub const NAME: &str = "inet_sock_set_state";
    /// `const void *skaddr`: the socket, used as the flow key.
    pub const SKADDR: TracepointField = field("skaddr", 8, 8);
    /// `int oldstate`.
    pub const OLDSTATE: TracepointField = field("oldstate", 16, 4);
    /// `int newstate`.
    pub const NEWSTATE: TracepointField = field("newstate", 20, 4);
    /// `__u16 sport` (host order).
    pub const SPORT: TracepointField = field("sport", 24, 2);
    /// `__u16 dport` (host order).
    pub const DPORT: TracepointField = field("dport", 26, 2);
    /// `__u16 family`.
    pub const FAMILY: TracepointField = field("family", 28, 2);
    /// `__u16 protocol`.
    pub const PROTOCOL: TracepointField = field("protocol", 30, 2);
    /// `__u8 saddr[4]`.
    pub const SADDR: TracepointField = field("saddr", 32, 4);
    /// `__u8 daddr[4]`.
    pub const DADDR: TracepointField = field("daddr", 36, 4);
    /// `__u8 saddr_v6[16]`.
    pub const SADDR_V6: TracepointField = field("saddr_v6", 40, 16);
    /// `__u8 daddr_v6[16]`.
    pub const DADDR_V6: TracepointField = field("daddr_v6", 56, 16);
    /// Every field the program reads, for the loader's check.
    pub const FIELDS: [TracepointField; 11] = [
        SKADDR, OLDSTATE, NEWSTATE, SPORT, DPORT, FAMILY, PROTOCOL, SADDR, DADDR, SADDR_V6,
        DADDR_V6,
    ];
}

/// Layout of `tcp:tcp_retransmit_skb`.
pub mod tcp_retransmit_skb {
    use super::{TracepointField, field};

    /// Tracepoint category.
    pub const CATEGORY: &str = "tcp";
    /// Tracepoint name.
    pub const NAME: &str = "tcp_retransmit_skb";
    /// `const void *skaddr`: the socket, used as the flow key.
    pub const SKADDR: TracepointField = field("skaddr", 16, 8);
    /// Every field the program reads, for the loader's check.
    pub const FIELDS: [TracepointField; 1] = [SKADDR];
}
