//! Address leases: which app held an address (optionally one port of it) when.
//!
//! Addresses move between apps (a pod IP is reused, an upstream is re-pointed), so a
//! flow is attributed with the lease valid at the flow's own time, not today's. The
//! most specific match wins: a lease on an exact endpoint (address and port) over one
//! on the address, a longer prefix over a shorter one. Leases that disagree at the same
//! specificity make the answer unknown rather than a pick: a wrong edge in the graph is
//! worse than a missing one.

use std::{
    collections::{BTreeSet, HashMap},
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use serde::{Deserialize, Serialize};

use crate::AppId;

/// Where a lease comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseSource {
    /// An upstream endpoint of a route in an app's intent, as the gateway uses it.
    GatewayUpstream,
    /// The inventory uploaded through the API.
    StaticInventory,
    /// The address of a host running a flow agent (also tells the collector that this
    /// host reports its own side of every connection).
    AgentHost,
    /// A Kubernetes pod's IP.
    KubernetesPod,
    /// An upstream endpoint of a route in an app's intent given by a DNS name, at the
    /// addresses the control plane resolved it to (A and AAAA).
    ResolvedUpstream,
}

/// An address prefix: `10.0.0.0/8`, `2001:db8::/32`, or one address (`/32`, `/128`).
/// IPv4-mapped IPv6 addresses are stored as IPv4, host bits are cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// The prefix of length `len` containing `addr`.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, LeaseError> {
        let addr = canonical(addr);
        let max = max_len(&addr);
        if len > max {
            return Err(LeaseError::PrefixLength { len, max });
        }
        Ok(Self {
            addr: mask(addr, len),
            len,
        })
    }

    /// One address.
    pub fn host(addr: IpAddr) -> Self {
        let addr = canonical(addr);
        Self {
            len: max_len(&addr),
            addr,
        }
    }

    /// Whether `addr` is in the prefix.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        addr.is_ipv4() == self.addr.is_ipv4() && mask(addr, self.len) == self.addr
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is the zero-length prefix (the whole family).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl FromStr for IpPrefix {
    type Err = LeaseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || LeaseError::PrefixSyntax(text.to_owned());
        match text.split_once('/') {
            Some((addr, len)) => Self::new(
                addr.parse().map_err(|_| bad())?,
                len.parse().map_err(|_| bad())?,
            ),
            None => Ok(Self::host(text.parse().map_err(|_| bad())?)),
        }
    }
}

impl TryFrom<String> for IpPrefix {
    type Error = LeaseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<IpPrefix> for String {
    fn from(prefix: IpPrefix) -> Self {
        prefix.to_string()
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_canonical(),
        v4 => v4,
    }
}

fn max_len(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let masked = if len == 0 {
                0
            } else {
                bits & (u32::MAX << (32 - u32::from(len)))
            };
            IpAddr::V4(Ipv4Addr::from(masked))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let masked = if len == 0 {
                0
            } else {
                bits & (u128::MAX << (128 - u32::from(len)))
            };
            IpAddr::V6(Ipv6Addr::from(masked))
        }
    }
}

/// One app's hold on a prefix (or one port of it) for a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The addresses.
    pub prefix: IpPrefix,
    /// Only this port of them (a service endpoint), or every port.
    pub port: Option<u16>,
    /// The app.
    pub app: AppId,
    /// Who said so.
    pub source: LeaseSource,
    /// Start of validity (unix ms, inclusive).
    pub valid_from_ms: u64,
    /// End of validity (unix ms, exclusive); `None` while it holds.
    pub valid_until_ms: Option<u64>,
}

impl Lease {
    /// Whether the lease holds at `at_ms`.
    pub fn holds_at(&self, at_ms: u64) -> bool {
        self.valid_from_ms <= at_ms && self.valid_until_ms.is_none_or(|until| at_ms < until)
    }
}

