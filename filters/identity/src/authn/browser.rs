//! The browser flows: sessions (and their refresh), the redirect to sign in, the callback
//! (code exchange, ID token, userinfo), and logout.

use serde_json::{Map, Value};

use super::token::{parse_token_response, token_request, userinfo_request};
use super::{
    Authn, CallResponse, Decision, Env, Need, Origin, Outcome, Pending, Reply, Request, Resume,
    reply,
};
use crate::claims::{ClaimsError, Expectations};
use crate::cookie;
use crate::identity::{email_of, exposed_claims, groups_of};
use crate::jwt::{self, TokenError};
use crate::login::LoginState;
use crate::provider::Provider;
use crate::redirect::{self, safe_target};
use crate::session::Session;
use crate::url::{HttpUrl, query_count, query_param, valid_authority};

/// With this many logins in progress in one browser, the next login clears them all (each is
/// a cookie; many tabs must not grow the `Cookie` header without bound).
const MAX_PENDING_LOGINS: usize = 5;
/// After a refresh failed for lack of an answer, try again this much later, in seconds.
const REFRESH_RETRY_SECS: u64 = 60;

impl Authn {
    /// A request with a valid session: refreshed with the issuer when due, else let through.
    pub(super) fn with_session(
        &self,
        session: Session,
        req: &Request<'_>,
        provider: Option<&Provider>,
        env: &mut Env<'_>,
    ) -> Outcome {
        if session.wants_refresh(env.now)
            && let Some(p) = provider
            && let Some(rt) = session.refresh_token.as_deref()
            && let Ok(request) = token_request(
                &self.settings,
                &p.metadata,
                vec![("grant_type", "refresh_token"), ("refresh_token", rt)],
            )
        {
            return Outcome::Call(super::Call {
                request,
                pending: Pending::Refresh {
                    session: Box::new(session),
                    origin: Origin {
                        scheme: req.scheme.to_string(),
                        authority: req.authority.to_string(),
                        target: req.path.to_string(),
                        browser: req.is_browser_navigation(),
                    },
                },
            });
        }
        Outcome::Continue(self.admit(session.identity(), env, Vec::new()))
    }

