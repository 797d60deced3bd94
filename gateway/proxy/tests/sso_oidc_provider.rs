//! The authn plugin against an OpenID provider Paved did not write: panva's certified
//! `oidc-provider` (npm), run by `e2e/oidc-provider/server.mjs` and driven headlessly with
//! plain HTTP, in front of a real gateway running the real authn and authz wasm plugins.
//!
//! Browsers sign in with the authorization code flow (PKCE S256, state, nonce) and the
//! upstream receives the identity as an assertion signed with the key the gateway publishes;
//! API clients present the provider's JWT access tokens. The attacks are the ones only a
//! whole system shows: a replayed callback, a tampered session cookie, sign-in targets on
//! foreign domains, spoofed identity headers, and tokens the provider really issued but for
//! another audience, already expired, from another issuer, or signed HS256 with the
//! provider's public key. The token and cookie checks themselves are unit-tested in
//! `filters/identity` with keys those tests generate.
//!
//! The tests skip (saying so) only when `node` is not installed; `scripts/bootstrap.sh`
//! installs Node.js and the provider's npm packages.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use paved_e2e::harness::{
    CookieJar, Reply, RunningGateway, send, start_echo_upstream, start_gateway,
};
use paved_e2e::oidc_provider::{
    OidcProvider, basic_authorization, form_action, node_available, percent_encode,
};
use serde_json::{Value, json};

/// The app's host as browsers reach it. `*.localhost` is a secure context for browsers, so
/// they keep the gateway's `Secure` cookies even over plain HTTP, as here.
const HOST: &str = "app.localhost";
const CALLBACK: &str = "http://app.localhost/.paved/callback";
const CLIENT_ID: &str = "paved-gateway";
const CLIENT_SECRET: &str = "a-test-client-secret-of-reasonable-length";
const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
const EMAIL: &str = "alice@example.test";
/// The resource (RFC 8707) whose JWT access tokens the `/api` route accepts.
const API: &str = "https://api.app.localhost";
/// Same audience, tokens live one second.
const API_SHORT: &str = "https://api.app.localhost/short-lived";
/// Another API's audience.
const OTHER_API: &str = "https://other-api.example.test";
/// Same audience, tokens signed HS256 with the provider's public RSA key (PEM) as secret.
const API_HS_CONFUSED: &str = "urn:paved:test:hs256-with-public-key";

// ---------------------------------------------------------------------------------------
// The OpenID provider process

/// Starts the provider with the test client, user and resources, plus `extra` options.
fn start_idp(extra: &[&str]) -> OidcProvider {
    let resources = json!([
        {"indicator": API, "ttl": 300},
        {"indicator": API_SHORT, "audience": API, "ttl": 1},
        {"indicator": OTHER_API, "ttl": 300},
        {"indicator": API_HS_CONFUSED, "audience": API, "sign": "hs256-public-key"},
    ])
    .to_string();
    let mut args = vec![
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--redirect-uri",
        CALLBACK,
        "--user-sub",
        USER,
        "--user-password",
        PASSWORD,
        "--user-email",
        EMAIL,
        "--user-groups",
        "staff,readers",
        "--resources",
        &resources,
    ];
    args.extend_from_slice(extra);
    OidcProvider::start(&args)
}

