//! People sign in to the control plane's UI through an external OpenID provider Paved did
//! not write (panva's certified `oidc-provider`, `e2e/oidc-provider/server.mjs`), driven with
//! plain HTTP: `/ui/login` → the provider's login form → the callback → the UI session, and
//! the page and GraphQL then show the person with the role their provider groups map to.
//!
//! The attacks: a callback whose `state` is not the browser's, an ID token from another issuer
//! (a provider whose discovery document claims the configured issuer), an ID token minted for
//! another client (a relay that swaps the client on the way); each is refused and leaves no
//! session. People in no mapped group get the least privilege (or are refused when account
//! creation is off), and a provider's person never takes over a local account of that name.
//!
//! The tests skip (saying so) only when `node` is not installed; `scripts/bootstrap.sh`
//! installs Node.js and the provider's npm packages.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use paved_control_plane::auth::{Principal, Role};
use paved_control_plane::config::{ExternalOidcSettings, GroupMapping};
use paved_control_plane::services::NewUser;
use paved_control_plane::{ControlPlane, ControlPlaneConfig};
use paved_e2e::harness::{CookieJar, Reply, send};
use paved_e2e::oidc_provider::{
    OidcProvider, basic_authorization, form_action, node_available, percent_encode,
};
use serde_json::{Value, json};

/// The UI's client at the provider.
const CLIENT_ID: &str = "paved-ui";
const CLIENT_SECRET: &str = "an-external-client-secret-for-the-tests";
const PASSWORD: &str = "correct horse battery staple";

// ---------------------------------------------------------------------------------------
// The control plane, configured for an external provider

/// A control plane serving the UI on a free port, until dropped.
struct Console {
    /// `http://127.0.0.1:<port>`.
    url: String,
    cp: ControlPlane,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    data_dir: PathBuf,
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The listener the console will serve on (bound first: the provider needs the callback URL).
async fn console_listener() -> (tokio::net::TcpListener, String) {
    let listener = paved::control_plane_cmd::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    (listener, url)
}

fn config(label: &str, url: &str, external: ExternalOidcSettings) -> (ControlPlaneConfig, PathBuf) {
    let data_dir = std::env::temp_dir().join(format!(
        "paved-ext-oidc-{label}-{}-{}",
        std::process::id(),
        url.rsplit(':').next().unwrap_or("0")
    ));
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let mut config = ControlPlaneConfig::new(
        format!("sqlite://{}/paved.db?mode=rwc", data_dir.display()),
        url,
    );
    config.oidc.key_file = Some(data_dir.join("oidc-key.pem"));
    config.certificates.enabled = false;
    config.oidc.external = Some(external);
    (config, data_dir)
}

async fn start_console(
    label: &str,
    listener: tokio::net::TcpListener,
    url: String,
    external: ExternalOidcSettings,
) -> Console {
    let (config, data_dir) = config(label, &url, external);
    let cp = ControlPlane::start(config)
        .await
        .expect("the control plane starts");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(paved::control_plane_cmd::serve_on(
        cp.clone(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    Console {
        url,
        cp,
        stop: Some(stop),
        data_dir,
    }
}

/// The provider's arguments for one user of `groups` and the UI's client at `console`.
fn idp_args(console: &str, sub: &str, groups: &str) -> Vec<String> {
    let callback = format!("{console}/ui/callback");
    let name = format!("{sub} from the provider");
    let args: [&str; 14] = [
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--redirect-uri",
        &callback,
        "--user-sub",
        sub,
        "--user-password",
        PASSWORD,
        "--user-name",
        &name,
        "--user-groups",
        groups,
    ];
    args.iter().map(|s| s.to_string()).collect()
}

fn settings(issuer: &str) -> ExternalOidcSettings {
    let mut s = ExternalOidcSettings::new(issuer, CLIENT_ID);
    s.client_secret = Some(CLIENT_SECRET.into());
    s.group_mappings = vec![
        "paved-admins=admin"
            .parse::<GroupMapping>()
            .expect("mapping"),
        "payments-devs=app-owner:payments"
            .parse::<GroupMapping>()
            .expect("mapping"),
        "secops=security-reviewer"
            .parse::<GroupMapping>()
            .expect("mapping"),
    ];
    s
}

/// A provider with one person, and a console that signs people in through it.
async fn start(label: &str, sub: &str, groups: &str) -> (OidcProvider, Console) {
    let (listener, url) = console_listener().await;
    let idp = OidcProvider::start(&idp_args(&url, sub, groups));
    let console = start_console(label, listener, url, settings(&idp.issuer)).await;
    (idp, console)
}

// ---------------------------------------------------------------------------------------
// A browser: cookie jars per host and redirects followed by hand

#[derive(Default)]
struct Browser {
    /// Cookies by `host:port`.
    jars: BTreeMap<String, CookieJar>,
}

/// `(authority, path and query)` of an absolute `http://` URL.
fn split_url(url: &str) -> (&str, &str) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    }
}

fn absolute(base: &str, location: &str) -> String {
    if location.contains("://") {
        location.to_owned()
    } else {
        let (authority, _) = split_url(base);
        format!("http://{authority}{location}")
    }
}

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

fn location(reply: &Reply) -> String {
    reply
        .header("location")
        .unwrap_or_else(|| panic!("no location in a {} reply: {}", reply.status, text(reply)))
        .to_owned()
}

/// The value of query parameter `name` of `url` (as sent, not decoded).
fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `url` without query parameter `name`.
fn without_param(url: &str, name: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| kv.split('=').next() != Some(name))
        .collect();
    format!("{base}?{}", kept.join("&"))
}

impl Browser {
    async fn request(
        &mut self,
        method: &str,
        url: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let (authority, path) = split_url(url);
        let addr: SocketAddr = authority.parse().expect("host:port");
        let jar = self.jars.entry(authority.to_owned()).or_default();
        let cookies = jar.header();
        let mut headers = vec![("host", authority), ("accept", "text/html")];
        if !cookies.is_empty() {
            headers.push(("cookie", cookies.as_str()));
        }
        headers.extend_from_slice(extra);
        let reply = send(addr, method, path, &headers, body).await;
        jar.take(&reply);
        reply
    }

