//! The static inventory: address prefixes (optionally one port of them) that belong to apps,
//! for what no intent describes (databases, partners' ranges, office networks). Uploaded by
//! admins as a whole; an upload replaces the previous one by ending the leases it no longer
//! lists and starting the new ones, so flows keep the owner of their time.
//!
//! Text form, one entry per line, fields separated by blanks or commas, `#` starts a comment:
//!
//! ```text
//! # prefix or address   app        [port]
//! 10.20.0.0/16          billing
//! 10.30.1.7             postgres   5432
//! 2001:db8:42::/48      partner-x
//! ```

use std::collections::{BTreeMap, BTreeSet};

use paved_flow_collector::{AppId, IpPrefix, LeaseSource};

use super::leases::{HOST_APP_PREFIX, LeaseKey, sync_source_rows};
use super::now_ms;
use crate::auth::Principal;
use crate::services::{ControlPlane, audit};
use crate::{Error, Result};

/// Largest inventory text accepted.
pub const MAX_INVENTORY_BYTES: usize = 4 << 20;
/// Most entries in one inventory.
pub const MAX_INVENTORY_ENTRIES: usize = 100_000;
/// Problems listed in one error (the rest are counted).
const MAX_PROBLEMS: usize = 20;

/// One inventory entry as given through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryEntry {
    /// An address or a prefix (`10.30.1.7`, `10.20.0.0/16`).
    pub prefix: String,
    /// Only this port of it.
    pub port: Option<i32>,
    /// The app.
    pub app: String,
}

/// An uploaded inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryUpload {
    /// The text form (see the module documentation).
    Text(String),
    /// Structured entries.
    Entries(Vec<InventoryEntry>),
}

/// What an upload changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InventoryApplied {
    /// Entries in the inventory.
    pub entries: usize,
    /// Leases started (entries that are new).
    pub started: usize,
    /// Leases ended (entries that are gone).
    pub ended: usize,
}

fn check_entry(
    prefix: &str,
    port: Option<i64>,
    app: &str,
) -> std::result::Result<LeaseKey, (&'static str, String)> {
    let prefix: IpPrefix = prefix
        .trim()
        .parse()
        .map_err(|e: paved_flow_collector::LeaseError| ("prefix", e.to_string()))?;
    let port = match port {
        None => None,
        Some(p) => match u16::try_from(p) {
            Ok(p) if p > 0 => Some(p),
            _ => return Err(("port", format!("{p} is not a port (1 to 65535)"))),
        },
    };
    if app.starts_with(HOST_APP_PREFIX) {
        return Err((
            "app",
            format!("`{HOST_APP_PREFIX}` names agents' hosts and is reserved"),
        ));
    }
    let app = AppId::new(app).map_err(|e| ("app", e.to_string()))?;
    Ok((prefix, port, app))
}

/// Adds `key` from `place` to `entries`, or a problem when the same prefix and port was
/// given to another app before.
fn add(
    entries: &mut BTreeMap<(IpPrefix, Option<u16>), (AppId, String)>,
    problems: &mut Vec<String>,
    key: LeaseKey,
    place: String,
) {
    let (prefix, port, app) = key;
    match entries.get(&(prefix, port)) {
        Some((other, first)) if *other != app => {
            let what = match port {
                Some(p) => format!("{prefix} port {p}"),
                None => prefix.to_string(),
            };
            problems.push(format!(
                "{place}: {what} is already given to `{other}` by {first}"
            ));
        }
        Some(_) => {}
        None => {
            entries.insert((prefix, port), (app, place));
        }
    }
}

fn finish(
    entries: BTreeMap<(IpPrefix, Option<u16>), (AppId, String)>,
    problems: Vec<String>,
) -> Result<BTreeSet<LeaseKey>> {
    if !problems.is_empty() {
        let count = problems.len();
        let mut message = format!("the inventory is invalid ({count} problems): ");
        message.push_str(
            &problems
                .into_iter()
                .take(MAX_PROBLEMS)
                .collect::<Vec<_>>()
                .join("; "),
        );
        if count > MAX_PROBLEMS {
            message.push_str(&format!("; and {} more", count - MAX_PROBLEMS));
        }
        return Err(Error::BadRequest(message));
    }
    if entries.len() > MAX_INVENTORY_ENTRIES {
        return Err(Error::BadRequest(format!(
            "the inventory has {} entries, more than {MAX_INVENTORY_ENTRIES}",
            entries.len()
        )));
    }
    Ok(entries
        .into_iter()
        .map(|((prefix, port), (app, _))| (prefix, port, app))
        .collect())
}

