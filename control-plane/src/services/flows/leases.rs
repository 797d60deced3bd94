//! Address leases in the database (`address_leases`) and their sources.
//!
//! A lease is never rewritten but to end it: a source that publishes its current view (the
//! gateway's upstreams of the current intents, the static inventory) is synced by ending
//! the open leases it no longer lists and starting the ones it newly lists, at the time of
//! the change. Flows are attributed with the lease valid at their own time, so an address
//! that moved from one app to another is credited to each in turn.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use chrono::{DateTime, Utc};
use paved_flow_collector::{AppId, IpPrefix, Lease, LeaseSource, LeaseTable};
use paved_model::Intent;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::{to_i64, to_u64};
use crate::auth::Principal;
use crate::services::ControlPlane;
use crate::services::require_reader;
use crate::storage::entities::address_lease;
use crate::{Error, Result};

/// The app id of an agent's host is `host:<agent id>`; inventory apps may not use the prefix.
pub const HOST_APP_PREFIX: &str = "host:";

/// A lease's key: the prefix, the port (or every port) and the app.
pub(crate) type LeaseKey = (IpPrefix, Option<u16>, AppId);

/// The stored name of a lease source.
pub fn lease_source_name(source: LeaseSource) -> &'static str {
    match source {
        LeaseSource::GatewayUpstream => "gateway_upstream",
        LeaseSource::StaticInventory => "static_inventory",
        LeaseSource::AgentHost => "agent_host",
        LeaseSource::KubernetesPod => "kubernetes_pod",
        LeaseSource::ResolvedUpstream => "resolved_upstream",
    }
}

pub(crate) fn parse_source(name: &str) -> Option<LeaseSource> {
    [
        LeaseSource::GatewayUpstream,
        LeaseSource::StaticInventory,
        LeaseSource::AgentHost,
        LeaseSource::KubernetesPod,
        LeaseSource::ResolvedUpstream,
    ]
    .into_iter()
    .find(|s| lease_source_name(*s) == name)
}

/// A stored lease as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLease {
    /// Row id.
    pub id: i64,
    /// Who said so.
    pub source: LeaseSource,
    /// The prefix (`10.0.0.0/24`, `10.0.0.9/32`).
    pub prefix: String,
    /// Only this port of it, or every port.
    pub port: Option<u16>,
    /// The app (`host:<agent id>` for an agent's host).
    pub app: String,
    /// Start of validity.
    pub valid_from: DateTime<Utc>,
    /// End of validity (exclusive); `None` while it holds.
    pub valid_to: Option<DateTime<Utc>>,
}

/// Filters of [`ControlPlane::address_leases`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseFilter {
    /// Leases of this app.
    pub app: Option<String>,
    /// Leases from this source.
    pub source: Option<LeaseSource>,
    /// Leases holding at this instant (default: now); ignored with `include_ended`.
    pub at: Option<DateTime<Utc>>,
    /// Every lease, ended or not, newest first.
    pub include_ended: bool,
}

pub(crate) fn ms_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The collector's lease from a row; `None` (logged) for a row that does not decode.
pub(crate) fn lease_from_row(row: &address_lease::Model) -> Option<Lease> {
    let decoded = (|| {
        Some(Lease {
            prefix: row.prefix.parse().ok()?,
            port: match row.port {
                Some(p) => Some(u16::try_from(p).ok()?),
                None => None,
            },
            app: AppId::new(row.app.clone()).ok()?,
            source: parse_source(&row.source)?,
            valid_from_ms: to_u64(row.valid_from_ms),
            valid_until_ms: row.valid_to_ms.map(to_u64),
        })
    })();
    if decoded.is_none() {
        tracing::warn!(lease = row.id, prefix = %row.prefix, app = %row.app, source = %row.source, "skipping a stored address lease that does not decode");
    }
    decoded
}

/// Every stored lease as a table, with what identifies this state of the table (row count,
/// highest revision).
pub(crate) async fn load_table<C: ConnectionTrait>(
    db: &C,
) -> Result<(LeaseTable, (i64, Option<i64>))> {
    let fingerprint = fingerprint(db).await?;
    let mut table = LeaseTable::new();
    for row in address_lease::Entity::find().all(db).await? {
        if let Some(lease) = lease_from_row(&row)
            && let Err(e) = table.insert(lease)
        {
            tracing::warn!(lease = row.id, error = %e, "skipping a stored address lease");
        }
    }
    Ok((table, fingerprint))
}

