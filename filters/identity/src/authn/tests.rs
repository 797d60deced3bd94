//! The authn flows end to end against a fake issuer: browser login with PKCE, state and
//! nonce, userinfo, sessions and their refresh, bearer tokens, logout, and the attacks.

use paved_model::plugin_config::{AuthnConfig, AuthnMode};
use serde_json::{Value, json};

use super::*;
use crate::assertion::{generate_key, verify_assertion};
use crate::discovery::ProviderMetadata;
use crate::jwk::KeySet;
use crate::random::OsRng;
use crate::replay::UsedSet;
use crate::testkeys;
use crate::url::query_param;

const NOW: u64 = 1_700_000_000;
const ISSUER: &str = "https://idp.example";
const HOST: &str = "app.example.com";

struct Fixture {
    authn: Authn,
    provider: Provider,
    used: UsedSet,
    now: u64,
    key_refresh_allowed: bool,
}

fn config() -> AuthnConfig {
    AuthnConfig {
        app: "payroll".into(),
        issuer: ISSUER.into(),
        idp_cluster: "paved-idp".into(),
        client_id: "gw".into(),
        client_secret: Some("s3cret".into()),
        domains: vec![HOST.into()],
        ..AuthnConfig::default()
    }
}

fn metadata() -> ProviderMetadata {
    ProviderMetadata {
        issuer: ISSUER.into(),
        authorization_endpoint: "https://idp.example/auth".into(),
        token_endpoint: "https://idp.example/token".into(),
        jwks_uri: "https://idp.example/jwks".into(),
        userinfo_endpoint: Some("https://idp.example/me".into()),
        end_session_endpoint: Some("https://idp.example/logout".into()),
        token_endpoint_auth_methods_supported: Vec::new(),
        code_challenge_methods_supported: vec!["S256".into()],
    }
}

fn keys(jwks: Vec<Value>) -> KeySet {
    KeySet::parse(json!({ "keys": jwks }).to_string().as_bytes())
        .expect("jwks")
        .keys
}

impl Fixture {
    fn with(config: AuthnConfig) -> Fixture {
        let session_key = crate::seal::SealKey::generate(&mut OsRng);
        let authn =
            Authn::new(&config, &session_key, &[], generate_key(&mut OsRng)).expect("authn");
        Fixture {
            authn,
            provider: Provider {
                metadata: metadata(),
                keys: keys(vec![testkeys::rsa_a_public_jwk("k1")]),
                generation: 1,
            },
            used: UsedSet::default(),
            now: NOW,
            key_refresh_allowed: true,
        }
    }

    fn new() -> Fixture {
        Fixture::with(config())
    }

    fn run(&mut self, req: &Request<'_>) -> Outcome {
        let mut rng = OsRng;
        let mut env = Env {
            now: self.now,
            rng: &mut rng,
            replay: &mut self.used,
            key_refresh_allowed: self.key_refresh_allowed,
        };
        self.authn.on_request(req, Some(&self.provider), &mut env)
    }

    fn run_without_provider(&mut self, req: &Request<'_>) -> Outcome {
        let mut rng = OsRng;
        let mut env = Env {
            now: self.now,
            rng: &mut rng,
            replay: &mut self.used,
            key_refresh_allowed: false,
        };
        self.authn.on_request(req, None, &mut env)
    }

    fn answer(&mut self, pending: Pending, status: u16, body: Value) -> Outcome {
        let mut rng = OsRng;
        let mut env = Env {
            now: self.now,
            rng: &mut rng,
            replay: &mut self.used,
            key_refresh_allowed: self.key_refresh_allowed,
        };
        let response = CallResponse {
            status,
            body: if status == 0 {
                Vec::new()
            } else {
                body.to_string().into_bytes()
            },
        };
        self.authn
            .on_call_response(pending, response, Some(&self.provider), &mut env)
    }

    fn id_token(&self, extra: Value) -> String {
        let mut claims = json!({
            "iss": ISSUER, "sub": "alice", "aud": "gw", "exp": self.now + 300,
            "iat": self.now, "email": "alice@example.com", "email_verified": true,
        });
        if let (Some(obj), Some(more)) = (claims.as_object_mut(), extra.as_object()) {
            for (k, v) in more {
                obj.insert(k.clone(), v.clone());
            }
        }
        testkeys::sign_rs256(testkeys::rsa_a(), Some("k1"), &claims)
    }

    /// Runs a whole browser login and returns the session cookie's value.
    fn login(&mut self, groups: &[&str]) -> String {
        let start = browser("/reports?q=1", None);
        let Outcome::Respond(redirect) = self.run(&start) else {
            panic!("redirect")
        };
        let (state, nonce, cookie) = login_params(&redirect);
        let path = format!("/.paved/callback?code=c0de&state={state}");
        let callback = browser(&path, Some(&cookie));
        let Outcome::Call(exchange) = self.run(&callback) else {
            panic!("exchange")
        };
        let tokens = json!({
            "id_token": self.id_token(json!({"nonce": nonce})),
            "access_token": "at", "refresh_token": "rt1", "token_type": "Bearer",
        });
        let Outcome::Call(userinfo) = self.answer(exchange.pending, 200, tokens) else {
            panic!("userinfo")
        };
        let info = json!({"sub": "alice", "groups": groups, "department": "audit"});
        let Outcome::Respond(done) = self.answer(userinfo.pending, 200, info) else {
            panic!("done")
        };
        assert_eq!(done.status, 302);
        session_cookie(&done).expect("session cookie")
    }
}

