//! The control plane hosting the web UI, over real HTTP: sign-in through the built-in OpenID
//! provider's login form, the session cookie, the pages, the browser's GraphQL endpoints with
//! their CSRF and Origin checks, the assets, and `checkUpstream`.

mod common;

use std::time::Duration;

use common::{Backend, TestEnv, client, cookie_value, login_form_fields, person, query_param};
use futures_util::{SinkExt, StreamExt};
use paved_control_plane::Role;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const PASSWORD: &str = "correct horse battery";

/// A control plane whose public URL is the address it is served at (the issuer of its
/// provider and the UI's callback must be reachable by the test's browser).
async fn start(backend: Backend) -> (TestEnv, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let public = base.clone();
    let t = common::env_with(backend, move |c| c.public_url = public).await;
    let router = t.cp.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (t, base)
}

/// The `Set-Cookie` header that sets `name`, whole (with its attributes).
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A sign-in up to the provider's redirect to the callback: (callback URL, login cookie).
async fn sign_in_until_callback(
    http: &reqwest::Client,
    base: &str,
    next: &str,
    username: &str,
) -> (String, String) {
    let r = http
        .get(format!("{base}/ui/login"))
        .query(&[("next", next)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303);
    let login_cookie = set_cookie(&r, "paved_login").expect("login-state cookie");
    assert!(login_cookie.contains("HttpOnly"), "{login_cookie}");
    assert!(login_cookie.contains("Path=/ui/callback"), "{login_cookie}");
    let login_cookie = cookie_value(&r, "paved_login").expect("value");
    let authorize = location(&r);
    assert!(
        authorize.starts_with(&format!("{base}/authorize?")),
        "{authorize}"
    );
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&authorize, "client_id").as_deref(),
        Some("paved-ui")
    );
    assert_eq!(
        query_param(&authorize, "redirect_uri"),
        Some(format!("{base}/ui/callback"))
    );
    assert!(query_param(&authorize, "state").is_some_and(|s| s.len() >= 32));
    assert!(query_param(&authorize, "nonce").is_some_and(|s| s.len() >= 32));

    // The provider's login form, posted like a browser.
    let r = http.get(&authorize).send().await.expect("form");
    assert_eq!(r.status(), 200);
    let csrf_cookie = cookie_value(&r, "paved_op_csrf").expect("csrf cookie");
    let html = r.text().await.expect("html");
    let mut form = login_form_fields(&html);
    form.extend([
        ("username".into(), username.into()),
        ("password".into(), PASSWORD.into()),
    ]);
    let r = http
        .post(format!("{base}/authorize"))
        .header("cookie", format!("paved_op_csrf={csrf_cookie}"))
        .form(&form)
        .send()
        .await
        .expect("post form");
    assert_eq!(r.status(), 303);
    let callback = location(&r);
    assert!(
        callback.starts_with(&format!("{base}/ui/callback?")),
        "{callback}"
    );
    (callback, login_cookie)
}

/// A complete sign-in: (session cookie value, the callback's redirect).
async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    next: &str,
    username: &str,
) -> (String, String) {
    let (callback, login_cookie) = sign_in_until_callback(http, base, next, username).await;
    let r = http
        .get(&callback)
        .header("cookie", format!("paved_login={login_cookie}"))
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), 303, "{:?}", r.headers());
    let session = cookie_value(&r, "paved_session").expect("session cookie");
    (session, location(&r))
}

/// Text of a server-rendered page: the HTML without its tags (and hydration markers).
fn page_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

async fn a_page_without_a_session_redirects_to_login(backend: Backend) {
    let (_t, base) = start(backend).await;
    let http = client();
    let r = http
        .get(format!("{base}/?tab=mine"))
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/ui/login?next=%2F%3Ftab%3Dmine");
    // A stale cookie is dropped on the way.
    let r = http
        .get(format!("{base}/"))
        .header("cookie", "paved_session=not.a.token")
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), 303);
    assert!(
        set_cookie(&r, "paved_session").is_some_and(|c| c.contains("Max-Age=0")),
        "{:?}",
        r.headers()
    );
    // The other routes are still there.
    let r = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.text().await.expect("body"), "ok");
    let r = http
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery");
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{base}/graphql"))
        .json(&json!({"query": "{ me { name } }"}))
        .send()
        .await
        .expect("graphql");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
}

