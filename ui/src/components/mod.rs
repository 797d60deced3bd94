//! Pieces the pages share: error and empty states, highlighted YAML and diffs, SVG charts,
//! form fields with their errors, tables of requests and gateways.

pub mod chart;
pub mod code;
pub mod field;
pub mod status;
pub mod tables;