    async fn get(&mut self, url: &str) -> Reply {
        self.request("GET", url, &[], b"").await
    }

    /// Starts a sign-in at the console and goes through the provider (its login form when it
    /// has no session yet) until it sends the browser back; returns the authorization URL
    /// and the callback URL, not yet visited.
    async fn until_callback(&mut self, console: &str, login: &str) -> (String, String) {
        let start = self.get(&format!("{console}/ui/login?next=/apps")).await;
        assert_eq!(start.status, 303, "sign-in starts: {}", text(&start));
        let authorize = location(&start);
        let mut next = authorize.clone();
        for _ in 0..10 {
            if next.starts_with(&format!("{console}/ui/callback")) {
                return (authorize, next);
            }
            let reply = self.get(&next).await;
            next = match reply.status {
                302 | 303 => absolute(&next, &location(&reply)),
                200 => {
                    let action = absolute(&next, &form_action(&text(&reply)));
                    let form = format!(
                        "login={}&password={}",
                        percent_encode(login),
                        percent_encode(PASSWORD)
                    );
                    let posted = self
                        .request(
                            "POST",
                            &action,
                            &[("content-type", "application/x-www-form-urlencoded")],
                            form.as_bytes(),
                        )
                        .await;
                    assert_eq!(posted.status, 303, "the login form: {}", text(&posted));
                    absolute(&action, &location(&posted))
                }
                status => panic!(
                    "the provider answered {next} with {status}: {}",
                    text(&reply)
                ),
            };
        }
        panic!("the sign-in did not come back to the console");
    }

    /// A whole sign-in: the console's answer to the callback.
    async fn sign_in(&mut self, console: &str, login: &str) -> Reply {
        let (_, callback) = self.until_callback(console, login).await;
        self.get(&callback).await
    }

