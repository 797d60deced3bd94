//! Interim records from the real kernel: a connection kept open is reported while open.
//!
//! Needs root (or CAP_BPF + CAP_PERFMON); returns early, saying why, only when the kernel
//! refuses BPF for lack of privilege.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

mod common;

use common::start_probe;
use paved_flow_agent::{Direction, FlowProbe, FlowRecord, RecordKind, ReportMode};

/// The SYN and FIN count in `bytes_acked`/`bytes_received` on some paths.
const TCP_OVERHEAD: u64 = 2;

fn about(got: u64, want: u64) -> bool {
    (want..=want + TCP_OVERHEAD).contains(&got)
}

/// Collects the records touching `port` until `want` of them arrived or `wait` passed
/// (with `want == 0`, for the whole of `wait`: to show that nothing arrives).
async fn drain(probe: &mut FlowProbe, port: u16, want: usize, wait: Duration) -> Vec<FlowRecord> {
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while want == 0 || found.len() < want {
        let Ok(Ok(record)) = tokio::time::timeout_at(deadline, probe.recv()).await else {
            break;
        };
        if record.sport == port || record.dport == port {
            found.push(record);
        }
    }
    found
}

#[tokio::test]
async fn a_connection_kept_open_gets_interim_records_with_cumulative_counters() {
    let Some(mut probe) = start_probe(ReportMode::PerConnection) else {
        return;
    };
    assert!(
        probe.interim_supported(),
        "the sweep program must load here"
    );
    probe.set_poll_interval(Duration::from_millis(10));

    let listener =
        TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind listener");
    let port = listener.local_addr().expect("listener address").port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (mut server, _) = listener.accept().expect("accept");
    let client_port = client.local_addr().expect("client address").port();

    client.write_all(&[b'a'; 3_000]).expect("client writes");
    let mut buf = vec![0u8; 3_000];
    server.read_exact(&mut buf).expect("server reads");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A minimum age longer than the connection's: nothing is due yet.
    let report = probe
        .sweep_interim(Duration::from_secs(60))
        .expect("sweep runs");
    assert!(report.sockets >= 2, "both sides are tracked: {report:?}");
    assert!(
        drain(&mut probe, port, 0, Duration::from_millis(100))
            .await
            .is_empty()
    );

    probe
        .sweep_interim(Duration::from_millis(200))
        .expect("sweep runs");
    let first = drain(&mut probe, port, 2, Duration::from_secs(2)).await;
    assert_eq!(first.len(), 2, "one interim record per side: {first:#?}");
    for record in &first {
        assert_eq!(record.kind(), Some(RecordKind::Interim), "{record:?}");
        assert_eq!(record.family, 2);
        assert_eq!(
            record.saddr,
            Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets(),
            "{record:?}"
        );
        match record.direction() {
            Direction::Outbound => {
                assert_eq!((record.sport, record.dport), (client_port, port));
                assert!(about(record.bytes_acked, 3_000), "{record:?}");
                assert_eq!(record.tgid, std::process::id(), "the connecting process");
            }
            Direction::Inbound => {
                assert_eq!((record.sport, record.dport), (port, client_port));
                assert!(about(record.bytes_received, 3_000), "{record:?}");
                // The passive open runs on behalf of nobody; the owner is learnt when
                // it closes the socket.
                assert_eq!(record.tgid, 0, "owner not known before the close");
            }
            Direction::Unknown => panic!("tracked flows have a direction: {record:?}"),
        }
        assert!(record.start_ns > 0 && record.end_ns > record.start_ns);
    }

    // Just reported: a second sweep with the same age emits nothing.
    probe
        .sweep_interim(Duration::from_millis(200))
        .expect("sweep runs");
    assert!(
        drain(&mut probe, port, 0, Duration::from_millis(100))
            .await
            .is_empty()
    );

    // More data, then another interim: counters are cumulative.
    server.write_all(&[b'b'; 5_000]).expect("server writes");
    let mut buf = vec![0u8; 5_000];
    client.read_exact(&mut buf).expect("client reads");
    tokio::time::sleep(Duration::from_millis(250)).await;
    probe
        .sweep_interim(Duration::from_millis(200))
        .expect("sweep runs");
    let second = drain(&mut probe, port, 2, Duration::from_secs(2)).await;
    assert_eq!(second.len(), 2, "{second:#?}");
    let outbound = second
        .iter()
        .find(|r| r.direction() == Direction::Outbound)
        .expect("client side");
    assert!(
        about(outbound.bytes_acked, 3_000) && about(outbound.bytes_received, 5_000),
        "{outbound:?}"
    );

    drop(client);
    drop(server);
    let closed = drain(&mut probe, port, 2, Duration::from_secs(2)).await;
    assert!(
        closed.iter().all(|r| r.kind() == Some(RecordKind::Closed)) && closed.len() == 2,
        "{closed:#?}"
    );
    assert!(
        closed.iter().all(|r| r.tgid == std::process::id()),
        "both sides credited to their owner at the close: {closed:#?}"
    );
    assert_eq!(probe.dropped_records().expect("drop counter"), 0);
}
