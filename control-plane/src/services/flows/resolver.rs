//! Leases of upstream endpoints given by DNS names (`api.internal:8080`).
//!
//! The intents' IP and `localhost` endpoints are leased in the transaction of every intent
//! change ([`super::leases`]); a name's addresses are not known there and change without any
//! intent changing. So a background pass, every [`FlowSettings::resolve_every`], resolves
//! each name (A and AAAA, at most [`MAX_RESOLVED_NAMES`] names, each within
//! [`FlowSettings::resolve_timeout`]) and syncs the [`LeaseSource::ResolvedUpstream`] leases
//! in one write transaction:
//!
//! - a name that resolved: its addresses, at the endpoint's port, are leased to the app whose
//!   intent names it; addresses it no longer resolves to end now, new ones start now, so a
//!   flow is attributed with the addresses of its own time;
//! - a name that did not (an error, a timeout, no address): the open leases of its app and
//!   port are kept, so a transient DNS failure does not flap attribution;
//! - a name gone from the intents: its leases end (at once when the intent changes,
//!   [`end_unnamed_resolved_leases`], else at the pass).
//!
//! Resolution goes through a [`HostResolver`]: the system resolver by default (what the
//! gateway uses), or one nameserver asked directly ([`FlowSettings::upstream_nameserver`]).
//!
//! [`FlowSettings::resolve_every`]: super::FlowSettings::resolve_every
//! [`FlowSettings::resolve_timeout`]: super::FlowSettings::resolve_timeout
//! [`FlowSettings::upstream_nameserver`]: super::FlowSettings::upstream_nameserver

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use futures_util::StreamExt;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::proto::op::{DnsResponse, ResponseCode};
use hickory_net::proto::rr::{DNSClass, Name, RData, RecordType};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use paved_flow_collector::{AppId, IpPrefix, LeaseSource};
use paved_model::Intent;
use paved_model::snapshot::Endpoint;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::leases::{
    LeaseKey, endpoint_addresses, lease_source_name, open_leases, sync_source_rows,
};
use super::now_ms;
use crate::Result;
use crate::services::ControlPlane;
use crate::storage::entities::address_lease;

/// At most this many distinct names are resolved per pass (sorted by name); the others
/// count as failed (their leases are kept) and are logged.
pub const MAX_RESOLVED_NAMES: usize = 1_000;

/// Names resolved at the same time.
const CONCURRENT_LOOKUPS: usize = 16;

/// How often the periodic task looks at `resolve_every` again while it is zero (off).
const DISABLED_RECHECK: Duration = Duration::from_secs(10);

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No answer within the per-name timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The system resolver (`getaddrinfo`) failed.
    #[error("the system resolver failed: {0}")]
    System(#[source] std::io::Error),
    /// The name is not a DNS name hickory accepts.
    #[error("not a DNS name: {0}")]
    BadName(String),
    /// The exchange with the nameserver failed (unreachable, timed out, malformed answer).
    #[error("asking {server} over {transport} for {record} failed: {reason}")]
    Exchange {
        /// The nameserver.
        server: SocketAddr,
        /// `UDP` or `TCP`.
        transport: &'static str,
        /// `A` or `AAAA`.
        record: RecordType,
        /// What went wrong.
        reason: String,
    },
    /// The nameserver answered with an error code (SERVFAIL, REFUSED, ...).
    #[error("{server} answered {rcode} for {record}")]
    Rcode {
        /// The nameserver.
        server: SocketAddr,
        /// `A` or `AAAA`.
        record: RecordType,
        /// The code, as `SERVFAIL (Server Failure)`.
        rcode: String,
    },
    /// The answers held no usable address.
    #[error("resolved to no address")]
    NoAddress,
}

/// Resolves host names to their addresses (A and AAAA).
#[async_trait::async_trait]
pub trait HostResolver: std::fmt::Debug + Send + Sync {
    /// The addresses of `name` (any order, possibly with duplicates); an empty answer counts
    /// as a failure.
    async fn lookup(&self, name: &str) -> std::result::Result<Vec<IpAddr>, ResolveError>;
}

/// The system resolver (`getaddrinfo` through [`tokio::net::lookup_host`]): `/etc/hosts`,
/// search domains and the configured nameservers, as the gateway resolves its upstreams.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait::async_trait]
impl HostResolver for SystemResolver {
    async fn lookup(&self, name: &str) -> std::result::Result<Vec<IpAddr>, ResolveError> {
        let addrs = tokio::net::lookup_host((name, 0u16))
            .await
            .map_err(ResolveError::System)?;
        Ok(addrs.map(|a| a.ip()).collect())
    }
}

