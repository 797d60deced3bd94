//! The login in progress: `state`, `nonce` and the PKCE verifier, kept between the redirect to
//! the issuer and the callback in a short-lived sealed cookie.
//!
//! The cookie's name carries a prefix of the `state` (`<session cookie>_login_<12 chars>`), so
//! logins started in several tabs at once do not overwrite each other. The whole `state` is
//! compared in constant time at the callback, and each `state` is accepted once
//! ([`crate::replay`]).

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::random::{self, SecureRng};
use crate::seal::{Purpose, SealError, Sealer};
use crate::{cookie, pkce};

/// Characters of the `state` in the login cookie's name.
const NAME_STATE_CHARS: usize = 12;

/// A login between redirect and callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    /// The `state` parameter (CSRF protection of the callback).
    #[serde(rename = "s")]
    pub state: String,
    /// The `nonce` the ID token must carry (binds the token to this login).
    #[serde(rename = "n")]
    pub nonce: String,
    /// The PKCE code verifier.
    #[serde(rename = "v")]
    pub verifier: String,
    /// Where to send the user afterwards (already checked to be safe).
    #[serde(rename = "t")]
    pub target: String,
    /// The redirect URI sent to the issuer (the token request must repeat it).
    #[serde(rename = "u")]
    pub redirect_uri: String,
    /// When this login stops being accepted.
    #[serde(rename = "x")]
    pub expires: u64,
}

/// Why a callback's login state is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// No login cookie for this `state`.
    #[error("no login in progress for this state")]
    Missing,
    /// The cookie did not open.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// Opened, but not a login state.
    #[error("malformed login state")]
    Malformed,
    /// Older than the login lifetime.
    #[error("login expired")]
    Expired,
    /// The `state` parameter is not the one of the cookie.
    #[error("state mismatch")]
    StateMismatch,
    /// The `state` was already used once.
    #[error("state replayed")]
    Replayed,
}

impl LoginError {
    /// A short, stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            LoginError::Missing => "no_login_state",
            LoginError::Seal(_) | LoginError::Malformed => "invalid_login_state",
            LoginError::Expired => "login_expired",
            LoginError::StateMismatch => "state_mismatch",
            LoginError::Replayed => "state_replayed",
        }
    }
}

impl LoginState {
    /// A new login towards `target`, valid for `ttl_secs`.
    pub fn new(
        rng: &mut dyn SecureRng,
        target: String,
        redirect_uri: String,
        now: u64,
        ttl_secs: u64,
    ) -> LoginState {
        LoginState {
            state: random::token(rng, 32),
            nonce: random::token(rng, 32),
            verifier: pkce::new_verifier(rng),
            target,
            redirect_uri,
            expires: now.saturating_add(ttl_secs),
        }
    }

    /// The PKCE challenge to send.
    pub fn challenge(&self) -> String {
        pkce::challenge(&self.verifier)
    }

    /// Name of the login cookie for `state` next to session cookie `base`; `None` for a
    /// `state` that cannot be ours (too short, or characters outside base64url).
    pub fn cookie_name(base: &str, state: &str) -> Option<String> {
        let prefix = state.get(..NAME_STATE_CHARS)?;
        let ok = prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| format!("{base}_login_{prefix}"))
    }

    /// Seals this state into a cookie value.
    pub fn seal(&self, sealer: &Sealer, rng: &mut dyn SecureRng) -> String {
        // Serializing plain strings and numbers cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        sealer.seal(rng, Purpose::Login, &json)
    }

    /// Finds, opens and checks the login cookie for a callback's `state`.
    pub fn from_callback(
        sealer: &Sealer,
        cookie_header: &str,
        base: &str,
        state: &str,
        now: u64,
    ) -> Result<LoginState, LoginError> {
        let name = LoginState::cookie_name(base, state).ok_or(LoginError::StateMismatch)?;
        let value = cookie::get(cookie_header, &name).ok_or(LoginError::Missing)?;
        let plain = sealer.open(Purpose::Login, value)?;
        let login: LoginState =
            serde_json::from_slice(&plain).map_err(|_| LoginError::Malformed)?;
        if !bool::from(login.state.as_bytes().ct_eq(state.as_bytes())) {
            return Err(LoginError::StateMismatch);
        }
        if now >= login.expires {
            return Err(LoginError::Expired);
        }
        Ok(login)
    }

    /// Whether an ID token's `nonce` is this login's, compared in constant time.
    pub fn nonce_matches(&self, nonce: Option<&str>) -> bool {
        nonce.is_some_and(|n| bool::from(n.as_bytes().ct_eq(self.nonce.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRng;
    use crate::seal::SealKey;

    const NOW: u64 = 1_700_000_000;

    fn setup() -> (Sealer, LoginState, String, String) {
        let sealer = Sealer::new(&SealKey::generate(&mut OsRng), &[]);
        let login = LoginState::new(&mut OsRng, "/x".into(), "https://a/cb".into(), NOW, 600);
        let name = LoginState::cookie_name("paved_session", &login.state).expect("name");
        let header = format!("other=1; {name}={}", login.seal(&sealer, &mut OsRng));
        (sealer, login, name, header)
    }

    #[test]
    fn the_callback_finds_its_login_by_state() {
        let (sealer, login, name, header) = setup();
        assert!(name.starts_with("paved_session_login_"));
        let back = LoginState::from_callback(&sealer, &header, "paved_session", &login.state, NOW)
            .expect("login");
        assert_eq!(back, login);
        assert!(back.nonce_matches(Some(&login.nonce)));
        assert!(!back.nonce_matches(Some("other")));
        assert!(!back.nonce_matches(None));
    }

    #[test]
    fn a_state_that_differs_after_the_prefix_is_refused() {
        let (sealer, login, _, header) = setup();
        let mut forged = login.state.clone();
        forged.push('x');
        assert_eq!(
            LoginState::from_callback(&sealer, &header, "paved_session", &forged, NOW),
            Err(LoginError::StateMismatch)
        );
    }

    #[test]
    fn a_callback_without_its_cookie_is_refused() {
        let (sealer, _, _, header) = setup();
        let other = random::token(&mut OsRng, 32);
        assert_eq!(
            LoginState::from_callback(&sealer, &header, "paved_session", &other, NOW),
            Err(LoginError::Missing)
        );
        assert_eq!(
            LoginState::from_callback(&sealer, &header, "paved_session", "a;b", NOW),
            Err(LoginError::StateMismatch)
        );
    }

    #[test]
    fn an_old_login_is_refused() {
        let (sealer, login, _, header) = setup();
        assert_eq!(
            LoginState::from_callback(&sealer, &header, "paved_session", &login.state, NOW + 600),
            Err(LoginError::Expired)
        );
    }

    #[test]
    fn the_pkce_challenge_is_s256_of_the_verifier() {
        let (_, login, _, _) = setup();
        assert_eq!(login.challenge(), pkce::challenge(&login.verifier));
        assert!(pkce::valid_verifier(&login.verifier));
    }
}
