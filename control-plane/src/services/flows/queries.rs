//! Reads over the hourly edges: an app's dependencies, the dependency graph, top talkers,
//! new edges, flows to addresses no app owns.
//!
//! Who sees what: an edge is visible to a caller who may read one of its apps (an app's
//! owners see who calls it and what it calls, by name); edges between addresses, hosts and
//! apps known only from the inventory are visible to readers of everything (admins,
//! security reviewers, unrestricted read tokens).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use paved_flow_collector::EdgeStats;
use sea_orm::sea_query::ExprTrait;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect};

use super::ingest::stats_from_row;
use super::leases::HOST_APP_PREFIX;
use super::{now_ms, to_i64};
use crate::auth::Principal;
use crate::services::ControlPlane;
use crate::services::apps::may_read_stored;
use crate::services::require_reader;
use crate::storage::entities::{app, flow_edge};
use crate::{Error, Result};

/// Longest time range of a flow query.
pub const MAX_FLOW_RANGE: Duration = Duration::from_secs(31 * 24 * 3600);
const HOUR_MS: u64 = paved_flow_collector::HOUR_MS;

/// Where an address no app owns lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressScope {
    /// A global address: egress to the internet.
    Internet,
    /// Private, loopback, link-local, shared (CGNAT), unique-local or multicast: inside.
    Internal,
}

impl AddressScope {
    /// `internet` or `internal`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressScope::Internet => "internet",
            AddressScope::Internal => "internal",
        }
    }
}

/// Whether `addr` is on the internet or inside. Documentation ranges (TEST-NET,
/// `2001:db8::/32`) count as internet: they stand for public addresses in examples.
pub fn address_scope(addr: IpAddr) -> AddressScope {
    let internal = match addr {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                // 100.64.0.0/10, shared address space (carrier-grade NAT).
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => return address_scope(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unicast_link_local()
                    // fc00::/7, unique local addresses.
                    || (first & 0xfe00) == 0xfc00
            }
        },
    };
    if internal {
        AddressScope::Internal
    } else {
        AddressScope::Internet
    }
}

/// One end of an edge as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowPeer {
    /// An app (from an intent or the inventory).
    App(String),
    /// A host running a flow agent (its agent id), for flows no app claims.
    Host(String),
    /// An address no app owned at the time.
    Address(IpAddr),
    /// Addresses no app owned, collapsed by scope (the graph's `collapseAddresses`).
    Network(AddressScope),
}

impl FlowPeer {
    fn from_stored(kind: &str, value: &str) -> Option<FlowPeer> {
        match kind {
            "app" => Some(match value.strip_prefix(HOST_APP_PREFIX) {
                Some(host) => FlowPeer::Host(host.to_string()),
                None => FlowPeer::App(value.to_string()),
            }),
            "address" => value.parse().ok().map(FlowPeer::Address),
            _ => None,
        }
    }

    /// A stable id for drawing: `app:<name>`, `host:<agent id>`, `address:<ip>`,
    /// `network:internet`, `network:internal`.
    pub fn id(&self) -> String {
        match self {
            FlowPeer::App(name) => format!("app:{name}"),
            FlowPeer::Host(host) => format!("host:{host}"),
            FlowPeer::Address(addr) => format!("address:{addr}"),
            FlowPeer::Network(scope) => format!("network:{}", scope.as_str()),
        }
    }

    /// What to write on it: the app, the host, the address, `internet` or `internal`.
    pub fn label(&self) -> String {
        match self {
            FlowPeer::App(name) | FlowPeer::Host(name) => name.clone(),
            FlowPeer::Address(addr) => addr.to_string(),
            FlowPeer::Network(scope) => scope.as_str().to_string(),
        }
    }

    /// The scope of an address or network end.
    pub fn scope(&self) -> Option<AddressScope> {
        match self {
            FlowPeer::Address(addr) => Some(address_scope(*addr)),
            FlowPeer::Network(scope) => Some(*scope),
            FlowPeer::App(_) | FlowPeer::Host(_) => None,
        }
    }

    fn collapsed(self) -> FlowPeer {
        match self {
            FlowPeer::Address(addr) => FlowPeer::Network(address_scope(addr)),
            other => other,
        }
    }
}

/// A time range `[from, to)` of a flow query, whole hours (edges are hourly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRange {
    /// Start (unix ms, inclusive): the start of the hour containing the requested start.
    pub from_ms: u64,
    /// End (unix ms, exclusive).
    pub to_ms: u64,
}