/// Row count and highest revision of `address_leases`: every change moves one of them.
pub(crate) async fn fingerprint<C: ConnectionTrait>(db: &C) -> Result<(i64, Option<i64>)> {
    // Scoped: the trait's `max` would shadow `Ord::max` on integers elsewhere.
    use sea_orm::sea_query::{Expr, ExprTrait as _};
    let row: Option<(i64, Option<i64>)> = address_lease::Entity::find()
        .select_only()
        .column_as(Expr::col(address_lease::Column::Id).count(), "count")
        .column_as(Expr::col(address_lease::Column::Revision).max(), "revision")
        .into_tuple()
        .one(db)
        .await?;
    Ok(row.unwrap_or((0, None)))
}

/// The revision the rows changed by the next write get.
pub(crate) async fn next_revision<C: ConnectionTrait>(db: &C) -> Result<i64> {
    Ok(fingerprint(db).await?.1.unwrap_or(0) + 1)
}

/// The open leases of `source`, decoded (rows that do not decode are left out: a sync ends
/// them).
pub(crate) async fn open_leases<C: ConnectionTrait>(
    db: &C,
    source: LeaseSource,
) -> Result<BTreeSet<LeaseKey>> {
    Ok(address_lease::Entity::find()
        .filter(address_lease::Column::Source.eq(lease_source_name(source)))
        .filter(address_lease::Column::ValidToMs.is_null())
        .all(db)
        .await?
        .iter()
        .filter_map(lease_from_row)
        .map(|l| (l.prefix, l.port, l.app))
        .collect())
}

/// Ends, at `at_ms`, the open lease in `row` (never before it started).
pub(crate) async fn end_row<C: ConnectionTrait>(
    db: &C,
    row: address_lease::Model,
    at_ms: u64,
    revision: i64,
) -> Result<()> {
    let end = to_i64(at_ms).max(row.valid_from_ms.saturating_add(1));
    let mut am: address_lease::ActiveModel = row.into();
    am.valid_to_ms = Set(Some(end));
    am.revision = Set(revision);
    am.update(db).await?;
    Ok(())
}

