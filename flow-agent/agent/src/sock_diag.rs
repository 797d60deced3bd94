//! A minimal, synchronous `NETLINK_SOCK_DIAG` client that dumps the host's TCP sockets.
//!
//! [`SockDiag::dump_tcp`] sends one `SOCK_DIAG_BY_FAMILY` dump request
//! (`struct inet_diag_req_v2`) and decodes the `struct inet_diag_msg` answers, with the
//! kernel's `struct tcp_info` when asked for. Everything the kernel sends is
//! length-checked before it is read: a malformed answer is a [`SockDiagError::Malformed`]
//! naming what and where, never a panic or a misread. The layouts are those of the
//! kernel UAPI headers `linux/inet_diag.h`, `linux/sock_diag.h` and `linux/tcp.h`.

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// TCP states as bit positions for `idiag_states` (`1 << state`).
pub mod states {
    /// `TCP_ESTABLISHED` (1).
    pub const ESTABLISHED: u32 = 1 << 1;
    /// `TCP_SYN_SENT` (2).
    pub const SYN_SENT: u32 = 1 << 2;
    /// `TCP_SYN_RECV` (3).
    pub const SYN_RECV: u32 = 1 << 3;
    /// `TCP_FIN_WAIT1` (4).
    pub const FIN_WAIT1: u32 = 1 << 4;
    /// `TCP_FIN_WAIT2` (5).
    pub const FIN_WAIT2: u32 = 1 << 5;
    /// `TCP_TIME_WAIT` (6).
    pub const TIME_WAIT: u32 = 1 << 6;
    /// `TCP_CLOSE` (7).
    pub const CLOSE: u32 = 1 << 7;
    /// `TCP_CLOSE_WAIT` (8).
    pub const CLOSE_WAIT: u32 = 1 << 8;
    /// `TCP_LAST_ACK` (9).
    pub const LAST_ACK: u32 = 1 << 9;
    /// `TCP_LISTEN` (10).
    pub const LISTEN: u32 = 1 << 10;
    /// `TCP_CLOSING` (11).
    pub const CLOSING: u32 = 1 << 11;
    /// `TCP_NEW_SYN_RECV` (12): request sockets (the kernel adds it to [`SYN_RECV`]).
    pub const NEW_SYN_RECV: u32 = 1 << 12;
    /// Every state (the kernel ignores bits it does not know).
    pub const ALL: u32 = u32::MAX;
}

