//! People's sign-in to the UI: the OpenID Connect authorization code flow with PKCE (`S256`),
//! `state` and `nonce`, as a relying party of the control plane's own provider, or of an
//! external one when `oidc.external` is set ([`super::external`]).
//!
//! `GET /ui/login?next=/path` → the provider's `/authorize` → `GET /ui/callback?code&state&iss`
//! → session cookie → `next`. `POST /ui/logout` ends it.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use sea_orm::EntityTrait as _;
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt as _;

use super::UiState;
use super::session::{self, LoginState, local_path};
use crate::config::ControlPlaneConfig;
use crate::oidc::html_escape;
use crate::secrets::{constant_time_eq, random_token, sha256_b64url, sha256_hex};
use crate::services::ControlPlane;
use crate::storage::entities::op_session;

/// Scopes the UI asks for.
pub const SCOPE: &str = "openid profile email groups";
/// Largest token response read (the in-process exchange).
const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// Upper bound of the token exchange.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where people sign in: the provider, and the UI's client there. Everything the flow needs
/// comes from here, so that an external provider is a different value of this struct (plus
/// an HTTP token exchange and a mapping of its users, see docs/ui-hosting.md), not a rewrite.
#[derive(Debug, Clone)]
pub struct LoginProvider {
    /// The provider's issuer (`iss` of its tokens and of its authorization responses).
    pub issuer: String,
    /// Its authorization endpoint, where browsers are sent.
    pub authorization_endpoint: String,
    /// The UI's client id there.
    pub client_id: String,
    /// The UI's redirect URI (registered for the client).
    pub redirect_uri: String,
}

impl LoginProvider {
    /// The built-in provider: issuer `public_url`, client `oidc.ui_client_id`.
    pub fn built_in(config: &ControlPlaneConfig) -> LoginProvider {
        let issuer = config.issuer();
        LoginProvider {
            authorization_endpoint: format!("{issuer}/authorize"),
            client_id: config.oidc.ui_client_id.clone(),
            redirect_uri: config.ui_callback_url(),
            issuer,
        }
    }
}

/// Why a callback did not sign the person in. Messages are shown to them: they name no
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// No login-state cookie, or one that is forged or too old.
    #[error("This sign-in expired or was started in another browser. Please sign in again.")]
    NoLoginState,
    /// The `state` does not match this browser's sign-in (a forged or replayed callback).
    #[error("This sign-in does not belong to this browser. Please sign in again.")]
    StateMismatch,
    /// The response names another issuer (mix-up attack, RFC 9207).
    #[error("The sign-in answer came from an unexpected identity provider.")]
    WrongIssuer,
    /// The provider answered with an error.
    #[error("The identity provider refused the sign-in ({error}).")]
    Provider {
        /// The OAuth error code.
        error: String,
    },
    /// The callback has no code.
    #[error("The sign-in answer has no authorization code.")]
    NoCode,
    /// The code could not be exchanged.
    #[error("The sign-in could not be completed: {0}.")]
    Exchange(String),
    /// The ID token is invalid (signature, issuer, audience, expiry, nonce).
    #[error("The identity provider's answer did not verify: {0}.")]
    IdToken(String),
    /// The access token does not authenticate a person here.
    #[error("Your account cannot use this console: {0}.")]
    NotAPerson(String),
    /// A failure of ours.
    #[error("Internal error.")]
    Internal,
}

impl LoginError {
    fn status(&self) -> StatusCode {
        match self {
            LoginError::Exchange(_) => StatusCode::BAD_GATEWAY,
            LoginError::NotAPerson(_) => StatusCode::FORBIDDEN,
            LoginError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Query of `GET /ui/login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /ui/login`: starts a sign-in and sends the browser to the provider.
pub async fn start(State(ui): State<UiState>, Query(q): Query<LoginQuery>) -> Response {
    let next = q
        .next
        .as_deref()
        .and_then(local_path)
        .unwrap_or("/")
        .to_string();
    let verifier = random_token(32);
    let login = LoginState {
        state: random_token(32),
        nonce: random_token(32),
        verifier,
        next,
        exp: Utc::now().timestamp() + session::LOGIN_TTL.as_secs() as i64,
    };
    let sealed = match ui.state_key.seal(&login) {
        Ok(s) => s,
        Err(e) => {
            e.log_if_internal();
            return error_page(&LoginError::Internal);
        }
    };
    if let Some(external) = &ui.external {
        let location = match external.authorization_url(&login).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(reason = %e, "the external OpenID provider cannot be used");
                return error_page(&e);
            }
        };
        let mut r = see_other(location.as_str());
        r.headers_mut()
            .append(header::SET_COOKIE, ui.cookies.set_login(&sealed));
        return r;
    }
    let provider = &ui.provider;
    let mut location = match url::Url::parse(&provider.authorization_endpoint) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, endpoint = %provider.authorization_endpoint, "the authorization endpoint is not a URL");
            return error_page(&LoginError::Internal);
        }
    };
    location
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &provider.client_id)
        .append_pair("redirect_uri", &provider.redirect_uri)
        .append_pair("scope", SCOPE)
        .append_pair("state", &login.state)
        .append_pair("nonce", &login.nonce)
        .append_pair("code_challenge", &sha256_b64url(login.verifier.as_bytes()))
        .append_pair("code_challenge_method", "S256");
    let mut r = see_other(location.as_str());
    r.headers_mut()
        .append(header::SET_COOKIE, ui.cookies.set_login(&sealed));
    r
}

