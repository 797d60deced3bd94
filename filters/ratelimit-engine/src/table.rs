//! Bounded tables of per-key state in shared data.
//!
//! Shared data has no delete: one entry per client would grow without bound under a flood of
//! addresses. Instead every limit owns a fixed number of slots; a key lives in one of a few
//! slots picked by its hash (open addressing). A slot whose state has expired (its client is
//! back to a fresh state) is as good as empty and is reused, so for rate limits the table is
//! exact as long as fewer keys than slots are active at once. When every candidate slot is
//! held by a live key, the request falls into one overflow slot shared by all such keys:
//! under an address flood, the newcomers are limited together instead of not at all.
//!
//! Updates are compare-and-swap loops. Creating a slot is the one write without a CAS token
//! (the ABI has no "create if absent"), so it happens under a small lock kept in the table.

use std::fmt;

use crate::store::{Cas, Store, WriteError};

/// How many times a contended update is retried before giving up.
pub const MAX_RETRIES: u32 = 1000;
/// How long a slot-creation lock is honoured if its holder never releases it.
const LOCK_LEASE_NS: u64 = 100_000_000;

/// The key of the shared overflow slot's owner.
const OVERFLOW_OWNER: &str = "*";

/// What an update decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<T> {
    /// Store this payload for the key, and answer `T`.
    Write(Vec<u8>, T),
    /// Change nothing, answer `T`.
    Keep(T),
}

/// A finished update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Updated<T> {
    /// The answer of the decision that was stored (or kept).
    pub value: T,
    /// Whether the key had to share the overflow slot.
    pub overflow: bool,
    /// CAS mismatches met on the way (contention).
    pub retries: u32,
}

/// Why an update could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableError {
    /// Still contended after [`MAX_RETRIES`] attempts.
    Contended,
    /// Shared data refused a write (full).
    Refused,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::Contended => write!(
                f,
                "shared data still contended after {MAX_RETRIES} attempts"
            ),
            TableError::Refused => f.write_str("shared data refused a write"),
        }
    }
}

impl std::error::Error for TableError {}

/// A table of `slots` entries under the key prefix `name`.
#[derive(Debug, Clone)]
pub struct Table {
    name: String,
    slots: u32,
    probes: u32,
}

/// The slot chosen for an update.
struct Slot {
    key: String,
    payload: Option<Vec<u8>>,
    cas: Option<Cas>,
    overflow: bool,
}

impl Table {
    /// A table named `name` (a shared-data key prefix) with `slots` slots (at least 1);
    /// each key may live in one of 4 consecutive slots.
    pub fn new(name: impl Into<String>, slots: u32) -> Table {
        let slots = slots.max(1);
        Table {
            name: name.into(),
            slots,
            probes: slots.min(4),
        }
    }

    fn slot_key(&self, index: u32) -> String {
        format!("{}.{index}", self.name)
    }

    fn overflow_key(&self) -> String {
        format!("{}.overflow", self.name)
    }

    fn lock_key(&self) -> String {
        format!("{}.lock", self.name)
    }

    /// Creates the table's lock if it does not exist; call once when the plugin is
    /// configured, before requests, so that its creation cannot race.
    pub fn prepare(&self, store: &dyn Store) {
        if store.get(&self.lock_key()).is_none() {
            let _ = store.set(&self.lock_key(), &0u64.to_le_bytes(), None);
        }
    }

