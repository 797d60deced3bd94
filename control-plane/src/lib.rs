//! The Paved control plane core: it harvests developer intent (`paved.yaml`) and turns it into
//! running gateway configuration.
//!
//! - [`storage`]: sea-orm entities and migrations, one code path for SQLite (the default, a
//!   file) and PostgreSQL;
//! - [`services`]: the business rules (plan, apply, rollback, delete, tokens, users, audit,
//!   gateways), used by GraphQL and by the command line alike; every mutation writes an audit
//!   row in the same transaction and recompiles every current intent into a new snapshot;
//! - [`graphql`]: the GraphQL API (async-graphql) with subscriptions over graphql-transport-ws;
//! - [`oidc`]: a minimal OpenID provider for local users (the small-install mode);
//! - [`distribution`]: the long-poll protocol through which gateways fetch snapshots and ACK or
//!   NACK them (docs/config-distribution.md);
//! - [`tls`]: certificate issuance behind [`tls::CertificateIssuer`]: an internal CA, or ACME
//!   (DNS-01 through a [`tls::DnsProvider`] such as RFC 2136);
//! - [`ui`]: the web UI (`paved-ui`) served to people, with their sign-in;
//! - [`http`]: the axum [`Router`](axum::Router) that mounts all of the above.
//!
//! The binary calls [`ControlPlane::start`] with a [`ControlPlaneConfig`] and serves
//! [`ControlPlane::router`].

pub mod auth;
pub mod config;
pub mod distribution;
pub mod error;
pub mod graphql;
pub mod http;
pub mod oidc;
pub mod secrets;
pub mod services;
pub mod storage;
pub mod tls;
pub mod ui;

pub use auth::{ActorKind, Principal, Role, Scope};
pub use config::{ControlPlaneConfig, OidcSettings, UiSettings};
pub use error::Error;
pub use services::ControlPlane;

/// Result of the control plane's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
