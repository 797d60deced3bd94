//! sea-orm entities, one module per table. Timestamps are UTC; JSON columns are `jsonb` on
//! PostgreSQL and text on SQLite.

pub mod address_lease;
pub mod api_token;
pub mod app;
pub mod audit_log;
pub mod certificate;
pub mod external_identity;
pub mod flow_batch;
pub mod flow_edge;
pub mod flow_record;
pub mod gateway;
pub mod intent_version;
pub mod oauth_client;
pub mod oidc_code;
pub mod op_session;
pub mod signing_key;
pub mod snapshot;
pub mod traffic_record;
pub mod user;
