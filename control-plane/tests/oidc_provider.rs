//! The built-in OpenID provider, driven over HTTP with a real client: discovery → authorize
//! (login form post) → token with PKCE → ID token verified with the JWKS → userinfo.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{
    Backend, client, cookie_value, env, hidden, login_form_fields, person, query_param, serve,
};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use paved_control_plane::services::NewClient;
use paved_control_plane::{ControlPlane, Role};
use serde_json::Value;
use sha2::{Digest, Sha256};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn verifier_and_challenge() -> (String, String) {
    let verifier = paved_control_plane::secrets::random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Verifies a JWT against a JWKS without the provider's code: returns its claims.
fn verify_with_jwks(token: &str, jwks: &Value) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
    assert_eq!(header["alg"], "ES256");
    let key = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's kid is in the JWKS");
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    let coord = |c: &str| {
        URL_SAFE_NO_PAD
            .decode(key[c].as_str().expect("coord"))
            .expect("b64")
    };
    let (x, y) = (coord("x"), coord("y"));
    let point = p256::EncodedPoint::from_affine_coordinates(
        p256::FieldBytes::from_slice(&x),
        p256::FieldBytes::from_slice(&y),
        false,
    );
    let vk = VerifyingKey::from_encoded_point(&point).expect("key");
    let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).expect("b64")).expect("sig");
    vk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("the signature verifies with the JWKS key");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("claims")
}

async fn register(cp: &ControlPlane, id: &str, confidential: bool) -> Option<String> {
    cp.register_client(
        &paved_control_plane::Principal::system(),
        NewClient {
            client_id: id.into(),
            name: id.into(),
            redirect_uris: vec![REDIRECT.into()],
            confidential,
        },
    )
    .await
    .expect("register")
    .1
}