/// Parses the text form; every problem is reported with its line (`line 3: prefix: ...`).
pub fn parse_inventory_text(text: &str) -> Result<BTreeSet<LeaseKey>> {
    if text.len() > MAX_INVENTORY_BYTES {
        return Err(Error::BadRequest(format!(
            "the inventory is {} bytes, more than the {MAX_INVENTORY_BYTES} accepted",
            text.len()
        )));
    }
    let mut entries = BTreeMap::new();
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let place = format!("line {}", index + 1);
        let content = line.split('#').next().unwrap_or("");
        let fields: Vec<&str> = content
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|f| !f.is_empty())
            .collect();
        let (prefix, app, port) = match fields.as_slice() {
            [] => continue,
            [prefix, app] => (*prefix, *app, None),
            [prefix, app, port] => match port.parse::<i64>() {
                Ok(port) => (*prefix, *app, Some(port)),
                Err(_) => {
                    problems.push(format!("{place}: port: `{port}` is not a number"));
                    continue;
                }
            },
            _ => {
                problems.push(format!(
                    "{place}: expected `<prefix or address> <app> [port]`, found {} fields",
                    fields.len()
                ));
                continue;
            }
        };
        match check_entry(prefix, port, app) {
            Ok(key) => add(&mut entries, &mut problems, key, place),
            Err((field, message)) => problems.push(format!("{place}: {field}: {message}")),
        }
    }
    finish(entries, problems)
}

/// Checks structured entries; every problem names its entry (`entries[2].prefix: ...`).
pub fn parse_inventory_entries(items: &[InventoryEntry]) -> Result<BTreeSet<LeaseKey>> {
    if items.len() > MAX_INVENTORY_ENTRIES {
        return Err(Error::BadRequest(format!(
            "the inventory has {} entries, more than {MAX_INVENTORY_ENTRIES}",
            items.len()
        )));
    }
    let mut entries = BTreeMap::new();
    let mut problems = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let place = format!("entries[{index}]");
        match check_entry(&item.prefix, item.port.map(i64::from), &item.app) {
            Ok(key) => add(&mut entries, &mut problems, key, place),
            Err((field, message)) => problems.push(format!("{place}.{field}: {message}")),
        }
    }
    finish(entries, problems)
}

impl ControlPlane {
    /// Replaces the static inventory (admins only): validated as a whole first (nothing
    /// changes when an entry is wrong; the error names every wrong line or entry), then the
    /// leases of entries gone end now and those of new entries start now, with an audit row,
    /// in one transaction.
    pub async fn upload_inventory(
        &self,
        who: &Principal,
        upload: &InventoryUpload,
    ) -> Result<InventoryApplied> {
        if !who.is_admin() {
            return Err(Error::Forbidden(
                "only admins may upload the address inventory".into(),
            ));
        }
        let wanted = match upload {
            InventoryUpload::Text(text) => parse_inventory_text(text)?,
            InventoryUpload::Entries(entries) => parse_inventory_entries(entries)?,
        };
        let _guard = self.write_guard().await;
        let tx = self.store().begin_write().await?;
        let (started, ended) =
            sync_source_rows(&tx, LeaseSource::StaticInventory, &wanted, now_ms()).await?;
        audit(
            &tx,
            who,
            "inventory.upload",
            "inventory",
            "static",
            None,
            None,
            Some(serde_json::json!({
                "entries": wanted.len(),
                "started": started,
                "ended": ended,
            })),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(actor = %who.name, entries = wanted.len(), started, ended, "address inventory uploaded");
        Ok(InventoryApplied {
            entries: wanted.len(),
            started,
            ended,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_reads_prefixes_apps_and_ports() {
        let parsed = parse_inventory_text(
            "# inventory\n10.20.0.0/16 billing\n\n10.30.1.7, postgres, 5432  # db\n2001:db8:42::/48\tpartner-x\n",
        )
        .expect("valid");
        let text: Vec<String> = parsed
            .iter()
            .map(|(p, port, app)| format!("{p} {port:?} {app}"))
            .collect();
        assert_eq!(
            text,
            [
                "10.20.0.0/16 None billing",
                "10.30.1.7/32 Some(5432) postgres",
                "2001:db8:42::/48 None partner-x"
            ]
        );
    }

    #[test]
    fn every_bad_line_is_named() {
        let err = parse_inventory_text(
            "10.0.0.0/33 a\nnot-an-address b\n10.1.0.0/16 c 70000\n10.2.0.0/16\n10.3.0.0/16 d\n10.3.0.0/16 e\n10.4.0.0/16 host:x\n",
        )
        .expect_err("invalid")
        .to_string();
        for needle in [
            "line 1: prefix: prefix length 33",
            "line 2: prefix: `not-an-address`",
            "line 3: port: 70000",
            "line 4: expected",
            "line 6: 10.3.0.0/16 is already given to `d` by line 5",
            "line 7: app: `host:`",
        ] {
            assert!(err.contains(needle), "{needle} in {err}");
        }
        let err = parse_inventory_entries(&[InventoryEntry {
            prefix: "10.0.0.1".into(),
            port: Some(0),
            app: "x".into(),
        }])
        .expect_err("port 0")
        .to_string();
        assert!(err.contains("entries[0].port"), "{err}");
    }
}