/// Query of `GET /ui/callback` (an authorization response).
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// `GET /ui/callback`: checks the answer, exchanges the code, and starts the session.
pub async fn callback(
    State(ui): State<UiState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    // Whatever happens, the login state is single-use.
    let clear_login = ui.cookies.clear_login();
    let mut r = match complete(&ui, &headers, &q).await {
        Ok((next, access_token, max_age, user)) => {
            tracing::info!(user = %user, "signed in to the UI");
            let mut r = see_other(&next);
            r.headers_mut().append(
                header::SET_COOKIE,
                ui.cookies.set_session(&access_token, max_age),
            );
            r
        }
        Err(e) => {
            tracing::warn!(reason = %e, "UI sign-in refused");
            error_page(&e)
        }
    };
    r.headers_mut().append(header::SET_COOKIE, clear_login);
    r
}

/// The verified outcome of a callback: where to go, the access token, its lifetime and the
/// user's name.
async fn complete(
    ui: &UiState,
    headers: &HeaderMap,
    q: &CallbackQuery,
) -> Result<(String, String, Duration, String), LoginError> {
    let login = session::cookie(headers, session::LOGIN_COOKIE)
        .and_then(|sealed| ui.state_key.open(&sealed))
        .ok_or(LoginError::NoLoginState)?;
    let state_ok = q
        .state
        .as_deref()
        .is_some_and(|s| constant_time_eq(s.as_bytes(), login.state.as_bytes()));
    if !state_ok {
        return Err(LoginError::StateMismatch);
    }
    let provider = &ui.provider;
    let issuer = match &ui.external {
        Some(external) => external.settings().issuer.as_str(),
        None => provider.issuer.as_str(),
    };
    if q.iss.as_deref().is_some_and(|iss| iss != issuer) {
        return Err(LoginError::WrongIssuer);
    }
    if let Some(error) = &q.error {
        // Only the code is kept: the description is the provider's (or a forger's) free text.
        let error = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(LoginError::Provider { error });
    }
    let code = q.code.as_deref().ok_or(LoginError::NoCode)?;
    if let Some(external) = &ui.external {
        let user = external.complete(&ui.cp, code, &login).await?;
        let (token, ttl) = super::external::session_token(&ui.cp, &user).map_err(|e| {
            e.log_if_internal();
            LoginError::Internal
        })?;
        let next = local_path(&login.next).unwrap_or("/").to_string();
        return Ok((next, token, ttl, user.username));
    }
    let tokens = exchange_in_process(&ui.cp, provider, code, &login.verifier).await?;
    let access_token = tokens
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| LoginError::Exchange("no access token in the answer".into()))?;
    let id_token = tokens
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or_else(|| LoginError::Exchange("no ID token in the answer".into()))?;
    let id_sub = verify_id_token(&ui.cp, provider, id_token, &login.nonce)?;
    let principal = crate::oidc::principal_for_access_token(&ui.cp, access_token)
        .await
        .map_err(|e| match e {
            crate::Error::Unauthenticated(why) => LoginError::NotAPerson(why),
            other => {
                other.log_if_internal();
                LoginError::Internal
            }
        })?;
    let claims = crate::oidc::verify_access_token(&ui.cp, access_token)
        .map_err(|e| LoginError::Exchange(format!("the access token does not verify: {e}")))?;
    if claims.get("sub").and_then(Value::as_str) != Some(id_sub.as_str()) {
        return Err(LoginError::IdToken(
            "the ID token and the access token name different people".into(),
        ));
    }
    // The session lives as long as the access token it holds, and no longer than the
    // provider says.
    let now = Utc::now().timestamp();
    let token_left = claims.get("exp").and_then(Value::as_i64).unwrap_or(now) - now;
    let expires_in = tokens
        .get("expires_in")
        .and_then(Value::as_i64)
        .unwrap_or(token_left);
    let max_age = u64::try_from(token_left.min(expires_in)).unwrap_or_default();
    if max_age == 0 {
        return Err(LoginError::Exchange("the access token has expired".into()));
    }
    let next = local_path(&login.next).unwrap_or("/").to_string();
    Ok((
        next,
        access_token.to_string(),
        Duration::from_secs(max_age),
        principal.name,
    ))
}

