//! Compact JWS tokens (RFC 7515/7519): parsing, signature verification against a
//! [`KeySet`], and signing with the gateway's own key.
//!
//! The order matters: the header is parsed and its `alg` checked against the closed list of
//! [`Algorithm`]s, the key is chosen by `kid` and must be of the type `alg` names, the
//! signature is verified, and only then is the payload read. Header members that would let a
//! token bring its own key (`jwk`, `jku`, `x5u`, `x5c`) are ignored: keys come from the
//! issuer's JWKS only.

use serde::Deserialize;
use signature::Verifier as _;

use crate::alg::{Algorithm, AlgorithmError};
use crate::b64;
use crate::claims::{Claims, ClaimsError};
use crate::jwk::{KeyError, KeySet, PublicKey};

/// Largest token accepted, in bytes (headers are bounded anyway; this bounds the work).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, or a part is not the JSON it should be.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("token too large")]
    TooLarge,
    /// `alg` is refused (`none`, `HS*`, anything not RS256/ES256/EdDSA).
    #[error(transparent)]
    Algorithm(#[from] AlgorithmError),
    /// The header has `crit` extensions Paved does not understand, or an unexpected `typ`.
    #[error("unsupported header: {0}")]
    UnsupportedHeader(&'static str),
    /// No key for it (unknown `kid`: refresh the JWKS), or a key of another type.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The claims are refused.
    #[error(transparent)]
    Claims(#[from] ClaimsError),
}

impl TokenError {
    /// A short, stable reason code for decisions and `WWW-Authenticate` descriptions. It never
    /// includes token contents.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) | TokenError::TooLarge => "malformed_token",
            TokenError::Algorithm(_) => "algorithm_refused",
            TokenError::UnsupportedHeader(_) => "unsupported_header",
            TokenError::Key(KeyError::AlgorithmMismatch { .. }) => "key_algorithm_mismatch",
            TokenError::Key(_) => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::Claims(c) => match c {
                ClaimsError::Malformed(_) => "malformed_claims",
                ClaimsError::Missing(_) => "missing_claim",
                ClaimsError::WrongIssuer => "wrong_issuer",
                ClaimsError::WrongAudience => "wrong_audience",
                ClaimsError::WrongAuthorizedParty => "wrong_authorized_party",
                ClaimsError::Expired => "expired",
                ClaimsError::NotYetValid => "not_yet_valid",
                ClaimsError::IssuedInFuture => "issued_in_future",
                ClaimsError::WrongNonce => "wrong_nonce",
                ClaimsError::WrongSubject => "wrong_subject",
            },
        }
    }

    /// Whether fetching the issuer's JWKS again could make the token verify.
    pub fn refresh_may_help(&self) -> bool {
        matches!(self, TokenError::Key(k) if k.refresh_may_help())
    }
}

/// The protected header members Paved reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The algorithm.
    pub alg: Algorithm,
    /// The key id.
    pub kid: Option<String>,
}

/// A token split and its header checked, signature not yet verified.
#[derive(Debug, Clone)]
pub struct Unverified<'a> {
    /// The header.
    pub header: Header,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Splits a compact token and checks its header.
pub fn decode(token: &str) -> Result<Unverified<'_>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three parts"));
    };
    let header_bytes = b64::decode(h).ok_or(TokenError::Malformed("header encoding"))?;
    let raw: RawHeader =
        serde_json::from_slice(&header_bytes).map_err(|_| TokenError::Malformed("header"))?;
    let alg = Algorithm::parse(&raw.alg)?;
    if raw.crit.is_some() {
        return Err(TokenError::UnsupportedHeader("crit"));
    }
    if let Some(typ) = &raw.typ
        && !acceptable_typ(typ)
    {
        return Err(TokenError::UnsupportedHeader("typ"));
    }
    let payload = b64::decode(p).ok_or(TokenError::Malformed("payload encoding"))?;
    let signature = b64::decode(s).ok_or(TokenError::Malformed("signature encoding"))?;
    Ok(Unverified {
        header: Header { alg, kid: raw.kid },
        signing_input: &token[..h.len() + 1 + p.len()],
        payload,
        signature,
    })
}

/// Plain JWTs and OAuth access tokens (RFC 9068); explicit other types (logout tokens,
/// `secevent+jwt`, ...) are tokens for another purpose and must not pass as credentials.
fn acceptable_typ(typ: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    let typ = typ.strip_prefix("application/").unwrap_or(&typ);
    matches!(typ, "jwt" | "at+jwt")
}

