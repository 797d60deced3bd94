//! Per-interval aggregation.
//!
//! The kernel's counters are cumulative over a connection's life: an interim record
//! says "so far", the final record says "in total". The [`FlowTracker`] remembers what
//! was last reported for each connection that had an interim record and turns each
//! record into the increment since then, so an interval's sums hold exactly what
//! happened in it, and a lost interim record loses nothing (the next one carries it).
//! Short connections (no interim record) never enter the tracker: their final record
//! is their increment.
//!
//! Increments are summed per [`AggregateKey`] (local address, remote address, service
//! port, direction, process id), along with a histogram of the RTT of each report.

use std::{
    collections::{HashMap, hash_map::Entry},
    net::IpAddr,
};

/// The maps touched for every record: ahash, randomly keyed (the keys hold peer
/// addresses an outsider can choose) and much cheaper than SipHash per record.
type RecordMap<K, V> = HashMap<K, V, ahash::RandomState>;

use paved_flow_common::{FlowRecord, RecordKind, rtt_bucket_value};
use paved_flow_proto::{self as proto, BatchStats, FlowAggregate, RttHistogram};

use super::enrich::Enricher;
use crate::{
    aggregates::KernelAggregate,
    flow::{FlowId, ip, service_port, wire_direction},
};

/// Most aggregates kept per interval; records of further keys are counted as
/// `overflowed` (an address scan must not exhaust the agent's memory).
pub const MAX_AGGREGATES: usize = 200_000;
/// Most connections the tracker follows (twice the kernel's open-flow map).
const MAX_TRACKED: usize = 2 * 65_536;

/// What an aggregate sums over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AggregateKey {
    /// Who opened the connections.
    pub direction: proto::Direction,
    /// This host's address.
    pub local: IpAddr,
    /// The peer's address.
    pub remote: IpAddr,
    /// The server's port.
    pub service_port: u16,
    /// Process id (tgid).
    pub pid: u32,
}

impl AggregateKey {
    /// The key of `record`.
    pub fn of(record: &FlowRecord) -> Self {
        Self {
            direction: wire_direction(record.direction()),
            local: ip(record.saddr),
            remote: ip(record.daddr),
            service_port: service_port(record),
            pid: record.tgid,
        }
    }
}

/// Counters of one connection as last reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counters {
    bytes_sent: u64,
    bytes_received: u64,
    segments_sent: u64,
    segments_received: u64,
    retransmits: u64,
}

impl Counters {
    fn of(record: &FlowRecord) -> Self {
        Self {
            bytes_sent: record.bytes_acked,
            bytes_received: record.bytes_received,
            segments_sent: u64::from(record.segs_out),
            segments_received: u64::from(record.segs_in),
            retransmits: u64::from(record.total_retrans),
        }
    }

    /// `self - earlier`, counter by counter, never below zero.
    fn since(&self, earlier: &Self) -> Self {
        Self {
            bytes_sent: self.bytes_sent.saturating_sub(earlier.bytes_sent),
            bytes_received: self.bytes_received.saturating_sub(earlier.bytes_received),
            segments_sent: self.segments_sent.saturating_sub(earlier.segments_sent),
            segments_received: self
                .segments_received
                .saturating_sub(earlier.segments_received),
            retransmits: self.retransmits.saturating_sub(earlier.retransmits),
        }
    }
}

/// What one record adds to its aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Increment {
    counters: Counters,
    /// First report of this connection.
    new_connection: bool,
    /// The connection closed.
    closed: bool,
}

#[derive(Clone, Copy, Debug)]
struct Tracked {
    reported: Counters,
    seen_ms: u64,
}

/// Turns cumulative per-connection counters into increments (see the module docs).
#[derive(Debug, Default)]
pub struct FlowTracker {
    open: RecordMap<FlowId, Tracked>,
    /// Connections closed recently that might still get a late interim record (the
    /// sweep can read a socket just before its final record is written and write its
    /// record just after): such a record is ignored.
    closed: RecordMap<FlowId, u64>,
    /// Connections at least this old (ns) at close may have had an interim record in
    /// flight; younger ones cannot, and are not remembered.
    guard_age_ns: u64,
}