/// Why a lease or prefix was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// A prefix longer than the address.
    #[error("prefix length {len} is longer than {max}")]
    PrefixLength {
        /// The length given.
        len: u8,
        /// The family's maximum.
        max: u8,
    },
    /// Not `address` or `address/length`.
    #[error("`{0}` is not an address or a prefix")]
    PrefixSyntax(String),
    /// A lease that ends before it starts.
    #[error("lease of {prefix} to {app} ends ({until}) before it starts ({from})")]
    EmptyValidity {
        /// The prefix.
        prefix: IpPrefix,
        /// The app.
        app: AppId,
        /// Start.
        from: u64,
        /// End.
        until: u64,
    },
}

/// The answer for one address at one time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribution {
    /// One app held it.
    App(AppId),
    /// No lease held it.
    Unknown,
    /// Leases of different apps held it at the same specificity: not guessed.
    Conflict(Vec<AppId>),
}

/// Key of a group of leases: the prefix and the port (if port-specific).
type Key = (IpPrefix, Option<u16>);

/// Every lease, indexed for lookups by address, port and time.
#[derive(Clone, Debug, Default)]
pub struct LeaseTable {
    leases: HashMap<Key, Vec<Lease>>,
    /// Prefix lengths present, per family, so a lookup tries only those.
    v4_lens: BTreeSet<u8>,
    v6_lens: BTreeSet<u8>,
}