/// Starts a lease at `at_ms`.
pub(crate) async fn start_row<C: ConnectionTrait>(
    db: &C,
    source: LeaseSource,
    (prefix, port, app): &LeaseKey,
    at_ms: u64,
    revision: i64,
) -> Result<()> {
    address_lease::ActiveModel {
        source: Set(lease_source_name(source).to_string()),
        prefix: Set(prefix.to_string()),
        port: Set(port.map(i32::from)),
        app: Set(app.as_str().to_string()),
        valid_from_ms: Set(to_i64(at_ms)),
        valid_to_ms: Set(None),
        revision: Set(revision),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Brings the open leases of `source` in line with `wanted` at `at_ms`: open leases not in
/// `wanted` end, entries of `wanted` without an open lease start one. Returns (started,
/// ended). The database counterpart of `LeaseTable::sync_source`.
pub(crate) async fn sync_source_rows<C: ConnectionTrait>(
    db: &C,
    source: LeaseSource,
    wanted: &BTreeSet<LeaseKey>,
    at_ms: u64,
) -> Result<(usize, usize)> {
    let open = address_lease::Entity::find()
        .filter(address_lease::Column::Source.eq(lease_source_name(source)))
        .filter(address_lease::Column::ValidToMs.is_null())
        .order_by_asc(address_lease::Column::Id)
        .all(db)
        .await?;
    let mut kept = BTreeSet::new();
    let mut to_end = Vec::new();
    for row in open {
        let key = lease_from_row(&row).map(|l| (l.prefix, l.port, l.app));
        match key {
            Some(key) if wanted.contains(&key) && !kept.contains(&key) => {
                kept.insert(key);
            }
            // Gone from the source, a duplicate, or undecodable: it ends.
            _ => to_end.push(row),
        }
    }
    let to_start: Vec<&LeaseKey> = wanted.iter().filter(|k| !kept.contains(*k)).collect();
    if to_end.is_empty() && to_start.is_empty() {
        return Ok((0, 0));
    }
    let revision = next_revision(db).await?;
    let ended = to_end.len();
    for row in to_end {
        end_row(db, row, at_ms, revision).await?;
    }
    for key in &to_start {
        start_row(db, source, key, at_ms, revision).await?;
    }
    tracing::info!(
        source = lease_source_name(source),
        started = to_start.len(),
        ended,
        "address leases synced"
    );
    Ok((to_start.len(), ended))
}

/// The addresses and port of an upstream endpoint (`10.0.0.5:8080`, `[2001:db8::5]:443`,
/// `localhost:8090`). Other host names are not resolved here, in the transaction of an intent
/// change: the background resolver (`resolver.rs`) leases them under
/// [`LeaseSource::ResolvedUpstream`] at the addresses they resolve to.
pub(crate) fn endpoint_addresses(endpoint: &str) -> Option<(Vec<IpAddr>, u16)> {
    let endpoint = endpoint.trim();
    if let Ok(addr) = endpoint.parse::<SocketAddr>() {
        return Some((vec![addr.ip()], addr.port()));
    }
    let (host, port) = endpoint.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if host.eq_ignore_ascii_case("localhost") {
        return Some((
            vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()],
            port,
        ));
    }
    None
}

/// Every upstream endpoint of `intents` with the app whose intent names it (intents whose
/// name is not a valid app id are skipped).
pub(crate) fn upstream_endpoints(intents: &[Intent]) -> impl Iterator<Item = (AppId, &str)> {
    intents.iter().flat_map(|intent| {
        let app = AppId::new(intent.name.clone()).ok();
        intent
            .upstream
            .iter()
            .chain(intent.upstreams.values())
            .flat_map(|spec| spec.endpoints.iter())
            .filter_map(move |endpoint| Some((app.clone()?, endpoint.as_str())))
    })
}

/// The endpoint leases the gateway's upstreams of `intents` make: each endpoint address and
/// port belongs to the app whose intent names it.
pub(crate) fn upstream_leases(intents: &[Intent]) -> BTreeSet<LeaseKey> {
    let mut wanted = BTreeSet::new();
    for (app, endpoint) in upstream_endpoints(intents) {
        match endpoint_addresses(endpoint) {
            Some((addrs, port)) => {
                for addr in addrs {
                    wanted.insert((IpPrefix::host(addr), Some(port), app.clone()));
                }
            }
            None => {
                tracing::debug!(app = %app, %endpoint, "upstream endpoint is a host name: left to the resolver");
            }
        }
    }
    wanted
}

/// Syncs the gateway-upstream leases with `intents` (the current intents as the caller's
/// transaction sees them) at `at_ms`, and ends the resolved leases of DNS-named endpoints
/// the intents no longer have. Called in the transaction of every change that recompiles
/// the snapshot, so the leases change with the intents, atomically.
pub(crate) async fn sync_upstream_leases<C: ConnectionTrait>(
    db: &C,
    intents: &[Intent],
    at_ms: u64,
) -> Result<(usize, usize)> {
    let (started, ended) = sync_source_rows(
        db,
        LeaseSource::GatewayUpstream,
        &upstream_leases(intents),
        at_ms,
    )
    .await?;
    let gone = super::resolver::end_unnamed_resolved_leases(db, intents, at_ms).await?;
    Ok((started, ended + gone))
}

/// Whether an address identifies the host that reports it: not loopback, unspecified,
/// link-local or multicast (those are every host's, or no one's).
pub(crate) fn is_host_address(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_host_address(IpAddr::V4(v4)),
            None => {
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unicast_link_local())
            }
        },
    }
}

