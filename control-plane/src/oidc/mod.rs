//! A minimal, standards-compliant OpenID provider for local users (the small-install mode, see
//! docs/identity.md): discovery, JWKS, the authorization code flow with PKCE `S256` required,
//! a plain HTML login form, the token endpoint (client secret or PKCE; ID and access tokens
//! are ES256 JWTs), and userinfo. It lets `paved up` sign people in with nothing outside, and
//! the gateway's `authn` plugin treats it like any other provider. It is not a replacement for
//! a real identity provider: no MFA, no refresh tokens, no consent screen, no federation.

pub mod keys;

use std::time::Duration;

use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::secrets::{constant_time_eq, random_token, sha256_b64url, sha256_hex};
use crate::services::ControlPlane;
use crate::services::redirect_uri_matches;
use crate::storage::entities::{oauth_client, oidc_code, op_session, user};
use crate::{Error, Result};

pub use keys::{JwtError, KeySet};

/// Cookie holding the provider's sign-in session.
pub const SESSION_COOKIE: &str = "paved_op_session";
/// Cookie holding the login form's anti-forgery token.
pub const CSRF_COOKIE: &str = "paved_op_csrf";

/// The provider's routes (mounted by [`crate::http::router`] when enabled).
pub fn routes() -> Router<ControlPlane> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/authorize", get(authorize_get).post(authorize_post))
        .route("/token", axum::routing::post(token))
        .route("/userinfo", get(userinfo).post(userinfo))
}

/// The discovery document.
pub fn discovery_document(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "groups"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp",
            "name", "preferred_username", "email", "groups"],
        "authorization_response_iss_parameter_supported": true,
    })
}

async fn discovery(State(cp): State<ControlPlane>) -> Response {
    cached_json(discovery_document(&cp.config().issuer()))
}

async fn jwks(State(cp): State<ControlPlane>) -> Response {
    cached_json(cp.keys().jwks())
}

fn cached_json(v: Value) -> Response {
    let mut r = Json(v).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// Parameters of an authorization request (query of `GET /authorize`, or the hidden fields of
/// the login form), plus the form's own fields.
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    // The login form.
    username: Option<String>,
    password: Option<String>,
    csrf: Option<String>,
}

/// A validated authorization request.
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    prompt: Option<String>,
}

/// What went wrong with an authorization request.
enum AuthorizeError {
    /// Shown to the user: the client or redirect URI cannot be trusted with a redirect.
    Page(StatusCode, String),
    /// Sent back to the client's redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

/// `s` safe inside HTML text and quoted attributes (the server-rendered sign-in pages).
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}}\
         label{{display:block;margin:.75rem 0 .25rem}}input{{width:100%;padding:.4rem;box-sizing:border-box}}\
         button{{margin-top:1rem;padding:.5rem 1rem}}.error{{color:#b00020}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = html_escape(title)
    );
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    r
}

fn redirect(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(base) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => base.to_string(),
    }
}

