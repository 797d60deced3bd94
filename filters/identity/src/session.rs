//! The browser session: who signed in, until when, and when to check back with the issuer,
//! sealed into one cookie ([`crate::seal`]).
//!
//! The session is self-contained (no server-side store, so any gateway replica can serve any
//! request) and bounded: it must fit a 4 KB cookie, so when it does not, the refresh token is
//! dropped first (the session then simply ends at its expiry), then the extra claims; a
//! session that still does not fit is refused rather than silently losing groups.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cookie::MAX_COOKIE_BYTES;
use crate::identity::{Identity, Kind, Source};
use crate::random::SecureRng;
use crate::seal::{Purpose, SealError, Sealer};

/// A signed-in user's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Subject.
    #[serde(rename = "s")]
    pub subject: String,
    /// E-mail address.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Groups.
    #[serde(rename = "g", default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Other claims exposed to authz.
    #[serde(rename = "c", default, skip_serializing_if = "Map::is_empty")]
    pub claims: Map<String, Value>,
    /// The issuer that authenticated the user.
    #[serde(rename = "i")]
    pub issuer: String,
    /// The OAuth client the session was made for.
    #[serde(rename = "a")]
    pub client_id: String,
    /// When the user signed in (seconds since the epoch).
    #[serde(rename = "t")]
    pub created: u64,
    /// When the session ends, whatever happens (absolute lifetime).
    #[serde(rename = "x")]
    pub expires: u64,
    /// When to check back with the issuer (refresh token grant), if there is a refresh token.
    #[serde(rename = "r")]
    pub refresh_at: u64,
    /// The issuer's refresh token, if it gave one and it fits.
    #[serde(rename = "rt", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Why a session cookie is not a valid session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Did not open (tampered, another key, malformed).
    #[error(transparent)]
    Seal(#[from] SealError),
    /// Opened, but the content is not a session.
    #[error("malformed session")]
    Malformed,
    /// Past its expiry.
    #[error("session expired")]
    Expired,
    /// Made for another issuer or client (configuration changed).
    #[error("session from another issuer or client")]
    WrongIssuer,
    /// Does not fit in a cookie even without refresh token and extra claims.
    #[error("session too large for a cookie")]
    TooLarge,
}

impl SessionError {
    /// A short, stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            SessionError::Seal(_) | SessionError::Malformed => "invalid_session",
            SessionError::Expired => "session_expired",
            SessionError::WrongIssuer => "invalid_session",
            SessionError::TooLarge => "session_too_large",
        }
    }
}

impl Session {
    /// Seals the session into a cookie value for cookie `name`, shedding the refresh token and
    /// then the extra claims if that is what it takes to fit.
    pub fn seal(
        &self,
        sealer: &Sealer,
        rng: &mut dyn SecureRng,
        name: &str,
    ) -> Result<String, SessionError> {
        let mut session = self.clone();
        for step in 0..3 {
            match step {
                1 => session.refresh_token = None,
                2 => session.claims.clear(),
                _ => {}
            }
            let json = serde_json::to_vec(&session).map_err(|_| SessionError::Malformed)?;
            let sealed = sealer.seal(rng, Purpose::Session, &json);
            if name.len() + 1 + sealed.len() <= MAX_COOKIE_BYTES {
                return Ok(sealed);
            }
        }
        Err(SessionError::TooLarge)
    }

    /// Opens a session cookie value and checks it is current and for this issuer and client.
    pub fn open(
        sealer: &Sealer,
        value: &str,
        now: u64,
        issuer: &str,
        client_id: &str,
    ) -> Result<Session, SessionError> {
        let plain = sealer.open(Purpose::Session, value)?;
        let session: Session =
            serde_json::from_slice(&plain).map_err(|_| SessionError::Malformed)?;
        if session.issuer != issuer || session.client_id != client_id {
            return Err(SessionError::WrongIssuer);
        }
        if now >= session.expires {
            return Err(SessionError::Expired);
        }
        Ok(session)
    }