impl Unverified<'_> {
    /// Verifies the signature with a key of `keys` and returns the claims (not yet
    /// validated: see [`Claims::validate`]).
    pub fn verify(&self, keys: &KeySet) -> Result<Claims, TokenError> {
        let candidates = keys.candidates(self.header.kid.as_deref(), self.header.alg)?;
        let verified = candidates.iter().any(|jwk| {
            verify_signature(
                &jwk.key,
                self.header.alg,
                self.signing_input.as_bytes(),
                &self.signature,
            )
        });
        if !verified {
            return Err(TokenError::BadSignature);
        }
        Ok(Claims::from_json(&self.payload)?)
    }
}

/// Verifies a signature; `alg` must be the key's own algorithm (checked again here, so no
/// caller can pair a key with another algorithm).
pub fn verify_signature(key: &PublicKey, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
    if key.algorithm() != alg {
        return false;
    }
    match key {
        PublicKey::Rsa(k) => {
            let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.clone());
            rsa::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|sig| verifier.verify(message, &sig).is_ok())
        }
        PublicKey::P256(k) => p256::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|sig| k.verify(message, &sig).is_ok()),
        PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature)
            .is_ok_and(|sig| k.verify_strict(message, &sig).is_ok()),
    }
}

/// A private key the gateway signs its own tokens with.
#[derive(Clone)]
pub enum SigningKey {
    /// P-256, for ES256.
    P256(p256::ecdsa::SigningKey),
    /// Ed25519, for EdDSA.
    Ed25519(ed25519_dalek::SigningKey),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SigningKey::P256(_) => "SigningKey::P256(<redacted>)",
            SigningKey::Ed25519(_) => "SigningKey::Ed25519(<redacted>)",
        })
    }
}

impl SigningKey {
    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            SigningKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            SigningKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
        }
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.public_key().algorithm()
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        use signature::Signer as _;
        match self {
            // RFC 6979 deterministic nonces: no randomness needed, none can leak the key.
            SigningKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_bytes().to_vec()
            }
            SigningKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
        }
    }
}