fn req<'a>(method: &'a str, path: &'a str) -> Request<'a> {
    Request {
        method,
        scheme: "https",
        authority: HOST,
        path,
        ..Request::default()
    }
}

fn browser<'a>(path: &'a str, cookie: Option<&'a str>) -> Request<'a> {
    Request {
        accept: Some("text/html,application/xhtml+xml"),
        cookie,
        ..req("GET", path)
    }
}

fn api<'a>(authorization: Option<&'a str>) -> Request<'a> {
    Request {
        accept: Some("application/json"),
        authorization,
        ..req("GET", "/api/pay")
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn set_cookies(headers: &[(String, String)]) -> Vec<&str> {
    headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect()
}

/// `name=value` of a `Set-Cookie` that sets (not clears) a cookie whose name starts so.
fn cookie_pair(headers: &[(String, String)], prefix: &str) -> Option<String> {
    set_cookies(headers)
        .into_iter()
        .filter(|c| !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap_or_default().to_string())
        .find(|pair| pair.starts_with(prefix))
}

fn session_cookie(reply: &Reply) -> Option<String> {
    cookie_pair(&reply.headers, "paved_session=")
}

/// `state`, `nonce` and the login cookie (`name=value`) of a redirect to sign in.
fn login_params(reply: &Reply) -> (String, String, String) {
    let location = header(reply, "location").expect("location");
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let state = query_param(query, "state").expect("state");
    let nonce = query_param(query, "nonce").expect("nonce");
    let cookie = cookie_pair(&reply.headers, "paved_session_login_").expect("login cookie");
    (state, nonce, cookie)
}

fn bearer_token(claims: Value) -> String {
    format!(
        "Bearer {}",
        testkeys::sign_rs256(testkeys::rsa_a(), Some("k1"), &claims)
    )
}

fn api_claims(now: u64) -> Value {
    json!({"iss": ISSUER, "sub": "svc-user", "aud": "gw", "exp": now + 300, "iat": now,
           "email": "bob@example.com", "groups": ["staff"]})
}

fn denial(outcome: Outcome) -> Reply {
    match outcome {
        Outcome::Respond(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

// ---- gateway paths ----

#[test]
fn the_assertion_jwks_is_served_at_its_path() {
    let mut f = Fixture::new();
    let r = denial(f.run(&req("GET", "/.paved/jwks.json")));
    assert_eq!(r.status, 200);
    assert_eq!(String::from_utf8_lossy(&r.body), f.authn.assertion_jwks());
}

// ---- bearer tokens ----

#[test]
fn a_valid_bearer_token_gets_an_assertion_and_identity_headers() {
    let mut f = Fixture::new();
    let auth = bearer_token(api_claims(NOW));
    let Outcome::Continue(admit) = f.run(&api(Some(&auth))) else {
        panic!("admitted")
    };
    assert_eq!(admit.decision, Decision::Allow);
    let id = admit.identity.as_ref().expect("identity");
    assert_eq!(
        (id.subject.as_str(), id.groups.clone()),
        ("svc-user", vec!["staff".to_string()])
    );
    let get = |n: &str| {
        admit
            .headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("x-paved-user").as_deref(), Some("svc-user"));
    assert_eq!(get("x-paved-email").as_deref(), Some("bob@example.com"));
    assert_eq!(get("x-paved-groups").as_deref(), Some("staff"));
    let assertion = get("x-paved-identity").expect("assertion");
    let claims = verify_assertion(
        f.authn.assertion_jwks(),
        &assertion,
        "paved",
        "payroll",
        NOW,
    )
    .expect("the upstream can verify it");
    assert_eq!(claims.sub.as_deref(), Some("svc-user"));
    assert_eq!(claims.exp, Some((NOW + 60) as i64));
}

#[test]
fn bearer_attacks_get_401_with_a_reason() {
    let mut f = Fixture::new();
    let public_pem = testkeys::rsa_a_public_pem();
    let mut tampered = testkeys::sign_rs256(testkeys::rsa_a(), Some("k1"), &api_claims(NOW));
    let mid = tampered.find('.').expect("dot") + 5;
    tampered.replace_range(
        mid..mid + 1,
        if &tampered[mid..mid + 1] == "A" {
            "B"
        } else {
            "A"
        },
    );
    let cases: Vec<(String, &str)> = vec![
        (
            bearer_token(json!({"iss": ISSUER, "sub": "x", "aud": "gw", "exp": NOW - 120})),
            "expired",
        ),
        (
            bearer_token(
                json!({"iss": ISSUER, "sub": "x", "aud": "gw", "exp": NOW + 300, "nbf": NOW + 120}),
            ),
            "not_yet_valid",
        ),
        (
            bearer_token(json!({"iss": ISSUER, "sub": "x", "aud": "other", "exp": NOW + 300})),
            "wrong_audience",
        ),
        (
            bearer_token(
                json!({"iss": "https://evil.example", "sub": "x", "aud": "gw", "exp": NOW + 300}),
            ),
            "wrong_issuer",
        ),
        (
            format!(
                "Bearer {}",
                testkeys::forge(&json!({"alg": "none", "kid": "k1"}), &api_claims(NOW), b"")
            ),
            "algorithm_refused",
        ),
        (
            format!(
                "Bearer {}",
                testkeys::sign_hs256(
                    &json!({"alg": "HS256", "kid": "k1"}),
                    &api_claims(NOW),
                    public_pem.as_bytes()
                )
            ),
            "algorithm_refused",
        ),
        (
            format!(
                "Bearer {}",
                testkeys::sign_rs256(testkeys::rsa_b(), Some("k1"), &api_claims(NOW))
            ),
            "bad_signature",
        ),
        (format!("Bearer {tampered}"), "bad_signature"),
        ("Bearer not-a-jwt".to_string(), "malformed_token"),
    ];
    for (auth, reason) in cases {
        let r = denial(f.run(&api(Some(&auth))));
        assert_eq!(
            (r.status, r.decision),
            (401, Decision::Deny(reason)),
            "{reason}"
        );
        let challenge = header(&r, "www-authenticate").expect("challenge");
        assert_eq!(
            challenge,
            format!(
                "Bearer realm=\"payroll\", error=\"invalid_token\", error_description=\"{reason}\""
            )
        );
    }
}

#[test]
fn an_invalid_bearer_token_is_not_rescued_by_a_session() {
    let mut f = Fixture::new();
    let cookie = f.login(&["staff"]);
    let r = Request {
        cookie: Some(&cookie),
        ..api(Some("Bearer forged"))
    };
    assert_eq!(denial(f.run(&r)).status, 401);
}

#[test]
fn an_unknown_kid_waits_for_a_key_refresh_once() {
    let mut f = Fixture::new();
    let auth = format!(
        "Bearer {}",
        testkeys::sign_rs256(testkeys::rsa_b(), Some("k2"), &api_claims(NOW))
    );
    assert!(matches!(
        f.run(&api(Some(&auth))),
        Outcome::Wait(Need::Keys, Resume::Request)
    ));
    // The issuer rotated: the refreshed set has k2.
    f.provider.keys = keys(vec![
        testkeys::rsa_a_public_jwk("k1"),
        testkeys::rsa_b_public_jwk("k2"),
    ]);
    assert!(matches!(f.run(&api(Some(&auth))), Outcome::Continue(_)));
    // A kid nobody has, once refreshing is no longer allowed: refused.
    f.key_refresh_allowed = false;
    let auth = format!(
        "Bearer {}",
        testkeys::sign_rs256(testkeys::rsa_b(), Some("k9"), &api_claims(NOW))
    );
    assert_eq!(
        denial(f.run(&api(Some(&auth)))).decision,
        Decision::Deny("unknown_key")
    );
}

#[test]
fn an_api_client_without_credentials_gets_401_without_error_code() {
    let mut f = Fixture::new();
    let r = denial(f.run(&api(None)));
    assert_eq!(r.status, 401);
    assert_eq!(
        header(&r, "www-authenticate"),
        Some("Bearer realm=\"payroll\"")
    );
    assert_eq!(r.decision.as_string(), "deny:credentials_required");
    let basic = denial(f.run(&api(Some("Basic dXNlcjpwYXNz"))));
    assert_eq!(
        basic.status, 401,
        "other schemes are not credentials for authn"
    );
}

#[test]
fn requests_wait_for_the_provider_except_sessions() {
    let mut f = Fixture::new();
    let cookie = f.login(&["staff"]);
    let auth = bearer_token(api_claims(NOW));
    assert!(matches!(
        f.run_without_provider(&api(Some(&auth))),
        Outcome::Wait(Need::Provider, _)
    ));
    assert!(matches!(
        f.run_without_provider(&browser("/", None)),
        Outcome::Wait(Need::Provider, _)
    ));
    assert!(matches!(
        f.run_without_provider(&browser("/", Some(&cookie))),
        Outcome::Continue(_)
    ));
    // No credentials on an API: the answer does not depend on the provider.
    assert_eq!(denial(f.run_without_provider(&api(None))).status, 401);
}

// ---- optional mode ----

#[test]
fn optional_mode_lets_anonymous_requests_and_bad_tokens_through_without_identity() {
    let mut f = Fixture::with(AuthnConfig {
        mode: AuthnMode::Optional,
        ..config()
    });
    for outcome in [
        f.run(&browser("/", None)),
        f.run(&api(Some("Bearer forged"))),
    ] {
        let Outcome::Continue(a) = outcome else {
            panic!("let through")
        };
        assert_eq!(
            (a.identity, a.headers.len(), a.decision),
            (None, 0, Decision::Allow)
        );
    }
    let auth = bearer_token(api_claims(NOW));
    let Outcome::Continue(a) = f.run(&api(Some(&auth))) else {
        panic!("let through")
    };
    assert!(a.identity.is_some(), "a valid identity is still passed on");
}

// ---- browser login ----

#[test]
fn a_browser_without_session_is_sent_to_sign_in_with_pkce_state_and_nonce() {
    let mut f = Fixture::new();
    let r = denial(f.run(&browser("/reports?q=1", None)));
    assert_eq!((r.status, r.decision), (302, Decision::Login));
    let location = header(&r, "location").expect("location");
    assert!(location.starts_with("https://idp.example/auth?"));
    let q = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
    assert_eq!(query_param(q, "response_type").as_deref(), Some("code"));
    assert_eq!(query_param(q, "client_id").as_deref(), Some("gw"));
    assert_eq!(
        query_param(q, "redirect_uri").as_deref(),
        Some("https://app.example.com/.paved/callback")
    );
    assert_eq!(
        query_param(q, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(query_param(q, "code_challenge").map(|c| c.len()), Some(43));
    assert!(query_param(q, "scope").is_some_and(|s| s.starts_with("openid")));
    let (state, nonce, _) = login_params(&r);
    assert!(state.len() >= 43 && nonce.len() >= 43 && state != nonce);
    let set = set_cookies(&r.headers);
    assert!(set.iter().any(|c| c.starts_with("paved_session_login_")
        && c.contains("Secure")
        && c.contains("HttpOnly")
        && c.contains("SameSite=Lax")
        && c.contains("Max-Age=600")));
    // Each login is different.
    let again = denial(f.run(&browser("/reports?q=1", None)));
    assert_ne!(login_params(&again).0, state);
}

#[test]
fn scripts_and_non_get_requests_get_401_not_a_redirect() {
    let mut f = Fixture::new();
    let post = Request {
        accept: Some("text/html"),
        ..req("POST", "/form")
    };
    assert_eq!(denial(f.run(&post)).status, 401);
    let navigate = Request {
        sec_fetch_mode: Some("navigate"),
        ..req("GET", "/")
    };
    assert_eq!(denial(f.run(&navigate)).status, 302);
}

#[test]
fn the_whole_browser_login_ends_in_a_session_with_userinfo_claims() {
    let mut f = Fixture::new();
    let start = denial(f.run(&browser("/reports?q=1", None)));
    let location = header(&start, "location").expect("location").to_string();
    let challenge = query_param(
        location.split_once('?').map(|(_, q)| q).unwrap_or_default(),
        "code_challenge",
    )
    .expect("challenge");
    let (state, nonce, login_cookie) = login_params(&start);
    let path = format!("/.paved/callback?code=c0de&state={state}&iss=https%3A%2F%2Fidp.example");
    let Outcome::Call(exchange) = f.run(&browser(&path, Some(&login_cookie))) else {
        panic!("code exchange")
    };
    // The token request: Basic auth, the code, the same redirect URI, and the verifier whose
    // S256 is the challenge the browser carried.
    let call = &exchange.request;
    assert_eq!(
        (call.method, call.authority.as_str(), call.path.as_str()),
        ("POST", "idp.example", "/token")
    );
    assert!(
        call.headers
            .iter()
            .any(|(n, v)| n == "authorization" && v.starts_with("Basic "))
    );
    let body = String::from_utf8_lossy(&call.body).into_owned();
    assert_eq!(
        query_param(&body, "grant_type").as_deref(),
        Some("authorization_code")
    );
    assert_eq!(query_param(&body, "code").as_deref(), Some("c0de"));
    assert_eq!(
        query_param(&body, "redirect_uri").as_deref(),
        Some("https://app.example.com/.paved/callback")
    );
    let verifier = query_param(&body, "code_verifier").expect("verifier");
    assert_eq!(crate::pkce::challenge(&verifier), challenge);

    let tokens = json!({
        "id_token": f.id_token(json!({"nonce": nonce})),
        "access_token": "at", "refresh_token": "rt1", "token_type": "Bearer", "expires_in": 300,
    });
    let Outcome::Call(userinfo) = f.answer(exchange.pending, 200, tokens) else {
        panic!("userinfo")
    };
    assert_eq!(userinfo.request.path, "/me");
    assert!(
        userinfo
            .request
            .headers
            .iter()
            .any(|(n, v)| n == "authorization" && v == "Bearer at")
    );
    let info = json!({"sub": "alice", "groups": ["staff", "hr"], "department": "audit"});
    let done = denial(f.answer(userinfo.pending, 200, info));
    assert_eq!(
        (done.status, header(&done, "location")),
        (302, Some("/reports?q=1"))
    );
    assert_eq!(done.decision, Decision::Allow);
    assert_eq!(done.identity.as_ref().map(|i| i.groups.len()), Some(2));
    let set = set_cookies(&done.headers);
    assert!(
        set.iter()
            .any(|c| c.starts_with("paved_session=v1.") && c.contains("Max-Age=28800"))
    );
    assert!(
        set.iter()
            .any(|c| c.starts_with("paved_session_login_") && c.contains("Max-Age=0"))
    );

    // The next request rides on the session.
    let cookie = session_cookie(&done).expect("session");
    let Outcome::Continue(admit) = f.run(&browser("/reports", Some(&cookie))) else {
        panic!("admitted")
    };
    let id = admit.identity.expect("identity");
    assert_eq!(
        (id.subject.as_str(), id.email.as_deref()),
        ("alice", Some("alice@example.com"))
    );
    assert_eq!(id.groups, vec!["staff", "hr"]);
    assert_eq!(id.claims.get("department"), Some(&json!("audit")));
    assert_eq!(id.claims.get("email_verified"), Some(&json!(true)));
    assert!(id.claims.get("nonce").is_none());
}

#[test]
fn userinfo_for_another_subject_is_ignored() {
    let mut f = Fixture::new();
    let start = denial(f.run(&browser("/", None)));
    let (state, nonce, cookie) = login_params(&start);
    let path = format!("/.paved/callback?code=c&state={state}");
    let Outcome::Call(ex) = f.run(&browser(&path, Some(&cookie))) else {
        panic!("exchange")
    };
    let tokens = json!({"id_token": f.id_token(json!({"nonce": nonce, "groups": ["staff"]})), "access_token": "at"});
    let Outcome::Call(ui) = f.answer(ex.pending, 200, tokens) else {
        panic!("userinfo")
    };
    let done = denial(f.answer(
        ui.pending,
        200,
        json!({"sub": "mallory", "groups": ["admin"]}),
    ));
    assert_eq!(
        done.identity.map(|i| i.groups),
        Some(vec!["staff".to_string()])
    );
}

#[test]
fn a_replayed_state_is_refused() {
    let mut f = Fixture::new();
    let start = denial(f.run(&browser("/", None)));
    let (state, _, cookie) = login_params(&start);
    let path = format!("/.paved/callback?code=c&state={state}");
    assert!(matches!(
        f.run(&browser(&path, Some(&cookie))),
        Outcome::Call(_)
    ));
    let r = denial(f.run(&browser(&path, Some(&cookie))));
    assert_eq!(
        (r.status, r.decision),
        (403, Decision::Deny("state_replayed"))
    );
}

#[test]
fn a_callback_without_the_login_cookie_is_refused() {
    // Login CSRF: the attacker's own callback URL sent to a victim.
    let mut f = Fixture::new();
    let start = denial(f.run(&browser("/", None)));
    let (state, _, _) = login_params(&start);
    let path = format!("/.paved/callback?code=attacker&state={state}");
    let r = denial(f.run(&browser(&path, None)));
    assert_eq!(r.decision, Decision::Deny("no_login_state"));
}

#[test]
fn a_callback_with_a_forged_or_repeated_state_is_refused() {
    let mut f = Fixture::new();
    let start = denial(f.run(&browser("/", None)));
    let (state, _, cookie) = login_params(&start);
    let forged = format!("{}AAAA", &state[..state.len() - 4]);
    let path = format!("/.paved/callback?code=c&state={forged}");
    assert_eq!(
        denial(f.run(&browser(&path, Some(&cookie)))).decision,
        Decision::Deny("state_mismatch")
    );
    let twice = format!("/.paved/callback?code=c&state={state}&state={state}");
    assert_eq!(
        denial(f.run(&browser(&twice, Some(&cookie)))).decision,
        Decision::Deny("bad_callback")
    );
    let no_code = format!("/.paved/callback?state={state}");
    assert_eq!(
        denial(f.run(&browser(&no_code, Some(&cookie)))).decision,
        Decision::Deny("bad_callback")
    );
}

#[test]
fn a_login_cookie_expires() {
    let mut f = Fixture::new();
    let start = denial(f.run(&browser("/", None)));
    let (state, _, cookie) = login_params(&start);
    f.now += 601;
    let path = format!("/.paved/callback?code=c&state={state}");
    assert_eq!(
        denial(f.run(&browser(&path, Some(&cookie)))).decision,
        Decision::Deny("login_expired")
    );
}

#[test]
fn an_id_token_with_the_wrong_nonce_or_audience_is_refused() {
    for (extra, reason) in [
        (json!({"nonce": "other"}), "wrong_nonce"),
        (json!({}), "wrong_nonce"),
        (
            json!({"aud": "someone-else", "nonce": null}),
            "wrong_audience",
        ),
        (
            json!({"aud": ["gw", "x"], "nonce": null}),
            "wrong_authorized_party",
        ),
        (
            json!({"iss": "https://evil.example", "nonce": null}),
            "wrong_issuer",
        ),
        (json!({"exp": NOW - 3600, "nonce": null}), "expired"),
    ] {
        let mut f = Fixture::new();
        let start = denial(f.run(&browser("/", None)));
        let (state, nonce, cookie) = login_params(&start);
        let path = format!("/.paved/callback?code=c&state={state}");
        let Outcome::Call(ex) = f.run(&browser(&path, Some(&cookie))) else {
            panic!("exchange")
        };
        let mut extra = extra;
        if extra.get("nonce") == Some(&Value::Null) {
            extra["nonce"] = json!(nonce);
        }
        let tokens = json!({"id_token": f.id_token(extra), "access_token": "at"});
        let r = denial(f.answer(ex.pending, 200, tokens));
        assert_eq!(
            (r.status, r.decision),
            (403, Decision::Deny(reason)),
            "{reason}"
        );
        assert!(session_cookie(&r).is_none());
        assert!(
            set_cookies(&r.headers)
                .iter()
                .any(|c| c.contains("_login_") && c.contains("Max-Age=0"))
        );
    }
}

#[test]
fn an_id_token_signed_by_a_new_key_waits_for_the_refreshed_jwks() {
    let mut f = Fixture::with(AuthnConfig {
        fetch_userinfo: false,
        ..config()
    });
    let start = denial(f.run(&browser("/x", None)));
    let (state, nonce, cookie) = login_params(&start);
    let path = format!("/.paved/callback?code=c&state={state}");
    let Outcome::Call(ex) = f.run(&browser(&path, Some(&cookie))) else {
        panic!("exchange")
    };
    let claims =
        json!({"iss": ISSUER, "sub": "alice", "aud": "gw", "exp": NOW + 300, "nonce": nonce});
    let token = testkeys::sign_rs256(testkeys::rsa_b(), Some("k2"), &claims);
    let Outcome::Wait(Need::Keys, Resume::Response(pending, response)) =
        f.answer(ex.pending, 200, json!({"id_token": token}))
    else {
        panic!("wait for keys")
    };
    f.provider.keys = keys(vec![testkeys::rsa_b_public_jwk("k2")]);
    let mut rng = OsRng;
    let mut env = Env {
        now: f.now,
        rng: &mut rng,
        replay: &mut f.used,
        key_refresh_allowed: false,
    };
    let Outcome::Respond(done) =
        f.authn
            .on_call_response(pending, response, Some(&f.provider), &mut env)
    else {
        panic!("done")
    };
    assert_eq!((done.status, header(&done, "location")), (302, Some("/x")));
}

#[test]
fn an_error_from_the_provider_or_a_foreign_iss_ends_the_login() {
    let mut f = Fixture::new();
    let start = denial(f.run(&browser("/", None)));
    let (state, _, cookie) = login_params(&start);
    let denied = format!("/.paved/callback?error=access_denied&state={state}");
    assert_eq!(
        denial(f.run(&browser(&denied, Some(&cookie)))).decision,
        Decision::Deny("idp_error")
    );
    let mixup = format!("/.paved/callback?code=c&state={state}&iss=https%3A%2F%2Fevil.example");
    assert_eq!(
        denial(f.run(&browser(&mixup, Some(&cookie)))).decision,
        Decision::Deny("issuer_mismatch")
    );
}

#[test]
fn a_failed_code_exchange_is_reported_without_session() {
    let mut f = Fixture::new();
    for (status, reason, code) in [
        (400, "grant_refused", 403),
        (0, "idp_unavailable", 502),
        (500, "token_endpoint_error", 502),
    ] {
        let start = denial(f.run(&browser("/", None)));
        let (state, _, cookie) = login_params(&start);
        let path = format!("/.paved/callback?code=c&state={state}");
        let Outcome::Call(ex) = f.run(&browser(&path, Some(&cookie))) else {
            panic!("exchange")
        };
        let r = denial(f.answer(ex.pending, status, json!({"error": "invalid_grant"})));
        assert_eq!((r.status, r.decision), (code, Decision::Deny(reason)));
    }
}

// ---- sessions ----

#[test]
fn a_tampered_session_cookie_counts_as_none_and_is_cleared() {
    let mut f = Fixture::new();
    let cookie = f.login(&["staff"]);
    let mut tampered = cookie.clone();
    let i = tampered.len() - 10;
    let c = if &tampered[i..i + 1] == "A" { "B" } else { "A" };
    tampered.replace_range(i..i + 1, c);
    let r = denial(f.run(&browser("/", Some(&tampered))));
    assert_eq!(r.status, 302, "signed in again");
    assert!(
        set_cookies(&r.headers)
            .iter()
            .any(|c| c.starts_with("paved_session=;") && c.contains("Max-Age=0"))
    );
    let api_req = Request {
        cookie: Some(&tampered),
        ..api(None)
    };
    assert_eq!(denial(f.run(&api_req)).status, 401);
}

#[test]
fn a_session_cookie_from_another_gateway_key_is_refused() {
    let mut a = Fixture::new();
    let cookie = a.login(&["staff"]);
    let mut b = Fixture::new();
    assert_eq!(denial(b.run(&browser("/", Some(&cookie)))).status, 302);
}

#[test]
fn an_expired_session_signs_in_again() {
    let mut f = Fixture::new();
    let cookie = f.login(&["staff"]);
    f.now += 8 * 3600;
    assert_eq!(
        denial(f.run(&browser("/", Some(&cookie)))).decision,
        Decision::Login
    );
}

#[test]
fn a_due_session_is_refreshed_with_the_refresh_token() {
    let mut f = Fixture::new();
    let cookie = f.login(&["staff"]);
    f.now += 15 * 60;
    let Outcome::Call(call) = f.run(&browser("/", Some(&cookie))) else {
        panic!("refresh")
    };
    let body = String::from_utf8_lossy(&call.request.body).into_owned();
    assert_eq!(
        query_param(&body, "grant_type").as_deref(),
        Some("refresh_token")
    );
    assert_eq!(query_param(&body, "refresh_token").as_deref(), Some("rt1"));
    let tokens = json!({"id_token": f.id_token(json!({"groups": ["staff", "admin"]})), "refresh_token": "rt2"});
    let Outcome::Continue(admit) = f.answer(call.pending, 200, tokens) else {
        panic!("admitted")
    };
    assert_eq!(admit.identity.as_ref().map(|i| i.groups.len()), Some(2));
    let renewed = cookie_pair(
        &admit
            .response_cookies
            .iter()
            .map(|c| ("set-cookie".to_string(), c.clone()))
            .collect::<Vec<_>>(),
        "paved_session=",
    )
    .expect("renewed cookie");
    // Not due any more.
    assert!(matches!(
        f.run(&browser("/", Some(&renewed))),
        Outcome::Continue(_)
    ));
}

#[test]
fn a_refresh_the_issuer_refuses_ends_the_session() {
    let mut f = Fixture::new();
    let cookie = f.login(&["staff"]);
    f.now += 15 * 60;
    let Outcome::Call(call) = f.run(&browser("/page", Some(&cookie))) else {
        panic!("refresh")
    };
    let r = denial(f.answer(call.pending, 400, json!({"error": "invalid_grant"})));
    assert_eq!((r.status, r.decision), (302, Decision::Login));
    assert!(
        set_cookies(&r.headers)
            .iter()
            .any(|c| c.starts_with("paved_session=;"))
    );
    let api_req = Request {
        cookie: Some(&cookie),
        ..api(None)
    };
    let Outcome::Call(call) = f.run(&api_req) else {
        panic!("refresh")
    };
    let r = denial(f.answer(call.pending, 401, json!({})));
    assert_eq!(
        (r.status, r.decision),
        (401, Decision::Deny("session_revoked"))
    );
}

#[test]
fn a_refresh_without_answer_keeps_the_session_and_retries_later() {
    let mut f = Fixture::new();
    let cookie = f.login(&["staff"]);
    f.now += 15 * 60;
    let Outcome::Call(call) = f.run(&browser("/", Some(&cookie))) else {
        panic!("refresh")
    };
    let Outcome::Continue(admit) = f.answer(call.pending, 0, json!({})) else {
        panic!("kept")
    };
    assert!(admit.identity.is_some());
    let renewed = admit.response_cookies[0]
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(matches!(
        f.run(&browser("/", Some(&renewed))),
        Outcome::Continue(_)
    ));
    f.now += 60;
    assert!(matches!(
        f.run(&browser("/", Some(&renewed))),
        Outcome::Call(_)
    ));
}

#[test]
fn a_refreshed_id_token_for_another_subject_ends_the_session() {
    let mut f = Fixture::new();
    let cookie = f.login(&["staff"]);
    f.now += 15 * 60;
    let Outcome::Call(call) = f.run(&browser("/", Some(&cookie))) else {
        panic!("refresh")
    };
    let tokens = json!({"id_token": f.id_token(json!({"sub": "mallory"}))});
    assert_eq!(
        denial(f.answer(call.pending, 200, tokens)).decision,
        Decision::Login
    );
}

// ---- redirects ----

#[test]
fn login_targets_cannot_leave_the_app() {
    let mut f = Fixture::new();
    for path in ["//evil.example/x", "/\\evil.example"] {
        let r = denial(f.run(&browser(path, None)));
        let (state, nonce, cookie) = login_params(&r);
        let cb = format!("/.paved/callback?code=c&state={state}");
        let Outcome::Call(ex) = f.run(&browser(&cb, Some(&cookie))) else {
            panic!("exchange")
        };
        let tokens = json!({"id_token": f.id_token(json!({"nonce": nonce}))});
        let done = denial(f.answer(ex.pending, 200, tokens));
        assert_eq!(header(&done, "location"), Some("/"), "{path}");
    }
    for rd in [
        "https://evil.example/",
        "//evil.example",
        "https%3A%2F%2Fapp.example.com%40evil.example",
        "%2F.paved%2Flogout",
    ] {
        let path = format!("/.paved/login?rd={rd}");
        let r = denial(f.run(&browser(&path, None)));
        let (state, nonce, cookie) = login_params(&r);
        let cb = format!("/.paved/callback?code=c&state={state}");
        let Outcome::Call(ex) = f.run(&browser(&cb, Some(&cookie))) else {
            panic!("exchange")
        };
        let tokens = json!({"id_token": f.id_token(json!({"nonce": nonce}))});
        let done = denial(f.answer(ex.pending, 200, tokens));
        assert_eq!(header(&done, "location"), Some("/"), "{rd}");
    }
}

#[test]
fn explicit_login_goes_to_a_safe_rd() {
    let mut f = Fixture::with(AuthnConfig {
        fetch_userinfo: false,
        ..config()
    });
    let r = denial(f.run(&browser("/.paved/login?rd=%2Fdash%3Fa%3D1", None)));
    let (state, nonce, cookie) = login_params(&r);
    let cb = format!("/.paved/callback?code=c&state={state}");
    let Outcome::Call(ex) = f.run(&browser(&cb, Some(&cookie))) else {
        panic!("exchange")
    };
    let done = denial(f.answer(
        ex.pending,
        200,
        json!({"id_token": f.id_token(json!({"nonce": nonce}))}),
    ));
    assert_eq!(header(&done, "location"), Some("/dash?a=1"));
}

#[test]
fn logout_clears_the_session_and_stays_on_the_app() {
    let mut f = Fixture::new();
    let cookie = f.login(&["staff"]);
    let r = denial(f.run(&browser("/.paved/logout?rd=%2Fbye", Some(&cookie))));
    assert_eq!(
        (r.status, header(&r, "location"), r.decision),
        (302, Some("/bye"), Decision::Logout)
    );
    assert!(
        set_cookies(&r.headers)
            .iter()
            .any(|c| c.starts_with("paved_session=;") && c.contains("Max-Age=0"))
    );
    let evil = denial(f.run(&browser(
        "/.paved/logout?rd=%2F%2Fevil.example",
        Some(&cookie),
    )));
    assert_eq!(header(&evil, "location"), Some("/"));
}

#[test]
fn logout_can_end_the_providers_session_too() {
    let mut f = Fixture::with(AuthnConfig {
        idp_logout: true,
        ..config()
    });
    let r = denial(f.run(&browser("/.paved/logout", None)));
    let location = header(&r, "location").expect("location");
    assert!(
        location.starts_with("https://idp.example/logout?client_id=gw&post_logout_redirect_uri=")
    );
    assert!(location.ends_with("https%3A%2F%2Fapp.example.com%2F"));
}

#[test]
fn development_over_http_uses_an_http_redirect_uri() {
    let mut f = Fixture::new();
    let r = denial(f.run(&Request {
        scheme: "http",
        authority: "localhost:8080",
        ..browser("/", None)
    }));
    let location = header(&r, "location").expect("location");
    let q = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
    assert_eq!(
        query_param(q, "redirect_uri").as_deref(),
        Some("http://localhost:8080/.paved/callback")
    );
    let bad_host = denial(f.run(&Request {
        authority: "evil.example/\r\nx",
        ..browser("/", None)
    }));
    assert_eq!(bad_host.decision, Decision::Deny("bad_host"));
}

#[test]
fn many_tabs_do_not_pile_up_login_cookies() {
    let mut f = Fixture::new();
    let mut jar: Vec<String> = Vec::new();
    for _ in 0..5 {
        let header_value = jar.join("; ");
        let r = denial(f.run(&browser("/", Some(&header_value))));
        jar.push(login_params(&r).2);
    }
    let header_value = jar.join("; ");
    let r = denial(f.run(&browser("/", Some(&header_value))));
    let cleared = set_cookies(&r.headers)
        .iter()
        .filter(|c| c.contains("Max-Age=0"))
        .count();
    assert_eq!(cleared, 5);
}

#[test]
fn decisions_render_as_recorded() {
    assert_eq!(Decision::Allow.as_string(), "allow");
    assert_eq!(Decision::Login.as_string(), "login");
    assert_eq!(Decision::Deny("expired").as_string(), "deny:expired");
}

#[test]
fn a_cached_bearer_token_still_expires() {
    let mut f = Fixture::new();
    let claims = json!({"iss": ISSUER, "sub": "x", "aud": "gw", "exp": NOW + 100});
    let auth = bearer_token(claims);
    assert!(matches!(f.run(&api(Some(&auth))), Outcome::Continue(_)));
    f.now += 100 + 59;
    assert!(
        matches!(f.run(&api(Some(&auth))), Outcome::Continue(_)),
        "within the skew"
    );
    f.now += 1;
    assert_eq!(
        denial(f.run(&api(Some(&auth)))).decision,
        Decision::Deny("expired")
    );
}

#[test]
fn cached_bearer_tokens_are_verified_again_when_the_keys_change() {
    let mut f = Fixture::new();
    let auth = bearer_token(api_claims(NOW));
    assert!(matches!(f.run(&api(Some(&auth))), Outcome::Continue(_)));
    // The provider withdrew k1 (compromised): the next JWKS no longer has it.
    f.provider.keys = keys(vec![testkeys::rsa_b_public_jwk("k2")]);
    f.provider.generation += 1;
    f.key_refresh_allowed = false;
    assert_eq!(
        denial(f.run(&api(Some(&auth)))).decision,
        Decision::Deny("unknown_key")
    );
}
