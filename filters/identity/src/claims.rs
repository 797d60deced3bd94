//! The claims of a verified JWT, and the checks every token must pass: issuer, audience and
//! the validity window (`exp`, `nbf`, `iat`) with a bounded clock skew.

use serde_json::{Map, Value};

/// Largest clock skew a configuration may ask for, in seconds: beyond this a stolen, expired
/// token would stay usable for too long.
pub const MAX_SKEW_SECS: u64 = 300;

/// The claims of a token whose signature was verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// `iss`.
    pub iss: Option<String>,
    /// `sub`.
    pub sub: Option<String>,
    /// `aud`, a string or an array of strings in the token, always a list here.
    pub aud: Vec<String>,
    /// `exp`, seconds since the epoch.
    pub exp: Option<i64>,
    /// `nbf`.
    pub nbf: Option<i64>,
    /// `iat`.
    pub iat: Option<i64>,
    /// Every claim, as sent.
    pub all: Map<String, Value>,
}

/// Why a token's claims are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// The payload is not a JSON object, or a registered claim has the wrong type.
    #[error("malformed claims: {0}")]
    Malformed(&'static str),
    /// A claim that must be there is not.
    #[error("missing claim {0}")]
    Missing(&'static str),
    /// `iss` is not the expected issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// No `aud` value is an accepted audience.
    #[error("wrong audience")]
    WrongAudience,
    /// `azp` is not the client the token was requested for.
    #[error("wrong authorized party")]
    WrongAuthorizedParty,
    /// `exp` is in the past (beyond the skew).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the skew).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the skew).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// The ID token's `nonce` is not the one sent at login.
    #[error("wrong nonce")]
    WrongNonce,
    /// The subject changed (a refreshed ID token for another user).
    #[error("wrong subject")]
    WrongSubject,
}

impl Claims {
    /// Reads the claims from a JWT payload.
    pub fn from_json(bytes: &[u8]) -> Result<Claims, ClaimsError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|_| ClaimsError::Malformed("not JSON"))?;
        let Value::Object(all) = value else {
            return Err(ClaimsError::Malformed("not an object"));
        };
        let string = |name: &'static str| -> Result<Option<String>, ClaimsError> {
            match all.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ClaimsError::Malformed(name)),
            }
        };
        let time = |name: &'static str| -> Result<Option<i64>, ClaimsError> {
            match all.get(name) {
                None | Some(Value::Null) => Ok(None),
                // NumericDate may carry a fraction (RFC 7519 §2); whole seconds are enough.
                Some(Value::Number(n)) => n
                    .as_i64()
                    .or_else(|| {
                        n.as_f64()
                            .filter(|f| f.is_finite())
                            .map(|f| f.floor() as i64)
                    })
                    .map(Some)
                    .ok_or(ClaimsError::Malformed(name)),
                Some(_) => Err(ClaimsError::Malformed(name)),
            }
        };
        let aud = match all.get("aud") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or(ClaimsError::Malformed("aud"))?,
            Some(_) => return Err(ClaimsError::Malformed("aud")),
        };
        Ok(Claims {
            iss: string("iss")?,
            sub: string("sub")?,
            aud,
            exp: time("exp")?,
            nbf: time("nbf")?,
            iat: time("iat")?,
            all,
        })
    }

    /// A string claim (`None` when absent or not a string).
    pub fn str(&self, name: &str) -> Option<&str> {
        self.all.get(name).and_then(Value::as_str)
    }

    /// Checks issuer, audience and validity window.
    pub fn validate(&self, expect: &Expectations<'_>) -> Result<(), ClaimsError> {
        match &self.iss {
            None => return Err(ClaimsError::Missing("iss")),
            Some(iss) if iss != expect.issuer => return Err(ClaimsError::WrongIssuer),
            Some(_) => {}
        }
        if self.aud.is_empty() {
            return Err(ClaimsError::Missing("aud"));
        }
        if !self.aud.iter().any(|a| expect.audiences.contains(a)) {
            return Err(ClaimsError::WrongAudience);
        }
        self.validate_times(expect.now, expect.skew_secs)
    }

    /// Checks `exp` (required), `nbf` and `iat` against `now`, allowing `skew_secs` (capped at
    /// [`MAX_SKEW_SECS`]) of clock difference either way.
    pub fn validate_times(&self, now: u64, skew_secs: u64) -> Result<(), ClaimsError> {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let skew = skew_secs.min(MAX_SKEW_SECS) as i64;
        let exp = self.exp.ok_or(ClaimsError::Missing("exp"))?;
        if now >= exp.saturating_add(skew) {
            return Err(ClaimsError::Expired);
        }
        if let Some(nbf) = self.nbf
            && now.saturating_add(skew) < nbf
        {
            return Err(ClaimsError::NotYetValid);
        }
        if let Some(iat) = self.iat
            && now.saturating_add(skew) < iat
        {
            return Err(ClaimsError::IssuedInFuture);
        }
        Ok(())
    }
}