/// Signs `claims` (a JSON object) as a compact JWS with `typ: JWT` and this `kid`.
pub fn sign(key: &SigningKey, kid: &str, claims: &serde_json::Value) -> String {
    let header = serde_json::json!({"alg": key.algorithm().name(), "typ": "JWT", "kid": kid});
    let mut token = b64::encode(header.to_string());
    token.push('.');
    token.push_str(&b64::encode(claims.to_string()));
    let signature = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&b64::encode(signature));
    token
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwk::public_jwk_json;
    use crate::testkeys::{self, forge};
    use serde_json::json;

    fn set_of(jwks: Vec<serde_json::Value>) -> KeySet {
        KeySet::parse(json!({ "keys": jwks }).to_string().as_bytes())
            .expect("jwks")
            .keys
    }

    fn claims() -> serde_json::Value {
        json!({"iss": "https://idp.example", "sub": "alice", "aud": "app", "exp": 2_000_000_000u64})
    }

    #[test]
    fn rs256_es256_and_eddsa_tokens_verify() {
        let ec = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let ed = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let keys = set_of(vec![
            testkeys::rsa_a_public_jwk("r"),
            public_jwk_json(&PublicKey::P256(*ec.verifying_key()), "e"),
            public_jwk_json(&PublicKey::Ed25519(ed.verifying_key()), "d"),
        ]);
        let tokens = [
            testkeys::sign_rs256(testkeys::rsa_a(), Some("r"), &claims()),
            sign(&SigningKey::P256(ec), "e", &claims()),
            sign(&SigningKey::Ed25519(ed), "d", &claims()),
        ];
        for token in tokens {
            let c = decode(&token)
                .and_then(|t| t.verify(&keys))
                .expect("verifies");
            assert_eq!(c.sub.as_deref(), Some("alice"));
        }
    }

    #[test]
    fn alg_none_is_refused_even_without_signature() {
        let keys = set_of(vec![testkeys::rsa_a_public_jwk("r")]);
        for alg in ["none", "None", "NONE"] {
            let token = forge(&json!({"alg": alg, "kid": "r"}), &claims(), b"");
            assert_eq!(
                decode(&token).and_then(|t| t.verify(&keys)).err(),
                Some(TokenError::Algorithm(AlgorithmError::Unsigned)),
                "{alg}"
            );
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        // The classic RS/HS confusion: HMAC keyed with the issuer's public key bytes.
        let keys = set_of(vec![testkeys::rsa_a_public_jwk("r")]);
        let header = json!({"alg": "HS256", "kid": "r"});
        let public_pem = testkeys::rsa_a_public_pem();
        let token = testkeys::sign_hs256(&header, &claims(), public_pem.as_bytes());
        let err = decode(&token).and_then(|t| t.verify(&keys)).err();
        assert!(matches!(
            err,
            Some(TokenError::Algorithm(AlgorithmError::Symmetric(_)))
        ));
        assert_eq!(err.map(|e| e.reason()), Some("algorithm_refused"));
    }

    #[test]
    fn an_rsa_kid_with_alg_es256_is_refused() {
        let keys = set_of(vec![testkeys::rsa_a_public_jwk("r")]);
        let ec = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let token = sign(&SigningKey::P256(ec), "r", &claims());
        let err = decode(&token).and_then(|t| t.verify(&keys)).err();
        assert!(matches!(
            err,
            Some(TokenError::Key(KeyError::AlgorithmMismatch { .. }))
        ));
        assert!(!err.is_some_and(|e| e.refresh_may_help()));
    }

    #[test]
    fn an_unknown_kid_asks_for_a_refresh() {
        let keys = set_of(vec![testkeys::rsa_a_public_jwk("r")]);
        let token = testkeys::sign_rs256(testkeys::rsa_a(), Some("new"), &claims());
        let err = decode(&token).and_then(|t| t.verify(&keys)).err();
        assert_eq!(err, Some(TokenError::Key(KeyError::UnknownKid)));
        assert!(err.is_some_and(|e| e.refresh_may_help()));
    }

    #[test]
    fn a_token_signed_by_another_key_with_a_known_kid_is_refused() {
        let keys = set_of(vec![testkeys::rsa_a_public_jwk("r")]);
        let token = testkeys::sign_rs256(testkeys::rsa_b(), Some("r"), &claims());
        assert_eq!(
            decode(&token).and_then(|t| t.verify(&keys)).err(),
            Some(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let keys = set_of(vec![testkeys::rsa_a_public_jwk("r")]);
        let token = testkeys::sign_rs256(testkeys::rsa_a(), Some("r"), &claims());
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut evil = claims();
        evil["sub"] = json!("admin");
        parts[1] = b64::encode(evil.to_string());
        let tampered = parts.join(".");
        assert_eq!(
            decode(&tampered).and_then(|t| t.verify(&keys)).err(),
            Some(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_cannot_bring_its_own_key() {
        // `jwk` in the header names the attacker's key; it must be ignored.
        let keys = set_of(vec![testkeys::rsa_a_public_jwk("r")]);
        let ec = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let own = public_jwk_json(&PublicKey::P256(*ec.verifying_key()), "mine");
        let header = json!({"alg": "ES256", "jwk": own});
        let token = testkeys::sign_with_header(&SigningKey::P256(ec), &header, &claims());
        let err = decode(&token).and_then(|t| t.verify(&keys)).err();
        assert_eq!(
            err,
            Some(TokenError::Key(KeyError::NoKeyForAlgorithm(
                Algorithm::Es256
            )))
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let keys = set_of(vec![testkeys::rsa_a_public_jwk("r")]);
        for token in ["", "a.b", "a.b.c.d", "!!.e30.", "e30.e30.e30"] {
            assert!(
                matches!(
                    decode(token).and_then(|t| t.verify(&keys)),
                    Err(TokenError::Malformed(_) | TokenError::Algorithm(_))
                ),
                "{token}"
            );
        }
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(decode(&huge).err(), Some(TokenError::TooLarge));
    }

    #[test]
    fn crit_headers_and_foreign_types_are_refused() {
        let ec = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let key = SigningKey::P256(ec);
        let crit = testkeys::sign_with_header(
            &key,
            &json!({"alg": "ES256", "crit": ["exp"], "exp": 1}),
            &claims(),
        );
        assert_eq!(
            decode(&crit).err(),
            Some(TokenError::UnsupportedHeader("crit"))
        );
        let logout = testkeys::sign_with_header(
            &key,
            &json!({"alg": "ES256", "typ": "logout+jwt"}),
            &claims(),
        );
        assert_eq!(
            decode(&logout).err(),
            Some(TokenError::UnsupportedHeader("typ"))
        );
        let at = testkeys::sign_with_header(
            &key,
            &json!({"alg": "ES256", "typ": "application/at+jwt"}),
            &claims(),
        );
        assert!(decode(&at).is_ok());
    }

    #[test]
    fn es256_signatures_in_der_form_are_refused() {
        let ec = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let keys = set_of(vec![public_jwk_json(
            &PublicKey::P256(*ec.verifying_key()),
            "e",
        )]);
        let token = sign(&SigningKey::P256(ec.clone()), "e", &claims());
        let (input, _) = token.rsplit_once('.').expect("three parts");
        use signature::Signer as _;
        let sig: p256::ecdsa::Signature = ec.sign(input.as_bytes());
        let der = format!("{input}.{}", b64::encode(sig.to_der().as_bytes()));
        assert_eq!(
            decode(&der).and_then(|t| t.verify(&keys)).err(),
            Some(TokenError::BadSignature)
        );
    }
}
