//! End-to-end: real loopback TCP connections observed by the real BPF programs.
//!
//! Needs root (or CAP_BPF + CAP_PERFMON) and a kernel with the `sock:inet_sock_set_state`
//! tracepoint. The tests return early, saying why, only when the kernel refuses BPF for
//! lack of privilege; every other failure fails the test.

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream},
    thread,
    time::Duration,
};

mod common;

use common::{chain, start_probe, start_probe_with};
use paved_flow_agent::{
    Direction, FlowProbe, FlowRecord, ProbeOptions, RecordKind, ReportMode, SocketReads,
    aggregates::KernelAggregate, btf,
};

/// Bytes each client sends and the server answers: small, multi-segment, and empty.
const EXCHANGES: [(usize, usize); 3] = [(1_000, 3), (70_000, 12_345), (5, 0)];
/// TCP counts the SYN and FIN in the byte counters on some paths; allow for both.
const TCP_OVERHEAD: u64 = 2;
/// Upper bound on waiting for the records of one test.
const RECORD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to keep listening after the expected records, to catch duplicates.
const GRACE: Duration = Duration::from_millis(300);

const CLIENT_THREAD: &str = "flow-client";
const SERVER_THREAD: &str = "flow-server";

/// What one side of one connection must look like in its record.
#[derive(Debug)]
struct Expected {
    local_port: u16,
    remote_port: u16,
    direction: Direction,
    sent: usize,
    received: usize,
    tid: u32,
    comm: &'static str,
}

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// Runs `EXCHANGES` over `ip`, client and server each on a named thread, and returns
/// the listening port and what each record must say.
fn run_exchanges(ip: IpAddr) -> (u16, Vec<Expected>) {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0)).expect("bind loopback listener");
    let port = listener.local_addr().expect("listener address").port();

    let server = thread::Builder::new()
        .name(SERVER_THREAD.into())
        .spawn(move || {
            let tid = gettid();
            let mut seen = Vec::new();
            for &(_, reply) in &EXCHANGES {
                let (mut stream, peer) = listener.accept().expect("accept");
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("read timeout");
                let mut request = Vec::new();
                stream.read_to_end(&mut request).expect("read request");
                stream.write_all(&vec![b's'; reply]).expect("write reply");
                seen.push((peer.port(), request.len()));
            }
            (tid, seen)
        })
        .expect("spawn server");

    let client = thread::Builder::new()
        .name(CLIENT_THREAD.into())
        .spawn(move || {
            let tid = gettid();
            let mut ports = Vec::new();
            for &(request, reply) in &EXCHANGES {
                let mut stream =
                    TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(5))
                        .expect("connect");
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("read timeout");
                stream
                    .write_all(&vec![b'c'; request])
                    .expect("write request");
                stream.shutdown(Shutdown::Write).expect("shutdown write");
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).expect("read reply");
                assert_eq!(answer.len(), reply, "the server answered in full");
                ports.push(stream.local_addr().expect("client address").port());
            }
            (tid, ports)
        })
        .expect("spawn client");

    let (client_tid, client_ports) = client.join().expect("client thread");
    let (server_tid, served) = server.join().expect("server thread");

    let mut expected = Vec::new();
    for (i, &(request, reply)) in EXCHANGES.iter().enumerate() {
        let client_port = client_ports[i];
        assert_eq!(
            served[i],
            (client_port, request),
            "server saw connection {i}"
        );
        expected.push(Expected {
            local_port: client_port,
            remote_port: port,
            direction: Direction::Outbound,
            sent: request,
            received: reply,
            tid: client_tid,
            comm: CLIENT_THREAD,
        });
        expected.push(Expected {
            local_port: port,
            remote_port: client_port,
            direction: Direction::Inbound,
            sent: reply,
            received: request,
            tid: server_tid,
            comm: SERVER_THREAD,
        });
    }
    (port, expected)
}

/// Collects every record touching `port` until `want` arrived, then for a short grace.
async fn records_for_port(probe: &mut FlowProbe, port: u16, want: usize) -> Vec<FlowRecord> {
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + RECORD_TIMEOUT;
    loop {
        let until = if found.len() >= want {
            (tokio::time::Instant::now() + GRACE).min(deadline + GRACE)
        } else {
            deadline
        };
        match tokio::time::timeout_at(until, probe.recv()).await {
            Ok(Ok(record)) => {
                if record.sport == port || record.dport == port {
                    found.push(record);
                }
            }
            Ok(Err(err)) => panic!("reading records failed: {}", chain(&err)),
            Err(_elapsed) => return found,
        }
    }
}