async fn signing_in_sets_the_session_and_renders_the_person(backend: Backend) {
    let (t, base) = start(backend).await;
    person(&t.cp, "ann", Role::AppOwner, &["team-a"]).await;
    let http = client();
    let (callback, login_cookie) = sign_in_until_callback(&http, &base, "/?view=all", "ann").await;
    let r = http
        .get(&callback)
        .header("cookie", format!("paved_login={login_cookie}"))
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/?view=all");
    let cookie = set_cookie(&r, "paved_session").expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=3600"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(
        set_cookie(&r, "paved_login").is_some_and(|c| c.contains("Max-Age=0")),
        "the login state is single-use"
    );
    let session = cookie_value(&r, "paved_session").expect("value");
    // The callback cannot be replayed (state cookie gone, code used).
    let r = http
        .get(&callback)
        .header("cookie", format!("paved_login={login_cookie}"))
        .send()
        .await
        .expect("replay");
    assert!(r.status().is_client_error() || r.status().is_server_error());
    assert!(set_cookie(&r, "paved_session").is_none());

    let r = http
        .get(format!("{base}/"))
        .header("cookie", format!("paved_session={session}"))
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), 200);
    let headers = r.headers().clone();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.contains_key("referrer-policy"));
    let csp = headers["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = r.text().await.expect("html");
    assert!(
        page_text(&html).contains("Signed in as ann"),
        "the page greets the signed-in person: {html}"
    );
    // Every inline script carries the nonce the policy allows.
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("a nonce in the policy")
        .to_string();
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "{html}");
    let scripts = html.matches("<script").count();
    let with_nonce = html.matches(&format!("nonce=\"{nonce}\"")).count();
    assert!(
        scripts >= 1 && with_nonce >= scripts,
        "{scripts} scripts, {with_nonce} nonces: {html}"
    );

    // A second response has another nonce.
    let r = http
        .get(format!("{base}/"))
        .header("cookie", format!("paved_session={session}"))
        .send()
        .await
        .expect("page");
    let csp2 = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert_ne!(csp, csp2);

    // Signing out clears the session and the provider's sign-in.
    let r = http
        .post(format!("{base}/ui/logout"))
        .header("cookie", format!("paved_session={session}"))
        .header("origin", &base)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200);
    assert!(set_cookie(&r, "paved_session").is_some_and(|c| c.contains("Max-Age=0")));
    assert!(set_cookie(&r, "paved_op_session").is_some_and(|c| c.contains("Max-Age=0")));
    let r = http
        .post(format!("{base}/ui/logout"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 403);
}

async fn browser_graphql_needs_the_csrf_header_and_our_origin(backend: Backend) {
    let (t, base) = start(backend).await;
    person(&t.cp, "ann", Role::AppOwner, &["team-a"]).await;
    let http = client();
    let (session, _) = sign_in(&http, &base, "/", "ann").await;
    let cookie = format!("paved_session={session}");
    let url = format!("{base}/ui/graphql");
    let query = json!({"query": "{ me { name kind role } }", "variables": {}});

    let r = http
        .post(&url)
        .header("cookie", &cookie)
        .json(&query)
        .send()
        .await
        .expect("no csrf");
    assert_eq!(r.status(), 403);
    let r = http
        .post(&url)
        .header("cookie", &cookie)
        .header("x-paved-csrf", "1")
        .header("origin", "https://evil.example")
        .json(&query)
        .send()
        .await
        .expect("foreign origin");
    assert_eq!(r.status(), 403);
    let r = http
        .post(&url)
        .header("x-paved-csrf", "1")
        .header("origin", &base)
        .json(&query)
        .send()
        .await
        .expect("no session");
    assert_eq!(r.status(), 401);
    let r = http
        .post(&url)
        .header("cookie", &cookie)
        .header("x-paved-csrf", "1")
        .header("origin", &base)
        .json(&query)
        .send()
        .await
        .expect("query");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["data"]["me"]["name"], "ann", "{v}");
    assert_eq!(v["data"]["me"]["kind"], "PERSON", "{v}");

    // The WebSocket: Origin required and ours, then GraphQL as the cookie's person.
    let ws_url = format!("{}/ui/graphql/ws", base.replace("http://", "ws://"));
    let request = |origin: Option<&str>| {
        let mut req = ws_url.clone().into_client_request().expect("request");
        let h = req.headers_mut();
        h.insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        h.insert("cookie", cookie.parse().expect("header"));
        if let Some(o) = origin {
            h.insert("origin", o.parse().expect("header"));
        }
        req
    };
    for origin in [None, Some("https://evil.example")] {
        let refused = tokio_tungstenite::connect_async(request(origin)).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 403, "{origin:?}")
            }
            other => panic!("{origin:?}: expected 403, got {:?}", other.map(|_| ())),
        }
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(request(Some(&base)))
        .await
        .expect("connect");
    ws.send(Message::text(
        json!({"type": "connection_init", "payload": {}}).to_string(),
    ))
    .await
    .expect("init");
    let mut answers = Vec::new();
    let mut subscribed = false;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("open")
            .expect("message");
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(&text).expect("json");
        if v["type"] == "connection_ack" && !subscribed {
            subscribed = true;
            ws.send(Message::text(
                json!({"id": "1", "type": "subscribe", "payload": {"query": "{ me { name } }"}})
                    .to_string(),
            ))
            .await
            .expect("subscribe");
        } else if v["type"] == "next" {
            answers.push(v);
            break;
        }
    }
    assert_eq!(answers[0]["payload"]["data"]["me"]["name"], "ann");
}