impl ControlPlane {
    /// Re-syncs the gateway-upstream leases with the current intents now (at start, for
    /// databases whose intents predate flow telemetry).
    pub async fn sync_upstream_leases_now(&self) -> Result<(usize, usize)> {
        let _guard = self.write_guard().await;
        let tx = self.store().begin_write().await?;
        let intents = crate::services::current_intents(&tx).await?;
        let changed = sync_upstream_leases(&tx, &intents, super::now_ms()).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Address leases the caller may read (of apps it may read; every lease for readers of
    /// everything), holding at `filter.at` (default now) or, with `include_ended`, all of
    /// them newest first; at most `first` (1 to 500, default 100).
    pub async fn address_leases(
        &self,
        who: &Principal,
        filter: &LeaseFilter,
        first: Option<i64>,
    ) -> Result<Vec<StoredLease>> {
        require_reader(who)?;
        let first = match first {
            None => 100,
            Some(n) if (1..=500).contains(&n) => n as u64,
            Some(n) => {
                return Err(Error::BadRequest(format!(
                    "`first` must be between 1 and 500, found {n}"
                )));
            }
        };
        let visibility = super::queries::Visibility::of(self, who).await?;
        let mut query = address_lease::Entity::find().order_by_desc(address_lease::Column::Id);
        if let Some(app) = &filter.app {
            query = query.filter(address_lease::Column::App.eq(app.as_str()));
        }
        if let Some(source) = filter.source {
            query = query.filter(address_lease::Column::Source.eq(lease_source_name(source)));
        }
        if !filter.include_ended {
            let at = filter.at.map_or_else(super::now_ms, |t| {
                u64::try_from(t.timestamp_millis()).unwrap_or(0)
            });
            let at = to_i64(at);
            query = query
                .filter(address_lease::Column::ValidFromMs.lte(at))
                .filter(
                    Condition::any()
                        .add(address_lease::Column::ValidToMs.is_null())
                        .add(address_lease::Column::ValidToMs.gt(at)),
                );
        }
        // Visibility depends on the apps' teams and owners, so it is decided here; the scan
        // stops once a page is full.
        let mut out = Vec::new();
        let mut pages = query.paginate(self.store().db(), 500);
        while let Some(rows) = pages.fetch_and_next().await? {
            for row in rows {
                if !visibility.app(&row.app) {
                    continue;
                }
                let Some(source) = parse_source(&row.source) else {
                    continue;
                };
                out.push(StoredLease {
                    id: row.id,
                    source,
                    prefix: row.prefix,
                    port: row.port.and_then(|p| u16::try_from(p).ok()),
                    app: row.app,
                    valid_from: ms_time(row.valid_from_ms),
                    valid_to: row.valid_to_ms.map(ms_time),
                });
                if out.len() as u64 >= first {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_give_addresses_and_ports_and_names_give_none() {
        assert_eq!(
            endpoint_addresses("10.0.0.5:8080"),
            Some((vec!["10.0.0.5".parse().expect("ip")], 8080))
        );
        assert_eq!(
            endpoint_addresses("[2001:db8::5]:443"),
            Some((vec!["2001:db8::5".parse().expect("ip")], 443))
        );
        assert_eq!(
            endpoint_addresses("localhost:8090").map(|(a, p)| (a.len(), p)),
            Some((2, 8090))
        );
        assert_eq!(endpoint_addresses("api.internal:80"), None);
        assert_eq!(endpoint_addresses("10.0.0.5"), None);
    }

    #[test]
    fn every_lease_source_has_a_stored_name_that_reads_back() {
        for source in [
            LeaseSource::GatewayUpstream,
            LeaseSource::ResolvedUpstream,
            LeaseSource::StaticInventory,
            LeaseSource::AgentHost,
            LeaseSource::KubernetesPod,
        ] {
            assert_eq!(parse_source(lease_source_name(source)), Some(source));
        }
        assert_eq!(
            lease_source_name(LeaseSource::ResolvedUpstream),
            "resolved_upstream"
        );
        assert_eq!(parse_source("dns"), None);
    }

    #[test]
    fn only_addresses_of_one_host_identify_it() {
        for (addr, host) in [
            ("10.0.0.5", true),
            ("203.0.113.9", true),
            ("127.0.0.1", false),
            ("0.0.0.0", false),
            ("169.254.1.1", false),
            ("::1", false),
            ("fe80::1", false),
            ("::ffff:127.0.0.1", false),
            ("2001:db8::1", true),
        ] {
            assert_eq!(is_host_address(addr.parse().expect("ip")), host, "{addr}");
        }
    }
}