    /// `{ me }` over the browser's GraphQL endpoint, with the session cookie.
    async fn me(&mut self, console: &str) -> Value {
        let reply = self
            .request(
                "POST",
                &format!("{console}/ui/graphql"),
                &[
                    ("content-type", "application/json"),
                    ("x-paved-csrf", "1"),
                    ("accept", "application/json"),
                ],
                json!({"query": "{ me { name kind role teams } }"})
                    .to_string()
                    .as_bytes(),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", text(&reply));
        let body = reply.json();
        assert!(body.get("errors").is_none(), "{body}");
        body["data"]["me"].clone()
    }

    /// Whether the browser has a UI session: a page renders instead of sending it to sign in.
    async fn has_session(&mut self, console: &str) -> bool {
        let page = self.get(&format!("{console}/apps")).await;
        match page.status {
            200 => true,
            303 => {
                assert!(location(&page).starts_with("/ui/login"), "{page:?}");
                false
            }
            other => panic!("/apps answered {other}: {}", text(&page)),
        }
    }
}

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

/// The refusal of a callback: a 400 page saying `why`, and no session cookie.
fn assert_refused(reply: &Reply, why: &str) {
    let body = text(reply);
    assert_eq!(reply.status, 400, "{body}");
    assert!(body.contains(why), "expected {why:?} in {body}");
    assert!(
        reply
            .set_cookies
            .iter()
            .all(|c| !c.starts_with("paved_session=") || c.starts_with("paved_session=;")),
        "no session cookie: {:?}",
        reply.set_cookies
    );
}

// ---------------------------------------------------------------------------------------
// A relay in front of a provider, for the attacks that need a provider to lie

#[derive(Clone)]
enum Lie {
    /// The discovery document claims this issuer (the provider's tokens keep their own).
    Issuer(String),
    /// Requests for the UI's client are turned into requests for this other client (same
    /// secret), so the provider mints the ID token for it.
    Client(String),
}

async fn relay(listener: tokio::net::TcpListener, upstream: SocketAddr, lie: Lie) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let lie = lie.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let lie = lie.clone();
                async move { Ok::<_, Infallible>(forward(upstream, req, &lie).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    upstream: SocketAddr,
    req: hyper::Request<Incoming>,
    lie: &Lie,
) -> hyper::Response<Full<Bytes>> {
    let method = req.method().as_str().to_owned();
    let mut path = req
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let mut headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .filter(|(n, _)| n != "content-length")
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if let Lie::Client(other) = lie {
        path = path.replace(
            &format!("client_id={CLIENT_ID}"),
            &format!("client_id={other}"),
        );
        for (name, value) in &mut headers {
            if name == "authorization" && value.starts_with("Basic ") {
                *value = basic_authorization(other, CLIENT_SECRET);
            }
        }
    }
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let reply = send(upstream, &method, &path, &header_refs, &body).await;
    let mut out = reply.body.clone();
    if let Lie::Issuer(claimed) = lie
        && path.starts_with("/.well-known/openid-configuration")
    {
        let mut doc = reply.json();
        doc["issuer"] = json!(claimed);
        out = doc.to_string().into_bytes();
    }
    let mut response = hyper::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        if !matches!(
            name.as_str(),
            "set-cookie" | "content-length" | "transfer-encoding" | "connection" | "keep-alive"
        ) {
            response = response.header(name, value);
        }
    }
    for cookie in &reply.set_cookies {
        response = response.header("set-cookie", cookie);
    }
    response
        .body(Full::new(Bytes::from(out)))
        .expect("a response")
}

// ---------------------------------------------------------------------------------------
// The tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_through_an_external_provider_with_the_role_of_their_groups() {
    if !node_available("a_person_signs_in_through_an_external_provider") {
        return;
    }
    let (idp, console) = start("signs-in", "carol", "paved-admins,payments-devs,other").await;
    let mut browser = Browser::default();
    assert!(!browser.has_session(&console.url).await);

