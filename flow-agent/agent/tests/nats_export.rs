//! The agent exporting to the real NATS JetStream (`PAVED_NATS_URL`, default
//! `nats://127.0.0.1:4222`) through an outage: a TCP relay the test can cut stands
//! between the agent and the server. Batches wait on disk while NATS is unreachable,
//! are published when it is back, and a collector that starts only afterwards stores
//! every batch exactly once, a malformed message in between notwithstanding.

mod common;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use paved_flow_agent::{ChannelSource, FlowAgent, FlowConfig};
use paved_flow_proto::{AgentId, FlowBatch};
use paved_flow_transport::{
    StoreError,
    nats::{ConsumerSettings, NatsConsumer, NatsSink, StreamSettings},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

use common::{closed_record, disk, eventually, settings, spool_dir};

fn nats_addr() -> String {
    let url = std::env::var("PAVED_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    url.trim_start_matches("nats://").to_owned()
}

/// A TCP relay to NATS that can be cut (every connection closed, new ones refused).
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let up = Arc::new(AtomicBool::new(true));
        let target = nats_addr();
        let flag = Arc::clone(&up);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !flag.load(Ordering::SeqCst) {
                    // Down: the connection is refused (closed at once).
                    continue;
                }
                let flag = Arc::clone(&flag);
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let cut = async {
                        while flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        () = cut => {}
                    }
                });
            }
        });
        Self { port, up, task }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_survive_a_nats_outage_and_are_stored_exactly_once_by_a_late_collector() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tag = format!("agent_{}_{nanos}", std::process::id());
    let stream = StreamSettings {
        stream: format!("PAVED_FLOWS_TEST_{tag}"),
        subject_prefix: format!("paved.test.{tag}.flows"),
        max_age: Duration::from_secs(600),
        ..StreamSettings::default()
    };
    let direct = async_nats::connect(nats_addr())
        .await
        .expect("NATS with JetStream must run (set PAVED_NATS_URL)");

    let relay = Relay::start().await;
    let agent_id = AgentId::new("nats-outage").expect("id");
    let sink = NatsSink::connect(
        &format!("nats://127.0.0.1:{}", relay.port),
        stream.clone(),
        &agent_id,
    )
    .await
    .expect("sink connects")
    .with_ack_timeout(Duration::from_millis(700));
    let dir = spool_dir("nats");
    let (records, source) = ChannelSource::new(1024);
    let (_config, config_rx) = watch::channel(FlowConfig {
        interval: Duration::from_secs(1),
        ..FlowConfig::default()
    });
    let agent = FlowAgent::spawn(
        settings("nats-outage", disk(&dir)),
        source,
        Arc::new(sink),
        config_rx,
    )
    .expect("agent starts");

    // One connection every 50 ms throughout.
    let fed = Arc::new(Mutex::new(0u64));
    let feeder = {
        let fed = Arc::clone(&fed);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if records.send(closed_record(5432, 10)).await.is_err() {
                    return;
                }
                *fed.lock().expect("lock") += 1;
            }
        })
    };

    assert!(
        eventually(Duration::from_secs(10), || agent.metrics().batches_exported
            >= 2)
        .await,
        "{:?}",
        agent.metrics()
    );
    relay.set_up(false);
    assert!(
        eventually(Duration::from_secs(15), || agent.metrics().batches_buffered
            >= 3)
        .await,
        "batches wait on disk while NATS is unreachable: {:?}",
        agent.metrics()
    );
    // Garbage on the agents' subject while the agent is cut off.
    let js = async_nats::jetstream::new(direct.clone());
    js.publish(
        format!("{}.intruder", stream.subject_prefix),
        "not a batch".into(),
    )
    .await
    .expect("publish garbage")
    .await
    .expect("garbage acked");
    relay.set_up(true);
    assert!(
        eventually(Duration::from_secs(20), || agent.metrics().batches_buffered
            == 0)
        .await,
        "the backlog drains once NATS is back: {:?}",
        agent.metrics()
    );
    feeder.abort();
    let _ = feeder.await;
    let fed = *fed.lock().expect("lock");
    agent.shutdown().await.expect("clean shutdown");
    // Every built batch was delivered, the last one (flushed at shutdown) included.
    let left = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "nothing left in the spool");

    // The collector starts only now.
    let consumer = NatsConsumer::bind(
        direct.clone(),
        &stream,
        ConsumerSettings {
            durable: "late-collector".into(),
            fetch_expires: Duration::from_millis(300),
            ..ConsumerSettings::default()
        },
    )
    .await
    .expect("consumer binds");
    let stored: Arc<Mutex<HashMap<u64, (u32, FlowBatch)>>> = Arc::default();
    let store = {
        let stored = Arc::clone(&stored);
        move |batch: FlowBatch| {
            let stored = Arc::clone(&stored);
            async move {
                let mut stored = stored
                    .lock()
                    .map_err(|_| StoreError::Retry("poisoned".into()))?;
                let entry = stored.entry(batch.sequence).or_insert((0, batch.clone()));
                entry.0 += 1;
                Ok(())
            }
        }
    };
    let connections = || -> u64 {
        stored
            .lock()
            .expect("lock")
            .values()
            .flat_map(|(_, b)| &b.flows)
            .map(|f| f.connections)
            .sum()
    };
    let stop = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while connections() < fed && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Linger a little: a duplicate would show up now.
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    consumer.run(&store, stop).await;

    let stored = stored.lock().expect("lock").clone();
    let sequences: Vec<u64> = {
        let mut s: Vec<u64> = stored.keys().copied().collect();
        s.sort_unstable();
        s
    };
    assert_eq!(
        sequences,
        (0..sequences.len() as u64).collect::<Vec<_>>(),
        "no batch missing"
    );
    assert!(
        stored.values().all(|(n, _)| *n == 1),
        "each batch stored exactly once"
    );
    let total: u64 = stored
        .values()
        .flat_map(|(_, b)| &b.flows)
        .map(|f| f.connections)
        .sum();
    assert_eq!(total, fed, "every connection fed arrived");
    assert_eq!(consumer.stats().snapshot().malformed, 1);

    let _ = js.delete_stream(&stream.stream).await;
    let _ = std::fs::remove_dir_all(&dir);
}
