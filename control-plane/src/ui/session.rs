//! People's sessions in the UI: the session cookie (an access token of the UI client), the
//! signed, short-lived login-state cookie of a sign-in in progress, and the `next` check that
//! keeps redirects on this site.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth::Principal;
use crate::services::ControlPlane;
use crate::{Error, Result};

/// Session cookie over plain HTTP (development, `paved up`).
pub const SESSION_COOKIE: &str = "paved_session";
/// Session cookie over HTTPS: the `__Host-` prefix makes browsers refuse it unless it is
/// `Secure`, host-only and `Path=/`, so a sibling subdomain cannot plant or shadow it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-paved_session";
/// Cookie holding the state, nonce, PKCE verifier and `next` of a sign-in in progress.
pub const LOGIN_COOKIE: &str = "paved_login";
/// Path of [`LOGIN_COOKIE`]: only the callback needs it.
pub const LOGIN_COOKIE_PATH: &str = "/ui/callback";
/// How long a sign-in may take, from `/ui/login` to `/ui/callback`.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Longest `next` path kept across a sign-in.
pub const MAX_NEXT_CHARS: usize = 2048;

/// How the UI's cookies are written: `Secure` (and the `__Host-` name) when the public URL is
/// HTTPS.
#[derive(Debug, Clone, Copy)]
pub struct Cookies {
    /// The public URL is `https://`.
    pub secure: bool,
}

impl Cookies {
    /// The session cookie's name.
    pub fn session_name(self) -> &'static str {
        if self.secure {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }

