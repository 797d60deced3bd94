//! The OpenID provider's ES256 signing key: created once, kept in the database (or a PKCS#8 PEM
//! file), published as a JWKS, used to sign and verify compact JWTs.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::Value;

use crate::secrets::sha256_b64url;
use crate::storage::entities::signing_key;
use crate::{Error, Result};

/// Why a JWT was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("malformed token")]
    Malformed,
    /// Another algorithm or key id than ours.
    #[error("unexpected algorithm or key id")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Wrong issuer, audience or type, or expired.
    #[error("{0}")]
    Claims(String),
}

/// The signing key set (one active key; rotation would add verification-only keys).
#[derive(Clone)]
pub struct KeySet {
    kid: String,
    signing: SigningKey,
    verifying: VerifyingKey,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn key_err(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("signing key: {e}"))
}

impl KeySet {
    fn from_signing(signing: SigningKey) -> KeySet {
        let verifying = *signing.verifying_key();
        let point = verifying.to_encoded_point(false);
        let kid = sha256_b64url(point.as_bytes())[..16].to_string();
        KeySet {
            kid,
            signing,
            verifying,
        }
    }

    /// A new random key (not stored).
    pub fn generate() -> KeySet {
        KeySet::from_signing(SigningKey::random(&mut rand::rngs::OsRng))
    }

    /// The key from PKCS#8 PEM.
    pub fn from_pem(pem: &str) -> Result<KeySet> {
        let secret = p256::SecretKey::from_pkcs8_pem(pem).map_err(key_err)?;
        Ok(KeySet::from_signing(SigningKey::from(secret)))
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pem(&self) -> Result<String> {
        let secret = p256::SecretKey::from(self.signing.as_nonzero_scalar());
        Ok(secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(key_err)?
            .to_string())
    }

    /// Loads the key from `key_file` (created with mode 0600 when missing) or, without a file,
    /// from the database (created and stored when missing), so that tokens survive restarts.
    pub async fn load_or_create<C: ConnectionTrait>(
        db: &C,
        key_file: Option<&Path>,
    ) -> Result<KeySet> {
        if let Some(path) = key_file {
            return match std::fs::read_to_string(path) {
                Ok(pem) => KeySet::from_pem(&pem),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let keys = KeySet::generate();
                    write_private(path, &keys.to_pem()?)?;
                    tracing::info!(kid = %keys.kid, path = %path.display(), "created the OpenID signing key");
                    Ok(keys)
                }
                Err(e) => Err(Error::Internal(format!(
                    "reading the signing key {}: {e}",
                    path.display()
                ))),
            };
        }
        let stored = signing_key::Entity::find()
            .filter(signing_key::Column::Active.eq(true))
            .one(db)
            .await?;
        if let Some(row) = stored {
            return KeySet::from_pem(&row.private_key_pem);
        }
        let keys = KeySet::generate();
        signing_key::ActiveModel {
            kid: Set(keys.kid.clone()),
            algorithm: Set("ES256".into()),
            private_key_pem: Set(keys.to_pem()?),
            active: Set(true),
            created_at: Set(Utc::now()),
        }
        .insert(db)
        .await?;
        tracing::info!(kid = %keys.kid, "created the OpenID signing key");
        Ok(keys)
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public keys as a JWK Set.
    pub fn jwks(&self) -> Value {
        let point = self.verifying.to_encoded_point(false);
        let coord =
            |c: Option<&p256::FieldBytes>| c.map(|b| URL_SAFE_NO_PAD.encode(b)).unwrap_or_default();
        serde_json::json!({
            "keys": [{
                "kty": "EC",
                "crv": "P-256",
                "x": coord(point.x()),
                "y": coord(point.y()),
                "kid": self.kid,
                "use": "sig",
                "alg": "ES256",
            }]
        })
    }

    /// Signs `claims` as a compact JWT of type `typ` (`JWT`, `at+jwt`).
    pub fn sign(&self, typ: &str, claims: &Value) -> Result<String> {
        let header = serde_json::json!({"alg": "ES256", "typ": typ, "kid": self.kid});
        let enc = |v: &Value| {
            serde_json::to_vec(v)
                .map(|b| URL_SAFE_NO_PAD.encode(b))
                .map_err(|e| Error::Internal(format!("encoding a JWT: {e}")))
        };
        let input = format!("{}.{}", enc(&header)?, enc(claims)?);
        let signature: Signature = self.signing.sign(input.as_bytes());
        Ok(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        ))
    }

    /// Verifies a compact JWT's signature; returns its header and claims (the caller checks
    /// issuer, audience, type and expiry).
    pub fn verify(&self, token: &str) -> Result<(Value, Value), JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let json = |part: &str| -> Result<Value, JwtError> {
            let bytes = URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JwtError::Malformed)?;
            serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
        };
        let header = json(h)?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256")
            || header.get("kid").and_then(Value::as_str) != Some(self.kid.as_str())
        {
            return Err(JwtError::UnknownKey);
        }
        let sig_bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
        let signature = Signature::from_slice(&sig_bytes).map_err(|_| JwtError::BadSignature)?;
        self.verifying
            .verify(format!("{h}.{p}").as_bytes(), &signature)
            .map_err(|_| JwtError::BadSignature)?;
        Ok((header, json(p)?))
    }
}

fn write_private(path: &Path, pem: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| {
        Error::Internal(format!("creating the signing key {}: {e}", path.display()))
    })?;
    f.write_all(pem.as_bytes())
        .map_err(|e| Error::Internal(format!("writing the signing key {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_pem_round_trip() {
        let k = KeySet::generate();
        let t = k
            .sign("JWT", &serde_json::json!({"sub": "1"}))
            .unwrap_or_default();
        let (_, claims) = k.verify(&t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claims["sub"], "1");
        let again =
            KeySet::from_pem(&k.to_pem().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.kid(), k.kid());
        assert!(again.verify(&t).is_ok());
        let mut bad = t.clone();
        bad.pop();
        bad.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert!(k.verify(&bad).is_err());
        assert_eq!(k.verify("a.b"), Err(JwtError::Malformed));
    }
}
