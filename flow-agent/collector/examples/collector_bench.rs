//! Collector throughput (issue 6, benchmark b): attributed flow records per second on
//! one core.
//!
//! ```text
//! cargo run --release -p paved-flow-collector --example collector_bench -- [batches] [flows-per-batch]
//! ```
//!
//! Builds a lease table like a mid-size installation (10,000 pod addresses with a
//! history of two leases each, 200 inventory prefixes, 500 upstream endpoints), then
//! times, on one thread, (a) decoding and validating the JSON of each batch and (b)
//! ingesting it: attributing both ends of every aggregate at its own time and adding
//! it to the hourly edges.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Instant,
};

use paved_flow_collector::{AppId, Collector, IpPrefix, Lease, LeaseSource};
use paved_flow_proto::{
    AgentId, BatchStats, Direction, FlowAggregate, FlowBatch, ProcessInfo, RttHistogram,
    SCHEMA_VERSION, decode_batch, encode_batch,
};

const T0: u64 = 1_800_000_000_000;
const PODS: u32 = 10_000;

/// A small deterministic generator (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (self.0 >> 33) as u32
    }
}

fn pod_ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

fn app(i: u32) -> AppId {
    AppId::new(format!("app-{i}")).unwrap_or_else(|err| panic!("app id: {err}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batches: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    let per_batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1_000);

    let mut collector = Collector::new();
    collector.validator.max_age = std::time::Duration::from_secs(u64::MAX / 4_000);
    let switch = T0 + 1_800_000;
    for i in 0..PODS {
        let prefix = IpPrefix::host(pod_ip(i));
        for (app_id, from, until) in [
            (i % 300, T0 - 1_000_000, Some(switch)),
            ((i + 7) % 300, switch, None),
        ] {
            collector
                .leases
                .insert(Lease {
                    prefix,
                    port: None,
                    app: app(app_id),
                    source: LeaseSource::KubernetesPod,
                    valid_from_ms: from,
                    valid_until_ms: until,
                })
                .unwrap_or_else(|err| panic!("lease: {err}"));
        }
    }
    for i in 0..200u32 {
        let prefix = IpPrefix::new(IpAddr::V4(Ipv4Addr::from(0xac10_0000 + (i << 8))), 24)
            .unwrap_or_else(|err| panic!("prefix: {err}"));
        let _ = collector.leases.insert(Lease {
            prefix,
            port: None,
            app: app(1_000 + i),
            source: LeaseSource::StaticInventory,
            valid_from_ms: 0,
            valid_until_ms: None,
        });
    }
    for i in 0..500u32 {
        let _ = collector.leases.insert(Lease {
            prefix: IpPrefix::host(pod_ip(i)),
            port: Some(8080),
            app: app(2_000 + i),
            source: LeaseSource::GatewayUpstream,
            valid_from_ms: 0,
            valid_until_ms: None,
        });
    }

    let mut rng = Lcg(42);
    let agent = AgentId::new("bench").unwrap_or_else(|err| panic!("agent id: {err}"));
    let encoded: Vec<Vec<u8>> = (0..batches)
        .map(|b| {
            let start = T0 + (b as u64 % 360) * 10_000;
            let flows = (0..per_batch)
                .map(|_| {
                    let mut rtt = RttHistogram::default();
                    rtt.record(50 + rng.next() % 5_000);
                    let remote = if rng.next().is_multiple_of(10) {
                        IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + rng.next() % 256))
                    } else {
                        pod_ip(rng.next() % PODS)
                    };
                    FlowAggregate {
                        direction: if rng.next().is_multiple_of(2) {
                            Direction::Outbound
                        } else {
                            Direction::Inbound
                        },
                        local_addr: pod_ip(rng.next() % PODS),
                        remote_addr: remote,
                        service_port: [80, 443, 5432, 8080][(rng.next() % 4) as usize],
                        process: ProcessInfo {
                            pid: rng.next() % 30_000,
                            comm: "svc".into(),
                            exe: None,
                        },
                        cgroup_id: 1,
                        container: None,
                        connections: 1 + u64::from(rng.next() % 20),
                        closed: 1,
                        bytes_sent: u64::from(rng.next() % 100_000),
                        bytes_received: u64::from(rng.next() % 1_000_000),
                        segments_sent: 10,
                        segments_received: 20,
                        retransmits: u64::from(rng.next() % 3),
                        rtt,
                        first_seen_ms: start + u64::from(rng.next() % 10_000),
                        last_seen_ms: start + 9_999,
                    }
                })
                .map(|mut f| {
                    f.first_seen_ms = f.first_seen_ms.min(f.last_seen_ms);
                    f
                })
                .collect();
            let batch = FlowBatch {
                version: SCHEMA_VERSION,
                agent_id: agent.clone(),
                host: "bench".into(),
                epoch_ms: T0,
                sequence: b as u64,
                interval_start_ms: start,
                interval_end_ms: start + 10_000,
                sampling_rate: 1.0,
                stats: BatchStats::default(),
                flows,
            };
            encode_batch(&batch).unwrap_or_else(|err| panic!("encode: {err}"))
        })
        .collect();

    let now = T0 + 4_000_000;
    let total = (batches * per_batch) as f64;
    let decode_start = Instant::now();
    let decoded: Vec<FlowBatch> = encoded
        .iter()
        .map(|bytes| decode_batch(bytes).unwrap_or_else(|err| panic!("decode: {err}")))
        .collect();
    let decode = decode_start.elapsed().as_secs_f64();
    let ingest_start = Instant::now();
    let mut attributed = 0usize;
    for batch in &decoded {
        let (flows, report) = collector
            .ingest(batch, now)
            .unwrap_or_else(|err| panic!("ingest: {err}"));
        attributed += report.local_attributed + report.remote_attributed;
        std::hint::black_box(flows);
    }
    let ingest = ingest_start.elapsed().as_secs_f64();
    println!(
        "{} flow records in {batches} batches; {} leases; {} edges; {attributed} ends attributed",
        total,
        collector.leases.len(),
        collector.edges.len()
    );
    println!(
        "decode + validate: {:.0} records/s on one core",
        total / decode
    );
    println!(
        "attribute + edges: {:.0} records/s on one core",
        total / ingest
    );
    println!(
        "both:              {:.0} records/s on one core",
        total / (decode + ingest)
    );
}
