//! The whole agent on the real kernel probe: known loopback connections come out as
//! aggregates with the right counts and byte sums, and a connection kept open longer
//! than the interval reports its bytes before it closes.
//!
//! Needs root (or CAP_BPF + CAP_PERFMON); returns early, saying why, only when the kernel
//! refuses BPF for lack of privilege. A port filter on the test's own listening port
//! keeps other traffic on the machine out of the batches.

mod common;

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::Arc,
    time::Duration,
};

use paved_flow_agent::{
    BacklogSettings, FlowAgent, FlowConfig, FlowProbe, PortFilter, PortRange, ProbeSource,
};
use paved_flow_proto::{Direction, FlowAggregate, FlowBatch};
use paved_flow_transport::channel::{ChannelReceiver, channel};
use tokio::sync::watch;

use common::settings;

/// The SYN and FIN count in the byte counters on some paths (per connection).
const TCP_OVERHEAD: u64 = 2;

fn start_probe() -> Option<FlowProbe> {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    match FlowProbe::start() {
        Ok(mut probe) => {
            probe.set_poll_interval(Duration::from_millis(20));
            Some(probe)
        }
        Err(err) if err.is_permission_denied() => {
            eprintln!("skipping: the kernel refused BPF: {err}");
            None
        }
        Err(err) => panic!("the flow probe did not start: {err:?}"),
    }
}

fn only_port(port: u16, interval: Duration) -> FlowConfig {
    FlowConfig {
        interval,
        ports: PortFilter {
            include: vec![PortRange::single(port)],
            exclude: vec![],
        },
        ..FlowConfig::default()
    }
}

/// Batches received within `wait`, acknowledged.
async fn batches_within(receiver: &mut ChannelReceiver, wait: Duration) -> Vec<FlowBatch> {
    let mut batches = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(delivery)) = tokio::time::timeout_at(deadline, receiver.recv()).await {
        batches.push(delivery.batch().clone());
        delivery.ack();
    }
    batches
}

fn find(batch: &FlowBatch, direction: Direction) -> Option<&FlowAggregate> {
    batch.flows.iter().find(|f| f.direction == direction)
}