impl FlowTracker {
    /// Sets the age from which a closed connection is remembered: the sweep's minimum
    /// age (records of younger connections are never swept).
    pub fn set_guard_age_ns(&mut self, age_ns: u64) {
        self.guard_age_ns = age_ns / 2;
    }

    /// The increment `record` stands for, `None` for a late interim record.
    pub fn observe(
        &mut self,
        record: &FlowRecord,
        kind: RecordKind,
        now_ms: u64,
    ) -> Option<Increment> {
        let current = Counters::of(record);
        // An untracked connection (opened before the probe, per-connection mode) has no
        // interim records: its final record is all there is. In aggregate mode the
        // cookie identifies connections that may have had some.
        let tracked = record.start_ns != 0 || record.cookie != 0;
        match kind {
            RecordKind::Interim => {
                if !tracked {
                    return None;
                }
                let id = FlowId::of(record);
                if self.closed.contains_key(&id) {
                    return None;
                }
                let previous = self.open.get(&id).map(|t| t.reported);
                if previous.is_none() && self.open.len() >= MAX_TRACKED {
                    // Cannot follow it: report nothing now; its final record will carry
                    // the whole connection.
                    return None;
                }
                self.open.insert(
                    id,
                    Tracked {
                        reported: current,
                        seen_ms: now_ms,
                    },
                );
                Some(Increment {
                    counters: current.since(&previous.unwrap_or_default()),
                    new_connection: previous.is_none(),
                    closed: false,
                })
            }
            RecordKind::Closed => {
                let previous = if tracked {
                    let id = FlowId::of(record);
                    // Most connections are short and never tracked: skip the hash then.
                    let previous = if self.open.is_empty() {
                        None
                    } else {
                        self.open.remove(&id).map(|t| t.reported)
                    };
                    // A socket with a cookie was read by a sweep, whose interim record
                    // may still be on its way; its age is unknown, so remember it.
                    if previous.is_some()
                        || record.cookie != 0
                        || record.duration_ns() >= self.guard_age_ns
                    {
                        self.closed.insert(id, now_ms);
                    }
                    previous
                } else {
                    None
                };
                Some(Increment {
                    counters: current.since(&previous.unwrap_or_default()),
                    new_connection: previous.is_none(),
                    closed: true,
                })
            }
        }
    }

    /// Forgets connections not reported since `before_ms` (their final record was lost)
    /// and closed connections older than that.
    pub fn expire(&mut self, before_ms: u64) {
        self.open.retain(|_, t| t.seen_ms >= before_ms);
        self.closed.retain(|_, &mut at| at >= before_ms);
    }

    /// Connections followed now.
    pub fn tracked(&self) -> usize {
        self.open.len()
    }
}

/// Adds counters, new connections and closes to an aggregate.
fn add_sums(slot: &mut FlowAggregate, c: &Counters, connections: u64, closed: u64) {
    slot.connections += connections;
    slot.closed += closed;
    slot.bytes_sent = slot.bytes_sent.saturating_add(c.bytes_sent);
    slot.bytes_received = slot.bytes_received.saturating_add(c.bytes_received);
    slot.segments_sent = slot.segments_sent.saturating_add(c.segments_sent);
    slot.segments_received = slot.segments_received.saturating_add(c.segments_received);
    slot.retransmits = slot.retransmits.saturating_add(c.retransmits);
}

