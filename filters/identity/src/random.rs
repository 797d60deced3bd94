//! Unguessable values: `state`, `nonce`, PKCE verifiers, token ids.
//!
//! Everything random takes the generator as an argument, so tests can be deterministic and
//! plugins pass [`OsRng`] (WASI `random_get` on wasm32-wasip1).

pub use rand_core::OsRng;
use rand_core::{CryptoRng, RngCore};

/// A cryptographically secure generator.
pub trait SecureRng: RngCore + CryptoRng {}
impl<T: RngCore + CryptoRng> SecureRng for T {}

/// `bytes` random bytes as unpadded base64url (32 bytes: 43 characters, 256 bits).
pub fn token(rng: &mut dyn SecureRng, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    crate::b64::encode(buf)
}

/// A fixed-size random array.
pub fn bytes<const N: usize>(rng: &mut dyn SecureRng) -> [u8; N] {
    let mut buf = [0u8; N];
    rng.fill_bytes(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = token(&mut OsRng, 32);
        let b = token(&mut OsRng, 32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}
