//! Sign-in to the UI through an external OpenID provider (`oidc.external`, docs/identity.md):
//! the control plane is a relying party of any compliant provider.
//!
//! The browser side is the built-in path's ([`super::login`]: PKCE S256, `state`, `nonce` in
//! the sealed login-state cookie, the `iss` check). What differs is here: the provider's
//! discovery document and JWKS over HTTP (bounded, timed out, cached), the code exchanged at
//! its token endpoint, its ID token verified with `paved-identity` (the gateway's verifier),
//! its claims mapped to a Paved user, and a session token the control plane signs itself —
//! so that the UI and GraphQL then work exactly as after a built-in sign-in.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use paved_identity::claims::{Claims, Expectations};
use paved_identity::discovery::{ProviderMetadata, discovery_url};
use paved_identity::jwk::KeySet;
use paved_identity::jwt;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::login::LoginError;
use super::session::LoginState;
use crate::auth::Role;
use crate::config::{ExternalOidcSettings, GroupMapping};
use crate::secrets::{constant_time_eq, random_token, sha256_b64url};
use crate::services::{ControlPlane, ExternalPerson};
use crate::storage::entities::user;

/// Largest discovery document read.
const MAX_DISCOVERY_BYTES: usize = paved_identity::discovery::MAX_DISCOVERY_BYTES;
/// Largest JWKS read.
const MAX_JWKS_BYTES: usize = paved_identity::jwk::MAX_JWKS_BYTES;
/// Largest token or userinfo response read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How long the discovery document is used before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// How long the JWKS is used before it is fetched again (a rotation shows up earlier, as an
/// unknown `kid`).
const JWKS_TTL: Duration = Duration::from_secs(3600);
/// Shortest time between two JWKS fetches caused by unknown keys, so that tokens naming
/// random `kid`s cannot make the control plane hammer the provider.
const MIN_JWKS_REFETCH: Duration = Duration::from_secs(10);
/// Most groups read from the groups claim.
const MAX_GROUPS: usize = 256;
/// Longest group name kept.
const MAX_GROUP_CHARS: usize = 256;
/// Longest subject accepted.
const MAX_SUBJECT_CHARS: usize = 255;

/// An external provider and what is cached of it. Shared by every sign-in.
pub struct ExternalProvider {
    settings: ExternalOidcSettings,
    redirect_uri: String,
    http: reqwest::Client,
    metadata: Mutex<Option<(ProviderMetadata, Instant)>>,
    jwks: Mutex<Option<(KeySet, Instant)>>,
}

impl std::fmt::Debug for ExternalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalProvider")
            .field("settings", &self.settings)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// A failed request to the provider, in words for the person and the log (no secret).
fn unavailable(what: &str, e: impl std::fmt::Display) -> LoginError {
    LoginError::Exchange(format!("{what}: {e}"))
}