fn v4_mapped(ip: Ipv4Addr) -> [u8; 16] {
    ip.to_ipv6_mapped().octets()
}

fn check(records: &[FlowRecord], expected: &[Expected], addr: [u8; 16], family: u16) {
    assert_eq!(
        records.len(),
        expected.len(),
        "exactly one record per side of each connection, got {records:#?}"
    );
    for want in expected {
        let matching: Vec<_> = records
            .iter()
            .filter(|r| r.sport == want.local_port && r.dport == want.remote_port)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "one record for {want:?}, got {matching:#?}"
        );
        let got = matching[0];
        let ctx = format!("{want:?} vs {got:#?}");
        assert_eq!(got.kind(), Some(RecordKind::Closed), "{ctx}");
        assert_eq!(got.direction(), want.direction, "{ctx}");
        assert_eq!(got.family, family, "{ctx}");
        assert_eq!((got.saddr, got.daddr), (addr, addr), "{ctx}");
        let (sent, received) = (want.sent as u64, want.received as u64);
        assert!(
            (sent..=sent + TCP_OVERHEAD).contains(&got.bytes_acked),
            "bytes_acked: {ctx}"
        );
        assert!(
            (received..=received + TCP_OVERHEAD).contains(&got.bytes_received),
            "bytes_received: {ctx}"
        );
        assert!(got.segs_out >= 1 && got.segs_in >= 1, "segments: {ctx}");
        assert_eq!(got.tgid, std::process::id(), "tgid: {ctx}");
        assert_eq!(got.pid, want.tid, "pid: {ctx}");
        assert_eq!(got.comm_bytes(), want.comm.as_bytes(), "comm: {ctx}");
        assert!(
            got.start_ns > 0 && got.end_ns >= got.start_ns,
            "times: {ctx}"
        );
        assert!(got.duration_ns() < 10_000_000_000, "duration: {ctx}");
        assert!(got.cgroup_id != 0, "cgroup: {ctx}");
    }
}

#[tokio::test]
async fn loopback_connections_produce_records_for_exactly_their_ports() {
    let Some(mut probe) = start_probe(ReportMode::PerConnection) else {
        return;
    };
    let ip = Ipv4Addr::LOCALHOST;
    let (port, expected) = run_exchanges(IpAddr::V4(ip));
    let records = records_for_port(&mut probe, port, expected.len()).await;
    check(&records, &expected, v4_mapped(ip), 2);
    assert_eq!(probe.dropped_records().expect("read drop counter"), 0);
}

#[tokio::test]
async fn ipv6_loopback_connections_are_reported_with_their_v6_addresses() {
    let Some(mut probe) = start_probe(ReportMode::PerConnection) else {
        return;
    };
    let ip = Ipv6Addr::LOCALHOST;
    let (port, expected) = run_exchanges(IpAddr::V6(ip));
    let records = records_for_port(&mut probe, port, expected.len()).await;
    check(&records, &expected, ip.octets(), 10);
}

/// The kernel's aggregates whose service port is `port`.
fn aggregates_for_port(probe: &mut FlowProbe, port: u16) -> Vec<KernelAggregate> {
    let mut all = Vec::new();
    probe
        .drain_aggregates(&mut all)
        .expect("read the aggregates");
    all.retain(|a| a.key.service_port == port);
    all
}

/// Whether the running kernel lets `bpf_rdonly_cast` give untyped memory, as its BTF
/// says (then the release program reads sockets with plain loads).
fn kernel_casts_to_untyped_memory() -> bool {
    let raw = std::fs::read(btf::VMLINUX_BTF).expect("the kernel's BTF is readable");
    btf::Btf::parse(&raw)
        .expect("the kernel's BTF parses")
        .enum_has_value("bpf_features", "BPF_FEAT_RDONLY_CAST_TO_VOID")
}

#[tokio::test]
async fn loopback_connections_are_summed_per_side_in_the_kernel() {
    let Some(probe) = start_probe(ReportMode::Aggregate) else {
        return;
    };
    let expected = if kernel_casts_to_untyped_memory() {
        SocketReads::Fastest
    } else {
        SocketReads::ProbeRead
    };
    assert_eq!(probe.socket_reads(), expected);
    check_kernel_sums(probe).await;
}

