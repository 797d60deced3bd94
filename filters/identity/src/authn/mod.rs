//! The authn filter's logic, without the Proxy-Wasm glue: a request's facts in, an
//! [`Outcome`] out (let it through with an identity, answer it, call the provider, or wait
//! for the provider's keys). The plugin maps host calls to [`Request`] and outcomes to host
//! calls; everything that decides is here and tested natively.
//!
//! Order of a request: the gateway's own paths (JWKS, callback, logout, login) first; then a
//! `Bearer` token (if present it decides: an invalid one is never rescued by a cookie); then
//! the session cookie; then, with no identity, `optional` mode lets the request through
//! anonymously, browsers are sent to sign in and API clients get 401. The plugin strips the
//! identity headers of every request before any of this.

mod bearer;
mod browser;
mod reply;
mod settings;
#[cfg(test)]
mod tests;
mod token;
mod verified;

use std::cell::RefCell;

use paved_model::plugin_config::{AuthnConfig, AuthnMode};

pub use self::settings::{ConfigError, ConfiguredKeys, Settings};
pub use self::token::{CallRequest, CallResponse};
use crate::assertion::{AssertionCache, AssertionSigner};
use crate::identity::Identity;
use crate::jwt::SigningKey;
use crate::login::LoginState;
use crate::provider::Provider;
use crate::random::SecureRng;
use crate::replay::ReplayGuard;
use crate::seal::{SealKey, Sealer};
use crate::session::Session;
use crate::url::split_target;

/// The facts of a request authn decides on.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:scheme` (`https`, or `http` in development).
    pub scheme: &'a str,
    /// `:authority` (the `Host`).
    pub authority: &'a str,
    /// `:path`, with the query.
    pub path: &'a str,
    /// `authorization`.
    pub authorization: Option<&'a str>,
    /// Every `cookie` header value, joined with `; `.
    pub cookie: Option<&'a str>,
    /// `accept`.
    pub accept: Option<&'a str>,
    /// `sec-fetch-mode`.
    pub sec_fetch_mode: Option<&'a str>,
}

impl Request<'_> {
    /// A top-level navigation of a browser: `GET`/`HEAD` that accepts HTML, or says it is a
    /// navigation. Only those are sent to sign in; scripts and API clients get 401.
    pub fn is_browser_navigation(&self) -> bool {
        let method_ok = self.method == "GET" || self.method == "HEAD";
        let navigate = self
            .sec_fetch_mode
            .is_some_and(|m| m.eq_ignore_ascii_case("navigate"));
        let html = self
            .accept
            .is_some_and(|a| a.to_ascii_lowercase().contains("text/html"));
        method_ok && (navigate || html)
    }

    fn path_only(&self) -> &str {
        split_target(self.path).0
    }

    fn query(&self) -> &str {
        split_target(self.path).1
    }
}

/// What authn decided, as recorded in `paved.decision.authn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let through (with an identity, or anonymously in `optional` mode).
    Allow,
    /// Sent to sign in.
    Login,
    /// Session ended by the logout path.
    Logout,
    /// Refused, with a reason code.
    Deny(&'static str),
}

impl Decision {
    /// `allow`, `login`, `logout` or `deny:<reason>`.
    pub fn as_string(&self) -> String {
        match self {
            Decision::Allow => "allow".into(),
            Decision::Login => "login".into(),
            Decision::Logout => "logout".into(),
            Decision::Deny(reason) => format!("deny:{reason}"),
        }
    }
}

/// Let the request through.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    /// The identity, if any (none: anonymous, `optional` mode only).
    pub identity: Option<Identity>,
    /// Headers to set on the upstream request: the assertion and the convenience headers.
    pub headers: Vec<(String, String)>,
    /// `Set-Cookie` values to add to the response (a refreshed or cleared session).
    pub response_cookies: Vec<String>,
    /// The decision.
    pub decision: Decision,
}