async fn a_wrong_state_is_refused_without_a_session(backend: Backend) {
    let (t, base) = start(backend).await;
    person(&t.cp, "ann", Role::AppOwner, &[]).await;
    let http = client();
    let (callback, login_cookie) = sign_in_until_callback(&http, &base, "/", "ann").await;
    let mut url = url::Url::parse(&callback).expect("url");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let r = http
        .get(url.as_str())
        .header("cookie", format!("paved_login={login_cookie}"))
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), 400);
    assert!(
        set_cookie(&r, "paved_session").is_none(),
        "{:?}",
        r.headers()
    );
    // Without the login-state cookie (another browser), the genuine callback is refused too.
    let r = http.get(&callback).send().await.expect("callback");
    assert_eq!(r.status(), 400);
    assert!(set_cookie(&r, "paved_session").is_none());
    // A forged login-state cookie does not verify.
    let r = http
        .get(&callback)
        .header(
            "cookie",
            format!("paved_login={}", login_cookie.replace('.', "x.")),
        )
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), 400);
    assert!(set_cookie(&r, "paved_session").is_none());
}

async fn foreign_next_targets_end_at_home(backend: Backend) {
    let (t, base) = start(backend).await;
    person(&t.cp, "ann", Role::AppOwner, &[]).await;
    let http = client();
    for next in [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "/\t/evil.example",
    ] {
        let (_, landed) = sign_in(&http, &base, next, "ann").await;
        assert_eq!(landed, "/", "{next:?}");
    }
    let (_, landed) = sign_in(&http, &base, "/apps/web?tab=history", "ann").await;
    assert_eq!(landed, "/apps/web?tab=history");
}

async fn assets_are_served_with_their_content_types(backend: Backend) {
    let (_t, base) = start(backend).await;
    let http = client();
    for (file, content_type) in [
        ("paved_ui.js", "text/javascript"),
        ("paved_ui_bg.wasm", "application/wasm"),
        ("paved_ui.css", "text/css"),
    ] {
        let r = http
            .get(format!("{base}/pkg/{file}"))
            .send()
            .await
            .expect("asset");
        assert_eq!(r.status(), 200, "{file}");
        let h = r.headers().clone();
        assert!(
            h["content-type"]
                .to_str()
                .expect("ct")
                .starts_with(content_type),
            "{file}: {:?}",
            h["content-type"]
        );
        assert!(h.contains_key("cache-control"), "{file}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let etag = h["etag"].to_str().expect("etag").to_string();
        let body = r.bytes().await.expect("body");
        assert!(!body.is_empty());
        let r = http
            .get(format!("{base}/pkg/{file}"))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("revalidate");
        assert_eq!(r.status(), 304, "{file}");
    }
    let r = http
        .get(format!("{base}/pkg/nothing.js"))
        .send()
        .await
        .expect("missing");
    assert_eq!(r.status(), 404);
}

async fn check_upstream_reports_reachability(backend: Backend) {
    let (t, base) = start(backend).await;
    person(&t.cp, "ann", Role::AppOwner, &["team-a"]).await;
    person(&t.cp, "rita", Role::SecurityReviewer, &[]).await;
    let http = client();
    let (session, _) = sign_in(&http, &base, "/", "ann").await;

    // A real upstream, and a port nobody listens on.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let up_addr = upstream.local_addr().expect("addr");
    tokio::spawn(async move {
        let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
        let _ = axum::serve(upstream, app).await;
    });
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };

    let check = |session: String, url: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r = http
                .post(format!("{base}/ui/graphql"))
                .header("cookie", format!("paved_session={session}"))
                .header("x-paved-csrf", "1")
                .json(&json!({
                    "query": "query($url: String!) { checkUpstream(url: $url) { reachable status error } }",
                    "variables": {"url": url},
                }))
                .send()
                .await
                .expect("check");
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.expect("json")
        }
    };
    let v = check(session.clone(), format!("http://{up_addr}/health")).await;
    assert_eq!(
        v["data"]["checkUpstream"],
        json!({"reachable": true, "status": 200, "error": null}),
        "{v}"
    );
    let v = check(session.clone(), format!("http://{up_addr}/nothing-here")).await;
    assert_eq!(v["data"]["checkUpstream"]["reachable"], true, "{v}");
    assert_eq!(v["data"]["checkUpstream"]["status"], 404, "{v}");
    let v = check(session.clone(), format!("http://{closed}/")).await;
    assert_eq!(v["data"]["checkUpstream"]["reachable"], false, "{v}");
    assert_eq!(v["data"]["checkUpstream"]["status"], Value::Null, "{v}");
    assert_eq!(
        v["data"]["checkUpstream"]["error"], "connection refused",
        "{v}"
    );
    let v = check(session.clone(), "file:///etc/passwd".into()).await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{v}");
    let message = v["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("http://") && message.contains("file:"),
        "a clear error: {message}"
    );

    // Readers cannot use the control plane to probe the network.
    let (reviewer, _) = sign_in(&client(), &base, "/", "rita").await;
    let v = check(reviewer, format!("http://{up_addr}/health")).await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "FORBIDDEN", "{v}");
}

on_both_backends!(
    a_page_without_a_session_redirects_to_login,
    signing_in_sets_the_session_and_renders_the_person,
    browser_graphql_needs_the_csrf_header_and_our_origin,
    a_wrong_state_is_refused_without_a_session,
    foreign_next_targets_end_at_home,
    assets_are_served_with_their_content_types,
    check_upstream_reports_reachability,
);
