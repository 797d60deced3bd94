//! JSON Web Keys (RFC 7517) of an issuer: parsing a JWKS into verification keys, and picking
//! the key for a token by `kid` and algorithm.
//!
//! Only public signature keys are kept: RSA (≥ 2048 bits), EC P-256 and OKP Ed25519. Keys of
//! other types, encryption keys and malformed keys are skipped (and reported), so one odd key
//! in an issuer's set does not take the others down. A `kid` the set does not hold is
//! [`KeyError::UnknownKid`]: the caller's cue to fetch the JWKS again, once (key rotation).

use p256::elliptic_curve::sec1::EncodedPoint;
use rsa::BigUint;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;

use crate::alg::Algorithm;
use crate::b64;

/// Largest JWKS document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most keys kept from one JWKS.
pub const MAX_KEYS: usize = 64;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (bounds verification cost).
pub const MAX_RSA_BITS: usize = 8192;

/// A public key usable for signature verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA, for RS256.
    Rsa(rsa::RsaPublicKey),
    /// EC P-256, for ES256.
    P256(p256::ecdsa::VerifyingKey),
    /// Ed25519, for EdDSA.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// The one algorithm this key verifies: the key type decides, never the token.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Rsa(_) => Algorithm::Rs256,
            PublicKey::P256(_) => Algorithm::Es256,
            PublicKey::Ed25519(_) => Algorithm::EdDsa,
        }
    }
}

/// One key of a set, with the metadata that restricts its use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// Key id, if the issuer gave one.
    pub kid: Option<String>,
    /// The key.
    pub key: PublicKey,
}

impl Jwk {
    /// Parses one JWK object into a verification key.
    pub fn from_json(value: &serde_json::Value) -> Result<Jwk, JwkError> {
        let raw: RawJwk = serde_json::from_value(value.clone())
            .map_err(|e| JwkError::Malformed(e.to_string()))?;
        raw.into_jwk()
    }
}

/// Why one JWK was not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// Not a JWK object, or a member has the wrong type.
    #[error("malformed JWK: {0}")]
    Malformed(String),
    /// A key type or curve Paved does not verify with (`oct`, `P-384`, `X25519`, ...).
    #[error("unsupported key type {0}")]
    Unsupported(String),
    /// A key meant for encryption, or whose `key_ops` exclude verification.
    #[error("key is not for signature verification")]
    NotForSignatures,
    /// The key's own `alg` is one Paved refuses or one its type cannot do.
    #[error("key algorithm {0} is refused for this key type")]
    BadAlgorithm(String),
    /// Bad key material (not on the curve, wrong length, weak RSA modulus or exponent).
    #[error("invalid key material: {0}")]
    InvalidKey(&'static str),
}

/// Why a JWKS document was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Over [`MAX_JWKS_BYTES`].
    #[error("JWKS is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// Not JSON, or no `keys` array.
    #[error("malformed JWKS: {0}")]
    Malformed(String),
    /// Not one usable signature key.
    #[error("JWKS has no usable signature key")]
    NoUsableKey,
}

/// Why no key verifies a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The token names a `kid` the set does not hold: refresh the JWKS once, then retry.
    #[error("no key with this kid")]
    UnknownKid,
    /// The token has no `kid` and the set has no key for its algorithm: refresh once too.
    #[error("no key for algorithm {0}")]
    NoKeyForAlgorithm(Algorithm),
    /// The `kid` exists, but its key is of another type than the token's `alg` (an attempt to
    /// make a key verify with an algorithm it was not made for).
    #[error("key {kid} does not verify {alg}")]
    AlgorithmMismatch {
        /// The key id.
        kid: String,
        /// The token's algorithm.
        alg: Algorithm,
    },
}

impl KeyError {
    /// Whether fetching the JWKS again could help (rotation), as opposed to a forged token.
    pub fn refresh_may_help(&self) -> bool {
        matches!(self, KeyError::UnknownKid | KeyError::NoKeyForAlgorithm(_))
    }
}

/// The usable keys of one JWKS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<Jwk>,
}

/// A parsed JWKS, with the keys that were skipped and why (for the operator's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedJwks {
    /// The usable keys.
    pub keys: KeySet,
    /// Keys left out: their `kid` (if any) and the reason.
    pub skipped: Vec<(Option<String>, JwkError)>,
}

