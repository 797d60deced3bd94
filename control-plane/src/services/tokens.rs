//! API tokens for tools: created with their secret shown once, stored as a SHA-256 digest,
//! found by a public prefix, scoped, optionally limited to apps or teams, expiring, revocable.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};

use super::apps::find_app;
use super::{ControlPlane, audit};
use crate::auth::{Access, ActorKind, AppRef, Principal, Role, Scope};
use crate::secrets::{constant_time_eq, random_hex, random_token, sha256_hex};
use crate::storage::entities::api_token;
use crate::storage::strings_json;
use crate::{Error, Result};

/// Every token string starts with this, so that secret scanners recognize leaked ones.
pub const TOKEN_PREFIX: &str = "pvd_";

/// What a new token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// A name for people to recognize it (1 to 100 characters).
    pub name: String,
    /// Its scopes (at least one).
    pub scopes: Vec<Scope>,
    /// Apps it is limited to.
    pub apps: Vec<String>,
    /// Teams it is limited to.
    pub teams: Vec<String>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A created token: its record and its secret, shown this once.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedToken {
    /// The stored record (without the secret).
    pub token: api_token::Model,
    /// The token string to hand to the tool: `pvd_<prefix>_<secret>`.
    pub secret: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &self.token)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The public JSON of a token (for the audit log).
fn token_json(t: &api_token::Model) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "name": t.name,
        "prefix": t.prefix,
        "scopes": t.scopes,
        "apps": t.apps,
        "teams": t.teams,
        "expiresAt": t.expires_at,
        "revokedAt": t.revoked_at,
    })
}

impl ControlPlane {
    /// Creates a token. People and admins create tokens, never beyond their own rights: an
    /// app owner's tokens are limited to apps and teams they own, a security reviewer's are
    /// read-only, `admin` and `gateway` scopes need an admin. `apps:write` tokens must be
    /// limited to named apps or teams.
    pub async fn create_token(&self, who: &Principal, new: NewToken) -> Result<CreatedToken> {
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.contains(['\n', '\r']) {
            return Err(Error::BadRequest(
                "a token name is 1 to 100 characters on one line".into(),
            ));
        }
        let mut scopes = new.scopes.clone();
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(Error::BadRequest("a token needs at least one scope".into()));
        }
        for list in [&new.apps, &new.teams] {
            if list.iter().any(|s| s.is_empty() || s.len() > 255) || list.len() > 100 {
                return Err(Error::BadRequest(
                    "apps and teams are 1 to 100 names of at most 255 characters".into(),
                ));
            }
        }
        let restricted = !new.apps.is_empty() || !new.teams.is_empty();
        if scopes.contains(&Scope::AppsWrite) && !restricted {
            return Err(Error::BadRequest(
                "an apps:write token must be limited to named apps or teams".into(),
            ));
        }
        if let Some(at) = new.expires_at
            && at <= Utc::now()
        {
            return Err(Error::BadRequest("the expiry is in the past".into()));
        }
        self.check_token_grant(who, &scopes, &new.apps, &new.teams, restricted)
            .await?;
        let prefix = random_hex(6);
        let secret = format!("{TOKEN_PREFIX}{prefix}_{}", random_token(32));
        let _guard = self.write_guard().await;
        let tx = self.store().begin_write().await?;
        let token = api_token::ActiveModel {
            name: Set(name.to_string()),
            prefix: Set(prefix),
            secret_hash: Set(sha256_hex(secret.as_bytes())),
            scopes: Set(strings_json(
                &scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            )),
            apps: Set(strings_json(&new.apps)),
            teams: Set(strings_json(&new.teams)),
            created_by: Set(who.name.clone()),
            created_by_kind: Set(who.kind.as_str().to_string()),
            created_at: Set(Utc::now()),
            expires_at: Set(new.expires_at),
            revoked_at: Set(None),
            ..Default::default()
        }
        .insert(&tx)
        .await?;
        audit(
            &tx,
            who,
            "token.create",
            "token",
            &token.id.to_string(),
            None,
            None,
            Some(token_json(&token)),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(token_id = token.id, prefix = %token.prefix, actor = %who.name, "token created");
        Ok(CreatedToken { token, secret })
    }