fn within(got: u64, want: u64, connections: u64) -> bool {
    (want..=want + TCP_OVERHEAD * connections).contains(&got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_connections_are_aggregated_with_their_counts_and_byte_sums() {
    let Some(probe) = start_probe() else {
        return;
    };
    let listener =
        TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind listener");
    let port = listener.local_addr().expect("address").port();
    let (sink, mut receiver) = channel(8);
    let (_config, config_rx) = watch::channel(only_port(port, Duration::from_secs(3600)));
    let agent = FlowAgent::spawn(
        settings("loopback", BacklogSettings::Memory { max_batches: 8 }),
        ProbeSource::new(probe),
        Arc::new(sink),
        config_rx,
    )
    .expect("agent starts");

    // Five connections: the client sends 1000, 2000, ... bytes, the server answers 100.
    const CONNECTIONS: u64 = 5;
    let sent: u64 = (1..=CONNECTIONS).map(|i| i * 1_000).sum();
    let answered = CONNECTIONS * 100;
    let server = std::thread::spawn(move || {
        for _ in 0..CONNECTIONS {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = Vec::new();
            stream.read_to_end(&mut request).expect("read request");
            stream.write_all(&[b's'; 100]).expect("answer");
        }
    });
    tokio::task::spawn_blocking(move || {
        for i in 1..=CONNECTIONS {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            stream
                .write_all(&vec![b'c'; (i * 1_000) as usize])
                .expect("request");
            stream.shutdown(Shutdown::Write).expect("half close");
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).expect("read answer");
        }
    })
    .await
    .expect("client");
    server.join().expect("server");

    tokio::time::sleep(Duration::from_millis(200)).await;
    agent.flush_now().await;
    let batches = batches_within(&mut receiver, Duration::from_secs(2)).await;
    let batch = batches
        .iter()
        .find(|b| !b.flows.is_empty())
        .unwrap_or_else(|| panic!("a batch with our flows: {batches:#?}"));
    assert_eq!(batch.flows.len(), 2, "one aggregate per side: {batch:#?}");
    let me = std::process::id();
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);

    let out = find(batch, Direction::Outbound).expect("client side");
    assert_eq!(
        (out.connections, out.closed),
        (CONNECTIONS, CONNECTIONS),
        "{out:#?}"
    );
    assert!(within(out.bytes_sent, sent, CONNECTIONS), "{out:#?}");
    assert!(
        within(out.bytes_received, answered, CONNECTIONS),
        "{out:#?}"
    );
    assert_eq!(
        (out.service_port, out.remote_addr, out.local_addr),
        (port, localhost, localhost)
    );
    assert_eq!(out.process.pid, me);
    assert!(
        out.process.exe.is_some(),
        "our executable is known: {out:#?}"
    );
    assert_eq!(out.rtt.count(), CONNECTIONS);
    assert!(out.cgroup_id != 0);

    let inbound = find(batch, Direction::Inbound).expect("server side");
    assert_eq!(
        (inbound.connections, inbound.closed),
        (CONNECTIONS, CONNECTIONS)
    );
    assert!(
        within(inbound.bytes_received, sent, CONNECTIONS),
        "{inbound:#?}"
    );
    assert!(
        within(inbound.bytes_sent, answered, CONNECTIONS),
        "{inbound:#?}"
    );
    assert_eq!(inbound.service_port, port);
    assert_eq!(inbound.process.pid, me);

    let metrics = agent.metrics();
    assert_eq!(metrics.records_dropped_kernel, 0);
    // Nobody answers the final batch: without a receiver it fails at once.
    drop(receiver);
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_open_longer_than_the_interval_reports_its_bytes_before_it_closes() {
    let Some(probe) = start_probe() else {
        return;
    };
    assert!(probe.interim_supported());
    let listener =
        TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind listener");
    let port = listener.local_addr().expect("address").port();
    let (sink, mut receiver) = channel(8);
    let (_config, config_rx) = watch::channel(only_port(port, Duration::from_secs(1)));
    let agent = FlowAgent::spawn(
        settings("interim", BacklogSettings::Memory { max_batches: 8 }),
        ProbeSource::new(probe),
        Arc::new(sink),
        config_rx,
    )
    .expect("agent starts");

    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (mut server, _) = listener.accept().expect("accept");
    client.write_all(&[b'a'; 10_000]).expect("write");
    let mut buf = vec![0u8; 10_000];
    server.read_exact(&mut buf).expect("read");

    // Open for several intervals: a batch must show the bytes while it is still open.
    let mut open_batches = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while tokio::time::Instant::now() < deadline {
        open_batches.extend(batches_within(&mut receiver, Duration::from_millis(500)).await);
        if open_batches
            .iter()
            .any(|b| find(b, Direction::Outbound).is_some())
        {
            break;
        }
    }
    let first = open_batches
        .iter()
        .find_map(|b| find(b, Direction::Outbound))
        .unwrap_or_else(|| panic!("an interim report while open: {open_batches:#?}"));
    assert_eq!((first.connections, first.closed), (1, 0), "{first:#?}");
    assert!(within(first.bytes_sent, 10_000, 1), "{first:#?}");
    assert!(agent.metrics().interim_records >= 1);

    // More bytes, then close: the later batches carry only the increments.
    client.write_all(&[b'b'; 5_000]).expect("write");
    server.read_exact(&mut buf[..5_000]).expect("read");
    drop(client);
    drop(server);
    let mut later = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while tokio::time::Instant::now() < deadline {
        later.extend(batches_within(&mut receiver, Duration::from_millis(500)).await);
        if later
            .iter()
            .filter_map(|b| find(b, Direction::Outbound))
            .any(|f| f.closed == 1)
        {
            break;
        }
    }
    let rest: Vec<&FlowAggregate> = later
        .iter()
        .filter_map(|b| find(b, Direction::Outbound))
        .collect();
    assert_eq!(rest.iter().map(|f| f.closed).sum::<u64>(), 1, "{later:#?}");
    assert_eq!(
        rest.iter().map(|f| f.connections).sum::<u64>(),
        0,
        "counted once: {later:#?}"
    );
    let total = first.bytes_sent + rest.iter().map(|f| f.bytes_sent).sum::<u64>();
    assert!(within(total, 15_000, 1), "all bytes, once: {total}");
    // Nobody answers the final batch: without a receiver it fails at once.
    drop(receiver);
    agent.shutdown().await.expect("clean shutdown");
}