/// Exchanges the code at the built-in provider's token endpoint, in this process: the same
/// handler a client reaches over HTTP, called without a network hop (the public URL may not
/// be reachable from the control plane itself, e.g. behind a load balancer).
async fn exchange_in_process(
    cp: &ControlPlane,
    provider: &LoginProvider,
    code: &str,
    verifier: &str,
) -> Result<Value, LoginError> {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &provider.redirect_uri)
        .append_pair("client_id", &provider.client_id)
        .append_pair("code_verifier", verifier)
        .finish();
    let request = Request::post("/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .map_err(|e| {
            tracing::error!(error = %e, "building the token request");
            LoginError::Internal
        })?;
    let endpoint = crate::oidc::routes().with_state(cp.clone());
    let response = tokio::time::timeout(EXCHANGE_TIMEOUT, endpoint.oneshot(request))
        .await
        .map_err(|_| LoginError::Exchange("the token endpoint timed out".into()))?
        .unwrap_or_else(|never| match never {});
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), MAX_TOKEN_RESPONSE_BYTES)
        .await
        .map_err(|e| LoginError::Exchange(format!("reading the token response: {e}")))?;
    let json: Value = serde_json::from_slice(&body)
        .map_err(|_| LoginError::Exchange("the token response is not JSON".into()))?;
    if !status.is_success() {
        // The OAuth error code says what went wrong (e.g. `invalid_grant`: a used code).
        let error = json.get("error").and_then(Value::as_str).unwrap_or("error");
        return Err(LoginError::Exchange(format!(
            "the token endpoint answered {} ({error})",
            status.as_u16()
        )));
    }
    Ok(json)
}

/// Checks the ID token (signature, type, issuer, audience, expiry, nonce) and returns its
/// subject.
fn verify_id_token(
    cp: &ControlPlane,
    provider: &LoginProvider,
    id_token: &str,
    nonce: &str,
) -> Result<String, LoginError> {
    let bad = |why: &str| LoginError::IdToken(why.to_string());
    let (header, claims) = cp
        .keys()
        .verify(id_token)
        .map_err(|e| bad(&e.to_string()))?;
    if header.get("typ").and_then(Value::as_str) == Some("at+jwt") {
        return Err(bad("an access token was sent as the ID token"));
    }
    if claims.get("iss").and_then(Value::as_str) != Some(provider.issuer.as_str()) {
        return Err(bad("wrong issuer"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == provider.client_id,
        Some(Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str() == Some(provider.client_id.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(bad("issued to another client"));
    }
    if claims.get("exp").and_then(Value::as_i64).unwrap_or(0) <= Utc::now().timestamp() {
        return Err(bad("expired"));
    }
    let nonce_ok = claims
        .get("nonce")
        .and_then(Value::as_str)
        .is_some_and(|n| constant_time_eq(n.as_bytes(), nonce.as_bytes()));
    if !nonce_ok {
        return Err(bad("wrong nonce"));
    }
    claims
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| bad("no subject"))
}

/// `POST /ui/logout`: ends the UI session and the built-in provider's sign-in session (or the
/// next `/ui/login` would sign the person straight back in).
pub async fn logout(State(ui): State<UiState>, headers: HeaderMap) -> Response {
    // A cross-site form could otherwise sign people out; an absent Origin (old browsers) is
    // let through, as signing out is not worth more.
    if let Some(origin) = headers.get(header::ORIGIN)
        && origin.as_bytes() != ui.origin.as_bytes()
    {
        return (StatusCode::FORBIDDEN, "cross-site sign-out refused").into_response();
    }
    if let Some(op) = session::cookie(&headers, crate::oidc::SESSION_COOKIE) {
        // The provider stores its session ids as SHA-256 digests.
        let deleted = op_session::Entity::delete_by_id(sha256_hex(op.as_bytes()))
            .exec(ui.cp.store().db())
            .await;
        if let Err(e) = deleted {
            tracing::warn!(error = %e, "could not end the provider's session");
        }
    }
    if let Ok(Some(s)) = session::session(&ui.cp, ui.cookies, &headers).await {
        tracing::info!(user = %s.principal.name, "signed out of the UI");
    }
    let mut r = page(
        StatusCode::OK,
        "Signed out",
        "<p>You are signed out.</p><p><a href=\"/ui/login\">Sign in again</a></p>",
    );
    let h = r.headers_mut();
    h.append(header::SET_COOKIE, ui.cookies.clear_session());
    h.append(
        header::SET_COOKIE,
        ui.cookies.clear_root_cookie(crate::oidc::SESSION_COOKIE),
    );
    r
}

fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(location) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => return error_page(&LoginError::Internal),
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error_page(e: &LoginError) -> Response {
    page(
        e.status(),
        "Sign-in failed",
        &format!(
            "<p class=\"error\">{}</p><p><a href=\"/ui/login\">Sign in again</a></p>",
            html_escape(&e.to_string())
        ),
    )
}

/// A plain page (no script) for the sign-in's own answers.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}\
         .error{{color:#b00020}}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = html_escape(title)
    );
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(super::csp::PLAIN_PAGE_POLICY),
    );
    r
}