    let (authorize, callback) = browser.until_callback(&console.url, "carol").await;
    assert!(
        authorize.starts_with(&format!("{}/auth?", idp.issuer)),
        "the browser goes to the provider's discovered authorization endpoint: {authorize}"
    );
    assert_eq!(
        query_param(&authorize, "code_challenge_method"),
        Some("S256")
    );
    assert_eq!(query_param(&authorize, "client_id"), Some(CLIENT_ID));
    for p in ["state", "nonce", "code_challenge"] {
        assert!(
            query_param(&authorize, p).is_some_and(|v| v.len() >= 32),
            "{p}: {authorize}"
        );
    }
    let done = browser.get(&callback).await;
    assert_eq!(done.status, 303, "{}", text(&done));
    assert_eq!(location(&done), "/apps", "back where the sign-in started");
    assert!(
        done.set_cookies
            .iter()
            .any(|c| c.starts_with("paved_session=") && c.contains("HttpOnly")),
        "{:?}",
        done.set_cookies
    );

    let page = browser.get(&format!("{}/apps", console.url)).await;
    assert_eq!(page.status, 200, "{}", text(&page));
    let greeting = page_text(&text(&page));
    assert!(
        greeting.contains("Signed in as carol"),
        "the page greets the provider's person: {greeting}"
    );
    let me = browser.me(&console.url).await;
    assert_eq!(
        me,
        json!({"name": "carol", "kind": "PERSON", "role": "admin", "teams": ["payments"]}),
        "admin from paved-admins, team payments from payments-devs"
    );

    // The callback belongs to the browser that started the sign-in: delivered to another
    // one (a stolen or replayed callback), it signs nobody in.
    let mut other = Browser::default();
    let replay = other.get(&callback).await;
    assert_eq!(replay.status, 400, "{}", text(&replay));
    assert!(!other.has_session(&console.url).await);