impl KeySet {
    /// A set of these keys.
    pub fn new(keys: Vec<Jwk>) -> KeySet {
        KeySet { keys }
    }

    /// Parses a JWKS document (`{"keys": [...]}`).
    pub fn parse(bytes: &[u8]) -> Result<ParsedJwks, JwksError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        #[derive(Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc =
            serde_json::from_slice(bytes).map_err(|e| JwksError::Malformed(e.to_string()))?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for value in doc.keys.iter().take(MAX_KEYS) {
            match Jwk::from_json(value) {
                Ok(jwk) => keys.push(jwk),
                Err(err) => {
                    let kid = value
                        .get("kid")
                        .and_then(|k| k.as_str())
                        .map(|k| k.chars().take(64).collect());
                    skipped.push((kid, err));
                }
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(ParsedJwks {
            keys: KeySet { keys },
            skipped,
        })
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key with this id is in the set.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys that may verify a token with this header: with a `kid`, the keys of that id
    /// whose type does `alg`; without one, every key whose type does `alg`.
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<&Jwk>, KeyError> {
        match kid {
            Some(kid) => {
                let named: Vec<&Jwk> = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .collect();
                if named.is_empty() {
                    return Err(KeyError::UnknownKid);
                }
                let usable: Vec<&Jwk> = named
                    .into_iter()
                    .filter(|k| k.key.algorithm() == alg)
                    .collect();
                if usable.is_empty() {
                    return Err(KeyError::AlgorithmMismatch {
                        kid: kid.chars().take(64).collect(),
                        alg,
                    });
                }
                Ok(usable)
            }
            None => {
                let usable: Vec<&Jwk> = self
                    .keys
                    .iter()
                    .filter(|k| k.key.algorithm() == alg)
                    .collect();
                if usable.is_empty() {
                    Err(KeyError::NoKeyForAlgorithm(alg))
                } else {
                    Ok(usable)
                }
            }
        }
    }
}

/// The members of a JWK Paved reads; everything else is ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl RawJwk {
    fn into_jwk(self) -> Result<Jwk, JwkError> {
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(JwkError::NotForSignatures);
        }
        if let Some(ops) = &self.key_ops
            && !ops.iter().any(|op| op == "verify")
        {
            return Err(JwkError::NotForSignatures);
        }
        let key = match (self.kty.as_str(), self.crv.as_deref()) {
            ("RSA", _) => PublicKey::Rsa(rsa_key(self.n.as_deref(), self.e.as_deref())?),
            ("EC", Some("P-256")) => {
                PublicKey::P256(p256_key(self.x.as_deref(), self.y.as_deref())?)
            }
            ("OKP", Some("Ed25519")) => PublicKey::Ed25519(ed25519_key(self.x.as_deref())?),
            (kty, crv) => {
                let what = match crv {
                    Some(crv) => format!("{kty}/{crv}"),
                    None => kty.to_string(),
                };
                return Err(JwkError::Unsupported(what.chars().take(32).collect()));
            }
        };
        // A key that declares its algorithm may only be used with exactly that one.
        if let Some(alg) = &self.alg {
            match Algorithm::parse(alg) {
                Ok(declared) if declared == key.algorithm() => {}
                _ => return Err(JwkError::BadAlgorithm(alg.chars().take(16).collect())),
            }
        }
        Ok(Jwk { kid: self.kid, key })
    }
}

fn member(value: Option<&str>, name: &'static str) -> Result<Vec<u8>, JwkError> {
    let text = value.ok_or(JwkError::InvalidKey(name))?;
    b64::decode(text).ok_or(JwkError::InvalidKey(name))
}

fn rsa_key(n: Option<&str>, e: Option<&str>) -> Result<rsa::RsaPublicKey, JwkError> {
    let n = BigUint::from_bytes_be(&member(n, "RSA modulus n")?);
    let e = BigUint::from_bytes_be(&member(e, "RSA exponent e")?);
    let bits = n.bits();
    if bits < MIN_RSA_BITS {
        return Err(JwkError::InvalidKey("RSA modulus under 2048 bits"));
    }
    let key = rsa::RsaPublicKey::new_with_max_size(n, e, MAX_RSA_BITS)
        .map_err(|_| JwkError::InvalidKey("RSA modulus or exponent"))?;
    debug_assert!(key.size() * 8 >= MIN_RSA_BITS);
    Ok(key)
}