impl AuthorizeError {
    fn into_response(self, issuer: &str) -> Response {
        match self {
            AuthorizeError::Page(status, message) => page(
                status,
                "Sign-in error",
                &format!("<p class=\"error\">{}</p>", html_escape(&message)),
            ),
            AuthorizeError::Redirect {
                redirect_uri,
                state,
                error,
                description,
            } => {
                let mut pairs = vec![
                    ("error", error),
                    ("error_description", description.as_str()),
                ];
                if let Some(s) = state.as_deref() {
                    pairs.push(("state", s));
                }
                pairs.push(("iss", issuer));
                redirect(&with_query(&redirect_uri, &pairs))
            }
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(
    cp: &ControlPlane,
    name: &str,
    value: &str,
    path: &str,
    max_age: Duration,
) -> HeaderValue {
    let secure = if cp.config().issuer().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        max_age.as_secs()
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn valid_pkce(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

async fn validate(
    cp: &ControlPlane,
    p: &AuthorizeParams,
) -> std::result::Result<AuthRequest, AuthorizeError> {
    let bad_page = |m: &str| AuthorizeError::Page(StatusCode::BAD_REQUEST, m.to_string());
    let client_id = p
        .client_id
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or_else(|| bad_page("The request names no client (client_id)."))?;
    let client: oauth_client::Model = cp
        .find_client(client_id)
        .await
        .map_err(|e| {
            e.log_if_internal();
            AuthorizeError::Page(StatusCode::INTERNAL_SERVER_ERROR, "Internal error.".into())
        })?
        .ok_or_else(|| bad_page("Unknown client."))?;
    let redirect_uri = p
        .redirect_uri
        .as_deref()
        .filter(|s| s.len() <= 2048)
        .ok_or_else(|| bad_page("The request has no redirect_uri."))?;
    if !client
        .redirect_uri_list()
        .iter()
        .any(|r| redirect_uri_matches(r, redirect_uri))
    {
        return Err(bad_page(
            "The redirect_uri is not registered for this client.",
        ));
    }
    let state = p.state.clone().filter(|s| !s.is_empty());
    let fail = |error: &'static str, description: &str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.to_string(),
        state: state.clone(),
        error,
        description: description.to_string(),
    };
    if state.as_ref().is_some_and(|s| s.len() > 1024)
        || p.nonce.as_ref().is_some_and(|s| s.len() > 1024)
    {
        return Err(fail(
            "invalid_request",
            "state and nonce are at most 1024 characters",
        ));
    }
    if p.response_type.as_deref() != Some("code") {
        return Err(fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    let scope = p.scope.clone().unwrap_or_default();
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(fail("invalid_scope", "the scope must include openid"));
    }
    let scope = scope
        .split(' ')
        .filter(|s| matches!(*s, "openid" | "profile" | "email" | "groups"))
        .collect::<Vec<_>>()
        .join(" ");
    let Some(challenge) = p.code_challenge.as_deref() else {
        return Err(fail(
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        ));
    };
    if p.code_challenge_method.as_deref() != Some("S256") {
        return Err(fail(
            "invalid_request",
            "code_challenge_method must be S256",
        ));
    }
    if !valid_pkce(challenge) {
        return Err(fail("invalid_request", "code_challenge is malformed"));
    }
    Ok(AuthRequest {
        client_id: client.client_id,
        redirect_uri: redirect_uri.to_string(),
        scope,
        state,
        nonce: p.nonce.clone().filter(|s| !s.is_empty()),
        code_challenge: challenge.to_string(),
        prompt: p.prompt.clone(),
    })
}

fn login_form(req: &AuthRequest, csrf: &str, error: Option<&str>) -> String {
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            html_escape(value)
        )
    };
    let mut fields = String::new();
    fields.push_str(&hidden("response_type", "code"));
    fields.push_str(&hidden("client_id", &req.client_id));
    fields.push_str(&hidden("redirect_uri", &req.redirect_uri));
    fields.push_str(&hidden("scope", &req.scope));
    fields.push_str(&hidden("code_challenge", &req.code_challenge));
    fields.push_str(&hidden("code_challenge_method", "S256"));
    fields.push_str(&hidden("csrf", csrf));
    if let Some(s) = &req.state {
        fields.push_str(&hidden("state", s));
    }
    if let Some(n) = &req.nonce {
        fields.push_str(&hidden("nonce", n));
    }
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", html_escape(e)))
        .unwrap_or_default();
    format!(
        "{error}<p>Sign in to continue to <strong>{client}</strong>.</p>\
         <form method=\"post\" action=\"/authorize\">{fields}\
         <label for=\"username\">User name</label>\
         <input id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in</button></form>",
        client = html_escape(&req.client_id)
    )
}

fn show_login(
    cp: &ControlPlane,
    req: &AuthRequest,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let csrf = random_token(24);
    let mut r = page(status, "Sign in", &login_form(req, &csrf, error));
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            cp,
            CSRF_COOKIE,
            &csrf,
            "/authorize",
            Duration::from_secs(1800),
        ),
    );
    r
}

/// The user of a valid sign-in session cookie.
async fn session_user(
    cp: &ControlPlane,
    headers: &HeaderMap,
) -> Result<Option<(user::Model, DateTime<Utc>)>> {
    let Some(value) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(s) = op_session::Entity::find_by_id(sha256_hex(value.as_bytes()))
        .one(cp.store().db())
        .await?
    else {
        return Ok(None);
    };
    if s.expires_at <= Utc::now() {
        return Ok(None);
    }
    Ok(cp
        .find_user(s.user_id)
        .await?
        .filter(|u| !u.disabled)
        .map(|u| (u, s.auth_time)))
}

async fn issue_code(
    cp: &ControlPlane,
    req: &AuthRequest,
    user: &user::Model,
    auth_time: DateTime<Utc>,
) -> Result<Response> {
    let code = random_token(32);
    let now = Utc::now();
    let db = cp.store().db();
    // Expired codes are useless; clear them as new ones are made.
    oidc_code::Entity::delete_many()
        .filter(oidc_code::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    oidc_code::ActiveModel {
        code_hash: Set(sha256_hex(code.as_bytes())),
        client_id: Set(req.client_id.clone()),
        redirect_uri: Set(req.redirect_uri.clone()),
        user_id: Set(user.id),
        scope: Set(req.scope.clone()),
        nonce: Set(req.nonce.clone()),
        code_challenge: Set(req.code_challenge.clone()),
        auth_time: Set(auth_time),
        expires_at: Set(now
            + chrono::Duration::from_std(cp.config().oidc.code_ttl)
                .unwrap_or_else(|_| chrono::Duration::seconds(60))),
    }
    .insert(db)
    .await?;
    tracing::info!(user = %user.username, client = %req.client_id, "authorization code issued");
    let issuer = cp.config().issuer();
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = req.state.as_deref() {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer.as_str()));
    Ok(redirect(&with_query(&req.redirect_uri, &pairs)))
}

fn internal(e: Error) -> Response {
    e.log_if_internal();
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Sign-in error",
        "<p class=\"error\">Internal error.</p>",
    )
}