    fn build(self, name: &str, value: &str, path: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        // Values are base64url or JWTs (no `;`, space or quote); a failure can only be a bug,
        // and an empty header sets nothing.
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            max_age.as_secs()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// `Set-Cookie` of a session holding `access_token` for `max_age`.
    pub fn set_session(self, access_token: &str, max_age: Duration) -> HeaderValue {
        self.build(self.session_name(), access_token, "/", max_age)
    }

    /// `Set-Cookie` that ends the session.
    pub fn clear_session(self) -> HeaderValue {
        self.build(self.session_name(), "", "/", Duration::ZERO)
    }

    /// `Set-Cookie` of a sealed login state.
    pub fn set_login(self, sealed: &str) -> HeaderValue {
        self.build(LOGIN_COOKIE, sealed, LOGIN_COOKIE_PATH, LOGIN_TTL)
    }

    /// `Set-Cookie` that removes the login state.
    pub fn clear_login(self) -> HeaderValue {
        self.build(LOGIN_COOKIE, "", LOGIN_COOKIE_PATH, Duration::ZERO)
    }

    /// `Set-Cookie` that removes another cookie set with `Path=/` (the provider's session).
    pub fn clear_root_cookie(self, name: &str) -> HeaderValue {
        self.build(name, "", "/", Duration::ZERO)
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A signed-in person: who, the access token their cookie holds, and when it expires.
#[derive(Debug, Clone)]
pub struct Session {
    /// The person.
    pub principal: Principal,
    /// Unix time at which the access token (hence the session) ends.
    pub expires_at: i64,
}

impl Session {
    /// Time left before the session ends.
    pub fn remaining(&self) -> Duration {
        Duration::from_secs(
            u64::try_from(self.expires_at - Utc::now().timestamp()).unwrap_or_default(),
        )
    }
}

/// The `exp` claim of a JWT whose signature has been checked already.
pub fn jwt_expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_i64()
}

/// The person of the request's session cookie: `Ok(None)` without a cookie or with one that
/// no longer authenticates (expired, user disabled, another client's token); `Err` only when
/// the check itself failed (database).
pub async fn session(
    cp: &ControlPlane,
    cookies: Cookies,
    headers: &HeaderMap,
) -> Result<Option<Session>> {
    let Some(token) = cookie(headers, cookies.session_name()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    // The same check as a bearer access token on /graphql: signature, issuer, type, expiry,
    // audience = the UI client, and the user (role, teams) read from the database.
    match crate::oidc::principal_for_access_token(cp, &token).await {
        Ok(principal) => Ok(jwt_expiry(&token).map(|expires_at| Session {
            principal,
            expires_at,
        })),
        Err(Error::Unauthenticated(why)) => {
            tracing::debug!(reason = %why, "UI session cookie refused");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What a sign-in in progress remembers between `/ui/login` and `/ui/callback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    /// The `state` sent to the provider (binds the callback to this browser).
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE `code_verifier`.
    pub verifier: String,
    /// Where to go after signing in (a local path).
    pub next: String,
    /// Unix time after which the state is refused.
    pub exp: i64,
}

type HmacSha256 = Hmac<Sha256>;

/// Key of the login-state cookie's MAC.
#[derive(Clone)]
pub struct StateKey([u8; 32]);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

impl StateKey {
    /// Derives the key from the provider's signing key, so that every replica (and a restart
    /// in the middle of a sign-in) agrees on it without one more stored secret; the label keeps
    /// it distinct from any other use of that key.
    pub fn derive(signing_key_pem: &str) -> Result<StateKey> {
        let mut mac = HmacSha256::new_from_slice(signing_key_pem.as_bytes())
            .map_err(|e| Error::Internal(format!("deriving the login-state key: {e}")))?;
        mac.update(b"paved-ui login-state cookie v1");
        Ok(StateKey(mac.finalize().into_bytes().into()))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length: 32 bytes cannot fail.
        HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC key length"))
    }

    /// `base64url(json).base64url(HMAC-SHA256)`.
    pub fn seal(&self, state: &LoginState) -> Result<String> {
        let json = serde_json::to_vec(state)
            .map_err(|e| Error::Internal(format!("encoding the login state: {e}")))?;
        let body = URL_SAFE_NO_PAD.encode(json);
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        Ok(format!("{body}.{tag}"))
    }

    /// The login state of a sealed value, if its MAC verifies (in constant time) and it has
    /// not expired.
    pub fn open(&self, sealed: &str) -> Option<LoginState> {
        let (body, tag) = sealed.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&tag).ok()?;
        let state: LoginState = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (state.exp > Utc::now().timestamp()).then_some(state)
    }
}

/// `next` if it is a path on this site, else `None`. A redirect to anything else would make
/// the sign-in an open redirect: `//host` and `/\host` are other hosts to browsers, and they
/// drop tabs and newlines from URLs (`/\t/host` is `//host`). Paths under `/ui/` are refused
/// too: landing on `/ui/login` again would loop.
pub fn local_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/ui/")
        && next.len() <= MAX_NEXT_CHARS
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_kept() {
        for good in ["/", "/apps", "/apps/web?tab=history", "/apps/a%2Fb"] {
            assert_eq!(local_path(good), Some(good), "{good}");
        }
        for bad in [
            "",
            "apps",
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ui/login?next=/",
            "javascript:alert(1)",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
        assert_eq!(
            local_path(&format!("/{}", "a".repeat(MAX_NEXT_CHARS))),
            None
        );
    }

    fn state(exp: i64) -> LoginState {
        LoginState {
            state: "s".into(),
            nonce: "n".into(),
            verifier: "v".into(),
            next: "/apps".into(),
            exp,
        }
    }

    #[test]
    fn login_state_round_trips_and_refuses_tampering_and_age() {
        let key = StateKey::derive("pem").expect("key");
        let fresh = state(Utc::now().timestamp() + 60);
        let sealed = key.seal(&fresh).expect("seal");
        assert_eq!(key.open(&sealed), Some(fresh.clone()));

        let other = StateKey::derive("another pem").expect("key");
        assert_eq!(other.open(&sealed), None, "another key");

        let (body, tag) = sealed.split_once('.').expect("two parts");
        let mut forged = fresh.clone();
        forged.next = "//evil.example".into();
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        assert_eq!(
            key.open(&format!("{forged_body}.{tag}")),
            None,
            "changed body"
        );
        assert_eq!(key.open(body), None, "no tag");

        let old = key.seal(&state(Utc::now().timestamp() - 1)).expect("seal");
        assert_eq!(key.open(&old), None, "expired");
    }

    #[test]
    fn cookies_carry_the_security_attributes() {
        let plain = Cookies { secure: false };
        let v = plain.set_session("tok", Duration::from_secs(3600));
        assert_eq!(
            v.to_str().expect("ascii"),
            "paved_session=tok; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"
        );
        let tls = Cookies { secure: true };
        let v = tls.set_session("tok", Duration::from_secs(60));
        assert_eq!(
            v.to_str().expect("ascii"),
            "__Host-paved_session=tok; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(
            tls.clear_login()
                .to_str()
                .expect("ascii")
                .starts_with("paved_login=; Path=/ui/callback; Max-Age=0;")
        );
    }
}
