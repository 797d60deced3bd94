//! Sealed values: encrypted and authenticated with XChaCha20-Poly1305, for cookies.
//!
//! Format: `v1.` followed by base64url of `nonce (24 bytes) || ciphertext || tag (16 bytes)`.
//! XChaCha20-Poly1305 is ChaCha20-Poly1305 with a 192-bit nonce: nonces are drawn at random
//! for every value, and at that size they never collide in practice (with AES-GCM's 96-bit
//! nonces, random nonces wear a key out after about 2^32 cookies). It is also fast without
//! AES hardware, which a wasm plugin does not get.
//!
//! The associated data binds each value to its [`Purpose`], so a login cookie can never be
//! replayed as a session cookie or the other way round. Several keys can open (the current
//! one first, then previous ones during a rotation); only the current one seals.

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::b64;
use crate::random::{self, SecureRng};

/// The format version this code writes and reads.
pub const VERSION: &str = "v1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Largest sealed text [`Sealer::open`] looks at: browsers keep at most about 4 KB a cookie.
pub const MAX_SEALED_BYTES: usize = 8 * 1024;

/// What a sealed value is for; part of the authenticated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The session cookie.
    Session,
    /// The short-lived cookie that carries `state`, `nonce` and the PKCE verifier.
    Login,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Purpose::Session => b"paved/session/v1",
            Purpose::Login => b"paved/login/v1",
        }
    }
}

/// A 256-bit key, wiped from memory when dropped.
#[derive(Clone)]
pub struct SealKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

/// Why a configured key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Not base64.
    #[error("the key is not base64")]
    NotBase64,
    /// Not 32 bytes once decoded.
    #[error("the key must be 32 bytes, found {0}")]
    WrongLength(usize),
}

impl SealKey {
    /// A key from 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> SealKey {
        SealKey(Zeroizing::new(bytes))
    }

    /// A key from base64 (either alphabet, padded or not) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<SealKey, KeyFormatError> {
        let bytes = Zeroizing::new(b64::decode_lenient(text).ok_or(KeyFormatError::NotBase64)?);
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyFormatError::WrongLength(bytes.len()))?;
        Ok(SealKey::from_bytes(arr))
    }

    /// A fresh random key.
    pub fn generate(rng: &mut dyn SecureRng) -> SealKey {
        SealKey::from_bytes(random::bytes::<32>(rng))
    }

    /// The key as base64url (to share a generated key between plugin instances).
    pub fn to_base64(&self) -> String {
        b64::encode(self.0.as_slice())
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not `vN.<base64url>`, or too short to hold a nonce and a tag, or too long.
    #[error("malformed sealed value")]
    Malformed,
    /// A version this code does not read.
    #[error("unknown sealed value version")]
    UnknownVersion,
    /// No key opens it: tampered, forged, sealed for another purpose, or with a retired key.
    #[error("sealed value does not authenticate")]
    Tampered,
}

/// Seals with the current key, opens with the current or a previous one.
#[derive(Clone)]
pub struct Sealer {
    ciphers: Vec<XChaCha20Poly1305>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({} keys)", self.ciphers.len())
    }
}

impl Sealer {
    /// A sealer with `current` and the `previous` keys still accepted when opening.
    pub fn new(current: &SealKey, previous: &[SealKey]) -> Sealer {
        let ciphers = std::iter::once(current)
            .chain(previous)
            .map(|k| XChaCha20Poly1305::new(k.0.as_slice().into()))
            .collect();
        Sealer { ciphers }
    }

    /// Seals `plaintext` for `purpose`.
    pub fn seal(&self, rng: &mut dyn SecureRng, purpose: Purpose, plaintext: &[u8]) -> String {
        let nonce = random::bytes::<NONCE_LEN>(rng);
        let payload = Payload {
            msg: plaintext,
            aad: purpose.aad(),
        };
        // Encryption only fails for plaintexts over 256 GiB.
        let sealed = self.ciphers[0]
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        format!("{VERSION}.{}", b64::encode(bytes))
    }