/// The kernel's `NETLINK_SOCK_DIAG` protocol number (`linux/netlink.h`).
const NETLINK_SOCK_DIAG: libc::c_int = 4;
/// `SOCK_DIAG_BY_FAMILY`, the request and answer message type (`linux/sock_diag.h`).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLMSG_NOOP`.
const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR`: a negative errno (and the offending request) follows the header.
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump, with the dump's errno (0 on success) as payload.
const NLMSG_DONE: u16 = 3;
/// `NLM_F_REQUEST`.
const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
const NLM_F_DUMP: u16 = 0x300;
/// `INET_DIAG_INFO`: the attribute carrying `struct tcp_info`.
const INET_DIAG_INFO: u16 = 2;
/// `NLA_TYPE_MASK`: strips `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER` from a type.
const NLA_TYPE_MASK: u16 = !((1 << 15) | (1 << 14));
/// `IPPROTO_TCP`.
const IPPROTO_TCP: u8 = 6;

/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDR_LEN: usize = 16;
/// `sizeof(struct inet_diag_req_v2)`.
const REQ_V2_LEN: usize = 56;
/// `sizeof(struct inet_diag_msg)`.
const DIAG_MSG_LEN: usize = 72;
/// `sizeof(struct rtattr)`.
const RTA_HDR_LEN: usize = 4;

/// Receive buffer size. The kernel sizes dump datagrams after the largest receive
/// buffer it has seen, capped just below 32 KiB, so one of this size always fits.
const RECV_BUF_LEN: usize = 32 * 1024;
/// How long one `recv` may block before the dump is abandoned.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);
/// Datagrams from other processes one `recv` skips before giving up, so that a local
/// process spamming our port id cannot keep a dump alive past the timeout forever.
const MAX_FOREIGN_DATAGRAMS: u32 = 64;

/// One TCP socket as the kernel reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSocket {
    /// `AF_INET` (2) or `AF_INET6` (10).
    pub family: u16,
    /// The kernel TCP state number (1 = ESTABLISHED … 10 = LISTEN, 12 = NEW_SYN_RECV).
    pub state: u8,
    /// The local address; IPv4 sockets give [`SocketAddr::V4`]. An IPv6 socket gives
    /// [`SocketAddr::V6`], also for IPv4-mapped peers of a dual-stack socket; a
    /// link-local IPv6 address carries the socket's bound interface as its scope id.
    pub local: SocketAddr,
    /// The peer address (unspecified, port 0, for a listener).
    pub remote: SocketAddr,
    /// The socket cookie, `idiag_cookie[0] | idiag_cookie[1] << 32`.
    pub cookie: u64,
    /// The socket's inode (0 for time-wait and request sockets).
    pub inode: u32,
    /// The owner's uid.
    pub uid: u32,
    /// `tcp_info`; `None` when the kernel sent no `INET_DIAG_INFO`.
    pub info: Option<TcpInfo>,
}

/// The fields of `struct tcp_info` the agent uses; a field the kernel's (older,
/// shorter) `tcp_info` does not carry is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// Smoothed round-trip time in microseconds (`tcpi_rtt`).
    pub rtt_us: u32,
    /// Retransmitted segments over the connection's life (`tcpi_total_retrans`).
    pub total_retrans: u32,
    /// Bytes the peer acknowledged (`tcpi_bytes_acked`).
    pub bytes_acked: u64,
    /// Bytes received in order (`tcpi_bytes_received`).
    pub bytes_received: u64,
    /// Segments sent (`tcpi_segs_out`).
    pub segs_out: u32,
    /// Segments received (`tcpi_segs_in`).
    pub segs_in: u32,
}

/// What one [`SockDiag::dump_tcp`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpReport {
    /// Sockets appended to the caller's vector.
    pub sockets: usize,
    /// The dump held more than `max` sockets; the rest were not read.
    pub truncated: bool,
}

/// Why a sock_diag dump failed.
#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    /// A system call failed.
    #[error("sock_diag {step} failed: {source}")]
    Io {
        /// The step: `socket`, `setsockopt(SO_RCVTIMEO)`, `send` or `recv`.
        step: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The kernel sent nothing for the 2 s receive timeout in the middle of a dump.
    #[error("sock_diag dump stalled: no answer within {0:?}")]
    Timeout(Duration),
    /// The kernel refused the request (`NLMSG_ERROR`) or failed the dump (`NLMSG_DONE`
    /// with an error).
    #[error("kernel failed the sock_diag dump: {}", io::Error::from_raw_os_error(*.errno))]
    Kernel {
        /// The (positive) errno.
        errno: i32,
    },
    /// A message is shorter than its structure or its lengths do not add up.
    #[error(
        "malformed sock_diag answer: {what} at byte {offset} of a {datagram_len}-byte datagram"
    )]
    Malformed {
        /// Which structure or field.
        what: &'static str,
        /// Where in the datagram it starts.
        offset: usize,
        /// The datagram's length.
        datagram_len: usize,
    },
    /// A datagram did not fit the receive buffer (the kernel would have cut it).
    #[error("sock_diag datagram of {len} bytes exceeds the {capacity}-byte receive buffer")]
    DatagramTooLarge {
        /// The datagram's real length.
        len: usize,
        /// The buffer's length.
        capacity: usize,
    },
    /// An answer belongs to another request.
    #[error("sock_diag answer has sequence number {got}, expected {expected}")]
    SequenceMismatch {
        /// The request's sequence number.
        expected: u32,
        /// The answer's.
        got: u32,
    },
    /// [`SockDiag::dump_tcp`] was asked for a family other than `AF_INET`/`AF_INET6`.
    #[error("sock_diag: unsupported address family {0}")]
    UnsupportedFamily(u16),
}

/// A `NETLINK_SOCK_DIAG` socket and its receive buffer.
pub struct SockDiag {
    fd: OwnedFd,
    buf: Vec<u8>,
    /// Sequence number of the last request.
    seq: u32,
    /// A dump was started and not read to its end (truncated or failed): its leftover
    /// answers would precede the next dump's (and the kernel refuses a new dump while
    /// one runs), so the socket is replaced before the next request.
    dump_pending: bool,
}

impl std::fmt::Debug for SockDiag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SockDiag")
            .field("fd", &self.fd)
            .field("seq", &self.seq)
            .field("dump_pending", &self.dump_pending)
            .finish_non_exhaustive()
    }
}

impl SockDiag {
    /// Opens the netlink socket, with a 2 s receive timeout so that a stuck dump
    /// cannot hang the caller.
    pub fn open() -> Result<Self, SockDiagError> {
        Ok(Self {
            fd: open_socket()?,
            buf: vec![0; RECV_BUF_LEN],
            seq: 0,
            dump_pending: false,
        })
    }

    /// Appends the TCP sockets of `family` (`AF_INET` or `AF_INET6`) in `states` (a
    /// mask of [`states`] bits) to `out`; `with_info` asks for `INET_DIAG_INFO`
    /// (`tcp_info`).
    ///
    /// At most `max` sockets are appended: when the dump holds more, the call returns
    /// `Ok` with [`DumpReport::truncated`] set after appending `max`, and the rest of
    /// the dump is dropped. On an error, sockets already decoded stay in `out`.
    pub fn dump_tcp(
        &mut self,
        family: u16,
        states: u32,
        with_info: bool,
        max: usize,
        out: &mut Vec<TcpSocket>,
    ) -> Result<DumpReport, SockDiagError> {
        let (request, seq) = self.new_request(family, states, with_info)?;
        self.send(&request)?;
        self.dump_pending = true;

        let mut report = DumpReport::default();
        loop {
            let len = self.recv()?;
            let Some(datagram) = self.buf.get(..len) else {
                // `recv` checked `len` against the buffer; kept as an error, not a panic.
                return Err(SockDiagError::DatagramTooLarge {
                    len,
                    capacity: self.buf.len(),
                });
            };
            match parse_datagram(datagram, seq, max, out, &mut report)? {
                Progress::More => {}
                Progress::Done => {
                    self.dump_pending = false;
                    break;
                }
                Progress::Full => {
                    report.truncated = true;
                    break;
                }
            }
        }
        tracing::debug!(
            family,
            states,
            sockets = report.sockets,
            truncated = report.truncated,
            "sock_diag dump"
        );
        Ok(report)
    }

    /// Looks up one TCP socket by its endpoints and cookie (not a dump: a hash lookup
    /// in the kernel, whatever the number of sockets). `Ok(None)` when no such socket
    /// exists any more (`ENOENT`), or the endpoints now belong to another socket
    /// (`ESTALE`: the cookie differs).
    pub fn lookup_tcp(
        &mut self,
        family: u16,
        local: SocketAddr,
        remote: SocketAddr,
        cookie: u64,
        with_info: bool,
    ) -> Result<Option<TcpSocket>, SockDiagError> {
        let (mut request, seq) = self.new_request(family, 0, with_info)?;
        // Not a dump: the flags say a plain request.
        request[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        fill_socket_id(&mut request[NLMSG_HDR_LEN + 8..], local, remote, cookie);
        self.send(&request)?;
        let len = self.recv()?;
        let Some(datagram) = self.buf.get(..len) else {
            return Err(SockDiagError::DatagramTooLarge {
                len,
                capacity: self.buf.len(),
            });
        };
        parse_lookup_answer(datagram, seq)
    }

    /// A dump request for `family`'s TCP sockets in `states` under the next sequence
    /// number, on a socket with no unfinished dump; returns it and the number.
    fn new_request(
        &mut self,
        family: u16,
        states: u32,
        with_info: bool,
    ) -> Result<([u8; NLMSG_HDR_LEN + REQ_V2_LEN], u32), SockDiagError> {
        let family_byte = match i32::from(family) {
            libc::AF_INET | libc::AF_INET6 => family as u8,
            _ => return Err(SockDiagError::UnsupportedFamily(family)),
        };
        if self.dump_pending {
            // Closing the old socket is the only way to make the kernel drop the
            // unfinished dump.
            self.fd = open_socket()?;
            self.dump_pending = false;
        }
        self.seq = self.seq.wrapping_add(1);
        let ext = if with_info {
            1 << (INET_DIAG_INFO - 1)
        } else {
            0
        };
        Ok((build_request(family_byte, states, ext, self.seq), self.seq))
    }

    /// Sends `request` to the kernel (netlink port 0).
    fn send(&self, request: &[u8]) -> Result<(), SockDiagError> {
        let kernel = kernel_address();
        loop {
            // SAFETY: `request` and `kernel` are valid for the lengths passed and outlive
            // the call.
            let sent = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    request.as_ptr().cast(),
                    request.len(),
                    0,
                    (&raw const kernel).cast(),
                    size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if sent < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(SockDiagError::Io {
                    step: "send",
                    source: err,
                });
            }
            if usize::try_from(sent).ok() != Some(request.len()) {
                return Err(SockDiagError::Io {
                    step: "send",
                    source: io::Error::other(format!("sent {sent} of {} bytes", request.len())),
                });
            }
            return Ok(());
        }
    }

    /// Receives the next datagram from the kernel into `buf`; returns its length.
    fn recv(&mut self) -> Result<usize, SockDiagError> {
        let mut foreign = 0u32;
        loop {
            // SAFETY: all-zero is a valid `sockaddr_nl`.
            let mut from: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            let mut from_len = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            // SAFETY: `buf` is valid for `buf.len()` bytes and `from` for `from_len`;
            // MSG_TRUNC only changes the return value to the datagram's real length.
            let got = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    libc::MSG_TRUNC,
                    (&raw mut from).cast(),
                    &mut from_len,
                )
            };
            if got < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        Err(SockDiagError::Timeout(RECV_TIMEOUT))
                    }
                    _ => Err(SockDiagError::Io {
                        step: "recv",
                        source: err,
                    }),
                };
            }
            let len = usize::try_from(got).unwrap_or(usize::MAX);
            if from.nl_pid != 0 {
                // Any process may unicast to our port id; only the kernel's answers count.
                foreign += 1;
                if foreign > MAX_FOREIGN_DATAGRAMS {
                    return Err(SockDiagError::Io {
                        step: "recv",
                        source: io::Error::other(
                            "flooded by netlink datagrams not from the kernel",
                        ),
                    });
                }
                tracing::warn!(
                    sender = from.nl_pid,
                    len,
                    "ignoring a netlink datagram not sent by the kernel"
                );
                continue;
            }
            if len > self.buf.len() {
                return Err(SockDiagError::DatagramTooLarge {
                    len,
                    capacity: self.buf.len(),
                });
            }
            return Ok(len);
        }
    }
}

/// Opens `socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)` with
/// `SO_RCVTIMEO` set.
fn open_socket() -> Result<OwnedFd, SockDiagError> {
    // SAFETY: plain system call without pointers.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(SockDiagError::Io {
            step: "socket",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let timeout = libc::timeval {
        tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(RECV_TIMEOUT.subsec_micros() as i32),
    };
    // SAFETY: `timeout` is a valid `timeval` for the length passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(SockDiagError::Io {
            step: "setsockopt(SO_RCVTIMEO)",
            source: io::Error::last_os_error(),
        });
    }
    Ok(fd)
}

/// The kernel's netlink address (port id 0, no groups).
fn kernel_address() -> libc::sockaddr_nl {
    // SAFETY: all-zero is a valid `sockaddr_nl`.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr
}

/// Builds `nlmsghdr` + `inet_diag_req_v2` for a TCP dump of `family` in `states`,
/// asking for the `ext` attributes; the socket id is all zero (match everything).
fn build_request(family: u8, states: u32, ext: u8, seq: u32) -> [u8; NLMSG_HDR_LEN + REQ_V2_LEN] {
    let mut req = [0u8; NLMSG_HDR_LEN + REQ_V2_LEN];
    let len = (NLMSG_HDR_LEN + REQ_V2_LEN) as u32;
    req[0..4].copy_from_slice(&len.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: the kernel fills in our port id.
    req[16] = family;
    req[17] = IPPROTO_TCP;
    req[18] = ext;
    // req[19] is padding.
    req[20..24].copy_from_slice(&states.to_ne_bytes());
    // req[24..72]: inet_diag_sockid, all zero for a dump.
    req
}

/// Writes an `inet_diag_sockid` (48 bytes at the start of `id`): ports big-endian,
/// addresses in network order (IPv4 in the first word), no interface, the cookie.
fn fill_socket_id(id: &mut [u8], local: SocketAddr, remote: SocketAddr, cookie: u64) {
    fn address(out: &mut [u8], ip: std::net::IpAddr) {
        match ip {
            std::net::IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
            std::net::IpAddr::V6(v6) => out[..16].copy_from_slice(&v6.octets()),
        }
    }
    id[0..2].copy_from_slice(&local.port().to_be_bytes());
    id[2..4].copy_from_slice(&remote.port().to_be_bytes());
    address(&mut id[4..20], local.ip());
    address(&mut id[20..36], remote.ip());
    // id[36..40]: interface, 0 = any.
    id[40..44].copy_from_slice(&(cookie as u32).to_ne_bytes());
    id[44..48].copy_from_slice(&((cookie >> 32) as u32).to_ne_bytes());
}

/// The answer to a single-socket request: one `SOCK_DIAG_BY_FAMILY` message, or an
/// `NLMSG_ERROR` (`ENOENT`/`ESTALE` mean the socket is gone).
fn parse_lookup_answer(data: &[u8], seq: u32) -> Result<Option<TcpSocket>, SockDiagError> {
    let r = Reader { data };
    let len = r.u32_ne(0, "netlink header")? as usize;
    let ty = r.u16_ne(4, "netlink header")?;
    let got_seq = r.u32_ne(8, "netlink header")?;
    if len < NLMSG_HDR_LEN || len > data.len() {
        return Err(r.malformed("netlink message length", 0));
    }
    if got_seq != seq {
        return Err(SockDiagError::SequenceMismatch {
            expected: seq,
            got: got_seq,
        });
    }
    match ty {
        SOCK_DIAG_BY_FAMILY => parse_diag_msg(&r, NLMSG_HDR_LEN, len).map(Some),
        NLMSG_ERROR => {
            let errno = r
                .i32_ne(NLMSG_HDR_LEN, "NLMSG_ERROR errno")?
                .saturating_neg();
            if errno == libc::ENOENT || errno == libc::ESTALE {
                Ok(None)
            } else {
                Err(SockDiagError::Kernel { errno })
            }
        }
        _ => Err(r.malformed("answer type", 4)),
    }
}

/// Where a datagram left the dump.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    /// More datagrams follow.
    More,
    /// `NLMSG_DONE` (or an acknowledgement) ended the dump.
    Done,
    /// `max` sockets were appended and another one arrived.
    Full,
}

/// Bounds-checked native- and big-endian reads from one datagram; every failure names
/// the structure and its offset in the datagram.
struct Reader<'a> {
    data: &'a [u8],
}

impl Reader<'_> {
    /// `N` bytes at `at`, or `Malformed { what, offset: at }`.
    fn bytes<const N: usize>(
        &self,
        at: usize,
        what: &'static str,
    ) -> Result<[u8; N], SockDiagError> {
        at.checked_add(N)
            .and_then(|end| self.data.get(at..end))
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(SockDiagError::Malformed {
                what,
                offset: at,
                datagram_len: self.data.len(),
            })
    }

    fn u8(&self, at: usize, what: &'static str) -> Result<u8, SockDiagError> {
        Ok(self.bytes::<1>(at, what)?[0])
    }

    fn u16_ne(&self, at: usize, what: &'static str) -> Result<u16, SockDiagError> {
        self.bytes(at, what).map(u16::from_ne_bytes)
    }

    fn u16_be(&self, at: usize, what: &'static str) -> Result<u16, SockDiagError> {
        self.bytes(at, what).map(u16::from_be_bytes)
    }

    fn u32_ne(&self, at: usize, what: &'static str) -> Result<u32, SockDiagError> {
        self.bytes(at, what).map(u32::from_ne_bytes)
    }

    fn i32_ne(&self, at: usize, what: &'static str) -> Result<i32, SockDiagError> {
        self.bytes(at, what).map(i32::from_ne_bytes)
    }

    fn malformed(&self, what: &'static str, offset: usize) -> SockDiagError {
        SockDiagError::Malformed {
            what,
            offset,
            datagram_len: self.data.len(),
        }
    }
}

/// Rounds `len` up to the netlink alignment of 4 bytes (`NLMSG_ALIGN`, `RTA_ALIGN`).
fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// Decodes one datagram of the dump answering request `seq`, appending its sockets to
/// `out` until `report.sockets` reaches `max`.
fn parse_datagram(
    data: &[u8],
    seq: u32,
    max: usize,
    out: &mut Vec<TcpSocket>,
    report: &mut DumpReport,
) -> Result<Progress, SockDiagError> {
    let r = Reader { data };
    let mut off = 0;
    while off < data.len() {
        let len = r.u32_ne(off, "netlink header")? as usize;
        let ty = r.u16_ne(off + 4, "netlink header")?;
        let got_seq = r.u32_ne(off + 8, "netlink header")?;
        if len < NLMSG_HDR_LEN || len > data.len() - off {
            return Err(r.malformed("netlink message length", off));
        }
        if got_seq != seq {
            return Err(SockDiagError::SequenceMismatch {
                expected: seq,
                got: got_seq,
            });
        }
        let body = off + NLMSG_HDR_LEN;
        let end = off + len;
        match ty {
            NLMSG_DONE => {
                // The payload is the dump's errno; kernels before 4.x may omit it.
                if len >= NLMSG_HDR_LEN + 4 {
                    let errno = r.i32_ne(body, "NLMSG_DONE errno")?;
                    if errno < 0 {
                        return Err(SockDiagError::Kernel {
                            errno: errno.saturating_neg(),
                        });
                    }
                }
                return Ok(Progress::Done);
            }
            NLMSG_ERROR => {
                if len < NLMSG_HDR_LEN + 4 {
                    return Err(r.malformed("NLMSG_ERROR errno", body));
                }
                let errno = r.i32_ne(body, "NLMSG_ERROR errno")?;
                if errno == 0 {
                    // An acknowledgement: the kernel is done with the request.
                    return Ok(Progress::Done);
                }
                return Err(SockDiagError::Kernel {
                    errno: errno.saturating_neg(),
                });
            }
            SOCK_DIAG_BY_FAMILY => {
                let socket = parse_diag_msg(&r, body, end)?;
                if report.sockets >= max {
                    return Ok(Progress::Full);
                }
                out.push(socket);
                report.sockets += 1;
            }
            NLMSG_NOOP => {}
            other => {
                tracing::debug!(
                    ty = other,
                    offset = off,
                    "skipping unexpected netlink message"
                );
            }
        }
        // The last message of a datagram may lack its padding.
        off = off.saturating_add(align4(len)).min(data.len());
    }
    Ok(Progress::More)
}

/// Decodes the `inet_diag_msg` at `at` and its attributes up to `end`.
fn parse_diag_msg(r: &Reader<'_>, at: usize, end: usize) -> Result<TcpSocket, SockDiagError> {
    if end - at < DIAG_MSG_LEN {
        return Err(r.malformed("inet_diag_msg", at));
    }
    let family = r.u8(at, "idiag_family")?;
    let state = r.u8(at + 1, "idiag_state")?;
    let sport = r.u16_be(at + 4, "idiag_sport")?;
    let dport = r.u16_be(at + 6, "idiag_dport")?;
    let src: [u8; 16] = r.bytes(at + 8, "idiag_src")?;
    let dst: [u8; 16] = r.bytes(at + 24, "idiag_dst")?;
    let ifindex = r.u32_ne(at + 40, "idiag_if")?;
    let cookie_lo = r.u32_ne(at + 44, "idiag_cookie")?;
    let cookie_hi = r.u32_ne(at + 48, "idiag_cookie")?;
    let uid = r.u32_ne(at + 64, "idiag_uid")?;
    let inode = r.u32_ne(at + 68, "idiag_inode")?;

    let (local, remote) = match i32::from(family) {
        libc::AF_INET => (v4(&src, sport), v4(&dst, dport)),
        libc::AF_INET6 => (v6(src, sport, ifindex), v6(dst, dport, ifindex)),
        _ => return Err(r.malformed("idiag_family (neither AF_INET nor AF_INET6)", at)),
    };

    let mut info = None;
    let mut off = at + DIAG_MSG_LEN;
    while off < end {
        if end - off < RTA_HDR_LEN {
            return Err(r.malformed("rtattr header", off));
        }
        let rta_len = usize::from(r.u16_ne(off, "rtattr header")?);
        let rta_type = r.u16_ne(off + 2, "rtattr header")? & NLA_TYPE_MASK;
        if rta_len < RTA_HDR_LEN || rta_len > end - off {
            return Err(r.malformed("rtattr length", off));
        }
        if rta_type == INET_DIAG_INFO {
            let payload = r
                .data
                .get(off + RTA_HDR_LEN..off + rta_len)
                .ok_or_else(|| r.malformed("INET_DIAG_INFO payload", off + RTA_HDR_LEN))?;
            info = Some(parse_tcp_info(payload));
        }
        off = off.saturating_add(align4(rta_len)).min(end);
    }

    Ok(TcpSocket {
        family: u16::from(family),
        state,
        local,
        remote,
        cookie: u64::from(cookie_lo) | (u64::from(cookie_hi) << 32),
        inode,
        uid,
        info,
    })
}

/// An IPv4 socket address from `idiag_src`/`idiag_dst` (address in the first 4 bytes,
/// network order).
fn v4(addr: &[u8; 16], port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]),
        port,
    ))
}

/// An IPv6 socket address; a link-local address gets `ifindex` as its scope id, since
/// the kernel binds such sockets to their interface.
fn v6(addr: [u8; 16], port: u16, ifindex: u32) -> SocketAddr {
    let ip = Ipv6Addr::from(addr);
    let scope_id = if ip.is_unicast_link_local() {
        ifindex
    } else {
        0
    };
    SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope_id))
}

/// Byte offsets of the used fields in `struct tcp_info` (`linux/tcp.h`).
mod tcp_info_offset {
    pub const RTT: usize = 68;
    pub const TOTAL_RETRANS: usize = 100;
    pub const BYTES_ACKED: usize = 120;
    pub const BYTES_RECEIVED: usize = 128;
    pub const SEGS_OUT: usize = 136;
    pub const SEGS_IN: usize = 140;
}

/// Reads the used fields of a `tcp_info` payload; a field beyond the end of an older
/// kernel's shorter structure stays 0.
fn parse_tcp_info(payload: &[u8]) -> TcpInfo {
    fn field<const N: usize>(payload: &[u8], at: usize) -> Option<[u8; N]> {
        payload.get(at..at + N).and_then(|s| s.try_into().ok())
    }
    let u32_at = |at| field(payload, at).map_or(0, u32::from_ne_bytes);
    let u64_at = |at| field(payload, at).map_or(0, u64::from_ne_bytes);
    TcpInfo {
        rtt_us: u32_at(tcp_info_offset::RTT),
        total_retrans: u32_at(tcp_info_offset::TOTAL_RETRANS),
        bytes_acked: u64_at(tcp_info_offset::BYTES_ACKED),
        bytes_received: u64_at(tcp_info_offset::BYTES_RECEIVED),
        segs_out: u32_at(tcp_info_offset::SEGS_OUT),
        segs_in: u32_at(tcp_info_offset::SEGS_IN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    const SEQ: u32 = 7;
    const AF_INET: u16 = libc::AF_INET as u16;
    const AF_INET6: u16 = libc::AF_INET6 as u16;

    /// Appends one netlink message (header, payload, padding) to `buf`.
    fn push_msg(buf: &mut Vec<u8>, ty: u16, seq: u32, payload: &[u8]) {
        let len = (NLMSG_HDR_LEN + payload.len()) as u32;
        buf.extend_from_slice(&len.to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&0x2u16.to_ne_bytes()); // NLM_F_MULTI
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&1234u32.to_ne_bytes());
        buf.extend_from_slice(payload);
        buf.resize(align4(buf.len()), 0);
    }

    /// An `inet_diag_msg` payload followed by the given attributes.
    #[allow(clippy::too_many_arguments)]
    fn diag_msg(
        family: u16,
        state: u8,
        src: [u8; 16],
        sport: u16,
        dst: [u8; 16],
        dport: u16,
        cookie: u64,
        uid: u32,
        inode: u32,
        attrs: &[(u16, Vec<u8>)],
    ) -> Vec<u8> {
        let mut m = vec![family as u8, state, 0, 0];
        m.extend_from_slice(&sport.to_be_bytes());
        m.extend_from_slice(&dport.to_be_bytes());
        m.extend_from_slice(&src);
        m.extend_from_slice(&dst);
        m.extend_from_slice(&0u32.to_ne_bytes()); // if
        m.extend_from_slice(&(cookie as u32).to_ne_bytes());
        m.extend_from_slice(&((cookie >> 32) as u32).to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes()); // expires
        m.extend_from_slice(&0u32.to_ne_bytes()); // rqueue
        m.extend_from_slice(&0u32.to_ne_bytes()); // wqueue
        m.extend_from_slice(&uid.to_ne_bytes());
        m.extend_from_slice(&inode.to_ne_bytes());
        assert_eq!(m.len(), DIAG_MSG_LEN);
        for (ty, payload) in attrs {
            m.extend_from_slice(&((RTA_HDR_LEN + payload.len()) as u16).to_ne_bytes());
            m.extend_from_slice(&ty.to_ne_bytes());
            m.extend_from_slice(payload);
            m.resize(align4(m.len()), 0);
        }
        m
    }

    /// A `tcp_info` of `len` bytes with the used fields set.
    fn tcp_info_bytes(len: usize, info: &TcpInfo) -> Vec<u8> {
        let mut b = vec![0u8; 232];
        b[68..72].copy_from_slice(&info.rtt_us.to_ne_bytes());
        b[100..104].copy_from_slice(&info.total_retrans.to_ne_bytes());
        b[120..128].copy_from_slice(&info.bytes_acked.to_ne_bytes());
        b[128..136].copy_from_slice(&info.bytes_received.to_ne_bytes());
        b[136..140].copy_from_slice(&info.segs_out.to_ne_bytes());
        b[140..144].copy_from_slice(&info.segs_in.to_ne_bytes());
        b.truncate(len);
        b
    }

    fn v4_bytes(ip: [u8; 4]) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&ip);
        b
    }

    fn parse(
        data: &[u8],
        max: usize,
    ) -> (Result<Progress, SockDiagError>, Vec<TcpSocket>, DumpReport) {
        let mut out = Vec::new();
        let mut report = DumpReport::default();
        let result = parse_datagram(data, SEQ, max, &mut out, &mut report);
        (result, out, report)
    }

    fn sample_info() -> TcpInfo {
        TcpInfo {
            rtt_us: 1500,
            total_retrans: 3,
            bytes_acked: 1 << 33,
            bytes_received: 12345,
            segs_out: 40,
            segs_in: 41,
        }
    }

    /// One IPv4 socket with tcp_info (and an unrelated attribute before it), one IPv6
    /// socket without, then NLMSG_DONE.
    fn two_socket_dump() -> Vec<u8> {
        let mut buf = Vec::new();
        let v4 = diag_msg(
            AF_INET,
            1,
            v4_bytes([10, 0, 0, 1]),
            443,
            v4_bytes([192, 168, 1, 20]),
            50123,
            0x1122_3344_5566_7788,
            1000,
            4242,
            &[
                (8, vec![0]), // INET_DIAG_SHUTDOWN, one byte: exercises attribute padding
                (INET_DIAG_INFO, tcp_info_bytes(232, &sample_info())),
            ],
        );
        push_msg(&mut buf, SOCK_DIAG_BY_FAMILY, SEQ, &v4);
        let src6: [u8; 16] = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets();
        let v6 = diag_msg(AF_INET6, 10, src6, 8080, [0; 16], 0, 9, 0, 77, &[]);
        push_msg(&mut buf, SOCK_DIAG_BY_FAMILY, SEQ, &v6);
        push_msg(&mut buf, NLMSG_DONE, SEQ, &0i32.to_ne_bytes());
        buf
    }

    #[test]
    fn a_dump_of_an_ipv4_and_an_ipv6_socket_decodes_both_and_ends_at_done() {
        let buf = two_socket_dump();
        let (result, out, report) = parse(&buf, 100);
        assert_eq!(result.unwrap(), Progress::Done);
        assert_eq!(
            report,
            DumpReport {
                sockets: 2,
                truncated: false
            }
        );
        assert_eq!(
            out[0],
            TcpSocket {
                family: AF_INET,
                state: 1,
                local: "10.0.0.1:443".parse().unwrap(),
                remote: "192.168.1.20:50123".parse().unwrap(),
                cookie: 0x1122_3344_5566_7788,
                inode: 4242,
                uid: 1000,
                info: Some(sample_info()),
            }
        );
        assert_eq!(
            out[1],
            TcpSocket {
                family: AF_INET6,
                state: 10,
                local: "[2001:db8::1]:8080".parse().unwrap(),
                remote: "[::]:0".parse().unwrap(),
                cookie: 9,
                inode: 77,
                uid: 0,
                info: None,
            }
        );
    }

    #[test]
    fn a_datagram_without_done_asks_for_more() {
        let mut buf = two_socket_dump();
        // Drop the trailing NLMSG_DONE (20 bytes).
        buf.truncate(buf.len() - 20);
        let (result, out, _) = parse(&buf, 100);
        assert_eq!(result.unwrap(), Progress::More);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_short_tcp_info_leaves_the_missing_fields_zero() {
        // A 4.1-era tcp_info (104 bytes): rtt and total_retrans, no byte counters.
        let info = parse_tcp_info(&tcp_info_bytes(104, &sample_info()));
        assert_eq!(
            info,
            TcpInfo {
                rtt_us: 1500,
                total_retrans: 3,
                ..TcpInfo::default()
            }
        );
        // A field cut in half is not read either.
        let info = parse_tcp_info(&tcp_info_bytes(124, &sample_info()));
        assert_eq!(info.bytes_acked, 0);
        assert_eq!(parse_tcp_info(&[]), TcpInfo::default());
    }

    #[test]
    fn a_truncated_message_is_malformed_at_its_offset() {
        let buf = two_socket_dump();
        let first_len = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
        let second = align4(first_len);
        // Cut the datagram in the middle of the second message's inet_diag_msg.
        let cut = &buf[..second + NLMSG_HDR_LEN + 10];
        let (result, out, _) = parse(cut, 100);
        match result {
            Err(SockDiagError::Malformed {
                what,
                offset,
                datagram_len,
            }) => {
                assert_eq!(what, "netlink message length");
                assert_eq!(offset, second);
                assert_eq!(datagram_len, cut.len());
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
        // The socket before the damage was decoded.
        assert_eq!(out.len(), 1);

        // A header that claims a message too short for inet_diag_msg.
        let mut buf = Vec::new();
        push_msg(&mut buf, SOCK_DIAG_BY_FAMILY, SEQ, &[0u8; 40]);
        match parse(&buf, 100).0 {
            Err(SockDiagError::Malformed { what, offset, .. }) => {
                assert_eq!(what, "inet_diag_msg");
                assert_eq!(offset, NLMSG_HDR_LEN);
            }
            other => panic!("expected Malformed, got {other:?}"),
        }

        // Fewer bytes than a netlink header.
        match parse(&[1, 2, 3], 100).0 {
            Err(SockDiagError::Malformed { what, offset, .. }) => {
                assert_eq!(what, "netlink header");
                assert_eq!(offset, 0);
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn an_attribute_longer_than_its_message_is_malformed() {
        let mut msg = diag_msg(AF_INET, 1, [0; 16], 1, [0; 16], 2, 0, 0, 0, &[]);
        msg.extend_from_slice(&200u16.to_ne_bytes());
        msg.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        msg.extend_from_slice(&[0u8; 8]);
        let mut buf = Vec::new();
        push_msg(&mut buf, SOCK_DIAG_BY_FAMILY, SEQ, &msg);
        match parse(&buf, 100).0 {
            Err(SockDiagError::Malformed { what, offset, .. }) => {
                assert_eq!(what, "rtattr length");
                assert_eq!(offset, NLMSG_HDR_LEN + DIAG_MSG_LEN);
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn an_nlmsg_error_gives_the_errno() {
        let mut buf = Vec::new();
        let mut payload = (-libc::EINVAL).to_ne_bytes().to_vec();
        payload.extend_from_slice(&build_request(2, 0, 0, SEQ)[..NLMSG_HDR_LEN]);
        push_msg(&mut buf, NLMSG_ERROR, SEQ, &payload);
        match parse(&buf, 100).0 {
            Err(err @ SockDiagError::Kernel { errno }) => {
                assert_eq!(errno, libc::EINVAL);
                assert!(err.to_string().contains("Invalid argument"), "{err}");
            }
            other => panic!("expected Kernel, got {other:?}"),
        }
    }

    #[test]
    fn a_done_carrying_an_error_fails_the_dump() {
        let mut buf = Vec::new();
        push_msg(&mut buf, NLMSG_DONE, SEQ, &(-libc::ENOMEM).to_ne_bytes());
        assert!(matches!(
            parse(&buf, 100).0,
            Err(SockDiagError::Kernel { errno }) if errno == libc::ENOMEM
        ));
    }

    #[test]
    fn an_answer_to_another_request_is_rejected() {
        let mut buf = Vec::new();
        push_msg(&mut buf, NLMSG_DONE, SEQ + 1, &0i32.to_ne_bytes());
        assert!(matches!(
            parse(&buf, 100).0,
            Err(SockDiagError::SequenceMismatch { expected: SEQ, got }) if got == SEQ + 1
        ));
    }

    #[test]
    fn the_bound_stops_appending_and_reports_full() {
        let buf = two_socket_dump();
        let (result, out, report) = parse(&buf, 1);
        assert_eq!(result.unwrap(), Progress::Full);
        assert_eq!(out.len(), 1);
        assert_eq!(report.sockets, 1);
        // Exactly `max` sockets is not a truncation.
        let (result, _, _) = parse(&buf, 2);
        assert_eq!(result.unwrap(), Progress::Done);
    }

    #[test]
    fn the_request_has_the_uapi_layout() {
        let req = build_request(10, states::LISTEN, 1 << (INET_DIAG_INFO - 1), 5);
        assert_eq!(req.len(), 72);
        assert_eq!(u32::from_ne_bytes(req[0..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes(req[4..6].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes(req[6..8].try_into().unwrap()), 0x301);
        assert_eq!(u32::from_ne_bytes(req[8..12].try_into().unwrap()), 5);
        assert_eq!(&req[16..20], &[10, 6, 2, 0]);
        assert_eq!(u32::from_ne_bytes(req[20..24].try_into().unwrap()), 1 << 10);
        assert!(req[24..].iter().all(|&b| b == 0));
    }

    #[test]
    fn an_unsupported_family_is_refused_before_asking_the_kernel() {
        let mut diag = SockDiag::open().unwrap();
        let mut out = Vec::new();
        assert!(matches!(
            diag.dump_tcp(libc::AF_UNIX as u16, states::ALL, false, 10, &mut out),
            Err(SockDiagError::UnsupportedFamily(1))
        ));
    }

    #[test]
    fn the_kernel_dump_shows_a_loopback_listener_and_both_ends_of_its_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server_addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(server_addr).unwrap();
        let client_addr = client.local_addr().unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        client.write_all(b"hello").unwrap();
        let mut got = [0u8; 5];
        accepted.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");

        let mut diag = SockDiag::open().unwrap();
        let mut out = Vec::new();
        let report = diag
            .dump_tcp(
                AF_INET,
                states::ESTABLISHED | states::LISTEN,
                true,
                1 << 20,
                &mut out,
            )
            .unwrap();
        assert!(!report.truncated);
        assert_eq!(report.sockets, out.len());
        assert!(out.iter().all(|s| s.family == AF_INET && s.local.is_ipv4()));

        let find = |state: u8, local: SocketAddr, remote: Option<SocketAddr>| {
            out.iter()
                .find(|s| {
                    s.state == state && s.local == local && remote.is_none_or(|r| s.remote == r)
                })
                .copied()
                .unwrap_or_else(|| panic!("no socket in state {state} {local} -> {remote:?}"))
        };
        let listen = find(10, server_addr, None);
        assert_eq!(listen.remote.port(), 0);
        let client_end = find(1, client_addr, Some(server_addr));
        let server_end = find(1, server_addr, Some(client_addr));

        let info = server_end.info.expect("tcp_info was asked for");
        assert!(info.bytes_received >= 5, "{info:?}");
        assert_ne!(server_end.cookie, 0);
        assert_ne!(server_end.inode, 0);
        assert!(client_end.info.expect("tcp_info").bytes_acked >= 5);
        assert_ne!(client_end.cookie, server_end.cookie);
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        assert_eq!(server_end.uid, uid);
    }

    #[test]
    fn a_lookup_finds_one_socket_by_endpoints_and_cookie_and_none_once_it_is_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server_addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(server_addr).unwrap();
        let client_addr = client.local_addr().unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        client.write_all(b"hello").unwrap();
        let mut got = [0u8; 5];
        accepted.read_exact(&mut got).unwrap();

        let mut diag = SockDiag::open().unwrap();
        let mut out = Vec::new();
        diag.dump_tcp(AF_INET, states::ESTABLISHED, true, 1 << 20, &mut out)
            .unwrap();
        let server_end = out
            .iter()
            .find(|s| s.local == server_addr && s.remote == client_addr)
            .copied()
            .expect("the accepted end is in the dump");

        let found = diag
            .lookup_tcp(AF_INET, server_addr, client_addr, server_end.cookie, true)
            .unwrap()
            .expect("the socket is still there");
        assert_eq!(found.cookie, server_end.cookie);
        assert!(found.info.expect("tcp_info").bytes_received >= 5);
        // Another cookie on the same endpoints is another socket: not this one.
        assert_eq!(
            diag.lookup_tcp(
                AF_INET,
                server_addr,
                client_addr,
                server_end.cookie ^ 1,
                true
            )
            .unwrap(),
            None
        );
        drop(accepted);
        drop(client);
        drop(listener);
        // A closed socket lingers a moment in FIN states; the lookup still answers
        // (found or gone), it never fails.
        let _ = diag
            .lookup_tcp(AF_INET, server_addr, client_addr, server_end.cookie, true)
            .unwrap();
        // A dump still works after single lookups.
        out.clear();
        diag.dump_tcp(AF_INET, states::LISTEN, false, 1 << 20, &mut out)
            .unwrap();
    }

    #[test]
    fn a_truncated_kernel_dump_leaves_the_client_usable() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _second = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut diag = SockDiag::open().unwrap();

        let mut out = Vec::new();
        let report = diag
            .dump_tcp(AF_INET, states::LISTEN, false, 1, &mut out)
            .unwrap();
        assert_eq!(
            report,
            DumpReport {
                sockets: 1,
                truncated: true
            }
        );
        assert_eq!(out.len(), 1);

        // The abandoned dump must not make the next one fail with EBUSY or mix answers.
        out.clear();
        let report = diag
            .dump_tcp(AF_INET, states::LISTEN, false, 1 << 20, &mut out)
            .unwrap();
        assert!(!report.truncated);
        assert!(out.iter().any(|s| s.local == addr && s.info.is_none()));
    }
}