/// A `client_credentials` JWT access token for `resource`, as the provider issues it.
async fn service_token(idp: &OidcProvider, resource: &str) -> String {
    let basic = basic_authorization(CLIENT_ID, CLIENT_SECRET);
    let body = format!(
        "grant_type=client_credentials&scope=api&resource={}",
        percent_encode(resource)
    );
    let reply = send(
        idp.addr,
        "POST",
        "/token",
        &[
            ("host", &idp.addr.to_string()),
            ("authorization", &basic),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", text(&reply));
    let token = reply.json()["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT access token: {token}");
    token
}

// ---------------------------------------------------------------------------------------
// The gateway

struct Setup {
    idp: OidcProvider,
    gw: RunningGateway,
}

/// A gateway whose `/` needs a signed-in member of `staff` with an e-mail at `example.test`
/// (`/admin`: group `admins`), and whose `/api` admits the provider's service client with a
/// token for [`API`].
fn start_setup(idp: OidcProvider) -> Setup {
    let session_key = b64_std_bytes(&random_bytes::<32>());
    let assertion_key = rcgen::KeyPair::generate()
        .expect("a P-256 key")
        .serialize_pem();
    let authn = |audiences: Value, skew: u64| {
        json!({
            "app": "shop",
            "issuer": idp.issuer,
            "idp_cluster": "paved-idp",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "audiences": audiences,
            "session_key": session_key,
            "assertion_key": assertion_key,
            "domains": [HOST],
            "clock_skew_secs": skew,
        })
    };
    let browser_authn = authn(json!([]), 60);
    // No skew on the API route: the expired-token case needs no minute-long wait.
    let api_authn = authn(json!([API]), 0);
    let browser_authz = json!({
        "app": "shop",
        "populations": [{"name": "staff", "groups": ["staff"],
                         "claims": {"email_domain": ["example.test"]}}],
        "rules": [{"path_prefixes": ["/admin"],
                   "populations": [{"name": "admins", "groups": ["admins"]}]}],
    });
    let api_authz = json!({"app": "shop", "clients": [CLIENT_ID]});
    let yaml = format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
admin: {{address: "{{admin}}"}}
clusters:
  - {{name: app, endpoints: ["{{upstream}}"]}}
  - {{name: paved-idp, endpoints: ["{idp}"]}}
routes:
  - host: "*"
    path_prefix: /api
    cluster: app
    plugins:
      - {{name: authn, builtin: authn, config: {api_authn}}}
      - {{name: authz, builtin: authz, config: {api_authz}}}
  - host: "*"
    path_prefix: /
    cluster: app
    plugins:
      - {{name: authn, builtin: authn, config: {browser_authn}}}
      - {{name: authz, builtin: authz, config: {browser_authz}}}
"#,
        idp = idp.addr,
    );
    let upstream = start_echo_upstream();
    let gw = start_gateway(&yaml, upstream.addr);
    Setup { idp, gw }
}

/// Starts the provider and the gateway, or `None` (the test skips) without `node`.
fn setup(test: &str) -> Option<Setup> {
    node_available(test).then(|| start_setup(start_idp(&[])))
}

// ---------------------------------------------------------------------------------------
// A browser: two cookie jars and redirects followed by hand

struct Browser<'a> {
    setup: &'a Setup,
    app: CookieJar,
    idp: CookieJar,
}

/// What one sign-in went through.
struct SignIn {
    /// The provider's authorization URL the gateway sent the browser to.
    authorize: String,
    /// The callback URL the provider sent the browser back with.
    callback: String,
    /// The gateway's cookies when the callback arrived (the login cookie among them).
    cookies_at_callback: String,
    /// The gateway's answer to the callback.
    done: Reply,
}