    async fn check_token_grant(
        &self,
        who: &Principal,
        scopes: &[Scope],
        apps: &[String],
        teams: &[String],
        restricted: bool,
    ) -> Result<()> {
        if who.is_admin() {
            return Ok(());
        }
        let (role, my_teams) = match &who.access {
            Access::Person { role, teams, .. } => (*role, teams.clone()),
            _ => {
                return Err(Error::Forbidden(
                    "only people and admin tokens create tokens".into(),
                ));
            }
        };
        for scope in scopes {
            match (scope, role) {
                (Scope::Admin | Scope::Gateway, _) => {
                    return Err(Error::Forbidden(format!(
                        "only admins create `{scope}` tokens"
                    )));
                }
                (Scope::AppsWrite, Role::SecurityReviewer) => {
                    return Err(Error::Forbidden(
                        "security reviewers create read-only tokens".into(),
                    ));
                }
                _ => {}
            }
        }
        if role == Role::SecurityReviewer {
            return Ok(());
        }
        // An app owner: only within what they own.
        if !restricted {
            return Err(Error::Forbidden(
                "an app owner's tokens must be limited to their apps or teams".into(),
            ));
        }
        if let Some(team) = teams.iter().find(|t| !my_teams.contains(t)) {
            return Err(Error::Forbidden(format!("you are not in team `{team}`")));
        }
        for name in apps {
            let owned = match find_app(self.store().db(), name).await? {
                Some(a) => {
                    let owners = a.owner_list();
                    who.can_write_app(AppRef {
                        name: &a.name,
                        team: a.team.as_deref(),
                        owners: &owners,
                    })
                }
                None => false,
            };
            if !owned {
                return Err(Error::Forbidden(format!("you do not own app `{name}`")));
            }
        }
        Ok(())
    }

    /// Tokens the caller may see: every token for admins, otherwise those they created.
    pub async fn list_tokens(&self, who: &Principal) -> Result<Vec<api_token::Model>> {
        let mut q = api_token::Entity::find().order_by_asc(api_token::Column::Id);
        if !who.is_admin() {
            q = q.filter(api_token::Column::CreatedBy.eq(who.name.as_str()));
        }
        Ok(q.all(self.store().db()).await?)
    }

    /// Revokes a token (admins, or its creator). Revoking twice changes nothing.
    pub async fn revoke_token(&self, who: &Principal, id: i64) -> Result<api_token::Model> {
        let _guard = self.write_guard().await;
        let tx = self.store().begin_write().await?;
        let token = api_token::Entity::find_by_id(id)
            .one(&tx)
            .await?
            .filter(|t| who.is_admin() || t.created_by == who.name)
            .ok_or_else(|| Error::NotFound(format!("token {id}")))?;
        if token.revoked_at.is_some() {
            return Ok(token);
        }
        let before = token_json(&token);
        let mut am = token.into_active_model();
        am.revoked_at = Set(Some(Utc::now()));
        let token = am.update(&tx).await?;
        audit(
            &tx,
            who,
            "token.revoke",
            "token",
            &id.to_string(),
            None,
            Some(before),
            Some(token_json(&token)),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(token_id = id, actor = %who.name, "token revoked");
        Ok(token)
    }

    /// The principal of a presented token string, or `Unauthenticated` (the same message for
    /// every failure, so that callers learn nothing about which tokens exist).
    pub async fn authenticate_token(&self, presented: &str) -> Result<Principal> {
        let invalid = || Error::Unauthenticated("invalid, expired or revoked API token".into());
        let rest = presented.strip_prefix(TOKEN_PREFIX).ok_or_else(invalid)?;
        let (prefix, _) = rest.split_once('_').ok_or_else(invalid)?;
        if prefix.len() != 12 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let token = api_token::Entity::find()
            .filter(api_token::Column::Prefix.eq(prefix))
            .one(self.store().db())
            .await?
            .ok_or_else(invalid)?;
        let digest = sha256_hex(presented.as_bytes());
        if !constant_time_eq(digest.as_bytes(), token.secret_hash.as_bytes()) {
            tracing::warn!(token_id = token.id, "API token with a wrong secret");
            return Err(invalid());
        }
        if token.revoked_at.is_some() {
            tracing::info!(token_id = token.id, "revoked API token presented");
            return Err(invalid());
        }
        if token.expires_at.is_some_and(|at| at <= Utc::now()) {
            tracing::info!(token_id = token.id, "expired API token presented");
            return Err(invalid());
        }
        Ok(Principal {
            name: format!("token:{}#{}", token.name, token.id),
            kind: ActorKind::Tool,
            access: Access::Token {
                token_id: token.id,
                scopes: token.scope_list(),
                apps: token.app_list(),
                teams: token.team_list(),
            },
        })
    }
}
