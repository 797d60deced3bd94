//! The pipeline with synthetic records: runtime reconfiguration, batching.

mod common;

use std::{sync::Arc, time::Duration};

use paved_flow_agent::{
    BacklogSettings, ChannelSource, FlowAgent, FlowConfig, PortFilter, PortRange,
};
use paved_flow_proto::FlowBatch;
use paved_flow_transport::channel::{ChannelReceiver, channel};
use tokio::sync::watch;

use common::{closed_record, settings};

const LONG: Duration = Duration::from_secs(3600);

/// The next batch from the receiver, acknowledged.
async fn next_batch(receiver: &mut ChannelReceiver) -> FlowBatch {
    let delivery = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
        .await
        .expect("a batch within 10 s")
        .expect("the agent is running");
    let batch = delivery.batch().clone();
    delivery.ack();
    batch
}

fn memory() -> BacklogSettings {
    BacklogSettings::Memory { max_batches: 16 }
}

#[tokio::test]
async fn port_filters_change_at_run_time_without_restart() {
    let (records, source) = ChannelSource::new(64);
    let (sink, mut receiver) = channel(4);
    let (config_tx, config_rx) = watch::channel(FlowConfig {
        interval: LONG,
        ..FlowConfig::default()
    });
    let agent = FlowAgent::spawn(
        settings("filters", memory()),
        source,
        Arc::new(sink),
        config_rx,
    )
    .expect("agent starts");

    records.send(closed_record(443, 10)).await.expect("send");
    records.send(closed_record(22, 20)).await.expect("send");
    tokio::time::sleep(Duration::from_millis(100)).await;
    agent.flush_now().await;
    let before = next_batch(&mut receiver).await;
    assert_eq!(before.flows.len(), 2, "{before:#?}");

    config_tx
        .send(FlowConfig {
            interval: LONG,
            ports: PortFilter {
                include: vec![],
                exclude: vec![PortRange::single(22)],
            },
            ..FlowConfig::default()
        })
        .expect("config sent");
    tokio::time::sleep(Duration::from_millis(100)).await;
    records.send(closed_record(443, 10)).await.expect("send");
    records.send(closed_record(22, 20)).await.expect("send");
    tokio::time::sleep(Duration::from_millis(100)).await;
    agent.flush_now().await;
    let after = next_batch(&mut receiver).await;
    assert_eq!(after.flows.len(), 1, "{after:#?}");
    assert_eq!(after.flows[0].service_port, 443);
    assert_eq!(after.stats.filtered, 1);
    assert_eq!(agent.metrics().records_filtered, 1);
    assert_eq!(agent.metrics().config_updates, 1);
    // Nobody answers the final batch: without a receiver it fails at once.
    drop(receiver);
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn the_interval_changes_at_run_time_and_an_invalid_config_is_refused() {
    let (_records, source) = ChannelSource::new(64);
    let (sink, mut receiver) = channel(4);
    let (config_tx, config_rx) = watch::channel(FlowConfig {
        interval: LONG,
        ..FlowConfig::default()
    });
    let agent = FlowAgent::spawn(
        settings("interval", memory()),
        source,
        Arc::new(sink),
        config_rx,
    )
    .expect("agent starts");

    // Invalid: refused, the hour-long interval stays.
    config_tx
        .send(FlowConfig {
            interval: Duration::from_millis(5),
            ..FlowConfig::default()
        })
        .expect("config sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(agent.metrics().config_rejected, 1);
    assert_eq!(agent.metrics().batches_built, 0);

    config_tx
        .send(FlowConfig {
            interval: Duration::from_secs(1),
            ..FlowConfig::default()
        })
        .expect("config sent");
    let started = tokio::time::Instant::now();
    let first = next_batch(&mut receiver).await;
    let second = next_batch(&mut receiver).await;
    // Generous bounds: a loaded CI machine delays timers, not by seconds.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(second.sequence, first.sequence + 1);
    assert_eq!(second.interval_start_ms, first.interval_end_ms);
    let span = second.interval_end_ms - second.interval_start_ms;
    assert!(
        (800..=2_500).contains(&span),
        "a one-second interval, got {span} ms"
    );
    // Nobody answers the final batch: without a receiver it fails at once.
    drop(receiver);
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn an_interval_with_many_aggregates_is_split_into_bounded_batches() {
    let (records, source) = ChannelSource::new(256);
    let (sink, mut receiver) = channel(8);
    let (_config_tx, config_rx) = watch::channel(FlowConfig {
        interval: LONG,
        max_flows_per_batch: 10,
        ..FlowConfig::default()
    });
    let agent = FlowAgent::spawn(
        settings("split", memory()),
        source,
        Arc::new(sink),
        config_rx,
    )
    .expect("agent starts");
    for port in 1..=25u16 {
        records.send(closed_record(port, 1)).await.expect("send");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    agent.flush_now().await;
    let batches = [
        next_batch(&mut receiver).await,
        next_batch(&mut receiver).await,
        next_batch(&mut receiver).await,
    ];
    let sizes: Vec<_> = batches.iter().map(|b| b.flows.len()).collect();
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(
        batches[0].stats.records, 25,
        "the interval's counters ride on its first batch"
    );
    assert_eq!(batches[1].stats.records, 0);
    assert!(
        batches
            .iter()
            .all(|b| b.interval_end_ms == batches[0].interval_end_ms)
    );
    // Nobody answers the final batch: without a receiver it fails at once.
    drop(receiver);
    agent.shutdown().await.expect("clean shutdown");
}