    /// Whether it is time to check back with the issuer (and there is a way to).
    pub fn wants_refresh(&self, now: u64) -> bool {
        self.refresh_token.is_some() && now >= self.refresh_at
    }

    /// The identity this session proves.
    pub fn identity(&self) -> Identity {
        Identity {
            subject: self.subject.clone(),
            email: self.email.clone(),
            groups: self.groups.clone(),
            client_id: None,
            kind: Kind::User,
            source: Source::Session,
            issuer: self.issuer.clone(),
            claims: self.claims.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRng;
    use crate::seal::SealKey;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn sealer() -> Sealer {
        Sealer::new(&SealKey::generate(&mut OsRng), &[])
    }

    fn session() -> Session {
        let mut claims = Map::new();
        claims.insert("email_verified".into(), json!(true));
        Session {
            subject: "alice".into(),
            email: Some("alice@example.com".into()),
            groups: vec!["staff".into()],
            claims,
            issuer: "https://idp.example".into(),
            client_id: "gw".into(),
            created: NOW,
            expires: NOW + 3600,
            refresh_at: NOW + 600,
            refresh_token: Some("rt".into()),
        }
    }

    #[test]
    fn a_session_round_trips_through_its_cookie() {
        let s = sealer();
        let value = session()
            .seal(&s, &mut OsRng, "paved_session")
            .expect("fits");
        let back = Session::open(&s, &value, NOW + 1, "https://idp.example", "gw").expect("opens");
        assert_eq!(back, session());
        assert_eq!(back.identity().source, Source::Session);
    }

    #[test]
    fn a_tampered_cookie_is_refused() {
        let s = sealer();
        let value = session()
            .seal(&s, &mut OsRng, "paved_session")
            .expect("fits");
        let mut chars: Vec<char> = value.chars().collect();
        let i = chars.len() / 2;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert_eq!(
            Session::open(&s, &tampered, NOW, "https://idp.example", "gw"),
            Err(SessionError::Seal(SealError::Tampered))
        );
    }

    #[test]
    fn an_expired_session_is_refused() {
        let s = sealer();
        let value = session()
            .seal(&s, &mut OsRng, "paved_session")
            .expect("fits");
        let err = Session::open(&s, &value, NOW + 3600, "https://idp.example", "gw");
        assert_eq!(err, Err(SessionError::Expired));
    }

    #[test]
    fn a_session_of_another_issuer_is_refused() {
        let s = sealer();
        let value = session()
            .seal(&s, &mut OsRng, "paved_session")
            .expect("fits");
        let err = Session::open(&s, &value, NOW, "https://other.example", "gw");
        assert_eq!(err, Err(SessionError::WrongIssuer));
    }

    #[test]
    fn oversized_sessions_shed_refresh_token_then_claims_then_fail() {
        let s = sealer();
        let mut big = session();
        big.refresh_token = Some("r".repeat(3000));
        let value = big
            .seal(&s, &mut OsRng, "paved_session")
            .expect("fits without token");
        assert!(value.len() < MAX_COOKIE_BYTES);
        let back = Session::open(&s, &value, NOW, "https://idp.example", "gw").expect("opens");
        assert_eq!(back.refresh_token, None);
        assert_eq!(back.groups, big.groups);

        let mut huge = session();
        huge.groups = (0..200)
            .map(|i| format!("group-with-a-long-name-{i}"))
            .collect();
        assert_eq!(
            huge.seal(&s, &mut OsRng, "paved_session"),
            Err(SessionError::TooLarge)
        );
    }

    #[test]
    fn refresh_is_wanted_only_with_a_token_and_when_due() {
        let mut s = session();
        assert!(!s.wants_refresh(NOW));
        assert!(s.wants_refresh(NOW + 600));
        s.refresh_token = None;
        assert!(!s.wants_refresh(NOW + 600));
    }
}