/// What a token must say to be accepted.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// The issuer, compared exactly.
    pub issuer: &'a str,
    /// Accepted audiences: one `aud` value must be among them.
    pub audiences: &'a [String],
    /// Now, in seconds since the epoch.
    pub now: u64,
    /// Allowed clock skew, in seconds (capped at [`MAX_SKEW_SECS`]).
    pub skew_secs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn claims(value: Value) -> Claims {
        Claims::from_json(value.to_string().as_bytes()).expect("claims")
    }

    fn expect(audiences: &[String]) -> Expectations<'_> {
        Expectations {
            issuer: "https://idp.example",
            audiences,
            now: NOW,
            skew_secs: 60,
        }
    }

    fn good() -> Value {
        json!({"iss": "https://idp.example", "sub": "u1", "aud": "app",
               "exp": NOW + 300, "iat": NOW - 10, "nbf": NOW - 10})
    }

    #[test]
    fn a_good_token_passes() {
        let auds = vec!["app".to_string()];
        assert_eq!(claims(good()).validate(&expect(&auds)), Ok(()));
    }

    #[test]
    fn audience_may_be_an_array() {
        let auds = vec!["app".to_string()];
        let mut v = good();
        v["aud"] = json!(["other", "app"]);
        assert_eq!(claims(v).validate(&expect(&auds)), Ok(()));
    }

    #[test]
    fn wrong_audience_is_refused() {
        let auds = vec!["app".to_string()];
        let mut v = good();
        v["aud"] = json!(["other", "apps"]);
        assert_eq!(
            claims(v).validate(&expect(&auds)),
            Err(ClaimsError::WrongAudience)
        );
        let mut v = good();
        v.as_object_mut().map(|o| o.remove("aud"));
        assert_eq!(
            claims(v).validate(&expect(&auds)),
            Err(ClaimsError::Missing("aud"))
        );
    }

    #[test]
    fn wrong_issuer_is_refused() {
        let auds = vec!["app".to_string()];
        for iss in [
            "https://idp.example/",
            "https://evil.example",
            "HTTPS://IDP.EXAMPLE",
        ] {
            let mut v = good();
            v["iss"] = json!(iss);
            assert_eq!(
                claims(v).validate(&expect(&auds)),
                Err(ClaimsError::WrongIssuer)
            );
        }
    }

    #[test]
    fn expired_tokens_are_refused_after_the_skew() {
        let auds = vec!["app".to_string()];
        let mut v = good();
        v["exp"] = json!(NOW - 30);
        assert_eq!(
            claims(v.clone()).validate(&expect(&auds)),
            Ok(()),
            "within skew"
        );
        v["exp"] = json!(NOW - 60);
        assert_eq!(
            claims(v).validate(&expect(&auds)),
            Err(ClaimsError::Expired)
        );
    }

    #[test]
    fn tokens_without_exp_are_refused() {
        let mut v = good();
        v.as_object_mut().map(|o| o.remove("exp"));
        assert_eq!(
            claims(v).validate_times(NOW, 60),
            Err(ClaimsError::Missing("exp"))
        );
    }

    #[test]
    fn not_yet_valid_tokens_are_refused() {
        let mut v = good();
        v["nbf"] = json!(NOW + 61);
        assert_eq!(
            claims(v).validate_times(NOW, 60),
            Err(ClaimsError::NotYetValid)
        );
        let mut v = good();
        v["iat"] = json!(NOW + 3600);
        assert_eq!(
            claims(v).validate_times(NOW, 60),
            Err(ClaimsError::IssuedInFuture)
        );
    }

    #[test]
    fn skew_is_capped() {
        let mut v = good();
        v["exp"] = json!(NOW - 3600);
        assert_eq!(
            claims(v).validate_times(NOW, 86_400),
            Err(ClaimsError::Expired)
        );
    }

    #[test]
    fn registered_claims_of_the_wrong_type_are_malformed() {
        let bad = [
            json!({"exp": "tomorrow"}),
            json!({"iss": 1}),
            json!({"aud": [1]}),
            json!({"aud": {"a": 1}}),
            json!(["not", "an", "object"]),
        ];
        for v in bad {
            assert!(matches!(
                Claims::from_json(v.to_string().as_bytes()),
                Err(ClaimsError::Malformed(_))
            ));
        }
    }

    #[test]
    fn fractional_times_are_floored() {
        let c = claims(json!({"exp": 1700000000.9}));
        assert_eq!(c.exp, Some(1_700_000_000));
    }
}