async fn authorize_get(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    let issuer = cp.config().issuer();
    let req = match validate(&cp, &params).await {
        Ok(r) => r,
        Err(e) => return e.into_response(&issuer),
    };
    let session = match session_user(&cp, &headers).await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    match (session, req.prompt.as_deref()) {
        (Some((user, auth_time)), p) if p != Some("login") => {
            issue_code(&cp, &req, &user, auth_time)
                .await
                .unwrap_or_else(internal)
        }
        (None, Some("none")) => AuthorizeError::Redirect {
            redirect_uri: req.redirect_uri.clone(),
            state: req.state.clone(),
            error: "login_required",
            description: "the user is not signed in".into(),
        }
        .into_response(&issuer),
        _ => show_login(&cp, &req, StatusCode::OK, None),
    }
}

async fn authorize_post(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    Form(params): Form<AuthorizeParams>,
) -> Response {
    let issuer = cp.config().issuer();
    let req = match validate(&cp, &params).await {
        Ok(r) => r,
        Err(e) => return e.into_response(&issuer),
    };
    // The form's token must match its cookie: another site cannot post a login (login CSRF).
    let csrf_ok = match (cookie(&headers, CSRF_COOKIE), params.csrf.as_deref()) {
        (Some(c), Some(f)) => constant_time_eq(c.as_bytes(), f.as_bytes()),
        _ => false,
    };
    if !csrf_ok {
        return show_login(
            &cp,
            &req,
            StatusCode::BAD_REQUEST,
            Some("The form expired. Please sign in again."),
        );
    }
    let (Some(username), Some(password)) = (params.username.as_deref(), params.password.as_deref())
    else {
        return show_login(
            &cp,
            &req,
            StatusCode::BAD_REQUEST,
            Some("Enter a user name and a password."),
        );
    };
    if username.len() > 255 || password.len() > 1024 {
        return show_login(
            &cp,
            &req,
            StatusCode::BAD_REQUEST,
            Some("Wrong user name or password."),
        );
    }
    let user = match cp.authenticate_password(username, password).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            return show_login(
                &cp,
                &req,
                StatusCode::UNAUTHORIZED,
                Some("Wrong user name or password."),
            );
        }
        Err(e) => return internal(e),
    };
    let now = Utc::now();
    let session = random_token(32);
    let ttl = cp.config().oidc.session_ttl;
    let stored = op_session::ActiveModel {
        id_hash: Set(sha256_hex(session.as_bytes())),
        user_id: Set(user.id),
        auth_time: Set(now),
        expires_at: Set(
            now + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::hours(8))
        ),
    }
    .insert(cp.store().db())
    .await;
    if let Err(e) = stored {
        return internal(e.into());
    }
    let mut r = match issue_code(&cp, &req, &user, now).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&cp, SESSION_COOKIE, &session, "/", ttl),
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&cp, CSRF_COOKIE, "", "/authorize", Duration::ZERO),
    );
    r
}

