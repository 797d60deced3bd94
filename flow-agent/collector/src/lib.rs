//! The flow collector's core: pure logic and traits, no storage and no transport.
//!
//! * [`validate`]: what a collector accepts from agents, on top of the wire format's
//!   own rules (clock skew, age, volume), with errors naming the field.
//! * [`lease`]: address leases with validity intervals — the gateway's upstream
//!   endpoints, the static inventory, the agents' own hosts, Kubernetes pods later — and
//!   [`LeaseTable::attribute`], which answers which app held an address **at the time
//!   of a flow**. Unknown stays unknown: no lease, or leases that disagree, give `None`.
//! * [`process`]: the reporting host's own side of a flow, by process (several apps on
//!   one host share its addresses, loopback above all).
//! * [`edge`]: attributed flows summed into app-to-app edges per hour (connections,
//!   bytes each way, retransmissions, an RTT histogram for p50/p99).
//! * [`ingest`]: one call per received batch, tying the above together, and the
//!   [`ingest::FlowRepository`] trait the control plane's storage implements.

pub mod app;
pub mod edge;
pub mod ingest;
pub mod lease;
pub mod process;
pub mod validate;

pub use app::{AppId, AppIdError};
pub use edge::{Edge, EdgeAggregator, EdgeKey, EdgeStats, HOUR_MS, Peer};
pub use ingest::{AttributedFlow, Collector, FlowRepository, IngestReport, RepositoryFuture};
pub use lease::{Attribution, IpPrefix, Lease, LeaseError, LeaseSource, LeaseTable};
pub use process::{ProcessMatch, ProcessTable};
pub use validate::{BatchValidator, ValidationError};
