//! Test keys and token forgery helpers: a fake issuer's signing side, and the attacker's.

use std::sync::OnceLock;

use hmac::Mac as _;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
use serde_json::{Value, json};
use signature::{SignatureEncoding as _, Signer as _};

use crate::b64;
use crate::jwk::{PublicKey, public_jwk_json};
use crate::jwt::SigningKey;

fn load(pem: &str) -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("test key")
}

/// The issuer's RSA key.
pub fn rsa_a() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| load(include_str!("../tests/keys/rsa-a.pem")))
}

/// Another RSA key (an attacker's, or the issuer's next one).
pub fn rsa_b() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| load(include_str!("../tests/keys/rsa-b.pem")))
}

fn rsa_1024() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| load(include_str!("../tests/keys/rsa-1024.pem")))
}

/// Public JWK of [`rsa_a`].
pub fn rsa_a_public_jwk(kid: &str) -> Value {
    public_jwk_json(&PublicKey::Rsa(rsa_a().to_public_key()), kid)
}

/// Public JWK of [`rsa_b`].
pub fn rsa_b_public_jwk(kid: &str) -> Value {
    public_jwk_json(&PublicKey::Rsa(rsa_b().to_public_key()), kid)
}

/// Public JWK of a 1024-bit key (too weak).
pub fn rsa_1024_public_jwk(kid: &str) -> Value {
    public_jwk_json(&PublicKey::Rsa(rsa_1024().to_public_key()), kid)
}

/// PEM of [`rsa_a`]'s public key: what an attacker would use as an HMAC secret.
pub fn rsa_a_public_pem() -> String {
    rsa_a()
        .to_public_key()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .expect("pem")
}

/// A token with this header and payload and raw signature bytes.
pub fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64::encode(header.to_string()),
        b64::encode(claims.to_string()),
        b64::encode(signature)
    )
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64::encode(header.to_string()),
        b64::encode(claims.to_string())
    )
}

/// An RS256 token signed with `key`.
pub fn sign_rs256(key: &rsa::RsaPrivateKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let input = signing_input(&header, claims);
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let sig = signer.sign(input.as_bytes()).to_vec();
    format!("{input}.{}", b64::encode(sig))
}

/// An HS256 token whose HMAC key is `secret`.
pub fn sign_hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = signing_input(header, claims);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", b64::encode(mac.finalize().into_bytes()))
}

/// A token with an arbitrary header, signed with `key`.
pub fn sign_with_header(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let sig = match key {
        SigningKey::P256(k) => {
            let s: p256::ecdsa::Signature = k.sign(input.as_bytes());
            s.to_bytes().to_vec()
        }
        SigningKey::Ed25519(k) => k.sign(input.as_bytes()).to_bytes().to_vec(),
    };
    format!("{input}.{}", b64::encode(sig))
}
