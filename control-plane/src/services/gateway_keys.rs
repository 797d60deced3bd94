//! The keys every gateway's `authn` filter shares: the key that seals session cookies and the
//! key that signs identity assertions sent upstream.
//!
//! Without them in the snapshot each gateway process would generate its own, so sessions would
//! end at every restart and two replicas would not accept each other's cookies. They are made
//! once, kept in the database, and put into the compile options unless the configuration
//! names its own (an operator-managed key wins).
//!
//! They live in the `signing_keys` table under their own key ids, never `active` (that flag
//! marks the OpenID provider's current ES256 key, the only row it loads).

use chrono::Utc;
use paved_identity::assertion::{export_key, generate_key};
use paved_identity::random::OsRng;
use paved_identity::seal::SealKey;
use paved_model::compile::IdentityOptions;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};

use crate::Result;
use crate::storage::entities::signing_key;

/// Key id of the session sealing key (as `SealKey::to_base64` writes it).
const SESSION_KID: &str = "paved-gateway-session";
/// Key id of the assertion signing key (as `assertion::export_key` writes it).
const ASSERTION_KID: &str = "paved-gateway-assertion";

/// Fills `identity.session_key` and `identity.assertion_key` when the configuration left
/// them empty, from the stored keys (made on first use).
pub(super) async fn supply<C: ConnectionTrait>(
    db: &C,
    identity: &mut IdentityOptions,
) -> Result<()> {
    if identity.session_key.is_none() {
        identity.session_key =
            Some(load_or_create(db, SESSION_KID, "A256-SEAL", session_key).await?);
    }
    if identity.assertion_key.is_none() {
        identity.assertion_key =
            Some(load_or_create(db, ASSERTION_KID, "ES256-ASSERTION", assertion_key).await?);
    }
    Ok(())
}

async fn load_or_create<C: ConnectionTrait>(
    db: &C,
    kid: &str,
    algorithm: &str,
    make: fn() -> String,
) -> Result<String> {
    if let Some(row) = signing_key::Entity::find_by_id(kid.to_string())
        .one(db)
        .await?
    {
        return Ok(row.private_key_pem);
    }
    let key = make();
    signing_key::ActiveModel {
        kid: Set(kid.to_string()),
        algorithm: Set(algorithm.to_string()),
        private_key_pem: Set(key.clone()),
        active: Set(false),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    tracing::info!(kid, "created a key shared by the gateways");
    Ok(key)
}

// The same generators and encodings the authn filter uses for keys it makes itself, so what
// is stored here is exactly what the filter reads.
fn session_key() -> String {
    SealKey::generate(&mut OsRng).to_base64()
}

fn assertion_key() -> String {
    export_key(&generate_key(&mut OsRng)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use paved_identity::assertion::parse_signing_key;

    #[test]
    fn generated_keys_are_read_back_by_the_authn_filter_parsers() {
        assert!(
            SealKey::from_base64(&session_key()).is_ok(),
            "session key parses"
        );
        assert!(
            parse_signing_key(&assertion_key()).is_ok(),
            "assertion key parses"
        );
        assert_ne!(session_key(), session_key(), "fresh randomness each time");
    }
}
