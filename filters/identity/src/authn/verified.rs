//! Bearer tokens already verified, by digest: clients send the same token on many requests,
//! and verifying an RS256 signature in wasm costs milliseconds. An entry lives until the
//! token expires or five minutes pass, and only while the provider's keys are the ones it was
//! verified with (a key the provider withdrew stops being trusted at the next JWKS fetch).

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};

use crate::identity::Identity;

/// Most tokens remembered by one plugin instance.
pub const CAPACITY: usize = 4096;
/// Longest a verification is reused, in seconds.
pub const MAX_AGE_SECS: u64 = 300;

#[derive(Debug, Default)]
pub(super) struct Verified {
    entries: HashMap<[u8; 32], Entry>,
}

#[derive(Debug)]
struct Entry {
    identity: Identity,
    until: u64,
    generation: u64,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Verified {
    /// The identity of a token verified earlier, still valid at `now` under `generation`.
    pub(super) fn get(&self, token: &str, now: u64, generation: u64) -> Option<Identity> {
        let e = self.entries.get(&digest(token))?;
        (now < e.until && e.generation == generation).then(|| e.identity.clone())
    }

    /// Remembers a verified token until `exp` (with skew) or [`MAX_AGE_SECS`].
    pub(super) fn put(
        &mut self,
        token: &str,
        identity: Identity,
        expires: u64,
        now: u64,
        generation: u64,
    ) {
        if self.entries.len() >= CAPACITY {
            self.entries
                .retain(|_, e| now < e.until && e.generation == generation);
            if self.entries.len() >= CAPACITY {
                self.entries.clear();
            }
        }
        let until = expires.min(now + MAX_AGE_SECS);
        self.entries.insert(
            digest(token),
            Entry {
                identity,
                until,
                generation,
            },
        );
    }
}