    // Signing out ends the session.
    let out = browser
        .request(
            "POST",
            &format!("{}/ui/logout", console.url),
            &[("origin", console.url.as_str())],
            b"",
        )
        .await;
    assert_eq!(out.status, 200, "{}", text(&out));
    assert!(!browser.has_session(&console.url).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_in_no_mapped_group_gets_the_least_privilege() {
    if !node_available("a_person_in_no_mapped_group_gets_the_least_privilege") {
        return;
    }
    let (_idp, console) = start("unmapped", "dave", "marketing,Paved-Admins").await;
    let mut browser = Browser::default();
    let done = browser.sign_in(&console.url, "dave").await;
    assert_eq!(done.status, 303, "{}", text(&done));
    let me = browser.me(&console.url).await;
    assert_eq!(
        me,
        json!({"name": "dave", "kind": "PERSON", "role": "app-owner", "teams": []}),
        "an app owner of no team: sees only apps that name them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_account_creation_off_a_person_in_no_mapped_group_is_refused() {
    if !node_available("with_account_creation_off_a_person_in_no_mapped_group_is_refused") {
        return;
    }
    let (listener, url) = console_listener().await;
    let idp = OidcProvider::start(&idp_args(&url, "erin", "marketing"));
    let mut s = settings(&idp.issuer);
    s.create_users = false;
    let console = start_console("no-create", listener, url, s).await;
    let mut browser = Browser::default();
    let done = browser.sign_in(&console.url, "erin").await;
    assert_eq!(done.status, 403, "{}", text(&done));
    assert!(text(&done).contains("no account here"), "{}", text(&done));
    assert!(!browser.has_session(&console.url).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_person_never_takes_over_a_local_account_of_the_same_name() {
    if !node_available("a_provider_person_never_takes_over_a_local_account") {
        return;
    }
    let (_idp, console) = start("same-name", "alice", "secops").await;
    console
        .cp
        .create_user(
            &Principal::system(),
            NewUser {
                username: "alice".into(),
                password: "a local password".into(),
                email: Some("alice@local.example".into()),
                display_name: None,
                role: Role::Admin,
                teams: vec![],
                groups: vec![],
            },
        )
        .await
        .expect("the local alice");
    let mut browser = Browser::default();
    let done = browser.sign_in(&console.url, "alice").await;
    assert_eq!(done.status, 303, "{}", text(&done));
    let me = browser.me(&console.url).await;
    let name = me["name"].as_str().expect("a name");
    assert!(
        name.starts_with("alice-") && name.len() == "alice-".len() + 8,
        "the provider's alice gets a name of her own: {me}"
    );
    assert_eq!(
        me["role"], "security-reviewer",
        "not the local alice's admin role"
    );

    // The same person signing in again is the same user.
    let mut again = Browser::default();
    let done = again.sign_in(&console.url, "alice").await;
    assert_eq!(done.status, 303, "{}", text(&done));
    assert_eq!(again.me(&console.url).await["name"], name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_with_another_state_is_refused_and_makes_no_session() {
    if !node_available("a_callback_with_another_state_is_refused") {
        return;
    }
    let (_idp, console) = start("state", "frank", "paved-admins").await;
    let mut browser = Browser::default();
    let (_, callback) = browser.until_callback(&console.url, "frank").await;
    let state = query_param(&callback, "state").expect("a state");
    let forged = callback.replace(&format!("state={state}"), "state=forged-by-an-attacker");
    let refused = browser.get(&forged).await;
    assert_refused(&refused, "does not belong to this browser");
    assert!(!browser.has_session(&console.url).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_from_another_issuer_is_refused_and_makes_no_session() {
    if !node_available("an_id_token_from_another_issuer_is_refused") {
        return;
    }
    // The console trusts the issuer of the relay, whose discovery document is the real
    // provider's with the issuer changed: the provider's tokens name the provider.
    let (listener, url) = console_listener().await;
    let relay_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let claimed = format!("http://{}", relay_listener.local_addr().expect("address"));
    let idp = OidcProvider::start(&idp_args(&url, "grace", "paved-admins"));
    tokio::spawn(relay(
        relay_listener,
        idp.addr,
        Lie::Issuer(claimed.clone()),
    ));
    let console = start_console("issuer", listener, url, settings(&claimed)).await;
    let mut browser = Browser::default();

    // The authorization response says which issuer answered (RFC 9207).
    let (_, callback) = browser.until_callback(&console.url, "grace").await;
    if query_param(&callback, "iss").is_some() {
        let refused = browser.get(&callback).await;
        assert_refused(&refused, "unexpected identity provider");
        assert!(!browser.has_session(&console.url).await);
    }
    // Without it (the parameter is optional), the ID token's `iss` gives it away.
    let (_, callback) = browser.until_callback(&console.url, "grace").await;
    let refused = browser.get(&without_param(&callback, "iss")).await;
    assert_refused(&refused, "wrong issuer");
    assert!(!browser.has_session(&console.url).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_for_another_client_is_refused_and_makes_no_session() {
    if !node_available("an_id_token_for_another_client_is_refused") {
        return;
    }
    // The provider (issuer: the relay's URL) knows only `other-app`; the relay turns the
    // console's requests into that client's, so the ID token's audience is `other-app`.
    let (listener, url) = console_listener().await;
    let relay_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", relay_listener.local_addr().expect("address"));
    let mut args = idp_args(&url, "heidi", "paved-admins");
    for pair in args.chunks_mut(2) {
        if pair[0] == "--client-id" {
            pair[1] = "other-app".into();
        }
    }
    args.extend(["--issuer".to_string(), issuer.clone()]);
    let idp = OidcProvider::start(&args);
    assert_eq!(idp.issuer, issuer);
    tokio::spawn(relay(
        relay_listener,
        idp.addr,
        Lie::Client("other-app".into()),
    ));
    let console = start_console("audience", listener, url, settings(&issuer)).await;
    let mut browser = Browser::default();
    let refused = browser.sign_in(&console.url, "heidi").await;
    assert_refused(&refused, "wrong audience");
    assert!(!browser.has_session(&console.url).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_with_an_unusable_external_provider_setting_does_not_start() {
    let (_, url) = console_listener().await;
    let (config, data_dir) = config(
        "bad-config",
        &url,
        ExternalOidcSettings::new("http://idp.example.com", CLIENT_ID),
    );
    let err = match ControlPlane::start(config).await {
        Ok(_) => panic!("a control plane with an http:// issuer off loopback started"),
        Err(e) => e.to_string(),
    };
    let _ = std::fs::remove_dir_all(&data_dir);
    assert!(err.contains("oidc.external.issuer"), "{err}");
}