fn p256_key(x: Option<&str>, y: Option<&str>) -> Result<p256::ecdsa::VerifyingKey, JwkError> {
    let x = member(x, "EC x")?;
    let y = member(y, "EC y")?;
    if x.len() != 32 || y.len() != 32 {
        return Err(JwkError::InvalidKey("P-256 coordinates must be 32 bytes"));
    }
    let point = EncodedPoint::<p256::NistP256>::from_affine_coordinates(
        p256::FieldBytes::from_slice(&x),
        p256::FieldBytes::from_slice(&y),
        false,
    );
    p256::ecdsa::VerifyingKey::from_encoded_point(&point)
        .map_err(|_| JwkError::InvalidKey("point is not on P-256"))
}

fn ed25519_key(x: Option<&str>) -> Result<ed25519_dalek::VerifyingKey, JwkError> {
    let x = member(x, "OKP x")?;
    let bytes: [u8; 32] = x
        .try_into()
        .map_err(|_| JwkError::InvalidKey("Ed25519 key must be 32 bytes"))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| JwkError::InvalidKey("Ed25519 point"))?;
    // A small-order key verifies signatures anyone can make.
    if key.is_weak() {
        return Err(JwkError::InvalidKey("weak Ed25519 key"));
    }
    Ok(key)
}

/// The public JWK of a key, as this crate publishes it (`kid` and `alg` set, `use: sig`).
pub fn public_jwk_json(key: &PublicKey, kid: &str) -> serde_json::Value {
    let mut obj = thumbprint_members(key);
    obj.insert("kid".into(), kid.into());
    obj.insert("alg".into(), key.algorithm().name().into());
    obj.insert("use".into(), "sig".into());
    serde_json::Value::Object(obj)
}

