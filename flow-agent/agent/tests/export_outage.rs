//! Export through a sink outage: batches wait on disk and are delivered later, in
//! order, none lost, none twice — also across an agent restart.

mod common;

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use paved_flow_agent::{ChannelSource, FlowAgent, FlowConfig, FlowSink, SinkError};
use paved_flow_proto::FlowBatch;
use paved_flow_transport::SinkFuture;
use tokio::sync::{mpsc, watch};

use common::{closed_record, disk, eventually, settings, spool_dir};

/// A sink that can be switched off, remembering what it accepted.
#[derive(Default)]
struct SwitchableSink {
    down: AtomicBool,
    /// (epoch, sequence) → how many times delivered, and the batch.
    delivered: Mutex<BTreeMap<(u64, u64), (u32, FlowBatch)>>,
}

impl SwitchableSink {
    fn connections(&self) -> u64 {
        let delivered = self.delivered.lock().expect("lock");
        delivered
            .values()
            .flat_map(|(_, b)| &b.flows)
            .map(|f| f.connections)
            .sum()
    }
    fn batches(&self) -> Vec<(u64, u64, u32)> {
        let delivered = self.delivered.lock().expect("lock");
        delivered
            .iter()
            .map(|(&(e, s), &(n, _))| (e, s, n))
            .collect()
    }
}

impl FlowSink for SwitchableSink {
    fn name(&self) -> &'static str {
        "switchable"
    }
    fn send<'a>(&'a self, batch: &'a FlowBatch) -> SinkFuture<'a> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(SinkError::unavailable("switchable", "switched off"));
            }
            let mut delivered = self.delivered.lock().expect("lock");
            let entry = delivered
                .entry((batch.epoch_ms, batch.sequence))
                .or_insert((0, batch.clone()));
            entry.0 += 1;
            Ok(())
        })
    }
}

/// Feeds one connection every 50 ms until told to stop; returns how many were fed.
fn feed(
    records: mpsc::Sender<paved_flow_agent::FlowRecord>,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<u64>) {
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut fed = 0;
        loop {
            tokio::select! {
                _ = stop_rx.changed() => return fed,
                () = tokio::time::sleep(Duration::from_millis(50)) => {
                    if records.send(closed_record(443, 100)).await.is_err() {
                        return fed;
                    }
                    fed += 1;
                }
            }
        }
    });
    (stop_tx, task)
}

fn one_second() -> watch::Receiver<FlowConfig> {
    let (tx, rx) = watch::channel(FlowConfig {
        interval: Duration::from_secs(1),
        ..FlowConfig::default()
    });
    // Keep the sender alive for the test's duration by leaking it: the configuration
    // never changes here.
    std::mem::forget(tx);
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_wait_on_disk_while_the_sink_is_away_and_arrive_in_order_afterwards() {
    let dir = spool_dir("outage");
    let sink = Arc::new(SwitchableSink::default());
    let (records, source) = ChannelSource::new(1024);
    let agent = FlowAgent::spawn(
        settings("outage", disk(&dir)),
        source,
        sink.clone(),
        one_second(),
    )
    .expect("agent starts");
    let (stop_feed, feeder) = feed(records);

    // Up, then down long enough for several intervals.
    assert!(
        eventually(Duration::from_secs(5), || agent.metrics().batches_exported
            >= 1)
        .await
    );
    sink.down.store(true, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(10), || agent.metrics().batches_buffered
            >= 3)
        .await,
        "{:?}",
        agent.metrics()
    );
    let on_disk = std::fs::read_dir(&dir).expect("spool dir").count();
    assert!(on_disk >= 3, "batches are files in the spool: {on_disk}");
    assert!(agent.metrics().export_lag_ms > 0);

    // Back: the backlog drains.
    sink.down.store(false, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(10), || agent.metrics().batches_buffered
            == 0)
        .await,
        "{:?}",
        agent.metrics()
    );
    let _ = stop_feed.send(true);
    let fed = feeder.await.expect("feeder");
    agent.shutdown().await.expect("clean shutdown");

    let batches = sink.batches();
    assert!(
        batches.iter().all(|&(_, _, times)| times == 1),
        "each batch exactly once: {batches:?}"
    );
    let sequences: Vec<u64> = batches.iter().map(|&(_, s, _)| s).collect();
    let expected: Vec<u64> = (0..sequences.len() as u64).collect();
    assert_eq!(sequences, expected, "no batch missing");
    assert_eq!(
        sink.connections(),
        fed,
        "every connection fed is in a delivered batch"
    );
    assert_eq!(std::fs::read_dir(&dir).expect("spool dir").count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_kept_on_disk_at_shutdown_are_delivered_by_the_next_start() {
    let dir = spool_dir("restart");
    let sink = Arc::new(SwitchableSink::default());
    sink.down.store(true, Ordering::SeqCst);

    let (records, source) = ChannelSource::new(1024);
    let agent = FlowAgent::spawn(
        settings("restart", disk(&dir)),
        source,
        sink.clone(),
        one_second(),
    )
    .expect("first agent starts");
    let (stop_feed, feeder) = feed(records);
    assert!(
        eventually(Duration::from_secs(10), || agent.metrics().batches_buffered
            >= 2)
        .await
    );
    let _ = stop_feed.send(true);
    let fed_first = feeder.await.expect("feeder");
    agent.shutdown().await.expect("clean shutdown");
    let left = std::fs::read_dir(&dir).expect("spool dir").count();
    assert!(left >= 3, "the backlog stays on disk: {left}");

    // A new agent process (new epoch) on the same spool, with the sink back.
    tokio::time::sleep(Duration::from_millis(5)).await;
    sink.down.store(false, Ordering::SeqCst);
    let (records, source) = ChannelSource::new(1024);
    let agent = FlowAgent::spawn(
        settings("restart", disk(&dir)),
        source,
        sink.clone(),
        one_second(),
    )
    .expect("second agent starts");
    records.send(closed_record(443, 100)).await.expect("send");
    assert!(
        eventually(Duration::from_secs(10), || {
            let m = agent.metrics();
            m.batches_buffered == 0 && m.batches_exported > left as u64
        })
        .await,
        "{:?}",
        agent.metrics()
    );
    agent.shutdown().await.expect("clean shutdown");

    let batches = sink.batches();
    assert!(
        batches.iter().all(|&(_, _, times)| times == 1),
        "{batches:?}"
    );
    let epochs: std::collections::BTreeSet<u64> = batches.iter().map(|&(e, _, _)| e).collect();
    assert_eq!(epochs.len(), 2, "batches of both runs: {batches:?}");
    assert_eq!(sink.connections(), fed_first + 1);
    let _ = std::fs::remove_dir_all(&dir);
}
