//! The shared data the plugin keeps counters in, as a trait: the host's key-value store with
//! compare-and-swap (`proxy_get_shared_data` / `proxy_set_shared_data`), or an in-memory one
//! in tests.

use std::fmt;

/// A version token: a write with it fails if the value changed since it was read.
pub type Cas = u32;

/// Why a write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// Another writer changed the value first: read again and retry.
    CasMismatch,
    /// The store refused the write (full, or the value too large).
    Refused,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::CasMismatch => f.write_str("value changed concurrently (CAS mismatch)"),
            WriteError::Refused => f.write_str("shared data refused the write"),
        }
    }
}

impl std::error::Error for WriteError {}

/// A key-value store with compare-and-swap.
pub trait Store {
    /// The value of `key` and its CAS token; `None` when absent.
    fn get(&self, key: &str) -> Option<(Vec<u8>, Cas)>;
    /// Writes `key`. With `Some(cas)`, only if the value is still the one read with that
    /// token; with `None`, unconditionally (the ABI has no "create if absent").
    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), WriteError>;
}

/// An in-memory [`Store`] with the host's semantics, for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: std::sync::Mutex<std::collections::HashMap<String, (Vec<u8>, Cas)>>,
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, Cas)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).cloned()
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), WriteError> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let next = match (entries.get(key), cas) {
            (Some((_, current)), Some(cas)) if *current == cas => current.wrapping_add(1).max(1),
            (Some((_, current)), None) => current.wrapping_add(1).max(1),
            (None, None) => 1,
            _ => return Err(WriteError::CasMismatch),
        };
        entries.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }
}
