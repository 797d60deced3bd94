//! The signature algorithms Paved accepts, and nothing else.
//!
//! The list is closed on purpose: `none` would accept unsigned tokens, and HMAC (`HS*`) would
//! let an attacker sign with the issuer's *public* key used as a shared secret (the RS/HS key
//! confusion). Neither has a variant here, so no code path can ever select them.

use std::fmt;

/// A JWS algorithm Paved verifies (and, for ES256 and EdDSA, signs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of at least 2048 bits.
    Rs256,
    /// ECDSA on P-256 with SHA-256, signatures as 64 raw bytes (`r || s`).
    Es256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

/// Why a header's `alg` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmError {
    /// `none`: an unsigned token.
    #[error("unsigned tokens (alg none) are refused")]
    Unsigned,
    /// `HS256` and friends: symmetric keys are never accepted.
    #[error("symmetric algorithm {0} is refused")]
    Symmetric(String),
    /// Anything else (`PS256`, `ES384`, unknown names).
    #[error("algorithm {0} is not supported")]
    Unsupported(String),
}

impl Algorithm {
    /// Parses a JOSE `alg` value, case-sensitively as RFC 7515 requires.
    pub fn parse(name: &str) -> Result<Algorithm, AlgorithmError> {
        match name {
            "RS256" => Ok(Algorithm::Rs256),
            "ES256" => Ok(Algorithm::Es256),
            "EdDSA" => Ok(Algorithm::EdDsa),
            _ if name.eq_ignore_ascii_case("none") => Err(AlgorithmError::Unsigned),
            _ if name.len() >= 2 && name[..2].eq_ignore_ascii_case("HS") => {
                Err(AlgorithmError::Symmetric(truncate(name)))
            }
            _ => Err(AlgorithmError::Unsupported(truncate(name))),
        }
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Attacker-chosen names end up in errors and logs: keep them short.
fn truncate(name: &str) -> String {
    name.chars().take(16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_algorithms_parse() {
        assert_eq!(Algorithm::parse("RS256"), Ok(Algorithm::Rs256));
        assert_eq!(Algorithm::parse("ES256"), Ok(Algorithm::Es256));
        assert_eq!(Algorithm::parse("EdDSA"), Ok(Algorithm::EdDsa));
        for name in ["rs256", "PS256", "ES384", "RS512", "", "EDDSA"] {
            assert!(Algorithm::parse(name).is_err(), "{name}");
        }
    }

    #[test]
    fn none_in_any_case_is_refused_as_unsigned() {
        for name in ["none", "None", "NONE", "nOnE"] {
            assert_eq!(Algorithm::parse(name), Err(AlgorithmError::Unsigned));
        }
    }

    #[test]
    fn hmac_algorithms_are_refused_as_symmetric() {
        for name in ["HS256", "HS384", "HS512", "hs256"] {
            assert!(matches!(
                Algorithm::parse(name),
                Err(AlgorithmError::Symmetric(_))
            ));
        }
    }
}