/// The RFC 7638 thumbprint of a key: base64url of SHA-256 over its required members in
/// lexicographic order. Stable across gateways that share a key, so it makes a good `kid`.
pub fn thumbprint(key: &PublicKey) -> String {
    use sha2::Digest as _;
    // serde_json's map is ordered by key (no `preserve_order`), and the required members
    // hold no characters that need escaping: this is the canonical form.
    let text = serde_json::Value::Object(thumbprint_members(key)).to_string();
    b64::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn thumbprint_members(key: &PublicKey) -> serde_json::Map<String, serde_json::Value> {
    let mut obj = serde_json::Map::new();
    match key {
        PublicKey::Rsa(k) => {
            obj.insert("e".into(), b64::encode(k.e().to_bytes_be()).into());
            obj.insert("kty".into(), "RSA".into());
            obj.insert("n".into(), b64::encode(k.n().to_bytes_be()).into());
        }
        PublicKey::P256(k) => {
            let point = k.to_encoded_point(false);
            let x = point.x().map(b64::encode).unwrap_or_default();
            let y = point.y().map(b64::encode).unwrap_or_default();
            obj.insert("crv".into(), "P-256".into());
            obj.insert("kty".into(), "EC".into());
            obj.insert("x".into(), x.into());
            obj.insert("y".into(), y.into());
        }
        PublicKey::Ed25519(k) => {
            obj.insert("crv".into(), "Ed25519".into());
            obj.insert("kty".into(), "OKP".into());
            obj.insert("x".into(), b64::encode(k.as_bytes()).into());
        }
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p256_jwk(kid: &str) -> (p256::ecdsa::SigningKey, serde_json::Value) {
        let sk = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let jwk = public_jwk_json(&PublicKey::P256(*sk.verifying_key()), kid);
        (sk, jwk)
    }

    #[test]
    fn parses_ec_okp_and_rsa_keys() {
        let (_, ec) = p256_jwk("ec1");
        let ed = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let ed = public_jwk_json(&PublicKey::Ed25519(ed.verifying_key()), "ed1");
        let rsa = crate::testkeys::rsa_a_public_jwk("rsa1");
        let doc = json!({"keys": [ec, ed, rsa]}).to_string();
        let parsed = KeySet::parse(doc.as_bytes()).expect("jwks");
        assert_eq!(parsed.keys.len(), 3);
        assert!(parsed.skipped.is_empty());
        assert!(parsed.keys.has_kid("rsa1"));
    }

    #[test]
    fn unsupported_and_encryption_keys_are_skipped_not_fatal() {
        let (_, ec) = p256_jwk("good");
        let doc = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "p384"},
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB", "kid": "enc"},
            ec,
        ]})
        .to_string();
        let parsed = KeySet::parse(doc.as_bytes()).expect("jwks");
        assert_eq!(parsed.keys.len(), 1);
        assert_eq!(parsed.skipped.len(), 3);
        assert!(matches!(parsed.skipped[0].1, JwkError::Unsupported(_)));
        assert_eq!(parsed.skipped[2].1, JwkError::NotForSignatures);
    }

    #[test]
    fn a_jwks_without_usable_keys_is_refused() {
        let doc = br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#;
        assert_eq!(KeySet::parse(doc), Err(JwksError::NoUsableKey));
        assert!(matches!(
            KeySet::parse(b"{\"nokeys\": 1}"),
            Err(JwksError::Malformed(_))
        ));
        let big = vec![b' '; MAX_JWKS_BYTES + 1];
        assert_eq!(KeySet::parse(&big), Err(JwksError::TooLarge));
    }

    #[test]
    fn weak_rsa_keys_are_refused() {
        let jwk = crate::testkeys::rsa_1024_public_jwk("weak");
        assert!(matches!(Jwk::from_json(&jwk), Err(JwkError::InvalidKey(_))));
    }

    #[test]
    fn a_point_off_the_curve_is_refused() {
        let (_, mut jwk) = p256_jwk("k");
        jwk["y"] = json!(b64::encode([7u8; 32]));
        assert!(matches!(Jwk::from_json(&jwk), Err(JwkError::InvalidKey(_))));
    }

    #[test]
    fn a_key_declaring_another_algorithm_is_refused() {
        let (_, mut jwk) = p256_jwk("k");
        jwk["alg"] = json!("HS256");
        assert!(matches!(
            Jwk::from_json(&jwk),
            Err(JwkError::BadAlgorithm(_))
        ));
        jwk["alg"] = json!("RS256");
        assert!(matches!(
            Jwk::from_json(&jwk),
            Err(JwkError::BadAlgorithm(_))
        ));
    }

    #[test]
    fn selection_by_kid_signals_unknown_kids_for_refresh() {
        let (_, a) = p256_jwk("a");
        let set = KeySet::parse(json!({"keys": [a]}).to_string().as_bytes())
            .expect("jwks")
            .keys;
        assert_eq!(
            set.candidates(Some("a"), Algorithm::Es256).map(|v| v.len()),
            Ok(1)
        );
        let unknown = set.candidates(Some("rotated"), Algorithm::Es256);
        assert_eq!(unknown, Err(KeyError::UnknownKid));
        assert!(KeyError::UnknownKid.refresh_may_help());
    }

    #[test]
    fn selection_refuses_a_kid_whose_type_does_not_match_alg() {
        let rsa = crate::testkeys::rsa_a_public_jwk("r");
        let set = KeySet::parse(json!({"keys": [rsa]}).to_string().as_bytes())
            .expect("jwks")
            .keys;
        let err = set.candidates(Some("r"), Algorithm::Es256);
        assert!(matches!(err, Err(KeyError::AlgorithmMismatch { .. })));
        assert!(!err.err().is_some_and(|e| e.refresh_may_help()));
    }

    #[test]
    fn without_kid_every_key_of_the_algorithm_is_a_candidate() {
        let (_, a) = p256_jwk("a");
        let (_, b) = p256_jwk("b");
        let set = KeySet::parse(json!({"keys": [a, b]}).to_string().as_bytes())
            .expect("jwks")
            .keys;
        assert_eq!(
            set.candidates(None, Algorithm::Es256).map(|v| v.len()),
            Ok(2)
        );
        assert_eq!(
            set.candidates(None, Algorithm::EdDsa),
            Err(KeyError::NoKeyForAlgorithm(Algorithm::EdDsa))
        );
    }

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let key = Jwk::from_json(&jwk).expect("rfc key").key;
        assert_eq!(
            thumbprint(&key),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
