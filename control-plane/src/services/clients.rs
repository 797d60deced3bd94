//! Clients (relying parties) of the built-in OpenID provider: the control plane's UI, the
//! gateway's `authn` plugin, and any registered by an admin.

use chrono::Utc;
use paved_model::plugin_config::AuthnConfig;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel, Set};

use super::{ControlPlane, audit};
use crate::auth::Principal;
use crate::secrets::{random_token, sha256_hex};
use crate::storage::entities::oauth_client;
use crate::storage::{json_strings, strings_json};
use crate::{Error, Result};

/// A client to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClient {
    /// Client id (1 to 255 printable characters).
    pub client_id: String,
    /// A name shown to people.
    pub name: String,
    /// Redirect URIs, compared exactly (a host `*.example.com` matches one label).
    pub redirect_uris: Vec<String>,
    /// Confidential (gets a secret) or public (PKCE only).
    pub confidential: bool,
}

fn client_json(c: &oauth_client::Model) -> serde_json::Value {
    serde_json::json!({
        "clientId": c.client_id,
        "name": c.name,
        "confidential": c.secret_hash.is_some(),
        "redirectUris": c.redirect_uris,
    })
}

fn check_redirect_uri(uri: &str) -> Result<()> {
    let parsed = url::Url::parse(&uri.replace("://*.", "://wildcard."))
        .map_err(|e| Error::BadRequest(format!("redirect URI `{uri}` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.fragment().is_some() {
        return Err(Error::BadRequest(format!(
            "redirect URI `{uri}` must be http(s) without a fragment"
        )));
    }
    Ok(())
}

impl ControlPlane {
    /// Registers a client (admins only). Returns its secret, shown once, for confidential
    /// clients.
    pub async fn register_client(
        &self,
        who: &Principal,
        new: NewClient,
    ) -> Result<(oauth_client::Model, Option<String>)> {
        if !who.is_admin() {
            return Err(Error::Forbidden("only admins register clients".into()));
        }
        if new.client_id.is_empty()
            || new.client_id.len() > 255
            || !new.client_id.bytes().all(|b| b.is_ascii_graphic())
            || new.client_id.contains(':')
        {
            return Err(Error::BadRequest(
                "a client id is 1 to 255 printable characters without `:`".into(),
            ));
        }
        for uri in &new.redirect_uris {
            check_redirect_uri(uri)?;
        }
        let secret = new.confidential.then(|| random_token(32));
        let _guard = self.write_guard().await;
        let tx = self.store().begin_write().await?;
        if oauth_client::Entity::find_by_id(new.client_id.clone())
            .one(&tx)
            .await?
            .is_some()
        {
            return Err(Error::Conflict(format!(
                "client `{}` already exists",
                new.client_id
            )));
        }
        let now = Utc::now();
        let c = oauth_client::ActiveModel {
            client_id: Set(new.client_id.clone()),
            name: Set(new.name.clone()),
            secret_hash: Set(secret.as_ref().map(|s| sha256_hex(s.as_bytes()))),
            redirect_uris: Set(strings_json(&new.redirect_uris)),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&tx)
        .await?;
        audit(
            &tx,
            who,
            "client.register",
            "client",
            &c.client_id,
            None,
            None,
            Some(client_json(&c)),
        )
        .await?;
        tx.commit().await?;
        Ok((c, secret))
    }

    /// The client with this id.
    pub async fn find_client(&self, client_id: &str) -> Result<Option<oauth_client::Model>> {
        Ok(oauth_client::Entity::find_by_id(client_id.to_string())
            .one(self.store().db())
            .await?)
    }

    /// Creates or updates a client the configuration names (the UI, the gateway), without a
    /// person involved; changes are audited as `system`.
    async fn ensure_client<C: ConnectionTrait>(
        &self,
        db: &C,
        client_id: &str,
        name: &str,
        secret: Option<&str>,
        redirect_uris: &[String],
    ) -> Result<()> {
        let secret_hash = secret.map(|s| sha256_hex(s.as_bytes()));
        let now = Utc::now();
        let existing = oauth_client::Entity::find_by_id(client_id.to_string())
            .one(db)
            .await?;
        let (before, after) = match existing {
            Some(c)
                if c.secret_hash == secret_hash
                    && json_strings(&c.redirect_uris) == redirect_uris =>
            {
                return Ok(());
            }
            Some(c) => {
                let before = client_json(&c);
                let mut am = c.into_active_model();
                am.secret_hash = Set(secret_hash);
                am.redirect_uris = Set(strings_json(redirect_uris));
                am.updated_at = Set(now);
                (Some(before), am.update(db).await?)
            }
            None => (
                None,
                oauth_client::ActiveModel {
                    client_id: Set(client_id.to_string()),
                    name: Set(name.to_string()),
                    secret_hash: Set(secret_hash),
                    redirect_uris: Set(strings_json(redirect_uris)),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(db)
                .await?,
            ),
        };
        audit(
            db,
            &Principal::system(),
            "client.sync",
            "client",
            client_id,
            None,
            before,
            Some(client_json(&after)),
        )
        .await
    }

    /// Registers the clients the configuration names, at start.
    pub(crate) async fn register_configured_clients(&self) -> Result<()> {
        let oidc = &self.config().oidc;
        if !oidc.enabled {
            return Ok(());
        }
        // With the UI served, its callback is always among them (sign-in works with no setting).
        let ui_redirect_uris = self.config().ui_redirect_uris();
        if !ui_redirect_uris.is_empty() {
            let _guard = self.write_guard().await;
            let tx = self.store().begin_write().await?;
            let ui = oidc.ui_client_id.clone();
            self.ensure_client(&tx, &ui, "Paved control plane", None, &ui_redirect_uris)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// The gateway's redirect URIs: the `authn` callback on every app domain, for every
    /// listener (scheme by TLS, port unless the scheme's default).
    pub fn gateway_redirect_uris(&self, domains: &[String]) -> Vec<String> {
        let callback = AuthnConfig::default().callback_path;
        let mut uris = Vec::new();
        for domain in domains {
            for listener in &self.config().compile.listeners {
                let (scheme, default_port) = if listener.tls.is_some() {
                    ("https", 443)
                } else {
                    ("http", 80)
                };
                let port = listener.address.port();
                let uri = if port == default_port {
                    format!("{scheme}://{domain}{callback}")
                } else {
                    format!("{scheme}://{domain}:{port}{callback}")
                };
                if !uris.contains(&uri) {
                    uris.push(uri);
                }
            }
        }
        uris
    }

    /// Keeps the gateway's client in step with the app domains (in the transaction of the
    /// change that altered them).
    pub(crate) async fn sync_gateway_client<C: ConnectionTrait>(
        &self,
        db: &C,
        domains: &[String],
    ) -> Result<()> {
        let oidc = &self.config().oidc;
        if !oidc.enabled || !oidc.manage_gateway_client {
            return Ok(());
        }
        let identity = &self.config().compile.identity;
        let uris = self.gateway_redirect_uris(domains);
        self.ensure_client(
            db,
            &identity.client_id,
            "Paved gateway",
            identity.client_secret.as_deref(),
            &uris,
        )
        .await
    }
}

/// Whether `presented` matches a registered redirect URI: exactly, or with the registered
/// host `*.example.com` standing for one label.
pub fn redirect_uri_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let Some((scheme, rest)) = registered.split_once("://*.") else {
        return false;
    };
    let Some(tail) = presented
        .strip_prefix(scheme)
        .and_then(|p| p.strip_prefix("://"))
    else {
        return false;
    };
    let Some((label, after)) = tail.split_once('.') else {
        return false;
    };
    !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && after == rest
}

#[cfg(test)]
mod tests {
    use super::redirect_uri_matches;

    #[test]
    fn wildcard_redirects_match_one_label() {
        let r = "https://*.preview.example.com/.paved/callback";
        assert!(redirect_uri_matches(
            r,
            "https://pr-1.preview.example.com/.paved/callback"
        ));
        assert!(!redirect_uri_matches(
            r,
            "https://a.b.preview.example.com/.paved/callback"
        ));
        assert!(!redirect_uri_matches(
            r,
            "https://evil.com/.preview.example.com/.paved/callback"
        ));
        assert!(!redirect_uri_matches(
            r,
            "http://pr-1.preview.example.com/.paved/callback"
        ));
        assert!(redirect_uri_matches("http://x/cb", "http://x/cb"));
        assert!(!redirect_uri_matches("http://x/cb", "http://x/cb?y"));
    }
}