/// The token request form.
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    code_verifier: Option<String>,
}

fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"paved\""),
        );
    }
    r
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: form-encoded id and
/// secret) or the form.
fn client_credentials(
    headers: &HeaderMap,
    form: &TokenForm,
) -> std::result::Result<(String, Option<String>), ()> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(b64) = value.strip_prefix("Basic ")
    {
        let decoded = STANDARD.decode(b64.trim()).map_err(|_| ())?;
        let text = String::from_utf8(decoded).map_err(|_| ())?;
        let (id, secret) = text.split_once(':').ok_or(())?;
        let id = percent_decode(id);
        if form.client_id.as_deref().is_some_and(|f| f != id) {
            return Err(());
        }
        return Ok((id, Some(percent_decode(secret))));
    }
    let id = form.client_id.clone().ok_or(())?;
    Ok((id, form.client_secret.clone()))
}

async fn token(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    match exchange(&cp, &headers, &form).await {
        Ok(r) => r,
        Err(e) => {
            e.log_if_internal();
            token_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )
        }
    }
}

async fn exchange(cp: &ControlPlane, headers: &HeaderMap, form: &TokenForm) -> Result<Response> {
    if form.grant_type.as_deref() != Some("authorization_code") {
        return Ok(token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code is supported",
        ));
    }
    let Ok((client_id, secret)) = client_credentials(headers, form) else {
        return Ok(token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        ));
    };
    let Some(client) = cp.find_client(&client_id).await? else {
        return Ok(token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        ));
    };
    if let Some(expected) = &client.secret_hash {
        let presented = secret.as_deref().map(|s| sha256_hex(s.as_bytes()));
        let ok = presented.is_some_and(|p| constant_time_eq(p.as_bytes(), expected.as_bytes()));
        if !ok {
            tracing::warn!(client = %client_id, "token request with a wrong client secret");
            return Ok(token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            ));
        }
    }
    let Some(code) = form.code.as_deref().filter(|c| c.len() <= 256) else {
        return Ok(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code is required",
        ));
    };
    let hash = sha256_hex(code.as_bytes());
    let db = cp.store().db();
    let Some(stored) = oidc_code::Entity::find_by_id(hash.clone()).one(db).await? else {
        return Ok(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown, used or expired code",
        ));
    };
    // Single use: whoever deletes the row owns the code, even if two exchanges race.
    let deleted = oidc_code::Entity::delete_many()
        .filter(oidc_code::Column::CodeHash.eq(hash))
        .exec(db)
        .await?;
    if deleted.rows_affected != 1 {
        return Ok(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown, used or expired code",
        ));
    }
    if stored.client_id != client.client_id || stored.expires_at <= Utc::now() {
        return Ok(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown, used or expired code",
        ));
    }
    if form.redirect_uri.as_deref() != Some(stored.redirect_uri.as_str()) {
        return Ok(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri does not match the authorization request",
        ));
    }
    let verifier_ok = form.code_verifier.as_deref().is_some_and(|v| {
        valid_pkce(v)
            && constant_time_eq(
                sha256_b64url(v.as_bytes()).as_bytes(),
                stored.code_challenge.as_bytes(),
            )
    });
    if !verifier_ok {
        return Ok(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code_verifier does not match the code_challenge",
        ));
    }
    let Some(user) = cp.find_user(stored.user_id).await?.filter(|u| !u.disabled) else {
        return Ok(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the user is gone",
        ));
    };
    let issuer = cp.config().issuer();
    let now = Utc::now().timestamp();
    let oidc = &cp.config().oidc;
    let scopes: Vec<&str> = stored.scope.split(' ').collect();
    let mut id_claims = json!({
        "iss": issuer,
        "sub": user.id.to_string(),
        "aud": client.client_id,
        "azp": client.client_id,
        "iat": now,
        "exp": now + oidc.id_token_ttl.as_secs() as i64,
        "auth_time": stored.auth_time.timestamp(),
    });
    if let Some(n) = &stored.nonce {
        id_claims["nonce"] = json!(n);
    }
    add_profile_claims(&mut id_claims, &user, &scopes);
    let mut at_claims = json!({
        "iss": issuer,
        "sub": user.id.to_string(),
        "aud": client.client_id,
        "client_id": client.client_id,
        "iat": now,
        "exp": now + oidc.access_token_ttl.as_secs() as i64,
        "jti": random_token(16),
        "scope": stored.scope,
    });
    if scopes.contains(&"groups") {
        at_claims["groups"] = json!(user.group_list());
    }
    let id_token = cp.keys().sign("JWT", &id_claims)?;
    let access_token = cp.keys().sign("at+jwt", &at_claims)?;
    tracing::info!(user = %user.username, client = %client.client_id, "tokens issued");
    let mut r = Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": oidc.access_token_ttl.as_secs(),
        "id_token": id_token,
        "scope": stored.scope,
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(r)
}