impl FlowRange {
    /// `[from, to)`, by default the last 24 hours; at most 31 days.
    pub fn new(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<FlowRange> {
        let ms = |t: DateTime<Utc>| u64::try_from(t.timestamp_millis()).unwrap_or(0);
        let to_ms = to.map_or_else(now_ms, ms);
        let from_ms = from.map_or(to_ms.saturating_sub(24 * HOUR_MS), ms);
        if from_ms >= to_ms {
            return Err(Error::BadRequest(
                "the time range is empty: `from` must be before `to`".into(),
            ));
        }
        if to_ms - from_ms > MAX_FLOW_RANGE.as_millis() as u64 {
            return Err(Error::BadRequest(format!(
                "the time range is longer than {} days",
                MAX_FLOW_RANGE.as_secs() / 86_400
            )));
        }
        Ok(FlowRange {
            from_ms: from_ms - from_ms % HOUR_MS,
            to_ms,
        })
    }

    /// Start as a time.
    pub fn from(&self) -> DateTime<Utc> {
        super::leases::ms_time(to_i64(self.from_ms))
    }

    /// End as a time.
    pub fn to(&self) -> DateTime<Utc> {
        super::leases::ms_time(to_i64(self.to_ms))
    }
}

/// A client-to-server edge summed over a time range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowEdgeSummary {
    /// Who connected.
    pub client: FlowPeer,
    /// Who accepted.
    pub server: FlowPeer,
    /// The sums (RTT percentiles from the merged histograms).
    pub stats: EdgeStats,
}

impl FlowEdgeSummary {
    /// Bytes both ways.
    pub fn bytes(&self) -> u64 {
        self.stats
            .bytes_to_server
            .saturating_add(self.stats.bytes_to_client)
    }
}

/// An app's dependencies over a time range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDependencies {
    /// The app.
    pub app: String,
    /// The range.
    pub range: FlowRange,
    /// Who connected to it (it is the server), by bytes.
    pub inbound: Vec<FlowEdgeSummary>,
    /// What it connected to (it is the client), by bytes.
    pub outbound: Vec<FlowEdgeSummary>,
}

/// A node of the dependency graph with its traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowNode {
    /// What it is.
    pub peer: FlowPeer,
    /// Bytes it received (as server: from clients; as client: from servers).
    pub bytes_in: u64,
    /// Bytes it sent.
    pub bytes_out: u64,
    /// Connections it accepted.
    pub connections_in: u64,
    /// Connections it opened.
    pub connections_out: u64,
}

/// The dependency graph over a time range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowGraph {
    /// The range.
    pub range: FlowRange,
    /// Every end of the edges.
    pub nodes: Vec<FlowNode>,
    /// The edges, by bytes.
    pub edges: Vec<FlowEdgeSummary>,
    /// Edges beyond the requested number were left out (the smallest).
    pub truncated: bool,
}

/// How top talkers are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TalkerOrder {
    /// Bytes both ways.
    Bytes,
    /// Connections.
    Connections,
}

/// An address no app owned, with the traffic to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnownedDestination {
    /// The address.
    pub address: IpAddr,
    /// Internet or internal.
    pub scope: AddressScope,
    /// The sums over its clients.
    pub stats: EdgeStats,
    /// Who connected to it.
    pub clients: Vec<FlowPeer>,
}

/// What a caller may see.
pub(crate) struct Visibility {
    all: bool,
    apps: HashSet<String>,
}

impl Visibility {
    pub(crate) async fn of(cp: &ControlPlane, who: &Principal) -> Result<Visibility> {
        require_reader(who)?;
        if who.can_read_all() {
            return Ok(Visibility {
                all: true,
                apps: HashSet::new(),
            });
        }
        // Deleted apps keep their team and owners: their history stays visible to them.
        let apps = app::Entity::find()
            .all(cp.store().db())
            .await?
            .into_iter()
            .filter(|a| may_read_stored(who, a))
            .map(|a| a.name)
            .collect();
        Ok(Visibility { all: false, apps })
    }

    pub(crate) fn app(&self, name: &str) -> bool {
        self.all || self.apps.contains(name)
    }

    fn peer(&self, peer: &FlowPeer) -> bool {
        match peer {
            FlowPeer::App(name) => self.app(name),
            _ => self.all,
        }
    }

