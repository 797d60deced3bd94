//! The identity assertion: a short-lived JWT the gateway signs and sends upstream, so apps can
//! verify who the user is instead of trusting a plain header. Its public key is published as
//! a JWKS document (served by authn at `/.paved/jwks.json`).
//!
//! Keys are ES256 (P-256) or EdDSA (Ed25519), given as PEM (PKCS#8, or SEC1 for P-256), as
//! base64 of PKCS#8 DER, or as base64 of a raw 32-byte Ed25519 seed. The `kid` is the key's
//! RFC 7638 thumbprint, the same on every gateway that shares the key.

use std::collections::HashMap;

use p256::pkcs8::DecodePrivateKey as _;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::identity::Identity;
use crate::jwk::{public_jwk_json, thumbprint};
use crate::jwt::{self, SigningKey};
use crate::random::{self, SecureRng};
use crate::{b64, jwt::sign};

/// Why a configured assertion key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionKeyError {
    /// Neither PEM nor base64.
    #[error("the assertion key is neither PEM nor base64")]
    Encoding,
    /// Decoded, but not a P-256 or Ed25519 private key.
    #[error("the assertion key is not a P-256 or Ed25519 private key")]
    KeyType,
}

/// Reads a signing key from configuration text.
pub fn parse_signing_key(text: &str) -> Result<SigningKey, AssertionKeyError> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(text) {
            return Ok(SigningKey::P256(k));
        }
        if let Ok(k) = p256::SecretKey::from_sec1_pem(text) {
            return Ok(SigningKey::P256(k.into()));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(text) {
            return Ok(SigningKey::Ed25519(k));
        }
        return Err(AssertionKeyError::KeyType);
    }
    if let Some(raw) = text.strip_prefix("es256:") {
        let bytes =
            zeroize::Zeroizing::new(b64::decode_lenient(raw).ok_or(AssertionKeyError::Encoding)?);
        return p256::ecdsa::SigningKey::from_slice(&bytes)
            .map(SigningKey::P256)
            .map_err(|_| AssertionKeyError::KeyType);
    }
    let raw = text.strip_prefix("eddsa:").unwrap_or(text);
    let bytes =
        zeroize::Zeroizing::new(b64::decode_lenient(raw).ok_or(AssertionKeyError::Encoding)?);
    if let Ok(seed) = <[u8; 32]>::try_from(bytes.as_slice()) {
        return Ok(SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
            &seed,
        )));
    }
    if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(&bytes) {
        return Ok(SigningKey::P256(k));
    }
    if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(&bytes) {
        return Ok(SigningKey::Ed25519(k));
    }
    Err(AssertionKeyError::KeyType)
}

/// A fresh P-256 key (ES256 is what JWT libraries support most widely).
pub fn generate_key(rng: &mut dyn SecureRng) -> SigningKey {
    loop {
        let scalar = random::bytes::<32>(rng);
        // Out-of-range scalars (probability ~2^-32) are simply drawn again.
        if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&scalar) {
            return SigningKey::P256(k);
        }
    }
}

/// The compact text form of a key that [`parse_signing_key`] reads back (`es256:` or
/// `eddsa:` then base64url of the raw private key), to share a generated key between plugin
/// instances. Secret: handle like the key itself.
pub fn export_key(key: &SigningKey) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(match key {
        SigningKey::P256(k) => format!("es256:{}", b64::encode(k.to_bytes())),
        SigningKey::Ed25519(k) => format!("eddsa:{}", b64::encode(k.to_bytes())),
    })
}

/// Signs identity assertions and publishes their JWKS.
#[derive(Debug, Clone)]
pub struct AssertionSigner {
    key: SigningKey,
    kid: String,
    issuer: String,
    ttl_secs: u64,
    jwks: String,
}

