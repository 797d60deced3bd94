//! The NATS JetStream transport against the real server (`PAVED_NATS_URL`, default
//! `nats://127.0.0.1:4222`, which must have JetStream enabled). Each test uses a stream
//! and subjects of its own and deletes the stream at the end.

use std::{
    collections::HashMap,
    net::Ipv4Addr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use paved_flow_proto::{
    AgentId, BatchStats, Direction, FlowAggregate, FlowBatch, ProcessInfo, RttHistogram,
    SCHEMA_VERSION,
};
use paved_flow_transport::{
    BatchStore, FlowSink, StoreError,
    nats::{ConsumerSettings, NatsConsumer, NatsSink, StreamSettings},
};

fn nats_url() -> String {
    std::env::var("PAVED_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

async fn client() -> async_nats::Client {
    let url = nats_url();
    tokio::time::timeout(Duration::from_secs(5), async_nats::connect(&url))
        .await
        .unwrap_or_else(|_| panic!("NATS at {url} did not answer within 5 s"))
        .unwrap_or_else(|err| {
            panic!("NATS with JetStream must run at {url} (set PAVED_NATS_URL): {err}")
        })
}

/// A stream of the test's own.
fn unique_stream(test: &str) -> StreamSettings {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tag = format!("{test}_{}_{nanos}", std::process::id());
    StreamSettings {
        stream: format!("PAVED_FLOWS_TEST_{tag}"),
        subject_prefix: format!("paved.test.{tag}.flows"),
        max_age: Duration::from_secs(600),
        ..StreamSettings::default()
    }
}

fn consumer_settings(durable: &str) -> ConsumerSettings {
    ConsumerSettings {
        durable: durable.into(),
        fetch_expires: Duration::from_millis(300),
        retry_delay: Duration::from_millis(200),
        ack_wait: Duration::from_secs(5),
        ..ConsumerSettings::default()
    }
}

fn batch(agent: &AgentId, sequence: u64) -> FlowBatch {
    let start = 1_700_000_000_000 + sequence * 10_000;
    let mut rtt = RttHistogram::default();
    rtt.record(80);
    FlowBatch {
        version: SCHEMA_VERSION,
        agent_id: agent.clone(),
        host: "test-host".into(),
        epoch_ms: 1_700_000_000_000,
        sequence,
        interval_start_ms: start,
        interval_end_ms: start + 10_000,
        sampling_rate: 1.0,
        stats: BatchStats::default(),
        flows: vec![FlowAggregate {
            direction: Direction::Outbound,
            local_addr: Ipv4Addr::new(10, 0, 0, 1).into(),
            remote_addr: Ipv4Addr::new(10, 0, 0, 2).into(),
            service_port: 5432,
            process: ProcessInfo {
                pid: 1,
                comm: "app".into(),
                exe: None,
            },
            cgroup_id: 1,
            container: None,
            connections: 1,
            closed: 1,
            bytes_sent: sequence,
            bytes_received: 0,
            segments_sent: 1,
            segments_received: 1,
            retransmits: 0,
            rtt,
            first_seen_ms: start,
            last_seen_ms: start,
        }],
    }
}

/// A store counting how many times each batch id was stored.
#[derive(Clone, Default)]
struct CountingStore {
    stored: Arc<Mutex<HashMap<String, u32>>>,
}

impl CountingStore {
    fn counts(&self) -> HashMap<String, u32> {
        self.stored.lock().expect("lock").clone()
    }
    fn total(&self) -> usize {
        self.stored.lock().expect("lock").len()
    }
}

impl BatchStore for CountingStore {
    fn store(&self, batch: FlowBatch) -> paved_flow_transport::StoreFuture<'_> {
        Box::pin(async move {
            *self
                .stored
                .lock()
                .expect("lock")
                .entry(batch.id().to_string())
                .or_default() += 1;
            Ok(())
        })
    }
}

/// Runs `consumer` until `done` holds or `timeout` passes.
async fn consume_until(
    consumer: &NatsConsumer,
    store: &dyn BatchStore,
    timeout: Duration,
    done: impl Fn() -> bool,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    let stop = async {
        while !done() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    consumer.run(store, stop).await;
}

async fn delete_stream(client: &async_nats::Client, settings: &StreamSettings) {
    let js = async_nats::jetstream::new(client.clone());
    let _ = js.delete_stream(&settings.stream).await;
}

#[tokio::test]
async fn batches_published_while_no_collector_runs_are_stored_exactly_once_and_a_malformed_one_blocks_nothing()
 {
    let client = client().await;
    let settings = unique_stream("absent");
    let agent = AgentId::new("agent-1").expect("id");
    let sink = NatsSink::new(client.clone(), settings.clone(), &agent);
    assert_eq!(
        sink.subject(),
        format!("{}.agent-1", settings.subject_prefix)
    );

    // No consumer exists yet: every publish is still acknowledged by the stream.
    for seq in 0..5 {
        sink.send(&batch(&agent, seq))
            .await
            .expect("published and acked");
    }
    // A retried publish of the same batch (its ack was lost, say) is not stored twice.
    sink.send(&batch(&agent, 2)).await.expect("republished");
    // Garbage on the subject, between valid batches.
    let js = async_nats::jetstream::new(client.clone());
    js.publish(sink.subject().to_owned(), "{ this is not a batch".into())
        .await
        .expect("publish garbage")
        .await
        .expect("garbage acked");
    let mut wrong_version = serde_json::to_value(batch(&agent, 99)).expect("json");
    wrong_version["version"] = 7.into();
    js.publish(sink.subject().to_owned(), wrong_version.to_string().into())
        .await
        .expect("publish v7")
        .await
        .expect("v7 acked");
    for seq in 5..8 {
        sink.send(&batch(&agent, seq))
            .await
            .expect("published and acked");
    }

    // The collector starts now.
    let consumer = NatsConsumer::bind(client.clone(), &settings, consumer_settings("collectors"))
        .await
        .expect("consumer binds");
    let store = CountingStore::default();
    consume_until(&consumer, &store, Duration::from_secs(15), || {
        store.total() >= 8
    })
    .await;

    let counts = store.counts();
    assert_eq!(counts.len(), 8, "{counts:?}");
    assert!(
        counts.values().all(|&n| n == 1),
        "each batch exactly once: {counts:?}"
    );
    let stats = consumer.stats().snapshot();
    assert_eq!((stats.stored, stats.malformed), (8, 2), "{stats:?}");

    // Nothing is left to redeliver: a second run stores nothing more.
    consume_until(&consumer, &store, Duration::from_millis(800), || false).await;
    assert_eq!(consumer.stats().snapshot().stored, 8);
    delete_stream(&client, &settings).await;
}

#[tokio::test]
async fn collectors_bound_to_the_same_consumer_share_the_batches() {
    let client = client().await;
    let settings = unique_stream("shared");
    let agent = AgentId::new("agent-2").expect("id");
    let sink = NatsSink::new(client.clone(), settings.clone(), &agent);
    for seq in 0..40 {
        sink.send(&batch(&agent, seq)).await.expect("published");
    }
    let mut small = consumer_settings("group");
    small.fetch_batch = 4;
    let a = NatsConsumer::bind(client.clone(), &settings, small.clone())
        .await
        .expect("a binds");
    let b = NatsConsumer::bind(client.clone(), &settings, small)
        .await
        .expect("b binds");
    let store = CountingStore::default();
    let done = || store.total() >= 40;
    tokio::join!(
        consume_until(&a, &store, Duration::from_secs(15), done),
        consume_until(&b, &store, Duration::from_secs(15), done),
    );
    let counts = store.counts();
    assert_eq!(counts.len(), 40);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    let (sa, sb) = (a.stats().snapshot(), b.stats().snapshot());
    assert_eq!(sa.stored + sb.stored, 40, "{sa:?} {sb:?}");
    delete_stream(&client, &settings).await;
}

#[tokio::test]
async fn a_batch_whose_store_failed_is_redelivered_and_stored_later() {
    let client = client().await;
    let settings = unique_stream("retry");
    let agent = AgentId::new("agent-3").expect("id");
    let sink = NatsSink::new(client.clone(), settings.clone(), &agent);
    for seq in 0..3 {
        sink.send(&batch(&agent, seq)).await.expect("published");
    }
    let consumer = NatsConsumer::bind(client.clone(), &settings, consumer_settings("retry"))
        .await
        .expect("binds");
    let failed_once = Arc::new(Mutex::new(false));
    let stored = Arc::new(Mutex::new(Vec::new()));
    let store = {
        let failed_once = Arc::clone(&failed_once);
        let stored = Arc::clone(&stored);
        move |batch: FlowBatch| {
            let failed_once = Arc::clone(&failed_once);
            let stored = Arc::clone(&stored);
            async move {
                let mut failed = failed_once.lock().expect("lock");
                if batch.sequence == 1 && !*failed {
                    *failed = true;
                    return Err(StoreError::Retry("database away".into()));
                }
                stored.lock().expect("lock").push(batch.sequence);
                Ok(())
            }
        }
    };
    let count = || stored.lock().expect("lock").len();
    consume_until(&consumer, &store, Duration::from_secs(15), || count() >= 3).await;
    let mut got = stored.lock().expect("lock").clone();
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(consumer.stats().snapshot().retried, 1);
    delete_stream(&client, &settings).await;
}