    fn edge(&self, client: &FlowPeer, server: &FlowPeer) -> bool {
        self.all || self.peer(client) || self.peer(server)
    }
}

/// Which edge rows a query reads.
enum EdgeFilter<'a> {
    All,
    /// Edges with this app at either end.
    Either(&'a str),
    /// Edges whose server is an address.
    ServerAddresses,
}

type Summed = BTreeMap<(FlowPeer, FlowPeer), EdgeStats>;

fn ranked(summed: Summed, order: TalkerOrder) -> Vec<FlowEdgeSummary> {
    let mut edges: Vec<FlowEdgeSummary> = summed
        .into_iter()
        .map(|((client, server), stats)| FlowEdgeSummary {
            client,
            server,
            stats,
        })
        .collect();
    // Stable: ties keep the key order, so results are deterministic.
    match order {
        TalkerOrder::Bytes => edges.sort_by_key(|e| Reverse(e.bytes())),
        TalkerOrder::Connections => edges.sort_by_key(|e| Reverse(e.stats.connections)),
    }
    edges
}

fn bounded(first: Option<i64>, default: usize, max: usize) -> Result<usize> {
    match first {
        None => Ok(default),
        Some(n) if n >= 1 && n as u64 <= max as u64 => Ok(n as usize),
        Some(n) => Err(Error::BadRequest(format!(
            "`first` must be between 1 and {max}, found {n}"
        ))),
    }
}

impl ControlPlane {
    /// The edge rows of `range` matching `filter`, summed per (client, server) over the
    /// range, keeping those `visibility` allows.
    async fn summed_edges(
        &self,
        range: FlowRange,
        filter: EdgeFilter<'_>,
        visibility: &Visibility,
    ) -> Result<Summed> {
        let mut query = flow_edge::Entity::find()
            .filter(flow_edge::Column::HourMs.gte(to_i64(range.from_ms)))
            .filter(flow_edge::Column::HourMs.lt(to_i64(range.to_ms)));
        let client_is = |name: &str| {
            Condition::all()
                .add(flow_edge::Column::ClientKind.eq("app"))
                .add(flow_edge::Column::Client.eq(name))
        };
        let server_is = |name: &str| {
            Condition::all()
                .add(flow_edge::Column::ServerKind.eq("app"))
                .add(flow_edge::Column::Server.eq(name))
        };
        query = match filter {
            EdgeFilter::All => query,
            EdgeFilter::Either(name) => {
                query.filter(Condition::any().add(client_is(name)).add(server_is(name)))
            }
            EdgeFilter::ServerAddresses => {
                query.filter(flow_edge::Column::ServerKind.eq("address"))
            }
        };
        let mut summed = Summed::new();
        for row in query.all(self.store().db()).await? {
            let (Some(client), Some(server)) = (
                FlowPeer::from_stored(&row.client_kind, &row.client),
                FlowPeer::from_stored(&row.server_kind, &row.server),
            ) else {
                tracing::warn!(
                    edge = row.id,
                    "skipping a stored flow edge whose ends do not decode"
                );
                continue;
            };
            if !visibility.edge(&client, &server) {
                continue;
            }
            summed
                .entry((client, server))
                .or_default()
                .merge(&stats_from_row(&row));
        }
        Ok(summed)
    }

    /// An app's inbound (it accepted) and outbound (it connected) dependencies over `range`,
    /// by bytes. The app must be one the caller may read (any app, host or inventory name
    /// for readers of everything); a host's dependencies are asked as `host:<agent id>`.
    pub async fn app_dependencies(
        &self,
        who: &Principal,
        app: &str,
        range: FlowRange,
    ) -> Result<AppDependencies> {
        let visibility = Visibility::of(self, who).await?;
        if !visibility.app(app) {
            return Err(Error::NotFound(format!("app `{app}`")));
        }
        let summed = self
            .summed_edges(range, EdgeFilter::Either(app), &visibility)
            .await?;
        let me = FlowPeer::from_stored("app", app);
        let (mut inbound, mut outbound) = (Summed::new(), Summed::new());
        for ((client, server), stats) in summed {
            // A self-edge (an app calling itself) is both.
            if Some(&server) == me.as_ref() {
                inbound.insert((client.clone(), server.clone()), stats.clone());
            }
            if Some(&client) == me.as_ref() {
                outbound.insert((client, server), stats);
            }
        }
        Ok(AppDependencies {
            app: app.to_string(),
            range,
            inbound: ranked(inbound, TalkerOrder::Bytes),
            outbound: ranked(outbound, TalkerOrder::Bytes),
        })
    }

