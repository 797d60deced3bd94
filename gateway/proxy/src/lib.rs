//! The Paved gateway.