    /// Updates the state of `key`: `decide` gets the key's current payload (`None` for a key
    /// without state) and says what to store. `is_free` tells whether another key's payload
    /// has expired, so its slot may be reused.
    pub fn update<T>(
        &self,
        store: &dyn Store,
        key: &str,
        now_ns: u64,
        is_free: impl Fn(&[u8]) -> bool,
        mut decide: impl FnMut(Option<&[u8]>) -> Decision<T>,
    ) -> Result<Updated<T>, TableError> {
        let mut retries = 0;
        while retries < MAX_RETRIES {
            let Some(slot) = self.find(store, key, &is_free, now_ns)? else {
                // A slot was just created: look again.
                retries += 1;
                continue;
            };
            let owner = if slot.overflow { OVERFLOW_OWNER } else { key };
            match decide(slot.payload.as_deref()) {
                Decision::Keep(value) => {
                    return Ok(Updated {
                        value,
                        overflow: slot.overflow,
                        retries,
                    });
                }
                Decision::Write(payload, value) => {
                    match store.set(&slot.key, &encode(owner, &payload), slot.cas) {
                        Ok(()) => {
                            return Ok(Updated {
                                value,
                                overflow: slot.overflow,
                                retries,
                            });
                        }
                        Err(WriteError::CasMismatch) => retries += 1,
                        Err(WriteError::Refused) => return Err(TableError::Refused),
                    }
                }
            }
        }
        Err(TableError::Contended)
    }

    /// The key's own slot, else the first free one, else the overflow slot. `None` when a
    /// missing slot was created and the search must start again.
    fn find(
        &self,
        store: &dyn Store,
        key: &str,
        is_free: &impl Fn(&[u8]) -> bool,
        now_ns: u64,
    ) -> Result<Option<Slot>, TableError> {
        let start = (fnv1a(key.as_bytes()) % u64::from(self.slots)) as u32;
        let mut free: Option<(String, Cas)> = None;
        let mut missing: Option<String> = None;
        for probe in 0..self.probes {
            let slot_key = self.slot_key((start + probe) % self.slots);
            match store.get(&slot_key) {
                None => {
                    missing.get_or_insert(slot_key);
                }
                Some((bytes, cas)) => match decode(&bytes) {
                    Some((owner, payload)) if owner == key => {
                        return Ok(Some(Slot {
                            key: slot_key,
                            payload: Some(payload.to_vec()),
                            cas: Some(cas),
                            overflow: false,
                        }));
                    }
                    Some((_, payload)) if !is_free(payload) => {}
                    _ => {
                        free.get_or_insert((slot_key, cas));
                    }
                },
            }
        }
        if let Some((slot_key, cas)) = free {
            return Ok(Some(Slot {
                key: slot_key,
                payload: None,
                cas: Some(cas),
                overflow: false,
            }));
        }
        if let Some(slot_key) = missing {
            self.create(store, &slot_key, now_ns)?;
            return Ok(None);
        }
        let overflow_key = self.overflow_key();
        match store.get(&overflow_key) {
            None => {
                self.create(store, &overflow_key, now_ns)?;
                Ok(None)
            }
            Some((bytes, cas)) => Ok(Some(Slot {
                key: overflow_key,
                payload: decode(&bytes).map(|(_, p)| p.to_vec()),
                cas: Some(cas),
                overflow: true,
            })),
        }
    }

    /// Creates an empty slot under the table's lock, so that it never overwrites a slot
    /// another writer created (and filled) in the meantime.
    fn create(&self, store: &dyn Store, slot_key: &str, now_ns: u64) -> Result<(), TableError> {
        let lock_key = self.lock_key();
        for _ in 0..MAX_RETRIES {
            let Some((held_until, cas)) = store.get(&lock_key) else {
                // The table was not prepared: make the lock now.
                self.prepare(store);
                continue;
            };
            let held_until = crate::gcra::decode(Some(&held_until)).unwrap_or(0);
            if held_until > now_ns {
                continue;
            }
            let lease = now_ns.saturating_add(LOCK_LEASE_NS).to_le_bytes();
            match store.set(&lock_key, &lease, Some(cas)) {
                Ok(()) => {
                    let created = match store.get(slot_key) {
                        Some(_) => Ok(()),
                        None => store
                            .set(slot_key, &[], None)
                            .map_err(|_| TableError::Refused),
                    };
                    // Released without CAS: only the holder writes a lease of its own.
                    let _ = store.set(&lock_key, &0u64.to_le_bytes(), None);
                    return created;
                }
                Err(WriteError::CasMismatch) => {}
                Err(WriteError::Refused) => return Err(TableError::Refused),
            }
        }
        Err(TableError::Contended)
    }
}