/// Answer the request here.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// The decision.
    pub decision: Decision,
    /// The identity established (a successful callback), for the properties.
    pub identity: Option<Identity>,
}

/// Call the provider, then feed its answer to [`Authn::on_call_response`] with `pending`.
#[derive(Debug, Clone)]
pub struct Call {
    /// The request to send through the provider's cluster.
    pub request: CallRequest,
    /// What the answer continues.
    pub pending: Pending,
}

/// A step waiting for the provider's answer.
#[derive(Debug, Clone)]
pub enum Pending {
    /// The authorization code is being exchanged.
    Exchange {
        /// The login.
        login: LoginState,
        /// Its cookie, cleared in the final answer.
        login_cookie: String,
    },
    /// Userinfo is being fetched after a successful exchange.
    Userinfo {
        /// The login.
        login: LoginState,
        /// Its cookie.
        login_cookie: String,
        /// The session built from the ID token so far.
        session: Box<Session>,
    },
    /// A session is being refreshed.
    Refresh {
        /// The session.
        session: Box<Session>,
        /// The request, to send a browser to sign in if the issuer ended the session.
        origin: Origin,
    },
}

/// Who a request came from, kept across a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Scheme.
    pub scheme: String,
    /// Authority.
    pub authority: String,
    /// Path with query.
    pub target: String,
    /// Whether it is a browser navigation.
    pub browser: bool,
}

/// What a waiting request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The provider's discovery document and keys (not loaded yet).
    Provider,
    /// A JWKS refresh (a token names an unknown key).
    Keys,
}

/// How to continue a request once the provider is ready.
#[derive(Debug, Clone)]
pub enum Resume {
    /// Decide the request again from its headers.
    Request,
    /// Feed this answer again.
    Response(Pending, CallResponse),
}

/// What to do with a request.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Let it through.
    Continue(Admission),
    /// Answer it.
    Respond(Reply),
    /// Call the provider and keep the request paused.
    Call(Call),
    /// Keep it paused until the provider is ready, then resume as said.
    Wait(Need, Resume),
}

/// What the plugin provides per decision.
pub struct Env<'a> {
    /// Now, seconds since the epoch.
    pub now: u64,
    /// Randomness.
    pub rng: &'a mut dyn SecureRng,
    /// Single use of login states.
    pub replay: &'a mut dyn ReplayGuard,
    /// Whether an unknown `kid` may trigger a JWKS refresh now.
    pub key_refresh_allowed: bool,
}

/// The authn filter of one route.
pub struct Authn {
    settings: Settings,
    sealer: Sealer,
    signer: AssertionSigner,
    assertions: RefCell<AssertionCache>,
    verified: RefCell<verified::Verified>,
}