impl LeaseTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a lease.
    pub fn insert(&mut self, lease: Lease) -> Result<(), LeaseError> {
        if let Some(until) = lease.valid_until_ms
            && until <= lease.valid_from_ms
        {
            return Err(LeaseError::EmptyValidity {
                prefix: lease.prefix,
                app: lease.app,
                from: lease.valid_from_ms,
                until,
            });
        }
        let lens = if lease.prefix.addr().is_ipv4() {
            &mut self.v4_lens
        } else {
            &mut self.v6_lens
        };
        lens.insert(lease.prefix.len());
        self.leases
            .entry((lease.prefix, lease.port))
            .or_default()
            .push(lease);
        Ok(())
    }

    /// Ends, at `at_ms`, the open leases of `prefix`/`port` to `app` from `source`;
    /// returns how many.
    pub fn end(
        &mut self,
        prefix: IpPrefix,
        port: Option<u16>,
        app: &AppId,
        source: LeaseSource,
        at_ms: u64,
    ) -> usize {
        let mut ended = 0;
        if let Some(leases) = self.leases.get_mut(&(prefix, port)) {
            for lease in leases
                .iter_mut()
                .filter(|l| l.valid_until_ms.is_none() && &l.app == app && l.source == source)
            {
                lease.valid_until_ms = Some(at_ms.max(lease.valid_from_ms + 1));
                ended += 1;
            }
        }
        ended
    }

    /// Brings the open leases of `source` in line with its current view at `at_ms`:
    /// leases absent from `current` end, entries without an open lease start one.
    /// Returns (started, ended). This is how a source that publishes snapshots (the
    /// gateway's upstreams, a pod list) keeps its history.
    pub fn sync_source(
        &mut self,
        source: LeaseSource,
        current: &[(IpPrefix, Option<u16>, AppId)],
        at_ms: u64,
    ) -> (usize, usize) {
        let wanted: BTreeSet<(IpPrefix, Option<u16>, &AppId)> = current
            .iter()
            .map(|(p, port, app)| (*p, *port, app))
            .collect();
        let mut ended = 0;
        let mut open = BTreeSet::new();
        for ((prefix, port), leases) in &mut self.leases {
            for lease in leases
                .iter_mut()
                .filter(|l| l.source == source && l.valid_until_ms.is_none())
            {
                if wanted.contains(&(*prefix, *port, &lease.app)) {
                    open.insert((*prefix, *port, lease.app.clone()));
                } else {
                    lease.valid_until_ms = Some(at_ms.max(lease.valid_from_ms + 1));
                    ended += 1;
                }
            }
        }
        let mut started = 0;
        for (prefix, port, app) in current {
            if !open.contains(&(*prefix, *port, app.clone())) {
                let lease = Lease {
                    prefix: *prefix,
                    port: *port,
                    app: app.clone(),
                    source,
                    valid_from_ms: at_ms,
                    valid_until_ms: None,
                };
                // A lease from `at_ms` with no end is never empty.
                if self.insert(lease).is_ok() {
                    open.insert((*prefix, *port, app.clone()));
                    started += 1;
                }
            }
        }
        (started, ended)
    }

    /// Who held `addr` (port `port`, if the flow's port is known) at `at_ms`.
    pub fn resolve(&self, addr: IpAddr, port: Option<u16>, at_ms: u64) -> Attribution {
        let ports: &[Option<u16>] = match port {
            Some(p) => &[Some(p), None],
            None => &[None],
        };
        self.resolve_filtered(addr, ports, at_ms, |_| true)
    }

    /// Who held exactly the endpoint `addr:port` at `at_ms`: port-specific leases only,
    /// no fallback to leases of the whole address. For the listening side of an inbound
    /// flow, where the endpoint names the service better than the process does (one
    /// process may serve several apps on several ports).
    pub fn attribute_port_lease(&self, addr: IpAddr, port: u16, at_ms: u64) -> Option<AppId> {
        match self.resolve_filtered(addr, &[Some(port)], at_ms, |_| true) {
            Attribution::App(app) => Some(app),
            Attribution::Unknown | Attribution::Conflict(_) => None,
        }
    }

    fn resolve_filtered(
        &self,
        addr: IpAddr,
        ports: &[Option<u16>],
        at_ms: u64,
        keep: impl Fn(&Lease) -> bool,
    ) -> Attribution {
        let addr = canonical(addr);
        let lens = if addr.is_ipv4() {
            &self.v4_lens
        } else {
            &self.v6_lens
        };
        // Port-specific leases first (more specific), then address-wide ones; within
        // each, the longest prefix first.
        for &port in ports {
            for &len in lens.iter().rev() {
                let Ok(prefix) = IpPrefix::new(addr, len) else {
                    continue;
                };
                let Some(leases) = self.leases.get(&(prefix, port)) else {
                    continue;
                };
                let holding = || leases.iter().filter(|l| l.holds_at(at_ms) && keep(l));
                // An agent's host lease names the machine, an app's lease what runs on it:
                // at the same specificity the app's wins, and the host's answers only when
                // no app claims the prefix (a container's address is both the host's,
                // seen in its flows, and its pod's).
                let mut apps: BTreeSet<&AppId> = holding()
                    .filter(|l| l.source != LeaseSource::AgentHost)
                    .map(|l| &l.app)
                    .collect();
                if apps.is_empty() {
                    apps = holding().map(|l| &l.app).collect();
                }
                match apps.len() {
                    0 => continue,
                    1 => {
                        if let Some(app) = apps.into_iter().next() {
                            return Attribution::App(app.clone());
                        }
                    }
                    _ => return Attribution::Conflict(apps.into_iter().cloned().collect()),
                }
            }
        }
        Attribution::Unknown
    }

    /// The app that held `addr` at `at_ms` (address-wide leases only), `None` when
    /// unknown or disputed. See [`LeaseTable::attribute_endpoint`] for a service port.
    pub fn attribute(&self, addr: IpAddr, at_ms: u64) -> Option<AppId> {
        match self.resolve(addr, None, at_ms) {
            Attribution::App(app) => Some(app),
            Attribution::Unknown | Attribution::Conflict(_) => None,
        }
    }

    /// The app that held the endpoint `addr:port` at `at_ms`.
    pub fn attribute_endpoint(&self, addr: IpAddr, port: u16, at_ms: u64) -> Option<AppId> {
        match self.resolve(addr, Some(port), at_ms) {
            Attribution::App(app) => Some(app),
            Attribution::Unknown | Attribution::Conflict(_) => None,
        }
    }

    /// Whether `addr` was a flow agent's host at `at_ms`.
    pub fn is_agent_host(&self, addr: IpAddr, at_ms: u64) -> bool {
        !matches!(
            self.resolve_filtered(addr, &[None], at_ms, |l| l.source == LeaseSource::AgentHost),
            Attribution::Unknown
        )
    }

    /// Removes leases that ended before `before_ms` (beyond the flows' retention).
    pub fn prune(&mut self, before_ms: u64) -> usize {
        let mut removed = 0;
        self.leases.retain(|_, leases| {
            let before = leases.len();
            leases.retain(|l| l.valid_until_ms.is_none_or(|until| until >= before_ms));
            removed += before - leases.len();
            !leases.is_empty()
        });
        removed
    }

    /// Number of leases.
    pub fn len(&self) -> usize {
        self.leases.values().map(Vec::len).sum()
    }

    /// Whether there is no lease.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> AppId {
        AppId::new(name).expect("valid app id")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("valid address")
    }

    fn lease(prefix: &str, port: Option<u16>, name: &str, from: u64, until: Option<u64>) -> Lease {
        Lease {
            prefix: prefix.parse().expect("prefix"),
            port,
            app: app(name),
            source: LeaseSource::StaticInventory,
            valid_from_ms: from,
            valid_until_ms: until,
        }
    }

    #[test]
    fn an_address_leased_to_a_then_b_is_attributed_by_the_flows_time() {
        let mut table = LeaseTable::new();
        table
            .insert(lease("10.0.0.7", None, "billing", 1_000, Some(5_000)))
            .expect("lease a");
        table
            .insert(lease("10.0.0.7", None, "search", 5_000, None))
            .expect("lease b");
        assert_eq!(
            table.attribute(ip("10.0.0.7"), 999),
            None,
            "before any lease"
        );
        assert_eq!(table.attribute(ip("10.0.0.7"), 1_000), Some(app("billing")));
        assert_eq!(table.attribute(ip("10.0.0.7"), 4_999), Some(app("billing")));
        assert_eq!(table.attribute(ip("10.0.0.7"), 5_000), Some(app("search")));
        assert_eq!(
            table.attribute(ip("10.0.0.7"), u64::MAX),
            Some(app("search"))
        );
        assert_eq!(
            table.attribute(ip("10.0.0.8"), 2_000),
            None,
            "unknown stays unknown"
        );
    }

    #[test]
    fn the_most_specific_lease_wins_and_disagreement_is_not_guessed() {
        let mut table = LeaseTable::new();
        table
            .insert(lease("10.0.0.0/8", None, "corp", 0, None))
            .expect("lease");
        table
            .insert(lease("10.1.0.0/16", None, "data", 0, None))
            .expect("lease");
        table
            .insert(lease("10.1.2.3", Some(5432), "postgres", 0, None))
            .expect("lease");
        assert_eq!(table.attribute(ip("10.9.9.9"), 1), Some(app("corp")));
        assert_eq!(table.attribute(ip("10.1.2.3"), 1), Some(app("data")));
        assert_eq!(
            table.attribute_endpoint(ip("10.1.2.3"), 5432, 1),
            Some(app("postgres"))
        );
        assert_eq!(
            table.attribute_endpoint(ip("10.1.2.3"), 80, 1),
            Some(app("data"))
        );
        assert_eq!(
            table.attribute(ip("::ffff:10.1.2.3"), 1),
            Some(app("data")),
            "v4-mapped addresses are IPv4"
        );

        table
            .insert(lease("10.1.0.0/16", None, "other", 0, None))
            .expect("lease");
        assert_eq!(
            table.resolve(ip("10.1.2.3"), None, 1),
            Attribution::Conflict(vec![app("data"), app("other")])
        );
        assert_eq!(table.attribute(ip("10.1.2.3"), 1), None);
    }

    #[test]
    fn syncing_a_source_ends_vanished_leases_and_starts_new_ones() {
        let mut table = LeaseTable::new();
        let a = IpPrefix::host(ip("10.0.0.1"));
        let b = IpPrefix::host(ip("10.0.0.2"));
        let source = LeaseSource::GatewayUpstream;
        assert_eq!(
            table.sync_source(
                source,
                &[(a, Some(80), app("web")), (b, Some(80), app("web"))],
                100
            ),
            (2, 0)
        );
        assert_eq!(
            table.sync_source(source, &[(a, Some(80), app("web"))], 200),
            (0, 1)
        );
        assert_eq!(
            table.sync_source(source, &[(a, Some(80), app("web"))], 300),
            (0, 0)
        );
        assert_eq!(
            table.attribute_endpoint(ip("10.0.0.2"), 80, 150),
            Some(app("web"))
        );
        assert_eq!(table.attribute_endpoint(ip("10.0.0.2"), 80, 250), None);
        assert_eq!(table.prune(200), 0, "ended at 200: kept until then");
        assert_eq!(table.prune(10_000), 1);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn agent_hosts_are_known_as_such() {
        let mut table = LeaseTable::new();
        let mut host = lease("192.168.1.10", None, "host-node-1", 0, None);
        host.source = LeaseSource::AgentHost;
        table.insert(host).expect("lease");
        table
            .insert(lease("192.168.1.11", None, "printer", 0, None))
            .expect("lease");
        assert!(table.is_agent_host(ip("192.168.1.10"), 5));
        assert!(!table.is_agent_host(ip("192.168.1.11"), 5));
    }

    #[test]
    fn an_apps_lease_outranks_an_agent_hosts_lease_of_the_same_prefix() {
        let mut table = LeaseTable::new();
        let mut host = lease("172.17.0.2", None, "host:node-1", 0, None);
        host.source = LeaseSource::AgentHost;
        table.insert(host).expect("lease");
        assert_eq!(
            table.attribute(ip("172.17.0.2"), 5),
            Some(app("host:node-1")),
            "the host answers while no app claims the address"
        );
        table
            .insert(lease("172.17.0.2", None, "billing", 10, None))
            .expect("lease");
        assert_eq!(
            table.attribute(ip("172.17.0.2"), 5),
            Some(app("host:node-1"))
        );
        assert_eq!(table.attribute(ip("172.17.0.2"), 10), Some(app("billing")));
        assert!(table.is_agent_host(ip("172.17.0.2"), 10));
    }

    #[test]
    fn a_port_lease_lookup_ignores_address_wide_leases() {
        let mut table = LeaseTable::new();
        table
            .insert(lease("127.0.0.1", None, "anything-local", 0, None))
            .expect("lease");
        table
            .insert(lease("127.0.0.1", Some(8090), "demo", 0, None))
            .expect("lease");
        assert_eq!(
            table.attribute_port_lease(ip("127.0.0.1"), 8090, 1),
            Some(app("demo"))
        );
        assert_eq!(table.attribute_port_lease(ip("127.0.0.1"), 8081, 1), None);
    }

    #[test]
    fn bad_prefixes_and_empty_leases_are_refused() {
        assert!("10.0.0.0/33".parse::<IpPrefix>().is_err());
        assert!("nonsense".parse::<IpPrefix>().is_err());
        assert_eq!(
            "10.1.2.3/8".parse::<IpPrefix>().map(|p| p.to_string()),
            Ok("10.0.0.0/8".to_owned())
        );
        let mut table = LeaseTable::new();
        assert!(matches!(
            table.insert(lease("10.0.0.1", None, "x", 10, Some(10))),
            Err(LeaseError::EmptyValidity { .. })
        ));
    }
}
