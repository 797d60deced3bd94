//! `aya::Pod` for the shared types, so user space can read and write them in maps.

use crate::{FlowRecord, KernelOffsets};

// SAFETY: `FlowRecord` is `#[repr(C)]`, `Copy`, made only of integers and byte arrays,
// has no implicit padding (checked by the size assertion in `record.rs`), and every bit
// pattern is a valid value (enums are stored as raw `u8`).
unsafe impl aya::Pod for FlowRecord {}

// SAFETY: `KernelOffsets` is `#[repr(C)]`, `Copy`, two structs of six `u32`s each with no
// padding (size asserted in `config.rs`); any bit pattern is valid.
unsafe impl aya::Pod for KernelOffsets {}
