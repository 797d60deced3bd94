//! App-to-app edges per hour.
//!
//! An edge goes from the client (who connected) to the server (who accepted), summed
//! over an hour. An endpoint no lease or rule attributes stays its bare address
//! ([`Peer::Address`]): the graph shows "egress to 203.0.113.9", never a guess.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use paved_flow_proto::RttHistogram;
use serde::{Deserialize, Serialize};

use crate::AppId;

/// One hour in milliseconds.
pub const HOUR_MS: u64 = 3_600_000;
/// Most distinct service ports remembered per edge.
const MAX_PORTS: usize = 64;

/// One end of an edge.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    /// An attributed app.
    App(AppId),
    /// An address no app owned at the time.
    Address(IpAddr),
}

/// What an edge sums over.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EdgeKey {
    /// Start of the hour (unix ms, a multiple of [`HOUR_MS`]).
    pub hour_start_ms: u64,
    /// Who connected.
    pub client: Peer,
    /// Who accepted.
    pub server: Peer,
}

/// The sums of an edge over its hour.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeStats {
    /// Connections first reported in the hour.
    pub connections: u64,
    /// Payload bytes from client to server.
    pub bytes_to_server: u64,
    /// Payload bytes from server to client.
    pub bytes_to_client: u64,
    /// Retransmitted segments.
    pub retransmits: u64,
    /// RTT samples.
    pub rtt: RttHistogram,
    /// Server ports seen (at most 64).
    pub service_ports: BTreeSet<u16>,
    /// Aggregates summed in.
    pub flows: u64,
    /// Earliest sighting (unix ms).
    pub first_seen_ms: u64,
    /// Latest sighting (unix ms).
    pub last_seen_ms: u64,
}

impl EdgeStats {
    /// Median RTT in microseconds.
    pub fn rtt_p50_us(&self) -> Option<u32> {
        self.rtt.p50()
    }

    /// 99th percentile RTT in microseconds.
    pub fn rtt_p99_us(&self) -> Option<u32> {
        self.rtt.p99()
    }

    /// Adds another edge's sums (same key) to these.
    pub fn merge(&mut self, other: &Self) {
        if self.flows == 0 {
            self.first_seen_ms = other.first_seen_ms;
            self.last_seen_ms = other.last_seen_ms;
        } else {
            self.first_seen_ms = self.first_seen_ms.min(other.first_seen_ms);
            self.last_seen_ms = self.last_seen_ms.max(other.last_seen_ms);
        }
        self.connections += other.connections;
        self.bytes_to_server = self.bytes_to_server.saturating_add(other.bytes_to_server);
        self.bytes_to_client = self.bytes_to_client.saturating_add(other.bytes_to_client);
        self.retransmits = self.retransmits.saturating_add(other.retransmits);
        self.rtt.merge(&other.rtt);
        for port in &other.service_ports {
            if self.service_ports.len() >= MAX_PORTS {
                break;
            }
            self.service_ports.insert(*port);
        }
        self.flows += other.flows;
    }
}

/// An edge with its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// Hour, client, server.
    pub key: EdgeKey,
    /// The sums.
    pub stats: EdgeStats,
}

/// Edges being summed, by hour.
#[derive(Clone, Debug, Default)]
pub struct EdgeAggregator {
    edges: BTreeMap<EdgeKey, EdgeStats>,
}

impl EdgeAggregator {
    /// An empty aggregator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one flow's contribution.
    pub fn add(&mut self, key: EdgeKey, contribution: &EdgeStats) {
        self.edges.entry(key).or_default().merge(contribution);
    }

    /// Removes and returns the edges of hours that started before `before_ms` (the
    /// hours that are complete, for storage).
    pub fn drain_before(&mut self, before_ms: u64) -> Vec<Edge> {
        let keep = self.edges.split_off(&EdgeKey {
            hour_start_ms: before_ms,
            client: Peer::Address(IpAddr::from([0u8; 4])),
            server: Peer::Address(IpAddr::from([0u8; 4])),
        });
        let done = std::mem::replace(&mut self.edges, keep);
        done.into_iter()
            .map(|(key, stats)| Edge { key, stats })
            .collect()
    }

    /// The edges so far.
    pub fn edges(&self) -> impl Iterator<Item = (&EdgeKey, &EdgeStats)> {
        self.edges.iter()
    }

    /// Number of edges.
    pub fn len(&self) -> usize {
        self.edges.len()
    }

    /// Whether there is no edge.
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }
}

/// The start of the hour containing `at_ms`.
pub fn hour_of(at_ms: u64) -> u64 {
    at_ms - at_ms % HOUR_MS
}