    /// 302 to the provider's authorization endpoint, with a new login cookie.
    pub(super) fn login_redirect(
        &self,
        req: &Request<'_>,
        target: &str,
        provider: &Provider,
        env: &mut Env<'_>,
    ) -> Reply {
        let s = &self.settings;
        let scheme = if req.scheme.eq_ignore_ascii_case("http") {
            "http"
        } else {
            "https"
        };
        if !valid_authority(req.authority) {
            return reply::login_failed(400, "bad_host", Vec::new());
        }
        let origin = redirect::Origin {
            scheme,
            host: req.authority,
            domains: &s.domains,
        };
        let own_path = |t: &str| {
            let p = crate::url::split_target(t).0;
            [
                &s.callback_path,
                &s.logout_path,
                &s.login_path,
                &s.jwks_path,
            ]
            .iter()
            .any(|x| x.as_str() == p)
        };
        let target = safe_target(target, origin)
            .filter(|t| !own_path(t))
            .unwrap_or_else(|| "/".to_string());
        let redirect_uri = format!("{scheme}://{}{}", req.authority, s.callback_path);
        let login = LoginState::new(env.rng, target, redirect_uri, env.now, s.login_ttl_secs);
        let Some(name) = LoginState::cookie_name(&s.cookie_name, &login.state) else {
            return reply::login_failed(500, "login_state", Vec::new());
        };
        let mut cookies = Vec::new();
        let prefix = format!("{}_login_", s.cookie_name);
        let pending: Vec<&str> = req
            .cookie
            .map(|c| {
                cookie::all(c)
                    .map(|(n, _)| n)
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default();
        if pending.len() >= MAX_PENDING_LOGINS {
            cookies.extend(pending.iter().map(|n| cookie::clear(n)));
        }
        cookies.push(cookie::set(
            &name,
            &login.seal(&self.sealer, env.rng),
            Some(s.login_ttl_secs),
        ));
        let Ok(endpoint) = HttpUrl::parse(&provider.metadata.authorization_endpoint) else {
            return reply::login_failed(502, "bad_authorization_endpoint", Vec::new());
        };
        let challenge = login.challenge();
        let location = endpoint.with_query([
            ("response_type", "code"),
            ("client_id", s.client_id.as_str()),
            ("redirect_uri", login.redirect_uri.as_str()),
            ("scope", s.scope.as_str()),
            ("state", login.state.as_str()),
            ("nonce", login.nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]);
        reply::redirect(&location, cookies, Decision::Login)
    }

    /// The login path: sign in, then go to `rd`.
    pub(super) fn explicit_login(
        &self,
        req: &Request<'_>,
        provider: Option<&Provider>,
        env: &mut Env<'_>,
    ) -> Outcome {
        if req.method != "GET" && req.method != "HEAD" {
            return Outcome::Respond(reply::login_failed(405, "method_not_allowed", Vec::new()));
        }
        let Some(p) = provider else {
            return Outcome::Wait(Need::Provider, Resume::Request);
        };
        let target = query_param(req.query(), "rd").unwrap_or_else(|| "/".into());
        Outcome::Respond(self.login_redirect(req, &target, p, env))
    }

    /// The callback: checks `state`, then exchanges the code.
    pub(super) fn callback(
        &self,
        req: &Request<'_>,
        provider: Option<&Provider>,
        env: &mut Env<'_>,
    ) -> Outcome {
        let s = &self.settings;
        let fail =
            |status, reason| Outcome::Respond(reply::login_failed(status, reason, Vec::new()));
        if req.method != "GET" {
            return fail(405, "method_not_allowed");
        }
        let query = req.query();
        let state = query_param(query, "state").unwrap_or_default();
        let login_cookie = LoginState::cookie_name(&s.cookie_name, &state);
        let clear: Vec<String> = login_cookie.iter().map(|n| cookie::clear(n)).collect();
        if query_param(query, "error").is_some() {
            return Outcome::Respond(reply::login_failed(403, "idp_error", clear));
        }
        // Wait before anything is consumed: the state is single-use.
        let Some(provider) = provider else {
            return Outcome::Wait(Need::Provider, Resume::Request);
        };
        if query_param(query, "iss").is_some_and(|iss| iss != s.issuer) {
            return Outcome::Respond(reply::login_failed(403, "issuer_mismatch", clear));
        }
        let code = query_param(query, "code").unwrap_or_default();
        if query_count(query, "code") != 1
            || query_count(query, "state") != 1
            || code.is_empty()
            || code.len() > 4096
        {
            return Outcome::Respond(reply::login_failed(400, "bad_callback", clear));
        }
        let cookies = req.cookie.unwrap_or_default();
        let login =
            match LoginState::from_callback(&self.sealer, cookies, &s.cookie_name, &state, env.now)
            {
                Ok(login) => login,
                Err(err) => return Outcome::Respond(reply::login_failed(403, err.reason(), clear)),
            };
        if !env.replay.first_use(&login.state, login.expires, env.now) {
            return Outcome::Respond(reply::login_failed(403, "state_replayed", clear));
        }
        let form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", login.redirect_uri.as_str()),
            ("code_verifier", login.verifier.as_str()),
        ];
        let request = match token_request(s, &provider.metadata, form) {
            Ok(r) => r,
            Err(_) => {
                return Outcome::Respond(reply::login_failed(502, "bad_token_endpoint", clear));
            }
        };
        Outcome::Call(super::Call {
            request,
            pending: Pending::Exchange {
                login,
                // `from_callback` succeeded, so the name exists.
                login_cookie: login_cookie.unwrap_or_default(),
            },
        })
    }

    /// The token endpoint answered the code exchange.
    pub(super) fn on_exchange(
        &self,
        pending: Pending,
        response: CallResponse,
        provider: Option<&Provider>,
        env: &mut Env<'_>,
    ) -> Outcome {
        let Pending::Exchange {
            login,
            login_cookie,
        } = &pending
        else {
            return Outcome::Respond(reply::unavailable());
        };
        let clear = vec![cookie::clear(login_cookie)];
        let tokens = match parse_token_response(&response) {
            Ok(t) => t,
            Err(reason @ ("idp_unavailable" | "token_endpoint_error")) => {
                return Outcome::Respond(reply::login_failed(502, reason, clear));
            }
            Err(reason) => return Outcome::Respond(reply::login_failed(403, reason, clear)),
        };
        let Some(id_token) = tokens.id_token.as_deref() else {
            return Outcome::Respond(reply::login_failed(502, "no_id_token", clear));
        };
        let Some(provider) = provider else {
            return Outcome::Wait(Need::Provider, Resume::Response(pending.clone(), response));
        };
        let claims = match self.verify_id_token(id_token, provider, env.now, Some(login), None) {
            Ok(c) => c,
            Err(e) if e.refresh_may_help() && env.key_refresh_allowed => {
                return Outcome::Wait(Need::Keys, Resume::Response(pending.clone(), response));
            }
            Err(e) => return Outcome::Respond(reply::login_failed(403, e.reason(), clear)),
        };
        let session = self.new_session(&claims, tokens.refresh_token, env.now);
        if self.settings.fetch_userinfo
            && let Some(at) = tokens.access_token.as_deref()
            && let Some(request) = userinfo_request(&provider.metadata, at)
        {
            return Outcome::Call(super::Call {
                request,
                pending: Pending::Userinfo {
                    login: login.clone(),
                    login_cookie: login_cookie.clone(),
                    session: Box::new(session),
                },
            });
        }
        self.finish_login(login, login_cookie, session, env)
    }

    /// Userinfo answered: its claims complete the ID token's (its answer is best effort; a
    /// failure leaves the ID token's claims).
    pub(super) fn on_userinfo(
        &self,
        login: LoginState,
        login_cookie: String,
        mut session: Session,
        response: CallResponse,
        env: &mut Env<'_>,
    ) -> Outcome {
        if response.status == 200
            && response.body.len() <= super::token::MAX_RESPONSE_BYTES
            && let Ok(Value::Object(info)) = serde_json::from_slice::<Value>(&response.body)
            && info.get("sub").and_then(Value::as_str) == Some(session.subject.as_str())
        {
            self.merge_claims(&mut session, &info);
        }
        self.finish_login(&login, &login_cookie, session, env)
    }

    fn finish_login(
        &self,
        login: &LoginState,
        login_cookie: &str,
        session: Session,
        env: &mut Env<'_>,
    ) -> Outcome {
        let s = &self.settings;
        let clear = cookie::clear(login_cookie);
        let value = match session.seal(&self.sealer, env.rng, &s.cookie_name) {
            Ok(v) => v,
            Err(e) => return Outcome::Respond(reply::login_failed(403, e.reason(), vec![clear])),
        };
        let cookies = vec![
            cookie::set(&s.cookie_name, &value, Some(s.session_ttl_secs)),
            clear,
        ];
        let mut reply = reply::redirect(&login.target, cookies, Decision::Allow);
        reply.identity = Some(session.identity());
        Outcome::Respond(reply)
    }

    /// Verifies an ID token: signature, issuer, audience (this client), `azp`, times, and the
    /// login's `nonce` (at login) or the session's subject (at refresh).
    fn verify_id_token(
        &self,
        token: &str,
        provider: &Provider,
        now: u64,
        login: Option<&LoginState>,
        subject: Option<&str>,
    ) -> Result<crate::claims::Claims, TokenError> {
        let s = &self.settings;
        let claims = jwt::decode(token)?.verify(&provider.keys)?;
        let audiences = [s.client_id.clone()];
        claims.validate(&Expectations {
            issuer: &s.issuer,
            audiences: &audiences,
            now,
            skew_secs: s.clock_skew_secs,
        })?;
        // OIDC Core §3.1.3.7: with several audiences, `azp` must be this client.
        let azp = claims.str("azp");
        if azp.is_some_and(|a| a != s.client_id) || (claims.aud.len() > 1 && azp.is_none()) {
            return Err(ClaimsError::WrongAuthorizedParty.into());
        }
        if claims.sub.as_deref().is_none_or(str::is_empty) {
            return Err(ClaimsError::Missing("sub").into());
        }
        if let Some(login) = login
            && !login.nonce_matches(claims.str("nonce"))
        {
            return Err(ClaimsError::WrongNonce.into());
        }
        if let Some(subject) = subject
            && claims.sub.as_deref() != Some(subject)
        {
            return Err(ClaimsError::WrongSubject.into());
        }
        Ok(claims)
    }

    fn new_session(
        &self,
        claims: &crate::claims::Claims,
        refresh_token: Option<String>,
        now: u64,
    ) -> Session {
        let s = &self.settings;
        Session {
            subject: claims.sub.clone().unwrap_or_default(),
            email: email_of(&claims.all),
            groups: groups_of(&claims.all, &s.groups_claim),
            claims: exposed_claims(&claims.all, &s.groups_claim, s.max_claims_bytes),
            issuer: s.issuer.clone(),
            client_id: s.client_id.clone(),
            created: now,
            expires: now + s.session_ttl_secs,
            refresh_at: now + s.session_refresh_secs,
            refresh_token,
        }
    }

    /// Newer claims (userinfo, a refreshed ID token) override older ones; claims they do not
    /// mention are kept.
    fn merge_claims(&self, session: &mut Session, newer: &Map<String, Value>) {
        let s = &self.settings;
        if let Some(email) = email_of(newer) {
            session.email = Some(email);
        }
        if newer.contains_key(&s.groups_claim) {
            session.groups = groups_of(newer, &s.groups_claim);
        }
        let mut merged = session.claims.clone();
        for (k, v) in exposed_claims(newer, &s.groups_claim, s.max_claims_bytes) {
            merged.insert(k, v);
        }
        for k in ["iss", "sub"] {
            merged.remove(k);
        }
        session.claims = exposed_claims(&merged, &s.groups_claim, s.max_claims_bytes);
    }

    /// The token endpoint answered a refresh.
    pub(super) fn on_refresh(
        &self,
        pending: Pending,
        response: CallResponse,
        provider: Option<&Provider>,
        env: &mut Env<'_>,
    ) -> Outcome {
        let Pending::Refresh { session, origin } = &pending else {
            return Outcome::Respond(reply::unavailable());
        };
        let s = &self.settings;
        let mut session = (**session).clone();
        let tokens = match parse_token_response(&response) {
            Ok(t) => t,
            // The issuer ended the session (revoked, user disabled): so does the gateway.
            Err("grant_refused") => return self.session_ended(origin, provider, env),
            // The issuer is away: keep the session until it answers (or the session expires).
            Err(_) => {
                session.refresh_at = env.now + REFRESH_RETRY_SECS;
                return self.refreshed(session, env);
            }
        };
        if let Some(id_token) = tokens.id_token.as_deref() {
            let Some(p) = provider else {
                return Outcome::Wait(Need::Provider, Resume::Response(pending.clone(), response));
            };
            match self.verify_id_token(id_token, p, env.now, None, Some(&session.subject)) {
                Ok(claims) => self.merge_claims(&mut session, &claims.all),
                Err(e) if e.refresh_may_help() && env.key_refresh_allowed => {
                    return Outcome::Wait(Need::Keys, Resume::Response(pending.clone(), response));
                }
                Err(_) => return self.session_ended(origin, provider, env),
            }
        }
        if tokens.refresh_token.is_some() {
            session.refresh_token = tokens.refresh_token;
        }
        session.refresh_at = env.now + s.session_refresh_secs;
        self.refreshed(session, env)
    }

    fn refreshed(&self, session: Session, env: &mut Env<'_>) -> Outcome {
        let s = &self.settings;
        let cookies = match session.seal(&self.sealer, env.rng, &s.cookie_name) {
            Ok(value) => {
                let left = session.expires.saturating_sub(env.now);
                vec![cookie::set(&s.cookie_name, &value, Some(left))]
            }
            Err(_) => Vec::new(),
        };
        Outcome::Continue(self.admit(session.identity(), env, cookies))
    }

    fn session_ended(
        &self,
        origin: &Origin,
        provider: Option<&Provider>,
        env: &mut Env<'_>,
    ) -> Outcome {
        let s = &self.settings;
        let clear = cookie::clear(&s.cookie_name);
        let mut reply = match provider {
            Some(p) if origin.browser => {
                let req = Request {
                    method: "GET",
                    scheme: &origin.scheme,
                    authority: &origin.authority,
                    path: &origin.target,
                    ..Request::default()
                };
                self.login_redirect(&req, &origin.target, p, env)
            }
            _ => reply::unauthorized(&s.app, None, "session_revoked"),
        };
        reply.headers.push(("set-cookie".into(), clear));
        Outcome::Respond(reply)
    }

    /// The logout path: clears the session, then goes to `rd` (if safe), the configured
    /// page, or the provider's end-session endpoint.
    pub(super) fn logout(&self, req: &Request<'_>, provider: Option<&Provider>) -> Reply {
        let s = &self.settings;
        let scheme = if req.scheme.eq_ignore_ascii_case("http") {
            "http"
        } else {
            "https"
        };
        let origin = redirect::Origin {
            scheme,
            host: req.authority,
            domains: &s.domains,
        };
        let target = query_param(req.query(), "rd")
            .and_then(|t| safe_target(&t, origin))
            .or_else(|| safe_target(&s.post_logout_redirect, origin))
            .unwrap_or_else(|| "/".into());
        let clear = vec![cookie::clear(&s.cookie_name)];
        let end_session = provider
            .and_then(|p| p.metadata.end_session_endpoint.as_deref())
            .filter(|_| s.idp_logout)
            .and_then(|e| HttpUrl::parse(e).ok());
        match end_session {
            Some(endpoint) if valid_authority(req.authority) => {
                let absolute = if target.starts_with('/') {
                    format!("{scheme}://{}{target}", req.authority)
                } else {
                    target
                };
                let location = endpoint.with_query([
                    ("client_id", s.client_id.as_str()),
                    ("post_logout_redirect_uri", absolute.as_str()),
                ]);
                reply::redirect(&location, clear, Decision::Logout)
            }
            _ => reply::redirect(&target, clear, Decision::Logout),
        }
    }
}
