//! End-to-end, aggregate mode: real loopback connections seen by the release program
//! (`cgroup/sock_release`), the bind programs and the `sock_diag` interim sweep.
//!
//! Needs root (or CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN) and cgroup v2. The tests
//! return early, saying why, only when the kernel refuses BPF for lack of privilege.
//!
//! A sweep gives a cookie to every connected socket it reads, whichever test owns it,
//! and the close of a socket with a cookie goes to the ring buffer instead of the sums;
//! so the tests count a connection wherever it is reported: summed or recorded.

use std::{
    io::{ErrorKind, Read, Write},
    net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream},
    thread,
    time::Duration,
};

mod common;

use common::start_probe;
use paved_flow_agent::{Direction, FlowProbe, FlowRecord, RecordKind, ReportMode};

/// Upper bound on waiting for records.
const RECORD_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP may count the SYN or FIN in a byte counter; allow for both.
const TCP_OVERHEAD: u64 = 2;

/// One side of the connections on `port`, as reported at close: summed or recorded.
#[derive(Debug, Default, PartialEq, Eq)]
struct Side {
    connections: u64,
    sent: u64,
    received: u64,
}

/// Closes on `port` in `direction`: the kernel's sums, plus the closes recorded in the
/// ring (sockets with a cookie) minus what their interim records in `interim` carried.
async fn closed_side(
    probe: &mut FlowProbe,
    port: u16,
    direction: Direction,
    want_records: usize,
    interim: &[FlowRecord],
) -> Side {
    let mut side = Side::default();
    let mut aggregates = Vec::new();
    probe
        .drain_aggregates(&mut aggregates)
        .expect("read the aggregates");
    for a in aggregates
        .iter()
        .filter(|a| a.key.service_port == port && a.key.direction == direction as u8)
    {
        side.connections += u64::from(a.value.connections);
        side.sent += a.value.bytes_acked;
        side.received += a.value.bytes_received;
    }
    for record in closed_records(probe, port, want_records).await {
        if record.direction() != direction {
            continue;
        }
        assert_ne!(record.cookie, 0, "only a socket with a cookie is recorded");
        let before = interim.iter().find(|i| i.cookie == record.cookie);
        side.connections += u64::from(before.is_none());
        side.sent += record.bytes_acked - before.map_or(0, |i| i.bytes_acked);
        side.received += record.bytes_received - before.map_or(0, |i| i.bytes_received);
    }
    side
}

/// The closed records touching `port` that arrive within the timeout (stops early
/// once `want` arrived).
async fn closed_records(probe: &mut FlowProbe, port: u16, want: usize) -> Vec<FlowRecord> {
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + RECORD_TIMEOUT;
    while found.len() < want {
        match tokio::time::timeout_at(deadline, probe.recv()).await {
            Ok(Ok(record)) => {
                if record.kind() == Some(RecordKind::Closed)
                    && (record.sport == port || record.dport == port)
                {
                    found.push(record);
                }
            }
            Ok(Err(err)) => panic!("reading records failed: {err:?}"),
            Err(_elapsed) => break,
        }
    }
    // Whatever else is already there (a close recorded when none was expected).
    while let Some(record) = probe.try_recv() {
        if record.kind() == Some(RecordKind::Closed)
            && (record.sport == port || record.dport == port)
        {
            found.push(record);
        }
    }
    found
}

/// A connected pair on loopback: (client, accepted server end, listening port).
fn connect_pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let addr = listener.local_addr().expect("listener address");
    let client = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
    }
    (client, server)
}

fn send(from: &mut TcpStream, to: &mut TcpStream, len: usize) {
    from.write_all(&vec![b'x'; len]).expect("write");
    let mut got = vec![0; len];
    to.read_exact(&mut got).expect("read");
}

#[tokio::test]
async fn a_long_connection_gets_interim_records_and_its_close_carries_the_rest() {
    let Some(mut probe) = start_probe(ReportMode::Aggregate) else {
        return;
    };
    assert!(probe.interim_supported(), "sock_diag is available here");
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (mut client, mut server) = connect_pair(&listener);
    send(&mut client, &mut server, 1_000);
    send(&mut server, &mut client, 300);

    probe
        .sweep_interim(Duration::ZERO)
        .expect("the sweep reads the sockets");
    let mut interim = Vec::new();
    while let Some(record) = probe.try_recv() {
        if record.kind() == Some(RecordKind::Interim)
            && (record.sport == port || record.dport == port)
        {
            interim.push(record);
        }
    }
    assert_eq!(interim.len(), 2, "one interim record per end: {interim:#?}");
    let server_end = interim
        .iter()
        .find(|r| r.sport == port)
        .expect("the accepted end");
    let client_end = interim
        .iter()
        .find(|r| r.dport == port)
        .expect("the connecting end");
    assert_eq!(server_end.direction(), Direction::Inbound);
    assert_eq!(client_end.direction(), Direction::Outbound);
    assert!(server_end.cookie != 0 && client_end.cookie != 0);
    assert_eq!(server_end.bytes_received, 1_000);
    assert_eq!(client_end.bytes_received, 300);
    assert_eq!(server_end.tgid, 0, "sock_diag does not name the owner");

    // More traffic, then both ends close: their closes go to the ring (they have a
    // cookie now) with counters cumulative since the open.
    send(&mut client, &mut server, 2_000);
    client.shutdown(Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).expect("read to the end");
    drop(server);
    drop(client);

    let inbound = closed_side(&mut probe, port, Direction::Inbound, 2, &interim).await;
    let records = closed_records(&mut probe, port, 0).await;
    assert!(records.is_empty(), "each close reported once: {records:#?}");
    // After the interim record the server received 2,000 more bytes (and the FIN,
    // which some paths count) and sent nothing.
    assert_eq!((inbound.connections, inbound.sent), (0, 0), "{inbound:?}");
    assert!(
        (2_000..=2_000 + TCP_OVERHEAD).contains(&inbound.received),
        "{inbound:?}"
    );
}