    /// Opens a value sealed for `purpose`.
    pub fn open(&self, purpose: Purpose, text: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if text.len() > MAX_SEALED_BYTES {
            return Err(SealError::Malformed);
        }
        let (version, body) = text.split_once('.').ok_or(SealError::Malformed)?;
        if version != VERSION {
            return Err(SealError::UnknownVersion);
        }
        let bytes = b64::decode(body).ok_or(SealError::Malformed)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        for cipher in &self.ciphers {
            let payload = Payload {
                msg: sealed,
                aad: purpose.aad(),
            };
            if let Ok(plain) = cipher.decrypt(XNonce::from_slice(nonce), payload) {
                return Ok(Zeroizing::new(plain));
            }
        }
        Err(SealError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRng;

    fn sealer() -> (SealKey, Sealer) {
        let key = SealKey::generate(&mut OsRng);
        let sealer = Sealer::new(&key, &[]);
        (key, sealer)
    }

    #[test]
    fn sealed_values_open_with_the_same_key_and_purpose() {
        let (_, s) = sealer();
        let text = s.seal(&mut OsRng, Purpose::Session, b"hello");
        assert!(text.starts_with("v1."));
        assert_eq!(
            s.open(Purpose::Session, &text).map(|p| p.to_vec()),
            Ok(b"hello".to_vec())
        );
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let (_, s) = sealer();
        assert_ne!(
            s.seal(&mut OsRng, Purpose::Session, b"same"),
            s.seal(&mut OsRng, Purpose::Session, b"same")
        );
    }

    #[test]
    fn a_tampered_value_does_not_open() {
        let (_, s) = sealer();
        let text = s.seal(&mut OsRng, Purpose::Session, b"{\"sub\":\"alice\"}");
        let mut bytes = b64::decode(&text[3..]).expect("b64");
        for i in [0, 30, bytes.len() - 1] {
            bytes[i] ^= 1;
            let tampered = format!("v1.{}", b64::encode(&bytes));
            assert_eq!(
                s.open(Purpose::Session, &tampered).err(),
                Some(SealError::Tampered)
            );
            bytes[i] ^= 1;
        }
    }

    #[test]
    fn a_login_cookie_is_not_a_session_cookie() {
        let (_, s) = sealer();
        let text = s.seal(&mut OsRng, Purpose::Login, b"x");
        assert_eq!(
            s.open(Purpose::Session, &text).err(),
            Some(SealError::Tampered)
        );
    }

    #[test]
    fn another_key_does_not_open_but_a_previous_key_still_does() {
        let (old_key, old) = sealer();
        let text = old.seal(&mut OsRng, Purpose::Session, b"x");
        let new_key = SealKey::generate(&mut OsRng);
        assert_eq!(
            Sealer::new(&new_key, &[])
                .open(Purpose::Session, &text)
                .err(),
            Some(SealError::Tampered)
        );
        let rotated = Sealer::new(&new_key, &[old_key]);
        assert!(rotated.open(Purpose::Session, &text).is_ok());
    }

    #[test]
    fn malformed_and_unknown_versions_are_refused() {
        let (_, s) = sealer();
        assert_eq!(
            s.open(Purpose::Session, "garbage").err(),
            Some(SealError::Malformed)
        );
        assert_eq!(
            s.open(Purpose::Session, "v1.AAAA").err(),
            Some(SealError::Malformed)
        );
        assert_eq!(
            s.open(Purpose::Session, "v2.AAAA").err(),
            Some(SealError::UnknownVersion)
        );
        let long = format!("v1.{}", "A".repeat(MAX_SEALED_BYTES));
        assert_eq!(
            s.open(Purpose::Session, &long).err(),
            Some(SealError::Malformed)
        );
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(SealKey::from_base64(&b64::encode_standard([1u8; 32])).is_ok());
        assert_eq!(
            SealKey::from_base64(&b64::encode([1u8; 16])).err(),
            Some(KeyFormatError::WrongLength(16))
        );
        assert_eq!(
            SealKey::from_base64("not base64!").err(),
            Some(KeyFormatError::NotBase64)
        );
    }
}