    /// The dependency graph over `range`: the `first` largest edges (by bytes; default 500,
    /// at most 5,000) the caller may see and their ends, optionally only around `app`,
    /// without address ends, or with addresses collapsed into `internet` and `internal`.
    pub async fn flow_graph(
        &self,
        who: &Principal,
        range: FlowRange,
        app: Option<&str>,
        include_addresses: bool,
        collapse_addresses: bool,
        first: Option<i64>,
    ) -> Result<FlowGraph> {
        let first = bounded(first, 500, 5_000)?;
        let visibility = Visibility::of(self, who).await?;
        let filter = match app {
            Some(app) => {
                if !visibility.app(app) {
                    return Err(Error::NotFound(format!("app `{app}`")));
                }
                EdgeFilter::Either(app)
            }
            None => EdgeFilter::All,
        };
        let mut summed = Summed::new();
        for ((client, server), stats) in self.summed_edges(range, filter, &visibility).await? {
            let is_address = |p: &FlowPeer| matches!(p, FlowPeer::Address(_));
            if !include_addresses && (is_address(&client) || is_address(&server)) {
                continue;
            }
            let key = if collapse_addresses {
                (client.collapsed(), server.collapsed())
            } else {
                (client, server)
            };
            summed.entry(key).or_default().merge(&stats);
        }
        let mut edges = ranked(summed, TalkerOrder::Bytes);
        let truncated = edges.len() > first;
        edges.truncate(first);
        let mut nodes: BTreeMap<FlowPeer, FlowNode> = BTreeMap::new();
        let node = |nodes: &mut BTreeMap<FlowPeer, FlowNode>, peer: &FlowPeer| {
            nodes.entry(peer.clone()).or_insert_with(|| FlowNode {
                peer: peer.clone(),
                bytes_in: 0,
                bytes_out: 0,
                connections_in: 0,
                connections_out: 0,
            });
        };
        for e in &edges {
            node(&mut nodes, &e.client);
            node(&mut nodes, &e.server);
            if let Some(c) = nodes.get_mut(&e.client) {
                c.bytes_out = c.bytes_out.saturating_add(e.stats.bytes_to_server);
                c.bytes_in = c.bytes_in.saturating_add(e.stats.bytes_to_client);
                c.connections_out = c.connections_out.saturating_add(e.stats.connections);
            }
            if let Some(s) = nodes.get_mut(&e.server) {
                s.bytes_in = s.bytes_in.saturating_add(e.stats.bytes_to_server);
                s.bytes_out = s.bytes_out.saturating_add(e.stats.bytes_to_client);
                s.connections_in = s.connections_in.saturating_add(e.stats.connections);
            }
        }
        Ok(FlowGraph {
            range,
            nodes: nodes.into_values().collect(),
            edges,
            truncated,
        })
    }

    /// The `first` (default 10, at most 500) busiest client-to-server pairs over `range` the
    /// caller may see.
    pub async fn top_talkers(
        &self,
        who: &Principal,
        range: FlowRange,
        order: TalkerOrder,
        first: Option<i64>,
    ) -> Result<Vec<FlowEdgeSummary>> {
        let first = bounded(first, 10, 500)?;
        let visibility = Visibility::of(self, who).await?;
        let summed = self
            .summed_edges(range, EdgeFilter::All, &visibility)
            .await?;
        let mut edges = ranked(summed, order);
        edges.truncate(first);
        Ok(edges)
    }

