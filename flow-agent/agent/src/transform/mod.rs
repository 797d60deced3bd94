//! Transforms: what happens to records between the source and the batch.
//!
//! * [`filter`]: port filters and per-connection sampling decide which records count.
//! * [`container`] and [`enrich`]: the process and the container behind a record.
//! * [`aggregate`]: turns cumulative per-connection counters into per-interval sums per
//!   (local address, remote address, service port, direction, process).

pub mod aggregate;
pub mod container;
pub mod enrich;
pub mod filter;