#[tokio::test]
async fn the_probe_read_release_program_sums_the_same() {
    let Some(probe) = start_probe_with(ProbeOptions {
        mode: ReportMode::Aggregate,
        socket_reads: SocketReads::ProbeRead,
    }) else {
        return;
    };
    assert_eq!(probe.socket_reads(), SocketReads::ProbeRead);
    check_kernel_sums(probe).await;
}

/// Runs known exchanges on loopback and checks the kernel's sums of both sides: the
/// addresses, counts, bytes, segments, the task, the times and the RTT samples.
async fn check_kernel_sums(mut probe: FlowProbe) {
    let ip = Ipv4Addr::LOCALHOST;
    let (port, expected) = run_exchanges(IpAddr::V4(ip));
    // Closes are summed, not written to the ring.
    let records = records_for_port(&mut probe, port, 0).await;
    assert!(
        records.is_empty(),
        "no per-connection records: {records:#?}"
    );
    let aggregates = aggregates_for_port(&mut probe, port);
    assert_eq!(aggregates.len(), 2, "one sum per side: {aggregates:#?}");
    let addr = v4_mapped(ip);
    for direction in [Direction::Outbound, Direction::Inbound] {
        let sides: Vec<_> = expected
            .iter()
            .filter(|e| e.direction == direction)
            .collect();
        let got = aggregates
            .iter()
            .find(|a| a.key.direction == direction as u8)
            .unwrap_or_else(|| panic!("no {direction:?} aggregate in {aggregates:#?}"));
        let ctx = format!("{direction:?}: {got:#?}");
        let n = sides.len() as u64;
        let sent: u64 = sides.iter().map(|e| e.sent as u64).sum();
        let received: u64 = sides.iter().map(|e| e.received as u64).sum();
        let v = &got.value;
        assert_eq!(
            (got.key.local_bytes(), got.key.remote_bytes()),
            (addr, addr),
            "{ctx}"
        );
        assert_eq!(u64::from(v.closed), n, "closed: {ctx}");
        assert_eq!(u64::from(v.connections), n, "connections: {ctx}");
        assert!(
            (sent..=sent + n * TCP_OVERHEAD).contains(&v.bytes_acked),
            "bytes sent: {ctx}"
        );
        assert!(
            (received..=received + n * TCP_OVERHEAD).contains(&v.bytes_received),
            "bytes received: {ctx}"
        );
        assert!(v.segs_out >= n && v.segs_in >= n, "segments: {ctx}");
        assert_eq!(got.key.tgid, std::process::id(), "tgid: {ctx}");
        assert_eq!(v.pid, sides[0].tid, "pid: {ctx}");
        let comm_len = v.comm.iter().position(|&b| b == 0).unwrap_or(v.comm.len());
        assert_eq!(&v.comm[..comm_len], sides[0].comm.as_bytes(), "comm: {ctx}");
        assert!(got.key.cgroup_id != 0, "cgroup: {ctx}");
        assert!(v.first_ns > 0 && got.last_ns >= v.first_ns, "times: {ctx}");
        let rtt_samples: u64 = got.rtt_buckets().map(|(_, c)| u64::from(c)).sum();
        assert_eq!(rtt_samples, n, "one RTT sample per connection: {ctx}");
    }
    // Read once: the next read starts from zero.
    assert!(aggregates_for_port(&mut probe, port).is_empty());
    let counters = probe.counters().expect("read the counters");
    assert_eq!(counters.ring_dropped, 0);
}

#[tokio::test]
async fn sampled_out_sockets_are_neither_summed_nor_recorded() {
    let Some(mut probe) = start_probe(ReportMode::Aggregate) else {
        return;
    };
    // Keeps a socket with a chance of about one in four billion.
    probe
        .set_sampling_rate(1e-9)
        .expect("set the sampling rate");
    let before = probe.counters().expect("read the counters");
    let (port, expected) = run_exchanges(IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert!(aggregates_for_port(&mut probe, port).is_empty());
    let after = probe.counters().expect("read the counters");
    assert!(
        after.sampled_out - before.sampled_out >= expected.len() as u64,
        "{before:?} -> {after:?}"
    );
}
