//! `Authorization: Bearer` tokens: JWTs of the issuer, verified against its JWKS.

use paved_model::plugin_config::AuthnMode;

use super::{Admission, Authn, Decision, Env, Need, Outcome, Resume, reply};
use crate::claims::Expectations;
use crate::identity::Identity;
use crate::jwt::{self, TokenError};
use crate::provider::Provider;

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive); `None`
/// for other schemes, which authn leaves to the upstream.
pub(super) fn token_of(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl Authn {
    pub(super) fn bearer(
        &self,
        token: &str,
        provider: Option<&Provider>,
        env: &mut Env<'_>,
    ) -> Outcome {
        let Some(provider) = provider else {
            return Outcome::Wait(Need::Provider, Resume::Request);
        };
        match self.verify_bearer(token, provider, env.now) {
            Ok(identity) => Outcome::Continue(self.admit(identity, env, Vec::new())),
            Err(err) if err.refresh_may_help() && env.key_refresh_allowed => {
                Outcome::Wait(Need::Keys, Resume::Request)
            }
            Err(err) => match self.settings.mode {
                // A public route with a bad token is still a public route.
                AuthnMode::Optional => Outcome::Continue(Admission {
                    identity: None,
                    headers: Vec::new(),
                    response_cookies: Vec::new(),
                    decision: Decision::Allow,
                }),
                AuthnMode::Required => Outcome::Respond(reply::unauthorized(
                    &self.settings.app,
                    Some("invalid_token"),
                    err.reason(),
                )),
            },
        }
    }

    fn verify_bearer(
        &self,
        token: &str,
        provider: &Provider,
        now: u64,
    ) -> Result<Identity, TokenError> {
        if let Some(identity) = self.verified.borrow().get(token, now, provider.generation) {
            return Ok(identity);
        }
        let s = &self.settings;
        let claims = jwt::decode(token)?.verify(&provider.keys)?;
        claims.validate(&Expectations {
            issuer: &s.issuer,
            audiences: &s.audiences,
            now,
            skew_secs: s.clock_skew_secs,
        })?;
        let identity = Identity::from_bearer(&claims, &s.groups_claim, s.max_claims_bytes)
            .map_err(|_| TokenError::Claims(crate::claims::ClaimsError::Missing("sub")))?;
        // `validate` checked that `exp` is there; the entry ends when the token does.
        let expires = claims
            .exp
            .and_then(|e| u64::try_from(e).ok())
            .map_or(now, |e| {
                e + s.clock_skew_secs.min(crate::claims::MAX_SKEW_SECS)
            });
        self.verified
            .borrow_mut()
            .put(token, identity.clone(), expires, now, provider.generation);
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bearer_scheme_is_read() {
        assert_eq!(token_of(Some("Bearer abc")), Some("abc"));
        assert_eq!(token_of(Some("bearer  abc ")), Some("abc"));
        assert_eq!(token_of(Some("Basic dXNlcjpwYXNz")), None);
        assert_eq!(token_of(Some("Bearer")), None);
        assert_eq!(token_of(None), None);
    }
}
