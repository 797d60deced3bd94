//! `aya::Pod` for the shared types, so user space can read and write them in maps.

use crate::{
    AggregateKey, AggregateSlot, AggregateValue, FlowRecord, KernelOffsets, OpenFlow, ProbeConfig,
};

// SAFETY: `FlowRecord` is `#[repr(C)]`, `Copy`, made only of integers and byte arrays,
// has no implicit padding (checked by the size assertion in `record.rs`), and every bit
// pattern is a valid value (enums are stored as raw `u8`).
unsafe impl aya::Pod for FlowRecord {}

// SAFETY: `KernelOffsets` is `#[repr(C)]`, `Copy`, three structs of `u32`s with no
// padding (size asserted in `config.rs`); any bit pattern is valid.
unsafe impl aya::Pod for KernelOffsets {}

// SAFETY: `OpenFlow` is `#[repr(C)]`, `Copy`, integers and byte arrays with explicit
// padding (size asserted in `open_flow.rs`); any bit pattern is valid.
unsafe impl aya::Pod for OpenFlow {}

// SAFETY: `AggregateKey`, `AggregateValue` and `ProbeConfig` are `#[repr(C)]`, `Copy`,
// integers and byte arrays with explicit padding (sizes asserted in `aggregate.rs`);
// any bit pattern is valid.
unsafe impl aya::Pod for AggregateKey {}

// SAFETY: see `AggregateKey`.
unsafe impl aya::Pod for AggregateValue {}

// SAFETY: see `AggregateKey`.
unsafe impl aya::Pod for ProbeConfig {}

// SAFETY: an `AggregateKey` and an `AggregateValue` side by side, `#[repr(C)]` with no
// padding between or after them (size asserted in `aggregate.rs`).
unsafe impl aya::Pod for AggregateSlot {}