fn add_profile_claims(claims: &mut Value, user: &user::Model, scopes: &[&str]) {
    if scopes.contains(&"profile") {
        claims["preferred_username"] = json!(user.username);
        claims["name"] = json!(
            user.display_name
                .clone()
                .unwrap_or_else(|| user.username.clone())
        );
    }
    if scopes.contains(&"email")
        && let Some(e) = &user.email
    {
        claims["email"] = json!(e);
    }
    if scopes.contains(&"groups") {
        claims["groups"] = json!(user.group_list());
    }
}

/// Verifies an access token issued by this provider (signature, issuer, type, expiry) and
/// returns its claims.
pub fn verify_access_token(cp: &ControlPlane, token: &str) -> std::result::Result<Value, JwtError> {
    let (header, claims) = cp.keys().verify(token)?;
    if header.get("typ").and_then(Value::as_str) != Some("at+jwt") {
        return Err(JwtError::Claims("not an access token".into()));
    }
    if claims.get("iss").and_then(Value::as_str) != Some(cp.config().issuer().as_str()) {
        return Err(JwtError::Claims("wrong issuer".into()));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp <= Utc::now().timestamp() {
        return Err(JwtError::Claims("expired".into()));
    }
    Ok(claims)
}

/// The person behind an access token issued to the control plane's UI client (how people
/// authenticate on the API after an OpenID sign-in).
pub async fn principal_for_access_token(cp: &ControlPlane, token: &str) -> Result<Principal> {
    let unauthenticated =
        |why: &str| Error::Unauthenticated(format!("invalid access token: {why}"));
    let claims = verify_access_token(cp, token).map_err(|e| unauthenticated(&e.to_string()))?;
    if claims.get("aud").and_then(Value::as_str) != Some(cp.config().oidc.ui_client_id.as_str()) {
        return Err(unauthenticated("issued to another client"));
    }
    let id: i64 = claims
        .get("sub")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| unauthenticated("no subject"))?;
    let user = cp
        .find_user(id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| unauthenticated("unknown user"))?;
    cp.principal_for_user(&user)
}

async fn userinfo(State(cp): State<ControlPlane>, headers: HeaderMap) -> Response {
    let deny = |why: &str| {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_token", "error_description": why})),
        )
            .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        r
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return deny("a bearer access token is required");
    };
    let claims = match verify_access_token(&cp, token.trim()) {
        Ok(c) => c,
        Err(e) => return deny(&e.to_string()),
    };
    let id: Option<i64> = claims
        .get("sub")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok());
    let user = match id {
        Some(id) => match cp.find_user(id).await {
            Ok(u) => u.filter(|u| !u.disabled),
            Err(e) => return internal(e),
        },
        None => None,
    };
    let Some(user) = user else {
        return deny("unknown user");
    };
    let scope = claims.get("scope").and_then(Value::as_str).unwrap_or("");
    let scopes: Vec<&str> = scope.split(' ').collect();
    let mut out = json!({"sub": user.id.to_string()});
    add_profile_claims(&mut out, &user, &scopes);
    let mut r = Json(out).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn pkce_strings_are_checked() {
        assert!(valid_pkce(&"a".repeat(43)));
        assert!(!valid_pkce(&"a".repeat(42)));
        assert!(!valid_pkce(&format!("{}+", "a".repeat(43))));
    }
}