impl AssertionSigner {
    /// A signer with `key`, whose assertions say `iss: issuer` and live `ttl_secs`.
    pub fn new(key: SigningKey, issuer: &str, ttl_secs: u64) -> AssertionSigner {
        let public = key.public_key();
        let kid = thumbprint(&public);
        let jwks = json!({ "keys": [public_jwk_json(&public, &kid)] }).to_string();
        AssertionSigner {
            key,
            kid,
            issuer: issuer.to_string(),
            ttl_secs: ttl_secs.max(1),
            jwks,
        }
    }

    /// The JWKS document of the assertion key.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Lifetime of one assertion, in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// A fresh assertion of `identity` for the app `audience`.
    pub fn sign(
        &self,
        identity: &Identity,
        audience: &str,
        now: u64,
        rng: &mut dyn SecureRng,
    ) -> String {
        let mut claims = json!({
            "iss": self.issuer,
            "sub": identity.subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_secs,
            "jti": random::token(rng, 16),
            "groups": identity.groups,
            "kind": identity.kind.as_str(),
            "idp": identity.issuer,
        });
        if let Some(email) = &identity.email {
            claims["email"] = json!(email);
        }
        if let Some(cid) = &identity.client_id {
            claims["client_id"] = json!(cid);
        }
        sign(&self.key, &self.kid, &claims)
    }
}

/// Recently signed assertions, reused while at least half their lifetime is left: signing on
/// every request of a busy session would cost more than everything else authn does.
#[derive(Debug, Default)]
pub struct AssertionCache {
    entries: HashMap<[u8; 32], (String, u64)>,
}

/// Most assertions cached by one plugin instance.
pub const CACHE_ENTRIES: usize = 1024;

impl AssertionCache {
    /// The assertion of `identity` for `audience`: cached, or signed now.
    pub fn get_or_sign(
        &mut self,
        signer: &AssertionSigner,
        identity: &Identity,
        audience: &str,
        now: u64,
        rng: &mut dyn SecureRng,
    ) -> String {
        let key = cache_key(identity, audience);
        if let Some((token, exp)) = self.entries.get(&key)
            && exp.saturating_sub(now) * 2 >= signer.ttl_secs
        {
            return token.clone();
        }
        if self.entries.len() >= CACHE_ENTRIES {
            self.entries
                .retain(|_, (_, exp)| exp.saturating_sub(now) * 2 >= signer.ttl_secs);
            if self.entries.len() >= CACHE_ENTRIES {
                self.entries.clear();
            }
        }
        let token = signer.sign(identity, audience, now, rng);
        self.entries
            .insert(key, (token.clone(), now + signer.ttl_secs));
        token
    }
}

fn cache_key(identity: &Identity, audience: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        audience,
        &identity.subject,
        identity.email.as_deref().unwrap_or(""),
        identity.client_id.as_deref().unwrap_or(""),
        identity.kind.as_str(),
        &identity.issuer,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    for g in &identity.groups {
        h.update((g.len() as u64).to_le_bytes());
        h.update(g.as_bytes());
    }
    h.finalize().into()
}

