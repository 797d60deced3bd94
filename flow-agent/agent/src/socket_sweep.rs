//! Aggregate mode's interim records: the host's connected TCP sockets, read through
//! `sock_diag`.
//!
//! The release program sees a connection only when it closes, so open connections are
//! read from the kernel's socket tables instead, once per interval. Two ways to read
//! them, and the sweep picks the cheaper each time:
//!
//! * a **walk** (a `sock_diag` dump of every connected socket) finds new long-lived
//!   connections, but the kernel walks its whole connection table to answer it,
//!   `TIME_WAIT` sockets included: at 5,000 connections per second that is about
//!   100,000 sockets and ten milliseconds of kernel time;
//! * a **lookup** per socket already known (one `sock_diag` request by endpoints and
//!   cookie) costs a few microseconds each, whatever the table's size.
//!
//! A walk runs when one is due — walks are spaced so that they stay under
//! [`WALK_SHARE`] of a core (every interval on a quiet host, every minute or so on a
//! busy one) — or when looking up the known sockets would cost more than a walk.
//! A connection younger than the last walk is therefore reported at its close (or at
//! the next walk), not every interval.
//!
//! The dump gives every socket it reads a cookie; the release program sends the close
//! of a socket with a cookie to the ring buffer instead of summing it, and user space
//! subtracts what the interim records carried (see `transform::aggregate`).

use std::{
    collections::VecDeque,
    net::IpAddr,
    time::{Duration, Instant},
};

use paved_flow_common::{
    Direction, FlowRecord, PortBits, RecordKind, has_port,
    kernel::{AF_INET, AF_INET6},
};

use crate::{
    ProbeError,
    clock::monotonic_ns,
    probe::SweepReport,
    server_ports::ServerPorts,
    sock_diag::{SockDiag, TcpSocket, states},
};

/// Most sockets one walk reads per address family; the rest wait for the next walk.
const MAX_SOCKETS: usize = 200_000;

/// Share of one core the walks may take: the next walk is due after its duration
/// divided by this.
pub const WALK_SHARE: f64 = 0.000_2;

/// Longest wait between two walks, however long they take.
const MAX_WALK_PERIOD: Duration = Duration::from_secs(300);

/// `TCP_LISTEN`, `TCP_ESTABLISHED` and `TCP_CLOSE_WAIT` as `sock_diag` reports them.
const LISTEN: u8 = 10;
const ESTABLISHED: u8 = 1;
const CLOSE_WAIT: u8 = 8;

/// The sweep's socket, the server-port bitmap it keeps, and what it knows of the
/// connections open now.
pub struct SocketSweep {
    diag: SockDiag,
    server_ports: ServerPorts,
    /// Scratch space of the dumps.
    scratch: Vec<TcpSocket>,
    /// Connections found open by the last walk or lookups.
    known: Vec<TcpSocket>,
    /// Monotonic time (ns) from which a walk is due.
    next_walk_ns: u64,
    /// How long the last walk took.
    walk: Duration,
    /// Mean time of one lookup, from the last round of lookups.
    lookup: Duration,
}

impl SocketSweep {
    /// A sweep over `diag` keeping `server_ports`.
    pub fn new(diag: SockDiag, server_ports: ServerPorts) -> Self {
        Self {
            diag,
            server_ports,
            scratch: Vec::new(),
            known: Vec::new(),
            next_walk_ns: 0,
            walk: Duration::ZERO,
            lookup: Duration::ZERO,
        }
    }

    /// Rewrites the server-port bitmap from the listeners there are now (a dump of
    /// listening sockets only, which does not walk the connection table).
    pub fn refresh_server_ports(&mut self) -> Result<PortBits, ProbeError> {
        self.scratch.clear();
        for family in [AF_INET, AF_INET6] {
            self.diag
                .dump_tcp(
                    family,
                    states::LISTEN,
                    false,
                    MAX_SOCKETS,
                    &mut self.scratch,
                )
                .map_err(ProbeError::SockDiag)?;
        }
        let listening = self
            .scratch
            .iter()
            .filter(|s| s.state == LISTEN)
            .map(|s| s.local.port());
        Ok(*self.server_ports.refresh(listening)?)
    }

    /// Appends an interim record for each open connection it reads to `out` (leaving
    /// out those the sampling threshold drops, as the kernel does).
    pub fn sweep(
        &mut self,
        sample_threshold: u32,
        out: &mut VecDeque<FlowRecord>,
    ) -> Result<SweepReport, ProbeError> {
        let mut report = SweepReport::default();
        let bits = self.refresh_server_ports()?;
        let now = monotonic_ns();
        let lookups = self.lookup.saturating_mul(self.known.len() as u32);
        if now >= self.next_walk_ns || (!self.walk.is_zero() && lookups >= self.walk) {
            report.truncated = self.walk_now(now)?;
        } else {
            self.look_up_known()?;
        }
        report.runs = 1;
        for socket in &self.known {
            let Some(record) = interim_record(socket, &bits, now) else {
                continue;
            };
            if sample_threshold != u32::MAX && record.endpoint_hash() > sample_threshold {
                continue;
            }
            report.sockets += 1;
            out.push_back(record);
        }
        Ok(report)
    }