/// One nameserver asked directly: an A and an AAAA query over UDP (again over TCP when an
/// answer is truncated), with recursion desired. Names are absolute (no search domains).
/// NOERROR and NXDOMAIN are answers (possibly empty); any other code, or no answer, fails
/// the name.
#[derive(Debug, Clone)]
pub struct NameserverResolver {
    server: SocketAddr,
    timeout: Duration,
}

impl NameserverResolver {
    /// Asks `server`, waiting at most `timeout` for each exchange.
    pub fn new(server: SocketAddr, timeout: Duration) -> NameserverResolver {
        NameserverResolver { server, timeout }
    }

    /// The nameserver asked.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    async fn query(
        &self,
        name: &Name,
        record: RecordType,
    ) -> std::result::Result<Vec<IpAddr>, ResolveError> {
        let mut response = self.exchange_udp(name, record).await?;
        if response.truncation {
            tracing::debug!(server = %self.server, name = %name, record = %record, "truncated answer over UDP; asking over TCP");
            response = self.exchange_tcp(name, record).await?;
        }
        match response.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            code => {
                return Err(ResolveError::Rcode {
                    server: self.server,
                    record,
                    rcode: format!("{} ({})", format!("{code:?}").to_uppercase(), code.to_str()),
                });
            }
        }
        // The answer section holds the CNAME chain and the records at its end.
        Ok(response
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) if record == RecordType::A => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) if record == RecordType::AAAA => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect())
    }

    fn failed(&self, transport: &'static str, record: RecordType, reason: String) -> ResolveError {
        ResolveError::Exchange {
            server: self.server,
            transport,
            record,
            reason,
        }
    }

    async fn exchange_udp(
        &self,
        name: &Name,
        record: RecordType,
    ) -> std::result::Result<DnsResponse, ResolveError> {
        let stream = UdpClientStream::builder(self.server, TokioRuntimeProvider::default())
            .with_timeout(Some(self.timeout))
            .build();
        let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
        self.ask("UDP", client, background, name, record).await
    }

    async fn exchange_tcp(
        &self,
        name: &Name,
        record: RecordType,
    ) -> std::result::Result<DnsResponse, ResolveError> {
        let (connect, handle) = TcpClientStream::new(
            self.server,
            None,
            Some(self.timeout),
            TokioRuntimeProvider::default(),
        );
        let stream = match tokio::time::timeout(self.timeout, connect).await {
            Err(_) => {
                return Err(self.failed(
                    "TCP",
                    record,
                    format!("no connection within {:?}", self.timeout),
                ));
            }
            Ok(Err(e)) => return Err(self.failed("TCP", record, e.to_string())),
            Ok(Ok(stream)) => stream,
        };
        let (client, background) =
            Client::<TokioRuntimeProvider>::with_timeout(stream, handle, self.timeout);
        self.ask("TCP", client, background, name, record).await
    }

    /// Sends one query through `client` (its connection driven by `background` meanwhile)
    /// and waits at most the timeout for the response.
    async fn ask<B>(
        &self,
        transport: &'static str,
        mut client: Client<TokioRuntimeProvider>,
        background: B,
        name: &Name,
        record: RecordType,
    ) -> std::result::Result<DnsResponse, ResolveError>
    where
        B: std::future::Future + Send + 'static,
        B::Output: Send + 'static,
    {
        let background = tokio::spawn(background);
        let answer = tokio::time::timeout(
            self.timeout,
            client.query(name.clone(), DNSClass::IN, record),
        )
        .await;
        background.abort();
        self.answer(transport, record, answer)
    }

    /// The response of a query bounded by the timeout, or the failure naming the transport.
    fn answer<E: std::fmt::Display>(
        &self,
        transport: &'static str,
        record: RecordType,
        answer: std::result::Result<
            std::result::Result<DnsResponse, E>,
            tokio::time::error::Elapsed,
        >,
    ) -> std::result::Result<DnsResponse, ResolveError> {
        match answer {
            Err(_) => Err(self.failed(
                transport,
                record,
                format!("no answer within {:?}", self.timeout),
            )),
            Ok(Err(e)) => Err(self.failed(transport, record, e.to_string())),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

#[async_trait::async_trait]
impl HostResolver for NameserverResolver {
    async fn lookup(&self, name: &str) -> std::result::Result<Vec<IpAddr>, ResolveError> {
        let mut fqdn = Name::from_str(name).map_err(|e| ResolveError::BadName(e.to_string()))?;
        fqdn.set_fqdn(true);
        // Both must answer: a name whose AAAA query failed keeps every lease rather than
        // losing its IPv6 ones for a pass.
        let (v4, v6) = tokio::join!(
            self.query(&fqdn, RecordType::A),
            self.query(&fqdn, RecordType::AAAA)
        );
        let mut addrs = v4?;
        addrs.extend(v6?);
        Ok(addrs)
    }
}

/// What one resolution pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolvePass {
    /// Distinct DNS names in the upstream endpoints of the current intents.
    pub names: usize,
    /// Names that resolved to at least one address (their leases follow the answer).
    pub resolved: usize,
    /// Names that did not (error, timeout, no address, past [`MAX_RESOLVED_NAMES`]): their
    /// leases were kept.
    pub failed: usize,
    /// Leases started.
    pub started: usize,
    /// Leases ended.
    pub ended: usize,
}

/// The DNS name (lowercase) and port of an upstream endpoint whose host is a name: `None`
/// for IP literals and `localhost` (leased with the intents, [`endpoint_addresses`]), for
/// names whose last label is numeric (`getaddrinfo` would read `10.1.2` as an address), and
/// for text that is not `host:port`.
pub(crate) fn dns_endpoint(endpoint: &str) -> Option<(String, u16)> {
    let endpoint = endpoint.trim();
    if endpoint_addresses(endpoint).is_some() {
        return None;
    }
    let parsed = Endpoint(endpoint.to_string());
    let (host, port) = parsed.host_port()?;
    if host.starts_with('[') || host.parse::<IpAddr>().is_ok() {
        return None;
    }
    let last = host.rsplit('.').next().unwrap_or(host);
    if last.is_empty() || last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

/// The upstream endpoints of `intents` given by DNS names: (app, name, port).
pub(crate) fn named_upstreams(intents: &[Intent]) -> BTreeSet<(AppId, String, u16)> {
    super::leases::upstream_endpoints(intents)
        .filter_map(|(app, endpoint)| {
            let (name, port) = dns_endpoint(endpoint)?;
            Some((app, name, port))
        })
        .collect()
}

/// The leases `named` makes: for a name in `answers`, its addresses at the endpoint's port;
/// for any other name (it failed), the `open` leases of its app and port, kept as they are.
pub(crate) fn wanted_leases(
    named: &BTreeSet<(AppId, String, u16)>,
    answers: &HashMap<String, Vec<IpAddr>>,
    open: &BTreeSet<LeaseKey>,
) -> BTreeSet<LeaseKey> {
    let mut wanted = BTreeSet::new();
    for (app, name, port) in named {
        match answers.get(name) {
            Some(addrs) => {
                for addr in addrs {
                    wanted.insert((IpPrefix::host(*addr), Some(*port), app.clone()));
                }
            }
            None => wanted.extend(
                open.iter()
                    .filter(|(_, p, a)| *p == Some(*port) && a == app)
                    .cloned(),
            ),
        }
    }
    wanted
}

/// Ends, at `at_ms`, the open resolved leases whose app no longer names a DNS endpoint on
/// their port in `intents` (an intent changed or was deleted). Called with the
/// gateway-upstream sync, in the transaction of every intent change, so that leases go with
/// their endpoint at once rather than at the next pass; starts nothing (only a pass
/// resolves). Returns how many ended.
pub(crate) async fn end_unnamed_resolved_leases<C: ConnectionTrait>(
    db: &C,
    intents: &[Intent],
    at_ms: u64,
) -> Result<usize> {
    let source = LeaseSource::ResolvedUpstream;
    let named: BTreeSet<(AppId, u16)> = named_upstreams(intents)
        .into_iter()
        .map(|(app, _, port)| (app, port))
        .collect();
    let open = open_leases(db, source).await?;
    if open.is_empty() {
        return Ok(0);
    }
    let wanted: BTreeSet<LeaseKey> = open
        .iter()
        .filter(|(_, port, app)| port.is_some_and(|p| named.contains(&(app.clone(), p))))
        .cloned()
        .collect();
    if wanted.len() == open.len() {
        return Ok(0);
    }
    let (_, ended) = sync_source_rows(db, source, &wanted, at_ms).await?;
    Ok(ended)
}

/// Whether a resolved address can be an endpoint's (not unspecified, multicast, broadcast).
fn leasable(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

impl ControlPlane {
    /// Resolves the upstream endpoints given by DNS names in the current intents now and
    /// syncs their [`LeaseSource::ResolvedUpstream`] leases, with the resolver of the flow
    /// settings (the nameserver `upstream_nameserver`, or the system resolver). The
    /// periodic task runs this every `resolve_every`.
    pub async fn resolve_upstreams_now(&self) -> Result<ResolvePass> {
        let settings = self.flow_settings();
        match settings.upstream_nameserver {
            Some(server) => {
                let resolver = NameserverResolver::new(server, settings.resolve_timeout);
                self.resolve_upstreams_with(&resolver, settings.resolve_timeout)
                    .await
            }
            None => {
                self.resolve_upstreams_with(&SystemResolver, settings.resolve_timeout)
                    .await
            }
        }
    }

    /// Like [`ControlPlane::resolve_upstreams_now`], through `resolver`, each name within
    /// `timeout`. Names are resolved outside any transaction; the leases are synced in one
    /// write transaction with the intents as they are then (names gone end their leases).
    pub async fn resolve_upstreams_with(
        &self,
        resolver: &dyn HostResolver,
        timeout: Duration,
    ) -> Result<ResolvePass> {
        let source = LeaseSource::ResolvedUpstream;
        let intents = crate::services::current_intents(self.store().db()).await?;
        let names: BTreeSet<String> = named_upstreams(&intents)
            .into_iter()
            .map(|(_, name, _)| name)
            .collect();
        if names.is_empty() {
            let open = address_lease::Entity::find()
                .filter(address_lease::Column::Source.eq(lease_source_name(source)))
                .filter(address_lease::Column::ValidToMs.is_null())
                .count(self.store().db())
                .await?;
            if open == 0 {
                return Ok(ResolvePass::default());
            }
        }
        if names.len() > MAX_RESOLVED_NAMES {
            tracing::warn!(
                names = names.len(),
                limit = MAX_RESOLVED_NAMES,
                skipped = names.len() - MAX_RESOLVED_NAMES,
                "too many upstream host names to resolve; the others keep their leases"
            );
        }
        // Owned names: a closure over borrowed ones is not `Send` enough for a spawned task.
        let to_resolve: Vec<String> = names.iter().take(MAX_RESOLVED_NAMES).cloned().collect();
        let lookups = futures_util::stream::iter(to_resolve)
            .map(|name: String| async move {
                let answer = match tokio::time::timeout(timeout, resolver.lookup(&name)).await {
                    Err(_) => Err(ResolveError::Timeout(timeout)),
                    Ok(answer) => answer,
                };
                (name, answer)
            })
            .buffer_unordered(CONCURRENT_LOOKUPS)
            .collect::<Vec<_>>()
            .await;
        let mut answers: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (name, answer) in lookups {
            let addrs = answer.and_then(|addrs| {
                let set: BTreeSet<IpAddr> = addrs.into_iter().filter(|a| leasable(*a)).collect();
                if set.is_empty() {
                    Err(ResolveError::NoAddress)
                } else {
                    Ok(set.into_iter().collect::<Vec<_>>())
                }
            });
            match addrs {
                Ok(addrs) => {
                    tracing::debug!(name = %name, addresses = ?addrs, "upstream host name resolved");
                    answers.insert(name, addrs);
                }
                Err(e) => {
                    tracing::warn!(name = %name, resolver = ?resolver, error = %e, "resolving an upstream host name failed; its leases are kept");
                }
            }
        }

        let _guard = self.write_guard().await;
        let tx = self.store().begin_write().await?;
        let intents = crate::services::current_intents(&tx).await?;
        let named = named_upstreams(&intents);
        let open = open_leases(&tx, source).await?;
        let wanted = wanted_leases(&named, &answers, &open);
        let (started, ended) = sync_source_rows(&tx, source, &wanted, now_ms()).await?;
        tx.commit().await?;
        let pass = ResolvePass {
            names: names.len(),
            resolved: answers.len(),
            failed: names.len() - answers.len(),
            started,
            ended,
        };
        tracing::debug!(
            names = pass.names,
            resolved = pass.resolved,
            failed = pass.failed,
            started,
            ended,
            "upstream host names resolved"
        );
        Ok(pass)
    }

    /// Resolves upstream host names every `FlowSettings::resolve_every`, the first time
    /// after `first`, for as long as the control plane exists (the task holds no strong
    /// reference to it between passes). While `resolve_every` is zero no pass runs; the
    /// setting is looked at again every [`DISABLED_RECHECK`].
    pub(crate) fn spawn_upstream_resolver(&self, first: Duration) -> tokio::task::JoinHandle<()> {
        self.spawn_periodic(first, |cp| async move {
            if cp.flow_settings().resolve_every.is_zero() {
                return DISABLED_RECHECK;
            }
            if let Err(e) = cp.resolve_upstreams_now().await {
                tracing::warn!(error = %e, "syncing the leases of upstream host names failed; retrying later");
            }
            cp.flow_settings().resolve_every
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> AppId {
        AppId::new(name).expect("app id")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn only_endpoints_whose_host_is_a_dns_name_are_resolved() {
        assert_eq!(
            dns_endpoint("api.internal:8080"),
            Some(("api.internal".to_string(), 8080))
        );
        assert_eq!(
            dns_endpoint(" API.Internal:443 "),
            Some(("api.internal".to_string(), 443)),
            "trimmed and lowercased"
        );
        assert_eq!(
            dns_endpoint("postgres:5432"),
            Some(("postgres".to_string(), 5432)),
            "a single label (search domains of the system resolver)"
        );
        for literal in [
            "10.0.0.5:8080",
            "[2001:db8::5]:443",
            "localhost:8090",
            "LocalHost:8090",
        ] {
            assert_eq!(
                dns_endpoint(literal),
                None,
                "{literal}: leased with the intents"
            );
        }
        for not_a_name in [
            "api.internal",
            "api.internal:0",
            "api.internal:http",
            "api.internal:70000",
            "10.1.2:80",
            "bad name:80",
            "-bad.internal:80",
            ":80",
            "",
        ] {
            assert_eq!(dns_endpoint(not_a_name), None, "{not_a_name}");
        }
    }

    #[test]
    fn named_upstreams_of_every_upstream_of_every_intent_are_collected() {
        let yaml = "apiVersion: paved.dev/v1\nname: shop\nowners: [o@example.com]\nteam: t\n\
                    domains: [shop.example.com]\nupstreams:\n  a: [api.internal:8080, 10.0.0.1:80]\n  \
                    b:\n    endpoints: [svc.internal:443, localhost:9000]\n\
                    routes:\n  - {path: /a, upstream: a}\n  - {path: /, upstream: b}\n";
        let intent = Intent::from_yaml_str(yaml, "shop.yaml").expect("intent");
        let named = named_upstreams(&[intent]);
        assert_eq!(
            named.into_iter().collect::<Vec<_>>(),
            vec![
                (app("shop"), "api.internal".to_string(), 8080),
                (app("shop"), "svc.internal".to_string(), 443),
            ]
        );
    }

    #[test]
    fn a_failed_name_keeps_the_open_leases_of_its_app_and_port_and_a_resolved_one_follows_its_answer()
     {
        let named: BTreeSet<(AppId, String, u16)> = [
            (app("web"), "api.internal".to_string(), 8080),
            (app("db"), "pg.internal".to_string(), 5432),
        ]
        .into_iter()
        .collect();
        let lease =
            |addr: &str, port: u16, name: &str| (IpPrefix::host(ip(addr)), Some(port), app(name));
        let open: BTreeSet<LeaseKey> = [
            lease("10.0.0.1", 8080, "web"),
            lease("10.0.0.9", 5432, "db"),
            lease("10.0.0.7", 9999, "gone"),
        ]
        .into_iter()
        .collect();
        // api.internal moved to 10.0.0.2; pg.internal failed.
        let answers: HashMap<String, Vec<IpAddr>> = [(
            "api.internal".to_string(),
            vec![ip("10.0.0.2"), ip("2001:db8::2")],
        )]
        .into_iter()
        .collect();
        let wanted = wanted_leases(&named, &answers, &open);
        assert_eq!(
            wanted,
            [
                lease("10.0.0.2", 8080, "web"),
                lease("2001:db8::2", 8080, "web"),
                lease("10.0.0.9", 5432, "db"),
            ]
            .into_iter()
            .collect::<BTreeSet<_>>(),
            "the old address of a resolved name and the leases of a name gone end"
        );
    }

    #[test]
    fn unspecified_and_multicast_answers_are_not_leased() {
        assert!(leasable(ip("10.0.0.1")));
        assert!(leasable(ip("127.0.0.1")));
        assert!(leasable(ip("2001:db8::1")));
        assert!(!leasable(ip("0.0.0.0")));
        assert!(!leasable(ip("224.0.0.1")));
        assert!(!leasable(ip("255.255.255.255")));
        assert!(!leasable(ip("::")));
        assert!(!leasable(ip("ff02::1")));
    }
}