/// Verifies an assertion against the signer's JWKS (what an upstream app does), allowing 5 s
/// of clock skew between gateway and app.
pub fn verify_assertion(
    jwks: &str,
    token: &str,
    issuer: &str,
    audience: &str,
    now: u64,
) -> Result<crate::claims::Claims, jwt::TokenError> {
    let keys = crate::jwk::KeySet::parse(jwks.as_bytes())
        .map_err(|_| jwt::TokenError::Malformed("jwks"))?
        .keys;
    let claims = jwt::decode(token)?.verify(&keys)?;
    let audiences = [audience.to_string()];
    claims.validate(&crate::claims::Expectations {
        issuer,
        audiences: &audiences,
        now,
        skew_secs: 5,
    })?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Kind, Source};
    use crate::random::OsRng;

    const NOW: u64 = 1_700_000_000;

    fn identity() -> Identity {
        Identity {
            subject: "alice".into(),
            email: Some("alice@example.com".into()),
            groups: vec!["staff".into()],
            client_id: None,
            kind: Kind::User,
            source: Source::Session,
            issuer: "https://idp.example".into(),
            claims: Default::default(),
        }
    }

    #[test]
    fn assertions_verify_against_the_published_jwks() {
        for key in [
            generate_key(&mut OsRng),
            SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng)),
        ] {
            let signer = AssertionSigner::new(key, "paved", 60);
            let token = signer.sign(&identity(), "payroll", NOW, &mut OsRng);
            let claims = verify_assertion(signer.jwks_json(), &token, "paved", "payroll", NOW + 1)
                .expect("verifies");
            assert_eq!(claims.sub.as_deref(), Some("alice"));
            assert_eq!(claims.exp, Some((NOW + 60) as i64));
            assert_eq!(claims.str("email"), Some("alice@example.com"));
            assert_eq!(claims.all["groups"], json!(["staff"]));
            assert!(
                verify_assertion(signer.jwks_json(), &token, "paved", "other-app", NOW).is_err(),
                "the audience is the app"
            );
            assert!(
                verify_assertion(signer.jwks_json(), &token, "paved", "payroll", NOW + 65).is_err(),
                "short-lived"
            );
        }
    }

    #[test]
    fn keys_parse_from_pem_der_and_raw_forms() {
        let p = p256::ecdsa::SigningKey::random(&mut OsRng);
        use p256::pkcs8::EncodePrivateKey as _;
        let pem = p.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).expect("pem");
        assert!(matches!(parse_signing_key(&pem), Ok(SigningKey::P256(_))));
        let der = p.to_pkcs8_der().expect("der");
        let text = b64::encode_standard(der.as_bytes());
        assert!(matches!(parse_signing_key(&text), Ok(SigningKey::P256(_))));
        let sec1 = p256::SecretKey::from(p.clone())
            .to_sec1_pem(p256::pkcs8::LineEnding::LF)
            .expect("sec1");
        assert!(matches!(parse_signing_key(&sec1), Ok(SigningKey::P256(_))));
        let ed = ed25519_dalek::SigningKey::generate(&mut OsRng);
        let ed_pem = ed.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).expect("pem");
        assert!(matches!(
            parse_signing_key(&ed_pem),
            Ok(SigningKey::Ed25519(_))
        ));
        assert!(matches!(
            parse_signing_key(&b64::encode(ed.to_bytes())),
            Ok(SigningKey::Ed25519(_))
        ));
        assert_eq!(
            parse_signing_key("!!!").err(),
            Some(AssertionKeyError::Encoding)
        );
        assert_eq!(
            parse_signing_key(&b64::encode([1u8; 10])).err(),
            Some(AssertionKeyError::KeyType)
        );
    }

    #[test]
    fn exported_keys_read_back_with_the_same_kid() {
        for key in [
            generate_key(&mut OsRng),
            SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng)),
        ] {
            let text = export_key(&key);
            let back = parse_signing_key(&text).expect("parses");
            assert_eq!(
                AssertionSigner::new(back, "p", 60).kid(),
                AssertionSigner::new(key, "p", 60).kid()
            );
        }
    }

    #[test]
    fn cached_assertions_are_reused_while_fresh() {
        let signer = AssertionSigner::new(generate_key(&mut OsRng), "paved", 60);
        let mut cache = AssertionCache::default();
        let a = cache.get_or_sign(&signer, &identity(), "app", NOW, &mut OsRng);
        let b = cache.get_or_sign(&signer, &identity(), "app", NOW + 30, &mut OsRng);
        assert_eq!(a, b);
        let c = cache.get_or_sign(&signer, &identity(), "app", NOW + 31, &mut OsRng);
        assert_ne!(a, c);
        let mut other = identity();
        other.groups.push("admin".into());
        assert_ne!(
            cache.get_or_sign(&signer, &other, "app", NOW + 31, &mut OsRng),
            c
        );
    }

    #[test]
    fn the_jwks_has_only_public_material() {
        let signer = AssertionSigner::new(generate_key(&mut OsRng), "paved", 60);
        let doc: serde_json::Value = serde_json::from_str(signer.jwks_json()).expect("json");
        let key = &doc["keys"][0];
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["kid"], signer.kid());
        assert!(key.get("d").is_none());
    }
}
