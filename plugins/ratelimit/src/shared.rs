//! The host's shared data as the engine's [`Store`].
//!
//! Writes go through the raw `proxy_set_shared_data` import rather than the SDK wrapper,
//! which panics (traps the instance) on any status but OK and CAS_MISMATCH: a full shared
//! data space must degrade rate limiting, not fail every request.

use paved_ratelimit_engine::store::{Cas, Store, WriteError};
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> Status;
}

/// Shared data of this plugin's VM.
pub struct HostStore;

impl Store for HostStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, Cas)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), cas)) => Some((value, cas.unwrap_or(0))),
            // An empty value comes back without bytes but with its CAS: it exists.
            Ok((None, Some(cas))) => Some((Vec::new(), cas)),
            _ => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), WriteError> {
        // SAFETY: the pointers and lengths describe live slices for the whole call; the host
        // only reads them.
        let status = unsafe {
            proxy_set_shared_data(
                key.as_ptr(),
                key.len(),
                value.as_ptr(),
                value.len(),
                cas.unwrap_or(0),
            )
        };
        match status {
            Status::Ok => Ok(()),
            Status::CasMismatch => Err(WriteError::CasMismatch),
            _ => Err(WriteError::Refused),
        }
    }
}