impl<'a> Browser<'a> {
    fn new(setup: &'a Setup) -> Browser<'a> {
        Browser {
            setup,
            app: CookieJar::default(),
            idp: CookieJar::default(),
        }
    }

    /// A navigation to the app (`Accept: text/html`), with the app's cookies.
    async fn visit(&mut self, path: &str, extra: &[(&str, &str)]) -> Reply {
        let cookies = self.app.header();
        let mut headers = vec![("host", HOST), ("accept", "text/html")];
        if !cookies.is_empty() {
            headers.push(("cookie", cookies.as_str()));
        }
        headers.extend_from_slice(extra);
        let reply = send(self.setup.gw.addr, "GET", path, &headers, b"").await;
        self.app.take(&reply);
        reply
    }

    /// A request to the provider, with its cookies.
    async fn idp_request(&mut self, method: &str, path: &str, form: Option<&str>) -> Reply {
        let host = self.setup.idp.addr.to_string();
        let cookies = self.idp.header();
        let mut headers = vec![("host", host.as_str()), ("accept", "text/html")];
        if !cookies.is_empty() {
            headers.push(("cookie", cookies.as_str()));
        }
        if form.is_some() {
            headers.push(("content-type", "application/x-www-form-urlencoded"));
        }
        let body = form.unwrap_or_default().as_bytes();
        let reply = send(self.setup.idp.addr, method, path, &headers, body).await;
        self.idp.take(&reply);
        reply
    }

    /// Visits `path`, which must send the browser to sign in, then completes the sign-in at
    /// the provider (the login form when the provider has no session yet) and delivers the
    /// callback to the gateway.
    async fn sign_in(&mut self, path: &str) -> SignIn {
        let start = self.visit(path, &[]).await;
        assert_eq!(start.status, 302, "sign-in starts: {}", text(&start));
        let authorize = location(&start).to_owned();
        assert!(
            authorize.starts_with(&format!("{}/auth?", self.setup.idp.issuer)),
            "{authorize}"
        );
        let mut next = authorize.clone();
        for _ in 0..10 {
            if next.starts_with(CALLBACK) {
                let cookies_at_callback = self.app.header();
                let done = self.visit(path_of(&next), &[]).await;
                return SignIn {
                    authorize,
                    callback: next,
                    cookies_at_callback,
                    done,
                };
            }
            let path = path_of(&next).to_owned();
            let reply = self.idp_request("GET", &path, None).await;
            next = match reply.status {
                302 | 303 => absolute(&self.setup.idp.issuer, location(&reply)),
                200 => {
                    let page = text(&reply);
                    let action = form_action(&page);
                    let form = format!(
                        "login={}&password={}",
                        percent_encode(USER),
                        percent_encode(PASSWORD)
                    );
                    let posted = self.idp_request("POST", &action, Some(&form)).await;
                    assert_eq!(posted.status, 303, "the login form: {}", text(&posted));
                    absolute(&self.setup.idp.issuer, location(&posted))
                }
                status => panic!(
                    "the provider answered {path} with {status}: {}",
                    text(&reply)
                ),
            };
        }
        panic!("the sign-in did not come back to the gateway");
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

fn location(reply: &Reply) -> &str {
    reply
        .header("location")
        .unwrap_or_else(|| panic!("no location in a {} reply: {}", reply.status, text(reply)))
}

/// The path and query of an absolute URL (a path stays as it is).
fn path_of(url: &str) -> &str {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    }
}

fn absolute(base: &str, location: &str) -> String {
    if location.contains("://") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    }
}

/// The decoded values of query parameter `name` of `url`.
fn query_params(url: &str, name: &str) -> Vec<String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let mut all = query_params(url, name);
    assert!(
        all.len() <= 1,
        "{name} appears {} times in {url}",
        all.len()
    );
    all.pop()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut out)
        .expect("system randomness");
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_std_bytes(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b64url(data: &[u8]) -> String {
    b64_std_bytes(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn b64url_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url: {s}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT part");
    serde_json::from_slice(&b64url_decode(part)).expect("JSON in a JWT")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Verifies an ES256 identity assertion against the JWKS the gateway serves, with `ring`
/// (not Paved's own JWT code), and returns its claims.
async fn verify_assertion(setup: &Setup, assertion: &str) -> Value {
    let reply = send(
        setup.gw.addr,
        "GET",
        "/.paved/jwks.json",
        &[("host", HOST)],
        b"",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", text(&reply));
    let jwks = reply.json();
    let header = jwt_part(assertion, 0);
    assert_eq!(header["alg"], "ES256", "{header}");
    let key = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("kid {} not in {jwks}", header["kid"]));
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert!(key.get("d").is_none(), "the JWKS holds public keys only");
    let mut point = vec![4u8];
    point.extend(b64url_decode(key["x"].as_str().expect("x")));
    point.extend(b64url_decode(key["y"].as_str().expect("y")));
    let (signed, signature) = assertion.rsplit_once('.').expect("a JWS");
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(signed.as_bytes(), &b64url_decode(signature))
        .expect("the assertion's signature verifies with the gateway's published key");
    jwt_part(assertion, 1)
}

/// A request to `/api` with `authorization: Bearer <token>` (and `extra` headers).
async fn api_call(setup: &Setup, token: &str, extra: &[(&str, &str)]) -> Reply {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![
        ("host", HOST),
        ("accept", "application/json"),
        ("authorization", bearer.as_str()),
    ];
    headers.extend_from_slice(extra);
    send(setup.gw.addr, "GET", "/api/orders", &headers, b"").await
}

/// Asserts a 401 whose `WWW-Authenticate` and body name `reason`.
fn assert_refused(reply: &Reply, reason: &str) {
    assert_eq!(reply.status, 401, "{}", text(reply));
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_token\"")
            && challenge.contains(&format!("error_description=\"{reason}\"")),
        "{challenge}"
    );
    assert_eq!(reply.json()["reason"], reason);
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_at_oidc_provider_and_the_upstream_gets_a_verifiable_assertion() {
    let Some(setup) = setup("a_browser_signs_in_at_oidc_provider") else {
        return;
    };
    let mut browser = Browser::new(&setup);
    let signed_in = browser.sign_in("/orders?page=2").await;

    // The authorization request: code flow, PKCE S256, fresh state and nonce.
    let authorize = &signed_in.authorize;
    assert_eq!(
        query_param(authorize, "response_type").as_deref(),
        Some("code")
    );
    assert_eq!(
        query_param(authorize, "client_id").as_deref(),
        Some(CLIENT_ID)
    );
    assert_eq!(
        query_param(authorize, "redirect_uri").as_deref(),
        Some(CALLBACK)
    );
    assert_eq!(
        query_param(authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let challenge = query_param(authorize, "code_challenge").expect("a code challenge");
    assert_eq!(b64url_decode(&challenge).len(), 32, "a SHA-256 challenge");
    let state = query_param(authorize, "state").expect("a state");
    let nonce = query_param(authorize, "nonce").expect("a nonce");
    assert!(state.len() >= 43 && nonce.len() >= 43, "256-bit values");
    assert_ne!(state, nonce);
    let scopes = query_param(authorize, "scope").expect("scopes");
    assert!(scopes.split(' ').next() == Some("openid"), "{scopes}");

    // The provider came back with the same state and named itself (RFC 9207).
    assert_eq!(query_param(&signed_in.callback, "state"), Some(state));
    assert_eq!(
        query_param(&signed_in.callback, "iss").as_deref(),
        Some(setup.idp.issuer.as_str())
    );

    // The callback sets the session cookie and goes back to where the sign-in started.
    let done = &signed_in.done;
    assert_eq!(done.status, 302, "{}", text(done));
    assert_eq!(path_of(location(done)), "/orders?page=2");
    let session = done
        .set_cookies
        .iter()
        .find(|c| c.starts_with("paved_session="))
        .expect("a session cookie");
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(
            session.contains(attribute),
            "{attribute} missing: {session}"
        );
    }
    assert!(
        !session.to_ascii_lowercase().contains("domain="),
        "host-only: {session}"
    );
    assert!(
        browser.app.names().all(|name| name == "paved_session"),
        "the login cookie is cleared: {:?}",
        browser.app.names().collect::<Vec<_>>()
    );

    // Signed in: the upstream sees the identity, and none of the client's spoofed headers.
    let page = browser
        .visit(
            "/orders?page=2",
            &[
                ("x-paved-user", "mallory"),
                ("x-paved-email", "mallory@evil.example"),
                ("x-paved-groups", "admins"),
                (
                    "x-paved-identity",
                    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.",
                ),
                ("x-forwarded-user", "mallory"),
                ("remote-user", "mallory"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", text(&page));
    let seen = &page.json()["headers"];
    assert_eq!(seen["x-paved-user"], USER);
    assert_eq!(seen["x-paved-email"], EMAIL);
    assert_eq!(seen["x-paved-groups"], "staff,readers");
    assert!(seen.get("x-forwarded-user").is_none(), "{seen}");
    assert!(seen.get("remote-user").is_none(), "{seen}");
    let assertion = seen["x-paved-identity"].as_str().expect("an assertion");
    let claims = verify_assertion(&setup, assertion).await;
    assert_eq!(claims["iss"], "paved");
    assert_eq!(claims["aud"], "shop");
    assert_eq!(claims["sub"], USER);
    assert_eq!(claims["email"], EMAIL);
    assert_eq!(claims["groups"], json!(["staff", "readers"]));
    assert_eq!(claims["kind"], "user");
    assert_eq!(claims["idp"], setup.idp.issuer.as_str());
    let exp = claims["exp"].as_u64().expect("exp");
    assert!(exp > now() && exp <= now() + 3600, "short-lived: {claims}");

    // authz: the user's groups come from the provider; `/admin` wants another group.
    let admin = browser.visit("/admin/users", &[]).await;
    assert_eq!(admin.status, 403, "{}", text(&admin));
    assert_eq!(admin.json()["reason"], "group_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_callback_is_refused_and_makes_no_session() {
    let Some(setup) = setup("a_replayed_callback_is_refused") else {
        return;
    };
    let mut browser = Browser::new(&setup);
    let signed_in = browser.sign_in("/").await;
    assert_eq!(signed_in.done.status, 302, "{}", text(&signed_in.done));
    let callback = path_of(&signed_in.callback);

    // The same callback, with the login cookie it first came with (an attacker who saw both).
    let replay = send(
        setup.gw.addr,
        "GET",
        callback,
        &[("host", HOST), ("cookie", &signed_in.cookies_at_callback)],
        b"",
    )
    .await;
    assert_eq!(replay.status, 403, "{}", text(&replay));
    assert!(
        text(&replay).contains("state_replayed"),
        "{}",
        text(&replay)
    );
    assert!(
        !replay
            .set_cookies
            .iter()
            .any(|c| c.starts_with("paved_session=v1")),
        "no session from a replay"
    );

    // The callback URL alone (login CSRF: sent to a victim who never started this sign-in).
    let victim = send(
        setup.gw.addr,
        "GET",
        callback,
        &[("host", HOST), ("accept", "text/html")],
        b"",
    )
    .await;
    assert_eq!(victim.status, 403, "{}", text(&victim));
    assert!(
        text(&victim).contains("no_login_state"),
        "{}",
        text(&victim)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_session_cookie_is_refused_and_cleared() {
    let Some(setup) = setup("a_tampered_session_cookie_is_refused") else {
        return;
    };
    let mut browser = Browser::new(&setup);
    let signed_in = browser.sign_in("/").await;
    assert_eq!(signed_in.done.status, 302, "{}", text(&signed_in.done));
    let session = browser
        .app
        .get("paved_session")
        .expect("a session")
        .to_owned();
    assert_eq!(browser.visit("/", &[]).await.status, 200);

    // Flip one bit in the middle of the sealed value.
    let (version, sealed) = session.split_once('.').expect("v1.<sealed>");
    let mut bytes = b64url_decode(sealed);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    let tampered = format!("paved_session={version}.{}", b64url(&bytes));
    let page = send(
        setup.gw.addr,
        "GET",
        "/orders",
        &[
            ("host", HOST),
            ("accept", "text/html"),
            ("cookie", &tampered),
        ],
        b"",
    )
    .await;
    assert_eq!(page.status, 302, "sent to sign in again: {}", text(&page));
    assert!(location(&page).starts_with(&setup.idp.issuer));
    assert!(
        page.set_cookies
            .iter()
            .any(|c| c.starts_with("paved_session=;") && c.contains("Max-Age=0")),
        "the bad cookie is cleared: {:?}",
        page.set_cookies
    );

    // An API client with the tampered cookie gets 401, not the page.
    let api = send(
        setup.gw.addr,
        "GET",
        "/orders",
        &[
            ("host", HOST),
            ("accept", "application/json"),
            ("cookie", &tampered),
        ],
        b"",
    )
    .await;
    assert_eq!(api.status, 401, "{}", text(&api));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_never_redirects_to_a_foreign_domain() {
    let Some(setup) = setup("sign_in_never_redirects_to_a_foreign_domain") else {
        return;
    };
    let mut browser = Browser::new(&setup);
    // A target on the app stays.
    let kept = browser.sign_in("/.paved/login?rd=%2Forders%3Fid%3D7").await;
    assert_eq!(kept.done.status, 302, "{}", text(&kept.done));
    assert_eq!(path_of(location(&kept.done)), "/orders?id=7");

    // Foreign targets become `/`; the provider's session makes these sign-ins silent.
    for rd in [
        "https://evil.example/steal",
        "//evil.example/steal",
        "/\\evil.example/steal",
        "https://app.localhost@evil.example/",
        "https://app.localhost.evil.example/",
        "javascript:alert(1)",
    ] {
        let path = format!("/.paved/login?rd={}", percent_encode(rd));
        let signed_in = browser.sign_in(&path).await;
        let done = &signed_in.done;
        assert_eq!(done.status, 302, "{rd}: {}", text(done));
        let target = location(done);
        assert!(
            target == "/" || target == format!("http://{HOST}/"),
            "{rd} led to {target}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_access_tokens_pass_only_for_the_right_audience_issuer_key_and_time() {
    if !node_available("the_providers_access_tokens_pass_only_for_the_right_audience") {
        return;
    }
    // Two issuers sharing one signing key, as tenants of a multi-tenant provider do.
    let keys = std::env::temp_dir().join(format!(
        "paved-oidc-keys-{}-{}.json",
        std::process::id(),
        b64url(&random_bytes::<6>())
    ));
    let keys_arg = keys.to_string_lossy().into_owned();
    let setup = start_setup(start_idp(&["--keys-file", &keys_arg]));
    let other_tenant = start_idp(&["--keys-file", &keys_arg]);
    let _ = std::fs::remove_file(&keys);

    // No credentials: 401 with a bare challenge, no redirect for an API client.
    let anonymous = send(
        setup.gw.addr,
        "GET",
        "/api/orders",
        &[("host", HOST), ("accept", "application/json")],
        b"",
    )
    .await;
    assert_eq!(anonymous.status, 401, "{}", text(&anonymous));
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some("Bearer realm=\"shop\"")
    );

    // A token the provider issued for this API: in, as the service client, spoofing stripped.
    let token = service_token(&setup.idp, API).await;
    assert_eq!(jwt_part(&token, 0)["typ"], "at+jwt");
    let ok = api_call(
        &setup,
        &token,
        &[
            ("x-paved-client-id", "admin-tool"),
            ("x-paved-user", "root"),
        ],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", text(&ok));
    let seen = &ok.json()["headers"];
    assert_eq!(seen["x-paved-client-id"], CLIENT_ID);
    assert_eq!(seen["x-paved-user"], CLIENT_ID);
    assert_eq!(seen["authorization"], format!("Bearer {token}"));
    let claims = verify_assertion(
        &setup,
        seen["x-paved-identity"].as_str().expect("assertion"),
    )
    .await;
    assert_eq!(claims["kind"], "service");
    assert_eq!(claims["client_id"], CLIENT_ID);

    // The browser route does not take it: its audience is the client id.
    let elsewhere = send(
        setup.gw.addr,
        "GET",
        "/orders",
        &[
            ("host", HOST),
            ("authorization", &format!("Bearer {token}")),
        ],
        b"",
    )
    .await;
    assert_refused(&elsewhere, "wrong_audience");

    // Another API's token.
    let other = service_token(&setup.idp, OTHER_API).await;
    assert_refused(&api_call(&setup, &other, &[]).await, "wrong_audience");

    // The same signing key, another issuer.
    let foreign = service_token(&other_tenant, API).await;
    assert_eq!(jwt_part(&foreign, 0)["kid"], jwt_part(&token, 0)["kid"]);
    assert_refused(&api_call(&setup, &foreign, &[]).await, "wrong_issuer");

    // HS256 with the provider's public key as the HMAC secret (RS/HS confusion).
    let confused = service_token(&setup.idp, API_HS_CONFUSED).await;
    assert_eq!(jwt_part(&confused, 0)["alg"], "HS256");
    assert_refused(&api_call(&setup, &confused, &[]).await, "algorithm_refused");

    // The valid token, re-headed `alg: none` without signature.
    let payload = token.split('.').nth(1).expect("payload");
    let unsigned = format!("{}.{payload}.", b64url(br#"{"alg":"none","typ":"at+jwt"}"#));
    assert_refused(&api_call(&setup, &unsigned, &[]).await, "algorithm_refused");

    // A token that lived one second, presented after its `exp` (no skew on this route).
    let short = service_token(&setup.idp, API_SHORT).await;
    let exp = jwt_part(&short, 1)["exp"].as_u64().expect("exp");
    while now() <= exp {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_refused(&api_call(&setup, &short, &[]).await, "expired");

    // The good token still works: refusals did not poison the key cache.
    assert_eq!(api_call(&setup, &token, &[]).await.status, 200);
}
