//! Single use of login `state`s: a bounded set of the ones already redeemed, until they
//! expire. Plugins keep it in process-wide shared data so every instance sees every use; only
//! a hash of each `state` is stored.

use sha2::{Digest as _, Sha256};

/// Most entries kept; when full, the ones closest to expiry go first.
pub const MAX_ENTRIES: usize = 4096;

/// Records first uses.
pub trait ReplayGuard {
    /// Records `id` as used until `expires`; `false` if it was already used (a replay).
    fn first_use(&mut self, id: &str, expires: u64, now: u64) -> bool;
}

/// A set of used ids with their expiry, encodable for shared data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsedSet {
    entries: Vec<([u8; 16], u64)>,
}

impl UsedSet {
    /// Decodes the shared-data form (24 bytes an entry: hash, then expiry little-endian);
    /// anything undecodable starts a fresh set.
    pub fn decode(bytes: &[u8]) -> UsedSet {
        let entries = bytes
            .chunks_exact(24)
            .filter_map(|c| {
                let hash: [u8; 16] = c[..16].try_into().ok()?;
                let exp = u64::from_le_bytes(c[16..].try_into().ok()?);
                Some((hash, exp))
            })
            .collect();
        UsedSet { entries }
    }

    /// The shared-data form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 24);
        for (hash, exp) in &self.entries {
            out.extend_from_slice(hash);
            out.extend_from_slice(&exp.to_le_bytes());
        }
        out
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn hash(id: &str) -> [u8; 16] {
    let digest = Sha256::digest(id.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

impl ReplayGuard for UsedSet {
    fn first_use(&mut self, id: &str, expires: u64, now: u64) -> bool {
        self.entries.retain(|(_, exp)| *exp > now);
        let h = hash(id);
        if self.entries.iter().any(|(e, _)| *e == h) {
            return false;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.sort_by_key(|(_, exp)| std::cmp::Reverse(*exp));
            self.entries.truncate(MAX_ENTRIES - 1);
        }
        self.entries.push((h, expires));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_accepted_once() {
        let mut set = UsedSet::default();
        assert!(set.first_use("s1", 100, 0));
        assert!(!set.first_use("s1", 100, 50));
        assert!(set.first_use("s2", 100, 50));
    }

    #[test]
    fn expired_entries_are_forgotten() {
        let mut set = UsedSet::default();
        assert!(set.first_use("s1", 100, 0));
        assert!(set.first_use("s2", 300, 150));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn the_set_round_trips_and_stays_bounded() {
        let mut set = UsedSet::default();
        for i in 0..(MAX_ENTRIES + 10) {
            assert!(set.first_use(&format!("s{i}"), 1000 + i as u64, 0));
        }
        assert_eq!(set.len(), MAX_ENTRIES);
        let back = UsedSet::decode(&set.encode());
        assert_eq!(back, set);
        assert!(UsedSet::decode(b"garbage").is_empty());
    }
}
