//! The UI's logic as plain functions and types, tested without a browser: what the pages show
//! is computed here, the components only draw it.

pub mod catalog;
pub mod chain;
pub mod chart;
pub mod diff;
pub mod format;
pub mod gql_ws;
pub mod intent_yaml;
pub mod rollout;
pub mod upstream;
pub mod wizard;
pub mod yaml_highlight;