/// `[owner length: u16 LE][owner][payload]`.
fn encode(owner: &str, payload: &[u8]) -> Vec<u8> {
    let owner = owner.as_bytes();
    let len = owner.len().min(usize::from(u16::MAX));
    let mut out = Vec::with_capacity(2 + len + payload.len());
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&owner[..len]);
    out.extend_from_slice(payload);
    out
}

/// The owner and payload of an entry; `None` for an empty (free) slot or garbage.
fn decode(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let len = usize::from(u16::from_le_bytes(bytes.get(..2)?.try_into().ok()?));
    let owner = std::str::from_utf8(bytes.get(2..2 + len)?).ok()?;
    Some((owner, &bytes[2 + len..]))
}

/// FNV-1a, 64 bits: spreads keys over slots and hides tokens in keys.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn count(store: &MemoryStore, table: &Table, key: &str) -> u32 {
        table
            .update(
                store,
                key,
                0,
                |p| p == [0],
                |payload| {
                    let n = payload.and_then(|p| p.first().copied()).unwrap_or(0) + 1;
                    Decision::Write(vec![n], u32::from(n))
                },
            )
            .unwrap()
            .value
    }

    #[test]
    fn each_key_keeps_its_own_state() {
        let store = MemoryStore::default();
        let table = Table::new("t", 64);
        table.prepare(&store);
        assert_eq!(count(&store, &table, "a"), 1);
        assert_eq!(count(&store, &table, "a"), 2);
        assert_eq!(count(&store, &table, "b"), 1);
        assert_eq!(count(&store, &table, "a"), 3);
    }

    #[test]
    fn live_keys_beyond_the_slots_share_the_overflow_slot() {
        let store = MemoryStore::default();
        let table = Table::new("t", 2);
        let ones: Vec<u32> = ["a", "b"]
            .iter()
            .map(|k| count(&store, &table, k))
            .collect();
        assert_eq!(ones, vec![1, 1]);
        let overflowed = table
            .update(&store, "c", 0, |_| false, |_| Decision::Write(vec![9], ()))
            .unwrap();
        assert!(overflowed.overflow);
        let again = table
            .update(
                &store,
                "d",
                0,
                |_| false,
                |p| Decision::Keep(p.map(<[u8]>::to_vec)),
            )
            .unwrap();
        assert_eq!(again.value, Some(vec![9]));
    }

    #[test]
    fn expired_slots_are_reused() {
        let store = MemoryStore::default();
        let table = Table::new("t", 1);
        table
            .update(&store, "a", 0, |_| true, |_| Decision::Write(vec![0], ()))
            .unwrap();
        let b = table
            .update(
                &store,
                "b",
                0,
                |p| p == [0],
                |p| Decision::Keep(p.is_none()),
            )
            .unwrap();
        assert!(b.value && !b.overflow, "b starts fresh in a's expired slot");
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let store = std::sync::Arc::new(MemoryStore::default());
        let table = Table::new("t", 8);
        table.prepare(store.as_ref());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (store, table) = (store.clone(), table.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        table
                            .update(
                                store.as_ref(),
                                "k",
                                0,
                                |_| false,
                                |p| {
                                    let n = p.map_or(0, |p| {
                                        u32::from_le_bytes(p.try_into().unwrap_or([0; 4]))
                                    });
                                    Decision::Write((n + 1).to_le_bytes().to_vec(), ())
                                },
                            )
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let total = table
            .update(
                store.as_ref(),
                "k",
                0,
                |_| false,
                |p| {
                    Decision::Keep(
                        p.map_or(0, |p| u32::from_le_bytes(p.try_into().unwrap_or([0; 4]))),
                    )
                },
            )
            .unwrap()
            .value;
        assert_eq!(total, 1600);
    }
}