/// Sums increments per [`AggregateKey`] over one interval.
#[derive(Debug, Default)]
pub struct Aggregator {
    slots: RecordMap<AggregateKey, FlowAggregate>,
    tracker: FlowTracker,
    stats: BatchStats,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`FlowTracker::set_guard_age_ns`].
    pub fn set_guard_age_ns(&mut self, age_ns: u64) {
        self.tracker.set_guard_age_ns(age_ns);
    }

    /// The interval's counters so far.
    pub fn stats_mut(&mut self) -> &mut BatchStats {
        &mut self.stats
    }

    /// Adds a record that passed the filters, written by the kernel at `at_ms`.
    pub fn add(&mut self, record: &FlowRecord, at_ms: u64, enricher: &mut Enricher) {
        let Some(kind) = record.kind() else {
            return;
        };
        let Some(increment) = self.tracker.observe(record, kind, at_ms) else {
            return;
        };
        let key = AggregateKey::of(record);
        let Some(slot) = self.slot(
            key,
            record.tgid,
            record.comm_bytes(),
            record.cgroup_id,
            at_ms,
            enricher,
        ) else {
            return;
        };
        add_sums(
            slot,
            &increment.counters,
            u64::from(increment.new_connection),
            u64::from(increment.closed),
        );
        if record.srtt_us > 0 {
            slot.rtt.record(record.srtt_us);
        }
        slot.first_seen_ms = slot.first_seen_ms.min(at_ms);
        slot.last_seen_ms = slot.last_seen_ms.max(at_ms);
    }

    /// Adds an aggregate the kernel summed (closed connections, increments already),
    /// first and last seen at `first_ms` and `last_ms`.
    pub fn add_kernel(
        &mut self,
        aggregate: &KernelAggregate,
        first_ms: u64,
        last_ms: u64,
        enricher: &mut Enricher,
    ) {
        let k = &aggregate.key;
        let v = &aggregate.value;
        let key = AggregateKey {
            direction: wire_direction(paved_flow_common::Direction::from_u8(k.direction)),
            local: ip(k.local_bytes()),
            remote: ip(k.remote_bytes()),
            service_port: k.service_port,
            pid: k.tgid,
        };
        let comm_len = v.comm.iter().position(|&b| b == 0).unwrap_or(v.comm.len());
        let Some(slot) = self.slot(
            key,
            k.tgid,
            &v.comm[..comm_len],
            k.cgroup_id,
            first_ms,
            enricher,
        ) else {
            return;
        };
        let sums = Counters {
            bytes_sent: v.bytes_acked,
            bytes_received: v.bytes_received,
            segments_sent: v.segs_out,
            segments_received: v.segs_in,
            retransmits: u64::from(v.total_retrans),
        };
        add_sums(slot, &sums, u64::from(v.connections), u64::from(v.closed));
        for (bucket, count) in aggregate.rtt_buckets() {
            slot.rtt
                .record_n(rtt_bucket_value(bucket), u64::from(count));
        }
        slot.first_seen_ms = slot.first_seen_ms.min(first_ms);
        slot.last_seen_ms = slot.last_seen_ms.max(last_ms);
    }

    /// The aggregate of `key`, created (and enriched once) if new; `None` when the
    /// interval already has [`MAX_AGGREGATES`] (counted as `overflowed`).
    fn slot(
        &mut self,
        key: AggregateKey,
        tgid: u32,
        comm: &[u8],
        cgroup_id: u64,
        at_ms: u64,
        enricher: &mut Enricher,
    ) -> Option<&mut FlowAggregate> {
        // One hash per record: the entry API finds or makes the slot.
        let full = self.slots.len() >= MAX_AGGREGATES;
        let vacant = match self.slots.entry(key) {
            Entry::Occupied(slot) => return Some(slot.into_mut()),
            Entry::Vacant(_) if full => {
                self.stats.overflowed += 1;
                return None;
            }
            Entry::Vacant(vacant) => vacant,
        };
        Some(vacant.insert(FlowAggregate {
            direction: key.direction,
            local_addr: key.local,
            remote_addr: key.remote,
            service_port: key.service_port,
            process: enricher.process(tgid, comm),
            cgroup_id,
            container: enricher.container(cgroup_id, tgid),
            connections: 0,
            closed: 0,
            bytes_sent: 0,
            bytes_received: 0,
            segments_sent: 0,
            segments_received: 0,
            retransmits: 0,
            rtt: RttHistogram::default(),
            first_seen_ms: at_ms,
            last_seen_ms: at_ms,
        }))
    }

    /// Ends the interval `[start_ms, end_ms)`: returns its aggregates (sightings clamped
    /// into the interval) and counters, and starts a new one. Connections unreported for
    /// `forget_after_ms` are forgotten.
    pub fn take(
        &mut self,
        start_ms: u64,
        end_ms: u64,
        forget_after_ms: u64,
    ) -> (Vec<FlowAggregate>, BatchStats) {
        let last = end_ms.saturating_sub(1).max(start_ms);
        let mut flows: Vec<FlowAggregate> = self.slots.drain().map(|(_, flow)| flow).collect();
        for flow in &mut flows {
            flow.first_seen_ms = flow.first_seen_ms.clamp(start_ms, last);
            flow.last_seen_ms = flow.last_seen_ms.clamp(flow.first_seen_ms, last);
        }
        // Deterministic order: easier to read, diff and test.
        flows.sort_by(|a, b| {
            (
                a.direction,
                a.local_addr,
                a.remote_addr,
                a.service_port,
                a.process.pid,
            )
                .cmp(&(
                    b.direction,
                    b.local_addr,
                    b.remote_addr,
                    b.service_port,
                    b.process.pid,
                ))
        });
        self.tracker.expire(end_ms.saturating_sub(forget_after_ms));
        (flows, std::mem::take(&mut self.stats))
    }

    /// Connections followed across intervals now.
    pub fn tracked_connections(&self) -> usize {
        self.tracker.tracked()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use paved_flow_common::Direction;

    use super::*;
    use crate::transform::enrich::EnrichSettings;

    fn record(
        kind: RecordKind,
        start_ns: u64,
        end_ns: u64,
        sent: u64,
        received: u64,
    ) -> FlowRecord {
        let mut r = FlowRecord::zeroed();
        r.kind = kind as u8;
        r.start_ns = start_ns;
        r.end_ns = end_ns;
        r.bytes_acked = sent;
        r.bytes_received = received;
        r.segs_out = 2;
        r.segs_in = 2;
        r.srtt_us = 50;
        r.direction = Direction::Outbound as u8;
        r.saddr = Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().octets();
        r.daddr = Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped().octets();
        r.sport = 40_000 + (start_ns % 1000) as u16;
        r.dport = 443;
        r.tgid = 99;
        r
    }

    fn enricher() -> Enricher {
        Enricher::new(&EnrichSettings::default())
    }

    #[test]
    fn short_connections_sum_into_one_aggregate_per_key() {
        let mut agg = Aggregator::new();
        let mut e = enricher();
        for i in 1..=3 {
            agg.add(
                &record(RecordKind::Closed, i, i + 10, 100, 1_000),
                5,
                &mut e,
            );
        }
        let (flows, _) = agg.take(0, 10, 60_000);
        assert_eq!(flows.len(), 1);
        let f = &flows[0];
        assert_eq!((f.connections, f.closed), (3, 3));
        assert_eq!((f.bytes_sent, f.bytes_received), (300, 3_000));
        assert_eq!(f.service_port, 443);
        assert_eq!(f.rtt.count(), 3);
        assert_eq!(f.local_addr, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn kernel_sums_and_records_of_one_key_make_one_aggregate() {
        let mut agg = Aggregator::new();
        let mut e = enricher();
        // A long connection's interim record, then the kernel's sums of the interval's
        // closes (which include what came after that interim record).
        agg.add(&record(RecordKind::Interim, 1, 2, 100, 10), 5, &mut e);
        let r = record(RecordKind::Closed, 0, 0, 0, 0);
        let mut rtt = [0u32; paved_flow_common::RTT_BUCKETS];
        rtt[paved_flow_common::rtt_bucket(50)] = 4;
        let kernel = KernelAggregate {
            key: paved_flow_common::AggregateKey {
                local_addr: paved_flow_common::address_words(&r.saddr),
                remote_addr: paved_flow_common::address_words(&r.daddr),
                cgroup_id: 7,
                tgid: r.tgid,
                service_port: 443,
                direction: Direction::Outbound as u8,
                pad: 0,
            },
            value: paved_flow_common::AggregateValue {
                first_ns: 1,
                bytes_acked: 900,
                bytes_received: 90,
                segs_in: 4,
                segs_out: 5,
                connections: 3,
                closed: 4,
                total_retrans: 1,
                pid: 99,
                comm: [0; paved_flow_common::COMM_LEN],
                rtt,
            },
            last_ns: 2,
        };
        agg.add_kernel(&kernel, 3, 8, &mut e);
        let (flows, _) = agg.take(0, 10, 60_000);
        assert_eq!(flows.len(), 1, "{flows:#?}");
        let f = &flows[0];
        assert_eq!((f.connections, f.closed), (4, 4));
        assert_eq!((f.bytes_sent, f.bytes_received), (1_000, 100));
        assert_eq!((f.segments_sent, f.segments_received), (7, 6));
        assert_eq!(f.retransmits, 1);
        assert_eq!(f.rtt.count(), 5, "one sample from the record, four summed");
        assert_eq!((f.first_seen_ms, f.last_seen_ms), (3, 8));
    }

    #[test]
    fn a_long_connection_is_split_into_increments_across_intervals() {
        let mut agg = Aggregator::new();
        let mut e = enricher();
        let start = 1_000;
        agg.add(
            &record(RecordKind::Interim, start, 2_000, 100, 10),
            5,
            &mut e,
        );
        let (first, _) = agg.take(0, 10, 60_000);
        assert_eq!(
            (first[0].bytes_sent, first[0].connections, first[0].closed),
            (100, 1, 0)
        );

        agg.add(
            &record(RecordKind::Interim, start, 3_000, 250, 10),
            15,
            &mut e,
        );
        let (second, _) = agg.take(10, 20, 60_000);
        assert_eq!((second[0].bytes_sent, second[0].connections), (150, 0));

        agg.add(
            &record(RecordKind::Closed, start, 4_000, 300, 40),
            25,
            &mut e,
        );
        // A late interim after the close must not count again.
        agg.add(
            &record(RecordKind::Interim, start, 3_900, 290, 40),
            25,
            &mut e,
        );
        let (third, _) = agg.take(20, 30, 60_000);
        assert_eq!(
            (
                third[0].bytes_sent,
                third[0].bytes_received,
                third[0].closed,
                third[0].connections
            ),
            (50, 30, 1, 0)
        );
        assert_eq!(agg.tracked_connections(), 0);
    }

    #[test]
    fn a_lost_interim_record_loses_no_bytes() {
        let mut agg = Aggregator::new();
        let mut e = enricher();
        agg.add(&record(RecordKind::Interim, 7, 100, 100, 0), 5, &mut e);
        // The second interim is lost; the close carries everything since the first.
        agg.add(&record(RecordKind::Closed, 7, 300, 1_000, 0), 6, &mut e);
        let (flows, _) = agg.take(0, 10, 60_000);
        assert_eq!(flows[0].bytes_sent, 1_000);
        assert_eq!(flows[0].connections, 1);
    }

    #[test]
    fn sightings_are_clamped_into_the_interval() {
        let mut agg = Aggregator::new();
        let mut e = enricher();
        agg.add(&record(RecordKind::Closed, 1, 2, 1, 1), 3, &mut e);
        let (flows, _) = agg.take(10, 20, 60_000);
        assert_eq!((flows[0].first_seen_ms, flows[0].last_seen_ms), (10, 10));
    }

    #[test]
    fn unreported_connections_are_forgotten() {
        let mut agg = Aggregator::new();
        let mut e = enricher();
        agg.add(&record(RecordKind::Interim, 5, 10, 1, 1), 1_000, &mut e);
        let _ = agg.take(0, 2_000, 60_000);
        assert_eq!(agg.tracked_connections(), 1);
        let _ = agg.take(2_000, 100_000, 60_000);
        assert_eq!(agg.tracked_connections(), 0);
    }
}