#[tokio::test]
async fn ipv6_connections_are_summed_with_their_v6_addresses() {
    let Some(mut probe) = start_probe(ReportMode::Aggregate) else {
        return;
    };
    let listener = match TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("skipping: no IPv6 loopback here: {err}");
            return;
        }
    };
    let port = listener.local_addr().expect("address").port();
    for _ in 0..2 {
        let (mut client, mut server) = connect_pair(&listener);
        send(&mut client, &mut server, 700);
        send(&mut server, &mut client, 40);
    }
    // Give the closes a moment to run (they are synchronous, but be generous).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut aggregates = Vec::new();
    probe
        .drain_aggregates(&mut aggregates)
        .expect("read the aggregates");
    aggregates.retain(|a| a.key.service_port == port);
    let loopback = Ipv6Addr::LOCALHOST.octets();
    for direction in [Direction::Outbound, Direction::Inbound] {
        // A sweep of another test may have sent a close to the ring instead: count
        // only what was summed, and require the addresses of what was.
        let summed: Vec<_> = aggregates
            .iter()
            .filter(|a| a.key.direction == direction as u8)
            .collect();
        assert!(!summed.is_empty(), "no {direction:?} sum: {aggregates:#?}");
        for a in summed {
            assert_eq!(
                (a.key.local_bytes(), a.key.remote_bytes()),
                (loopback, loopback),
                "{a:#?}"
            );
            let n = u64::from(a.value.connections);
            let (sent, received) = match direction {
                Direction::Inbound => (40, 700),
                _ => (700, 40),
            };
            assert!(
                (n * sent..=n * (sent + TCP_OVERHEAD)).contains(&a.value.bytes_acked),
                "{a:#?}"
            );
            assert!(
                (n * received..=n * (received + TCP_OVERHEAD)).contains(&a.value.bytes_received),
                "{a:#?}"
            );
        }
    }
}

#[tokio::test]
async fn a_listener_older_than_the_probe_takes_inbound_connections() {
    // Bound before the probe exists: no bind program saw it, the start-up sweep of
    // the listening sockets must.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("address").port();
    let Some(mut probe) = start_probe(ReportMode::Aggregate) else {
        return;
    };
    let (mut client, mut server) = connect_pair(&listener);
    send(&mut client, &mut server, 100);
    drop(client);
    drop(server);

    let inbound = closed_side(&mut probe, port, Direction::Inbound, 0, &[]).await;
    assert_eq!(inbound.connections, 1, "{inbound:?}");
    assert!(
        (100..=100 + TCP_OVERHEAD).contains(&inbound.received),
        "{inbound:?}"
    );
}

#[tokio::test]
async fn bytes_not_yet_acknowledged_at_close_still_count_as_sent() {
    let Some(mut probe) = start_probe(ReportMode::Aggregate) else {
        return;
    };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("address").port();
    let addr: SocketAddr = listener.local_addr().expect("address");
    // The client reads nothing until the server has closed, so the server's last
    // bytes are still in flight (the client's window is full) when it closes.
    let client = thread::spawn(move || {
        let mut client = TcpStream::connect(addr).expect("connect");
        thread::sleep(Duration::from_millis(300));
        let mut all = Vec::new();
        client.read_to_end(&mut all).expect("read everything");
        all.len()
    });
    let (mut server, _) = listener.accept().expect("accept");
    server.set_nonblocking(true).expect("nonblocking");
    let chunk = vec![b'y'; 64 * 1024];
    let mut written = 0u64;
    loop {
        match server.write(&chunk) {
            Ok(n) => written += n as u64,
            Err(err) if err.kind() == ErrorKind::WouldBlock => break,
            Err(err) => panic!("write: {err}"),
        }
    }
    drop(server);
    let received = client.join().expect("client thread");
    assert_eq!(received as u64, written);

    let inbound = closed_side(&mut probe, port, Direction::Inbound, 0, &[]).await;
    assert_eq!(inbound.connections, 1, "{inbound:?}");
    assert!(
        (written..=written + TCP_OVERHEAD).contains(&inbound.sent),
        "sent {} of {written} written: {inbound:?}",
        inbound.sent
    );
}