    /// Client-to-server pairs first seen at or after `since` (never before, as far as the
    /// stored edges go back), newest first, with their sums since then; at most `first`
    /// (default 100, at most 500).
    pub async fn new_flow_edges(
        &self,
        who: &Principal,
        since: DateTime<Utc>,
        first: Option<i64>,
    ) -> Result<Vec<FlowEdgeSummary>> {
        let first = bounded(first, 100, 500)?;
        let visibility = Visibility::of(self, who).await?;
        let since_ms = u64::try_from(since.timestamp_millis()).unwrap_or(0);
        let keys: Vec<(String, String, String, String)> = flow_edge::Entity::find()
            .select_only()
            .column(flow_edge::Column::ClientKind)
            .column(flow_edge::Column::Client)
            .column(flow_edge::Column::ServerKind)
            .column(flow_edge::Column::Server)
            .group_by(flow_edge::Column::ClientKind)
            .group_by(flow_edge::Column::Client)
            .group_by(flow_edge::Column::ServerKind)
            .group_by(flow_edge::Column::Server)
            .having(flow_edge::Column::FirstSeenMs.min().gte(to_i64(since_ms)))
            .into_tuple()
            .all(self.store().db())
            .await?;
        let new: BTreeSet<(FlowPeer, FlowPeer)> = keys
            .iter()
            .filter_map(|(ck, c, sk, s)| {
                Some((FlowPeer::from_stored(ck, c)?, FlowPeer::from_stored(sk, s)?))
            })
            .collect();
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let range = FlowRange {
            from_ms: since_ms - since_ms % HOUR_MS,
            to_ms: u64::MAX / 2,
        };
        let summed: Summed = self
            .summed_edges(range, EdgeFilter::All, &visibility)
            .await?
            .into_iter()
            .filter(|(key, _)| new.contains(key))
            .collect();
        let mut edges = ranked(summed, TalkerOrder::Bytes);
        edges.sort_by_key(|e| Reverse(e.stats.first_seen_ms));
        edges.truncate(first);
        Ok(edges)
    }

    /// Addresses no app owned that were connected to over `range` (optionally only on the
    /// internet or inside), by bytes, with the clients the caller may see; at most `first`
    /// (default 100, at most 500).
    pub async fn unowned_destinations(
        &self,
        who: &Principal,
        range: FlowRange,
        scope: Option<AddressScope>,
        first: Option<i64>,
    ) -> Result<Vec<UnownedDestination>> {
        let first = bounded(first, 100, 500)?;
        let visibility = Visibility::of(self, who).await?;
        let mut by_address: BTreeMap<IpAddr, UnownedDestination> = BTreeMap::new();
        for ((client, server), stats) in self
            .summed_edges(range, EdgeFilter::ServerAddresses, &visibility)
            .await?
        {
            let FlowPeer::Address(address) = server else {
                continue;
            };
            let address_scope = address_scope(address);
            if scope.is_some_and(|s| s != address_scope) {
                continue;
            }
            let entry = by_address
                .entry(address)
                .or_insert_with(|| UnownedDestination {
                    address,
                    scope: address_scope,
                    stats: EdgeStats::default(),
                    clients: Vec::new(),
                });
            entry.stats.merge(&stats);
            entry.clients.push(client);
        }
        let mut out: Vec<UnownedDestination> = by_address.into_values().collect();
        out.sort_by_key(|d| {
            Reverse(
                d.stats
                    .bytes_to_server
                    .saturating_add(d.stats.bytes_to_client),
            )
        });
        out.truncate(first);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_internet_or_internal() {
        for (addr, scope) in [
            ("10.1.2.3", AddressScope::Internal),
            ("172.16.0.1", AddressScope::Internal),
            ("192.168.1.1", AddressScope::Internal),
            ("100.64.0.1", AddressScope::Internal),
            ("127.0.0.1", AddressScope::Internal),
            ("169.254.0.1", AddressScope::Internal),
            ("8.8.8.8", AddressScope::Internet),
            ("203.0.113.9", AddressScope::Internet),
            ("100.128.0.1", AddressScope::Internet),
            ("fd00::1", AddressScope::Internal),
            ("fe80::1", AddressScope::Internal),
            ("::ffff:10.0.0.1", AddressScope::Internal),
            ("2606:4700::1111", AddressScope::Internet),
        ] {
            assert_eq!(address_scope(addr.parse().expect("ip")), scope, "{addr}");
        }
    }

    #[test]
    fn ranges_are_whole_hours_bounded_and_not_empty() {
        let t = |ms: i64| DateTime::from_timestamp_millis(ms).expect("time");
        let r = FlowRange::new(Some(t(3 * 3_600_000 + 5)), Some(t(5 * 3_600_000))).expect("ok");
        assert_eq!((r.from_ms, r.to_ms), (3 * 3_600_000, 5 * 3_600_000));
        assert!(FlowRange::new(Some(t(10)), Some(t(10))).is_err());
        assert!(FlowRange::new(Some(t(0)), Some(t(32 * 86_400_000))).is_err());
    }
}