async fn authorization_code_flow_with_pkce(backend: Backend) {
    let base_holder;
    let t = {
        // The issuer must be the address the test server listens on.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        base_holder = format!("http://{addr}");
        let base = base_holder.clone();
        let t = common::env_with(backend, move |c| c.public_url = base).await;
        let router = t.cp.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        t
    };
    let base = base_holder.as_str();
    let cp = &t.cp;
    person(cp, "ann", Role::AppOwner, &["team-a"]).await;
    let secret = register(cp, "demo-app", true).await.expect("secret");
    let http = client();

    // Discovery.
    let disco: Value = http
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .expect("disco")
        .json()
        .await
        .expect("json");
    assert_eq!(disco["issuer"], base);
    assert_eq!(
        disco["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    let jwks: Value = http
        .get(disco["jwks_uri"].as_str().expect("jwks_uri"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let authorize = disco["authorization_endpoint"]
        .as_str()
        .expect("authorize")
        .to_string();
    let token_url = disco["token_endpoint"].as_str().expect("token").to_string();

    // Authorize without PKCE: refused back to the client.
    let r = http
        .get(&authorize)
        .query(&[
            ("response_type", "code"),
            ("client_id", "demo-app"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("state", "s0"),
        ])
        .send()
        .await
        .expect("no pkce");
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().expect("loc").to_string();
    assert_eq!(
        query_param(&loc, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(query_param(&loc, "state").as_deref(), Some("s0"));
    // An unregistered redirect URI is never redirected to.
    let r = http
        .get(&authorize)
        .query(&[
            ("response_type", "code"),
            ("client_id", "demo-app"),
            ("redirect_uri", "http://evil.example/cb"),
            ("scope", "openid"),
        ])
        .send()
        .await
        .expect("evil");
    assert_eq!(r.status(), 400);

    // The login form.
    let (verifier, challenge) = verifier_and_challenge();
    let params = [
        ("response_type", "code"),
        ("client_id", "demo-app"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile email groups"),
        ("state", "xyz"),
        ("nonce", "n-0S6"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let r = http
        .get(&authorize)
        .query(&params)
        .send()
        .await
        .expect("form");
    assert_eq!(r.status(), 200);
    let csrf_cookie = cookie_value(&r, "paved_op_csrf").expect("csrf cookie");
    let html = r.text().await.expect("html");
    assert!(html.contains("<form method=\"post\" action=\"/authorize\">"));
    assert!(hidden(&html, "csrf").is_some(), "csrf field");
    let form = login_form_fields(&html);

    // A wrong password shows the form again; a post without the cookie is refused.
    let mut wrong = form.clone();
    wrong.extend([
        ("username".into(), "ann".into()),
        ("password".into(), "nope".into()),
    ]);
    let r = http
        .post(&authorize)
        .header("cookie", format!("paved_op_csrf={csrf_cookie}"))
        .form(&wrong)
        .send()
        .await
        .expect("wrong");
    assert_eq!(r.status(), 401);
    let mut good = form.clone();
    good.extend([
        ("username".into(), "ann".into()),
        ("password".into(), "correct horse battery".into()),
    ]);
    let r = http
        .post(&authorize)
        .form(&good)
        .send()
        .await
        .expect("no cookie");
    assert_eq!(r.status(), 400);

    let r = http
        .post(&authorize)
        .header("cookie", format!("paved_op_csrf={csrf_cookie}"))
        .form(&good)
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303);
    let session = cookie_value(&r, "paved_op_session").expect("session cookie");
    let loc = r.headers()["location"].to_str().expect("loc").to_string();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    assert_eq!(query_param(&loc, "state").as_deref(), Some("xyz"));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(base));
    let code = query_param(&loc, "code").expect("code");

    // The token endpoint: a wrong verifier is refused (and burns the code).
    let exchange = |code: String, verifier: String| {
        let http = http.clone();
        let token_url = token_url.clone();
        let secret = secret.clone();
        async move {
            http.post(&token_url)
                .basic_auth("demo-app", Some(secret))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", verifier.as_str()),
                ])
                .send()
                .await
                .expect("token")
        }
    };
    let r = http
        .post(&token_url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
            ("client_id", "demo-app"),
        ])
        .send()
        .await
        .expect("no secret");
    assert_eq!(r.status(), 401, "a confidential client must authenticate");
    let r = exchange(code.clone(), verifier.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let tokens: Value = r.json().await.expect("json");
    assert_eq!(tokens["token_type"], "Bearer");
    let claims = verify_with_jwks(tokens["id_token"].as_str().expect("id_token"), &jwks);
    assert_eq!(claims["iss"], base);
    assert_eq!(claims["aud"], "demo-app");
    assert_eq!(claims["nonce"], "n-0S6");
    assert_eq!(claims["preferred_username"], "ann");
    assert_eq!(claims["email"], "ann@example.com");
    assert_eq!(claims["groups"], serde_json::json!(["staff"]));
    assert!(claims["exp"].as_i64().expect("exp") > chrono::Utc::now().timestamp());
    let access = tokens["access_token"].as_str().expect("access_token");
    verify_with_jwks(access, &jwks);

    // The code is single use.
    let r = exchange(code.clone(), verifier.clone()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );

    // Userinfo.
    let info: Value = http
        .get(format!("{base}/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(info["sub"], claims["sub"]);
    assert_eq!(info["preferred_username"], "ann");
    let r = http
        .get(format!("{base}/userinfo"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("userinfo");
    assert_eq!(r.status(), 401);

    // Single sign-on: with the session cookie, authorize answers with a code at once; a wrong
    // verifier for that code is refused.
    let (_, challenge2) = verifier_and_challenge();
    let mut params2 = params.to_vec();
    params2[6] = ("code_challenge", challenge2.as_str());
    let r = http
        .get(&authorize)
        .query(&params2)
        .header("cookie", format!("paved_op_session={session}"))
        .send()
        .await
        .expect("sso");
    assert_eq!(r.status(), 303);
    let code2 = query_param(r.headers()["location"].to_str().expect("loc"), "code").expect("code");
    let r = exchange(code2, verifier.clone()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );
}

async fn ui_access_tokens_authenticate_people_on_the_api(backend: Backend) {
    // The UI client is registered at start (with `{public_url}/ui/callback`); the test's
    // redirect URI is one more of its URIs.
    let t = common::env_with(backend, |c| c.oidc.ui_redirect_uris = vec![REDIRECT.into()]).await;
    let cp = &t.cp;
    person(cp, "ann", Role::AppOwner, &["team-a"]).await;
    let base = serve(cp).await;
    let http = client();
    let (verifier, challenge) = verifier_and_challenge();
    let params = [
        ("response_type", "code"),
        ("client_id", "paved-ui"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let r = http
        .get(format!("{base}/authorize"))
        .query(&params)
        .send()
        .await
        .expect("form");
    let csrf_cookie = cookie_value(&r, "paved_op_csrf").expect("cookie");
    let html = r.text().await.expect("html");
    let mut form: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    form.extend([
        ("csrf".into(), hidden(&html, "csrf").expect("csrf")),
        ("username".into(), "ann".into()),
        ("password".into(), "correct horse battery".into()),
    ]);
    let r = http
        .post(format!("{base}/authorize"))
        .header("cookie", format!("paved_op_csrf={csrf_cookie}"))
        .form(&form)
        .send()
        .await
        .expect("login");
    let code = query_param(r.headers()["location"].to_str().expect("loc"), "code").expect("code");
    // A public client: PKCE alone.
    let tokens: Value = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", "paved-ui"),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let access = tokens["access_token"].as_str().expect("access token");
    let v: Value = http
        .post(format!("{base}/graphql"))
        .bearer_auth(access)
        .json(&serde_json::json!({"query": "{ me { name kind role teams } }"}))
        .send()
        .await
        .expect("graphql")
        .json()
        .await
        .expect("json");
    assert_eq!(
        v["data"]["me"],
        serde_json::json!({"name": "ann", "kind": "PERSON", "role": "app-owner", "teams": ["team-a"]})
    );
}

async fn the_signing_key_survives_a_restart(backend: Backend) {
    let t = env(backend).await;
    let kid = t.cp.keys().kid().to_string();
    let again = ControlPlane::start(t.config.clone())
        .await
        .expect("restart");
    assert_eq!(again.keys().kid(), kid);
    assert_eq!(
        again.ca_certificate_pem(),
        t.cp.ca_certificate_pem(),
        "the CA survives too"
    );
}

on_both_backends!(
    authorization_code_flow_with_pkce,
    ui_access_tokens_authenticate_people_on_the_api,
    the_signing_key_survives_a_restart,
);
