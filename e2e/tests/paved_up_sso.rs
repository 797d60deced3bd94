//! The whole platform as `paved up` assembles it: the demo app is reachable only after an
//! OpenID Connect login (authorization code + PKCE) at the control plane's provider, and the
//! upstream sees the identity the gateway asserts — never one a client sends.

mod common;

use paved_e2e::harness::{Reply, send};

/// `name` → value of every `<input type="hidden">` of a page.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[start..].find('"')? + start;
        Some(
            tag[start..end]
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#39;", "'")
                .replace("&amp;", "&"),
        )
    };
    html.split("<input")
        .skip(1)
        .filter(|tag| tag.contains("type=\"hidden\""))
        .filter_map(|tag| Some((attr(tag, "name")?, attr(tag, "value")?)))
        .collect()
}

fn form_encode(pairs: &[(String, String)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The path and query of an absolute URL.
fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
}

fn location(reply: &Reply) -> &str {
    reply
        .header("location")
        .unwrap_or_else(|| panic!("no location in a {} reply", reply.status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_app_is_reached_only_after_sso_login_and_sees_the_asserted_identity() {
    let mut up = common::start("up-sso").await;
    let args = up.args.clone();
    let platform = &mut up.platform;

    let host = format!("demo.localhost:{}", args.listen.port());
    let browser = [("host", host.as_str()), ("accept", "text/html")];

    // 1. No identity: the browser is sent to log in, with PKCE.
    let start = send(args.listen, "GET", "/hello?x=1", &browser, b"").await;
    assert_eq!(
        start.status,
        302,
        "{}",
        String::from_utf8_lossy(&start.body)
    );
    let authorize = location(&start).to_owned();
    assert!(
        authorize.starts_with(&format!("{}/authorize?", platform.public_url)),
        "{authorize}"
    );
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    let login_cookies = start.cookies().join("; ");

    // An API client gets 401, not a redirect.
    let api = send(
        args.listen,
        "GET",
        "/hello",
        &[("host", host.as_str()), ("accept", "application/json")],
        b"",
    )
    .await;
    assert_eq!(api.status, 401);
    assert!(
        api.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );

    // 2. The provider's login form, then the login.
    let form = send(args.control_plane, "GET", path_of(&authorize), &[], b"").await;
    assert_eq!(form.status, 200);
    let mut fields = hidden_fields(&String::from_utf8_lossy(&form.body));
    assert!(
        fields.iter().any(|(k, _)| k == "csrf"),
        "the form carries an anti-forgery token"
    );
    fields.push(("username".into(), "demo".into()));
    fields.push((
        "password".into(),
        platform.credentials.demo_password.clone(),
    ));
    let csrf_cookie = form.cookies().join("; ");
    let login = send(
        args.control_plane,
        "POST",
        "/authorize",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", csrf_cookie.as_str()),
        ],
        form_encode(&fields).as_bytes(),
    )
    .await;
    assert!(
        matches!(login.status, 302 | 303),
        "login redirects back: {}",
        String::from_utf8_lossy(&login.body)
    );
    let callback = location(&login).to_owned();
    assert!(
        callback.starts_with(&format!("http://{host}/.paved/callback?")),
        "{callback}"
    );

    // 3. The gateway's callback exchanges the code and sets the session.
    let done = send(
        args.listen,
        "GET",
        path_of(&callback),
        &[("host", host.as_str()), ("cookie", login_cookies.as_str())],
        b"",
    )
    .await;
    assert_eq!(done.status, 302, "{}", String::from_utf8_lossy(&done.body));
    assert!(
        path_of(location(&done)).starts_with("/hello"),
        "back to where the login started"
    );
    let session = done.cookies().join("; ");
    assert!(
        done.set_cookies
            .iter()
            .any(|c| c.contains("HttpOnly") && c.contains("SameSite=Lax"))
    );

    // 4. With the session the app answers, and sees the asserted identity, not a spoofed one.
    let page = send(
        args.listen,
        "GET",
        "/hello",
        &[
            ("host", host.as_str()),
            ("cookie", session.as_str()),
            ("x-paved-user", "mallory"),
        ],
        b"",
    )
    .await;
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    let body = String::from_utf8_lossy(&page.body);
    assert!(
        body.contains("<b>demo</b>") || body.contains("demo@paved.localhost"),
        "{body}"
    );
    assert!(
        !body.contains("mallory"),
        "a client cannot choose its identity: {body}"
    );
    assert!(
        page.header("strict-transport-security").is_some(),
        "the headers filter ran"
    );

    // 5. A tampered session is refused.
    let tampered = session.replacen('=', "=x", 1);
    let refused = send(
        args.listen,
        "GET",
        "/hello",
        &[("host", host.as_str()), ("cookie", tampered.as_str())],
        b"",
    )
    .await;
    assert_ne!(refused.status, 200);

    let mut platform = up.stop_gateway();
    platform.stop().await;
}
