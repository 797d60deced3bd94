//! PKCE (RFC 7636) with the S256 method only: `plain` would send the verifier itself through
//! the browser, which is what PKCE exists to avoid.

use sha2::{Digest as _, Sha256};

use crate::random::{self, SecureRng};

/// A code verifier: 32 random bytes as base64url, 43 characters (the RFC's minimum length,
/// with 256 bits of entropy).
pub fn new_verifier(rng: &mut dyn SecureRng) -> String {
    random::token(rng, 32)
}

/// The S256 challenge of a verifier: `BASE64URL(SHA256(verifier))`.
pub fn challenge(verifier: &str) -> String {
    crate::b64::encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` is well-formed: 43 to 128 unreserved characters (RFC 7636 §4.1).
pub fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            challenge(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_well_formed_and_fresh() {
        let a = new_verifier(&mut random::OsRng);
        assert!(valid_verifier(&a));
        assert_ne!(a, new_verifier(&mut random::OsRng));
        assert!(!valid_verifier("short"));
        assert!(!valid_verifier(&"a b".repeat(20)));
    }
}
