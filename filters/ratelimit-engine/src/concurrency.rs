//! The flood guard: how many requests of one client are in flight, capped.
//!
//! A counter per client IP in a [`Table`]: incremented when a request's headers arrive (or
//! refused at the cap), decremented when it is logged. A count whose last change is older
//! than [`STALE_NS`] is treated as zero, so counts leaked by a crashed plugin instance heal.

use crate::store::Store;
use crate::table::{Decision, Table, TableError, Updated};

/// Counts untouched for this long are considered leaked (10 minutes).
pub const STALE_NS: u64 = 600 * 1_000_000_000;

/// `[count: u32 LE][last change: u64 LE]`.
fn decode(payload: Option<&[u8]>, now_ns: u64) -> u32 {
    let Some(p) = payload else { return 0 };
    let count = p
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes);
    let touched = p
        .get(4..12)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    if now_ns.saturating_sub(touched) > STALE_NS {
        0
    } else {
        count
    }
}

fn encode(count: u32, now_ns: u64) -> Vec<u8> {
    let mut out = count.to_le_bytes().to_vec();
    out.extend_from_slice(&now_ns.to_le_bytes());
    out
}

/// Takes one of `max` places for `key`; `value` is false (and nothing changes) when all are
/// taken.
pub fn acquire(
    store: &dyn Store,
    table: &Table,
    key: &str,
    max: u32,
    now_ns: u64,
) -> Result<Updated<bool>, TableError> {
    table.update(
        store,
        key,
        now_ns,
        |p| decode(Some(p), now_ns) == 0,
        |payload| {
            let count = decode(payload, now_ns);
            if count >= max {
                Decision::Keep(false)
            } else {
                Decision::Write(encode(count + 1, now_ns), true)
            }
        },
    )
}

/// Gives back the place taken by [`acquire`].
pub fn release(
    store: &dyn Store,
    table: &Table,
    key: &str,
    now_ns: u64,
) -> Result<Updated<()>, TableError> {
    table.update(
        store,
        key,
        now_ns,
        |p| decode(Some(p), now_ns) == 0,
        |payload| match payload {
            None => Decision::Keep(()),
            Some(_) => Decision::Write(
                encode(decode(payload, now_ns).saturating_sub(1), now_ns),
                (),
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn the_cap_holds_and_released_places_come_back() {
        let store = MemoryStore::default();
        let table = Table::new("c", 16);
        let took: Vec<bool> = (0..4)
            .map(|_| acquire(&store, &table, "10.0.0.1", 3, 0).unwrap().value)
            .collect();
        assert_eq!(took, vec![true, true, true, false]);
        assert!(
            acquire(&store, &table, "10.0.0.2", 3, 0).unwrap().value,
            "other clients are not affected"
        );
        release(&store, &table, "10.0.0.1", 0).unwrap();
        assert!(acquire(&store, &table, "10.0.0.1", 3, 0).unwrap().value);
    }

    #[test]
    fn leaked_counts_heal_after_the_stale_time() {
        let store = MemoryStore::default();
        let table = Table::new("c", 16);
        assert!(acquire(&store, &table, "k", 1, 0).unwrap().value);
        assert!(!acquire(&store, &table, "k", 1, 1).unwrap().value);
        assert!(acquire(&store, &table, "k", 1, STALE_NS + 1).unwrap().value);
    }

    #[test]
    fn releasing_an_unknown_key_changes_nothing() {
        let store = MemoryStore::default();
        let table = Table::new("c", 16);
        release(&store, &table, "never-seen", 0).unwrap();
        assert!(acquire(&store, &table, "never-seen", 1, 0).unwrap().value);
    }
}