    /// Reads every connected socket; returns whether a dump stopped at its bound.
    fn walk_now(&mut self, now: u64) -> Result<bool, ProbeError> {
        let started = Instant::now();
        self.known.clear();
        let mut truncated = false;
        for family in [AF_INET, AF_INET6] {
            let dump = self
                .diag
                .dump_tcp(
                    family,
                    states::ESTABLISHED | states::CLOSE_WAIT,
                    true,
                    MAX_SOCKETS,
                    &mut self.known,
                )
                .map_err(ProbeError::SockDiag)?;
            truncated |= dump.truncated;
        }
        self.walk = started.elapsed();
        let period = self.walk.div_f64(WALK_SHARE).min(MAX_WALK_PERIOD);
        self.next_walk_ns =
            now.saturating_add(u64::try_from(period.as_nanos()).unwrap_or(u64::MAX));
        tracing::debug!(
            sockets = self.known.len(),
            walk_us = self.walk.as_micros() as u64,
            next_walk_s = period.as_secs(),
            "sock_diag walk"
        );
        Ok(truncated)
    }

    /// Reads the known connections again, one lookup each; forgets those gone or
    /// closed by their owner.
    fn look_up_known(&mut self) -> Result<(), ProbeError> {
        if self.known.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let asked = self.known.len();
        self.scratch.clear();
        for socket in &self.known {
            let found = self
                .diag
                .lookup_tcp(
                    socket.family,
                    socket.local,
                    socket.remote,
                    socket.cookie,
                    true,
                )
                .map_err(ProbeError::SockDiag)?;
            if let Some(found) = found.filter(|s| matches!(s.state, ESTABLISHED | CLOSE_WAIT)) {
                self.scratch.push(found);
            }
        }
        std::mem::swap(&mut self.known, &mut self.scratch);
        self.lookup = started.elapsed() / asked as u32;
        Ok(())
    }
}

/// The interim record of a connected socket: counters as the kernel keeps them,
/// direction from the server-port bitmap, no process (`sock_diag` does not say which
/// one owns the socket). `None` without `tcp_info`.
pub fn interim_record(
    socket: &TcpSocket,
    server_ports: &PortBits,
    now_ns: u64,
) -> Option<FlowRecord> {
    let info = socket.info?;
    let mut record = FlowRecord::zeroed();
    record.kind = RecordKind::Interim as u8;
    record.end_ns = now_ns;
    record.family = socket.family;
    record.saddr = mapped(socket.local.ip());
    record.daddr = mapped(socket.remote.ip());
    record.sport = socket.local.port();
    record.dport = socket.remote.port();
    record.direction = if has_port(server_ports, record.sport) {
        Direction::Inbound as u8
    } else {
        Direction::Outbound as u8
    };
    record.bytes_acked = info.bytes_acked;
    record.bytes_received = info.bytes_received;
    record.segs_in = info.segs_in;
    record.segs_out = info.segs_out;
    record.total_retrans = info.total_retrans;
    record.srtt_us = info.rtt_us;
    record.cookie = socket.cookie;
    Some(record)
}

/// An address as the kernel stores it in records: 16 bytes, IPv4 v4-mapped.
fn mapped(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use paved_flow_common::{PORT_WORDS, port_bit};

    use super::*;
    use crate::sock_diag::TcpInfo;

    fn socket(local: u16, remote: u16) -> TcpSocket {
        TcpSocket {
            family: AF_INET,
            state: ESTABLISHED,
            local: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), local)),
            remote: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), remote)),
            cookie: 77,
            inode: 1,
            uid: 0,
            info: Some(TcpInfo {
                rtt_us: 250,
                total_retrans: 1,
                bytes_acked: 1_000,
                bytes_received: 2_000,
                segs_out: 10,
                segs_in: 20,
            }),
        }
    }

    #[test]
    fn a_socket_on_a_server_port_is_an_inbound_interim_record_with_its_cookie() {
        let mut bits = [0u64; PORT_WORDS];
        let (word, bit) = port_bit(8080);
        bits[word] |= bit;
        let record = interim_record(&socket(8080, 51_000), &bits, 5).expect("has tcp_info");
        assert_eq!(record.kind(), Some(RecordKind::Interim));
        assert_eq!(record.direction(), Direction::Inbound);
        assert_eq!(record.cookie, 77);
        assert_eq!(record.end_ns, 5);
        assert_eq!(
            record.saddr,
            Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().octets()
        );
        assert_eq!((record.sport, record.dport), (8080, 51_000));
        assert_eq!((record.bytes_acked, record.bytes_received), (1_000, 2_000));
        assert_eq!(
            (record.segs_out, record.segs_in, record.srtt_us),
            (10, 20, 250)
        );
        assert_eq!(record.tgid, 0, "sock_diag does not name the owner");
    }

    #[test]
    fn a_socket_on_another_port_is_outbound_and_one_without_tcp_info_gives_nothing() {
        let bits = [0u64; PORT_WORDS];
        let record = interim_record(&socket(51_000, 443), &bits, 5).expect("has tcp_info");
        assert_eq!(record.direction(), Direction::Outbound);
        let mut bare = socket(51_000, 443);
        bare.info = None;
        assert!(interim_record(&bare, &bits, 5).is_none());
    }

    #[test]
    fn walks_are_spaced_to_keep_their_share_of_a_core() {
        // A 10 ms walk may run every 50 s; a 100 µs one every half second (so, in
        // practice, every interval).
        let period = Duration::from_millis(10).div_f64(WALK_SHARE);
        assert_eq!(period, Duration::from_secs(50));
        let quick = Duration::from_micros(100).div_f64(WALK_SHARE);
        assert_eq!(quick, Duration::from_millis(500));
    }
}