impl ExternalProvider {
    /// The provider of `settings` (validated), with the UI's `redirect_uri`.
    pub fn new(settings: ExternalOidcSettings, redirect_uri: String) -> crate::Result<Self> {
        settings
            .validate()
            .map_err(|e| crate::Error::BadRequest(e.to_string()))?;
        let http = reqwest::Client::builder()
            // A redirect would take the discovery or a token somewhere the issuer did not say.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.http_timeout)
            .connect_timeout(settings.http_timeout)
            .build()
            .map_err(|e| crate::Error::Internal(format!("the OpenID HTTP client: {e}")))?;
        Ok(ExternalProvider {
            settings,
            redirect_uri,
            http,
            metadata: Mutex::new(None),
            jwks: Mutex::new(None),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &ExternalOidcSettings {
        &self.settings
    }

    /// Sends `request` and reads at most `limit` bytes of the answer.
    async fn fetch(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
        limit: usize,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), LoginError> {
        let mut response = request.send().await.map_err(|e| {
            // reqwest's message names the URL, never a header or the body.
            unavailable(what, e.without_url())
        })?;
        let status = response.status();
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(unavailable(what, "the answer is too large"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(what, e.without_url()))?
        {
            if body.len() + chunk.len() > limit {
                return Err(unavailable(what, "the answer is too large"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    /// A GET that must answer 200.
    async fn get(&self, what: &str, url: &str, limit: usize) -> Result<Vec<u8>, LoginError> {
        let request = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        let (status, body) = self.fetch(what, request, limit).await?;
        if !status.is_success() {
            return Err(unavailable(what, format!("HTTP {}", status.as_u16())));
        }
        Ok(body)
    }

    /// The provider's metadata: cached, fetched when missing or an hour old. Its `issuer` must
    /// be the configured one, byte for byte.
    pub async fn metadata(&self) -> Result<ProviderMetadata, LoginError> {
        let mut cached = self.metadata.lock().await;
        if let Some((meta, at)) = cached.as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(meta.clone());
        }
        let url = discovery_url(&self.settings.issuer);
        let body = self
            .get(
                "the provider's discovery document",
                &url,
                MAX_DISCOVERY_BYTES,
            )
            .await?;
        let meta = ProviderMetadata::parse(&body, &self.settings.issuer).map_err(|e| {
            tracing::error!(issuer = %self.settings.issuer, error = %e, "the external OpenID provider's discovery document is refused");
            unavailable("the provider's discovery document", e)
        })?;
        *cached = Some((meta.clone(), Instant::now()));
        Ok(meta)
    }

    /// The provider's keys: cached; fetched when missing, an hour old, or when `refresh` and
    /// the last fetch is older than [`MIN_JWKS_REFETCH`].
    async fn keys(&self, meta: &ProviderMetadata, refresh: bool) -> Result<KeySet, LoginError> {
        let mut cached = self.jwks.lock().await;
        if let Some((keys, at)) = cached.as_ref() {
            let fresh = at.elapsed() < JWKS_TTL;
            let recent = at.elapsed() < MIN_JWKS_REFETCH;
            if (fresh && !refresh) || (refresh && recent) {
                return Ok(keys.clone());
            }
        }
        let body = self
            .get("the provider's keys", &meta.jwks_uri, MAX_JWKS_BYTES)
            .await?;
        let parsed =
            KeySet::parse(&body).map_err(|e| unavailable("the provider's keys", e.to_string()))?;
        for (kid, why) in &parsed.skipped {
            tracing::warn!(kid = ?kid, reason = %why, "a key of the external OpenID provider is not used");
        }
        *cached = Some((parsed.keys.clone(), Instant::now()));
        Ok(parsed.keys)
    }

    /// Where to send the browser to sign in: the provider's authorization endpoint with the
    /// request of `login` (PKCE S256, `state`, `nonce`).
    pub async fn authorization_url(&self, login: &LoginState) -> Result<url::Url, LoginError> {
        let meta = self.metadata().await?;
        let mut location = url::Url::parse(&meta.authorization_endpoint)
            .map_err(|e| unavailable("the provider's authorization endpoint", e))?;
        location
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.settings.scope())
            .append_pair("state", &login.state)
            .append_pair("nonce", &login.nonce)
            .append_pair("code_challenge", &sha256_b64url(login.verifier.as_bytes()))
            .append_pair("code_challenge_method", "S256");
        Ok(location)
    }

    /// Exchanges `code`, verifies the ID token, reads the person's claims, and makes or
    /// updates their user. Nothing is stored unless every check passed.
    pub async fn complete(
        &self,
        cp: &ControlPlane,
        code: &str,
        login: &LoginState,
    ) -> Result<user::Model, LoginError> {
        let meta = self.metadata().await?;
        let tokens = self.exchange(&meta, code, &login.verifier).await?;
        let id_token = tokens
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| LoginError::Exchange("no ID token in the answer".into()))?;
        let mut claims = self.verify_id_token(&meta, id_token, &login.nonce).await?;
        let subject = claims
            .sub
            .clone()
            .filter(|s| !s.is_empty() && s.chars().count() <= MAX_SUBJECT_CHARS)
            .ok_or_else(|| LoginError::IdToken("no usable subject".into()))?;
        // Many providers (this one's tests: panva's) put profile claims in userinfo only.
        let groups_claim = &self.settings.groups_claim;
        if claim(&claims.all, groups_claim).is_none()
            && let (Some(endpoint), Some(access_token)) = (
                meta.userinfo_endpoint.as_deref(),
                tokens.get("access_token").and_then(Value::as_str),
            )
        {
            let info = self.userinfo(endpoint, access_token).await?;
            if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
                return Err(LoginError::IdToken(
                    "the userinfo answer is about someone else".into(),
                ));
            }
            for (name, value) in info {
                claims.all.entry(name).or_insert(value);
            }
        }
        let person = self.person(&claims.all, subject)?;
        cp.sign_in_external(person).await.map_err(|e| match e {
            crate::Error::Unauthenticated(why) | crate::Error::Forbidden(why) => {
                LoginError::NotAPerson(why)
            }
            other => {
                other.log_if_internal();
                LoginError::Internal
            }
        })
    }

    /// The code exchanged at the token endpoint (the client's secret in HTTP Basic when it
    /// has one; the PKCE verifier always).
    async fn exchange(
        &self,
        meta: &ProviderMetadata,
        code: &str,
        verifier: &str,
    ) -> Result<serde_json::Map<String, Value>, LoginError> {
        // Built in a block: the serializer is not `Send` and must be gone before any await.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("code_verifier", verifier);
            if self.settings.client_secret.is_none() {
                // A public client names itself in the body.
                form.append_pair("client_id", &self.settings.client_id);
            }
            form.finish()
        };
        let mut request = self
            .http
            .post(&meta.token_endpoint)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        if let Some(secret) = &self.settings.client_secret {
            // RFC 6749 §2.3.1: both parts form-encoded before Base64.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic =
                STANDARD.encode(format!("{}:{}", enc(&self.settings.client_id), enc(secret)));
            request = request.header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"));
        }
        let request = request.body(body);
        let (status, body) = self
            .fetch("the provider's token endpoint", request, MAX_RESPONSE_BYTES)
            .await?;
        let json: Value = serde_json::from_slice(&body)
            .map_err(|_| LoginError::Exchange("the token response is not JSON".into()))?;
        if !status.is_success() {
            let error: String = json
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(LoginError::Exchange(format!(
                "the provider's token endpoint answered {} ({error})",
                status.as_u16()
            )));
        }
        match json {
            Value::Object(map) => Ok(map),
            _ => Err(LoginError::Exchange(
                "the token response is not an object".into(),
            )),
        }
    }

    /// The ID token's claims, once its signature (a key of the provider's JWKS; RS256, ES256
    /// or EdDSA, never `none` or HMAC), issuer, audience, authorized party, validity window
    /// and nonce are checked.
    async fn verify_id_token(
        &self,
        meta: &ProviderMetadata,
        id_token: &str,
        nonce: &str,
    ) -> Result<Claims, LoginError> {
        let bad = |why: String| LoginError::IdToken(why);
        let token = jwt::decode(id_token).map_err(|e| bad(e.to_string()))?;
        let keys = self.keys(meta, false).await?;
        let claims = match token.verify(&keys) {
            Ok(c) => c,
            Err(e) if e.refresh_may_help() => {
                // A key rotated since the last fetch: fetch once more, then decide.
                let keys = self.keys(meta, true).await?;
                token.verify(&keys).map_err(|e| bad(e.to_string()))?
            }
            Err(e) => return Err(bad(e.to_string())),
        };
        let audiences = [self.settings.client_id.clone()];
        claims
            .validate(&Expectations {
                issuer: &self.settings.issuer,
                audiences: &audiences,
                now: u64::try_from(Utc::now().timestamp()).unwrap_or_default(),
                skew_secs: self.settings.clock_skew.as_secs(),
            })
            .map_err(|e| bad(e.to_string()))?;
        // OpenID Connect Core 3.1.3.7: with several audiences, `azp` must name this client.
        let azp = claims.str("azp");
        if azp.is_some_and(|a| a != self.settings.client_id)
            || (claims.aud.len() > 1 && azp.is_none())
        {
            return Err(bad("issued to another client (azp)".into()));
        }
        let nonce_ok = claims
            .str("nonce")
            .is_some_and(|n| constant_time_eq(n.as_bytes(), nonce.as_bytes()));
        if !nonce_ok {
            return Err(bad("wrong nonce".into()));
        }
        Ok(claims)
    }

    /// The userinfo answer (JSON only) for `access_token`.
    async fn userinfo(
        &self,
        endpoint: &str,
        access_token: &str,
    ) -> Result<serde_json::Map<String, Value>, LoginError> {
        let request = self
            .http
            .get(endpoint)
            .header(reqwest::header::ACCEPT, "application/json")
            .bearer_auth(access_token);
        let (status, body) = self
            .fetch(
                "the provider's userinfo endpoint",
                request,
                MAX_RESPONSE_BYTES,
            )
            .await?;
        if !status.is_success() {
            return Err(unavailable(
                "the provider's userinfo endpoint",
                format!("HTTP {}", status.as_u16()),
            ));
        }
        match serde_json::from_slice(&body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(LoginError::Exchange(
                "the userinfo answer is not a JSON object".into(),
            )),
        }
    }

    /// The Paved person of verified claims: name, verified e-mail, groups, and the role and
    /// teams the group mapping gives.
    fn person(
        &self,
        claims: &serde_json::Map<String, Value>,
        subject: String,
    ) -> Result<ExternalPerson, LoginError> {
        let text = |name: &str, max: usize| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.chars().count() <= max)
                .map(str::to_string)
        };
        // An address the provider says it did not verify could be anyone's, and app owners
        // are matched by e-mail: it is not kept.
        let email = text("email", 320)
            .filter(|_| claims.get("email_verified").and_then(Value::as_bool) != Some(false));
        let groups = groups(claim(claims, &self.settings.groups_claim));
        let (role, teams, mapped) = map_groups(&self.settings.group_mappings, &groups);
        let preferred_username = text("preferred_username", 256)
            .or_else(|| email.clone())
            .unwrap_or_else(|| subject.clone());
        Ok(ExternalPerson {
            issuer: self.settings.issuer.clone(),
            subject,
            preferred_username,
            email,
            display_name: text("name", 200),
            groups,
            role,
            teams,
            may_create: mapped || self.settings.create_users,
        })
    }
}

/// The claim `name`: a top-level claim of that name (namespaced claims such as
/// `https://example.com/groups` contain dots), else the dotted path
/// (`realm_access.roles`).
fn claim<'a>(claims: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut v = claims.get(parts.next()?)?;
    for part in parts {
        v = v.get(part)?;
    }
    Some(v)
}

/// The groups of a groups claim: an array of strings or one string; bounded.
fn groups(value: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    out.retain(|g| !g.is_empty() && g.chars().count() <= MAX_GROUP_CHARS);
    out.truncate(MAX_GROUPS);
    out.sort();
    out.dedup();
    out
}

/// The role and teams `groups` map to, and whether any mapping matched. Several matches: the
/// strongest role (admin, then security reviewer, then app owner) and every team. No match:
/// the least privilege, an app owner of no team (who sees only apps naming them as owner).
pub fn map_groups(mappings: &[GroupMapping], groups: &[String]) -> (Role, Vec<String>, bool) {
    let rank = |r: Role| match r {
        Role::AppOwner => 0,
        Role::SecurityReviewer => 1,
        Role::Admin => 2,
    };
    let mut role = Role::AppOwner;
    let mut teams: Vec<String> = Vec::new();
    let mut mapped = false;
    for m in mappings.iter().filter(|m| groups.contains(&m.group)) {
        if !mapped || rank(m.role) > rank(role) {
            role = m.role;
        }
        mapped = true;
        if let Some(team) = &m.team
            && !teams.contains(team)
        {
            teams.push(team.clone());
        }
    }
    teams.sort();
    (role, teams, mapped)
}

/// A session token for `user`: an access token of the UI client signed by the control plane
/// (what a built-in sign-in yields), so that sessions and GraphQL need no second path. Lives
/// `oidc.access_token_ttl`.
pub fn session_token(cp: &ControlPlane, user: &user::Model) -> crate::Result<(String, Duration)> {
    let config = cp.config();
    let ttl = config.oidc.access_token_ttl;
    let now = Utc::now().timestamp();
    let client = &config.oidc.ui_client_id;
    let claims = json!({
        "iss": config.issuer(),
        "sub": user.id.to_string(),
        "aud": client,
        "client_id": client,
        "iat": now,
        "exp": now + ttl.as_secs() as i64,
        "jti": random_token(16),
        "scope": "openid profile email groups",
    });
    Ok((cp.keys().sign("at+jwt", &claims)?, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(group: &str, role: Role, team: Option<&str>) -> GroupMapping {
        GroupMapping {
            group: group.into(),
            role,
            team: team.map(str::to_string),
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn groups_map_to_the_strongest_role_and_every_team() {
        let mappings = [
            mapping("payments-devs", Role::AppOwner, Some("payments")),
            mapping("search-devs", Role::AppOwner, Some("search")),
            mapping("secops", Role::SecurityReviewer, None),
            mapping("platform", Role::Admin, None),
        ];
        assert_eq!(
            map_groups(&mappings, &strings(&["search-devs", "payments-devs"])),
            (Role::AppOwner, strings(&["payments", "search"]), true)
        );
        assert_eq!(
            map_groups(&mappings, &strings(&["payments-devs", "secops"])),
            (Role::SecurityReviewer, strings(&["payments"]), true)
        );
        assert_eq!(
            map_groups(&mappings, &strings(&["secops", "platform"])),
            (Role::Admin, vec![], true)
        );
    }

    #[test]
    fn people_in_no_mapped_group_get_the_least_privilege() {
        let mappings = [mapping("platform", Role::Admin, None)];
        assert_eq!(
            map_groups(&mappings, &strings(&["Platform", "platform-readers"])),
            (Role::AppOwner, vec![], false),
            "group names match exactly"
        );
        assert_eq!(map_groups(&[], &[]), (Role::AppOwner, vec![], false));
    }

    #[test]
    fn the_groups_claim_is_found_by_name_then_by_path() {
        let claims = json!({
            "https://example.com/groups": ["a"],
            "realm_access": {"roles": ["b", "b", ""]},
            "single": "c",
        });
        let claims = claims.as_object().expect("object");
        assert_eq!(
            groups(claim(claims, "https://example.com/groups")),
            strings(&["a"])
        );
        assert_eq!(groups(claim(claims, "realm_access.roles")), strings(&["b"]));
        assert_eq!(groups(claim(claims, "single")), strings(&["c"]));
        assert_eq!(groups(claim(claims, "missing.path")), Vec::<String>::new());
        let many: Vec<Value> = (0..1000).map(|i| json!(format!("g{i:04}"))).collect();
        assert_eq!(groups(Some(&Value::Array(many))).len(), MAX_GROUPS);
    }
}