impl std::fmt::Debug for Authn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authn")
            .field("app", &self.settings.app)
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl Authn {
    /// The filter for a configuration, with its keys (the configured ones, or ones the
    /// plugin generated for the process when none is configured).
    pub fn new(
        config: &AuthnConfig,
        session_key: &SealKey,
        previous_session_keys: &[SealKey],
        assertion_key: SigningKey,
    ) -> Result<Authn, ConfigError> {
        let settings = Settings::from_config(config)?;
        let signer = AssertionSigner::new(
            assertion_key,
            &settings.assertion_issuer,
            settings.assertion_ttl_secs,
        );
        Ok(Authn {
            sealer: Sealer::new(session_key, previous_session_keys),
            signer,
            assertions: RefCell::new(AssertionCache::default()),
            verified: RefCell::new(verified::Verified::default()),
            settings,
        })
    }

    /// The checked settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Headers removed from every request before anything else.
    pub fn strip_headers(&self) -> &[String] {
        &self.settings.strip_headers
    }

    /// The assertion key's JWKS document.
    pub fn assertion_jwks(&self) -> &str {
        self.signer.jwks_json()
    }

    /// Decides a request.
    pub fn on_request(
        &self,
        req: &Request<'_>,
        provider: Option<&Provider>,
        env: &mut Env<'_>,
    ) -> Outcome {
        let path = req.path_only();
        let s = &self.settings;
        if path == s.jwks_path {
            return Outcome::Respond(reply::jwks(self.signer.jwks_json()));
        }
        if path == s.callback_path {
            return self.callback(req, provider, env);
        }
        if path == s.logout_path {
            return Outcome::Respond(self.logout(req, provider));
        }
        if path == s.login_path {
            return self.explicit_login(req, provider, env);
        }
        if let Some(token) = bearer::token_of(req.authorization) {
            return self.bearer(token, provider, env);
        }
        let mut response_cookies = Vec::new();
        if let Some(value) = req
            .cookie
            .and_then(|c| crate::cookie::get(c, &s.cookie_name))
        {
            match Session::open(&self.sealer, value, env.now, &s.issuer, &s.client_id) {
                Ok(session) => return self.with_session(session, req, provider, env),
                // An unusable cookie is dropped from the browser and the request goes on as
                // if it had none.
                Err(_) => response_cookies.push(crate::cookie::clear(&s.cookie_name)),
            }
        }
        self.anonymous(req, provider, env, response_cookies)
    }

    /// No identity: let through (`optional`), send to sign in (browsers) or 401.
    fn anonymous(
        &self,
        req: &Request<'_>,
        provider: Option<&Provider>,
        env: &mut Env<'_>,
        response_cookies: Vec<String>,
    ) -> Outcome {
        if self.settings.mode == AuthnMode::Optional {
            return Outcome::Continue(Admission {
                identity: None,
                headers: Vec::new(),
                response_cookies,
                decision: Decision::Allow,
            });
        }
        if req.is_browser_navigation() {
            let target = req.path.to_string();
            return match provider {
                Some(p) => {
                    let mut reply = self.login_redirect(req, &target, p, env);
                    reply.headers.extend(
                        response_cookies
                            .into_iter()
                            .map(|c| ("set-cookie".into(), c)),
                    );
                    Outcome::Respond(reply)
                }
                None => Outcome::Wait(Need::Provider, Resume::Request),
            };
        }
        let mut reply = reply::unauthorized(&self.settings.app, None, "credentials_required");
        reply.headers.extend(
            response_cookies
                .into_iter()
                .map(|c| ("set-cookie".into(), c)),
        );
        Outcome::Respond(reply)
    }

    /// Lets an identity through with its assertion and convenience headers.
    fn admit(
        &self,
        identity: Identity,
        env: &mut Env<'_>,
        response_cookies: Vec<String>,
    ) -> Admission {
        let assertion = self.assertions.borrow_mut().get_or_sign(
            &self.signer,
            &identity,
            &self.settings.app,
            env.now,
            env.rng,
        );
        let mut headers = vec![(self.settings.identity_header.clone(), assertion)];
        headers.extend(
            identity
                .upstream_headers()
                .into_iter()
                .map(|(n, v)| (n.to_string(), v)),
        );
        Admission {
            identity: Some(identity),
            headers,
            response_cookies,
            decision: Decision::Allow,
        }
    }

    /// Continues a step after the provider answered a call (`status` 0: no answer).
    pub fn on_call_response(
        &self,
        pending: Pending,
        response: CallResponse,
        provider: Option<&Provider>,
        env: &mut Env<'_>,
    ) -> Outcome {
        match pending {
            Pending::Exchange { .. } => self.on_exchange(pending, response, provider, env),
            Pending::Userinfo {
                login,
                login_cookie,
                session,
            } => self.on_userinfo(login, login_cookie, *session, response, env),
            Pending::Refresh { .. } => self.on_refresh(pending, response, provider, env),
        }
    }

    /// The answer for a request that waited too long, or could not wait, for the provider.
    pub fn unavailable(&self) -> Reply {
        reply::unavailable()
    }
}
