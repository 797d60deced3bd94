//! The reporting host's side of a flow, by process.
//!
//! Apps that share a host share its addresses (on loopback, every app of every host is
//! `127.0.0.1`), so the address alone cannot say which app on the reporting host opened
//! or accepted a connection. The agent reports the process (pid, name, executable) and
//! the container; this table maps those to apps, per host or for every host. As with
//! leases, matches that disagree give no answer.

use std::collections::BTreeSet;

use paved_flow_proto::FlowAggregate;

use crate::AppId;

/// What identifies an app's processes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProcessMatch {
    /// The executable's path.
    Exe(String),
    /// The process name (`comm`, 15 characters at most).
    Comm(String),
    /// The container id.
    Container(String),
}

impl ProcessMatch {
    fn matches(&self, flow: &FlowAggregate) -> bool {
        match self {
            Self::Exe(exe) => flow.process.exe.as_deref() == Some(exe.as_str()),
            Self::Comm(comm) => flow.process.comm == *comm,
            Self::Container(id) => flow.container.as_ref().is_some_and(|c| c.id == *id),
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    host: Option<String>,
    matcher: ProcessMatch,
    app: AppId,
}

/// Process → app rules.
#[derive(Clone, Debug, Default)]
pub struct ProcessTable {
    entries: Vec<Entry>,
}

impl ProcessTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule, for one host or (`None`) every host.
    pub fn insert(&mut self, host: Option<&str>, matcher: ProcessMatch, app: AppId) {
        self.entries.push(Entry {
            host: host.map(str::to_owned),
            matcher,
            app,
        });
    }

    /// The app of the process behind `flow`, reported by `host`; `None` when no rule
    /// matches or matching rules disagree.
    pub fn attribute(&self, host: &str, flow: &FlowAggregate) -> Option<AppId> {
        let apps: BTreeSet<&AppId> = self
            .entries
            .iter()
            .filter(|e| e.host.as_deref().is_none_or(|h| h == host) && e.matcher.matches(flow))
            .map(|e| &e.app)
            .collect();
        if apps.len() == 1 {
            apps.into_iter().next().cloned()
        } else {
            None
        }
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
