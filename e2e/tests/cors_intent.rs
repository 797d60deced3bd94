//! CORS asked for in an intent, end to end: an app applied through GraphQL with
//! `headers.cors` answers browsers' preflights from the allowed origin without an identity
//! (they carry none), refuses other origins, and still requires an identity for the real
//! call — whose 401 carries the CORS headers, so the page can tell it must sign in.

mod common;

use std::time::{Duration, Instant};

use paved_e2e::harness::send;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_with_cors_answers_preflights_before_sign_in_and_still_requires_an_identity() {
    let mut up = common::start("cors").await;
    let args = up.args.clone();
    let platform = &mut up.platform;
    let host = format!("api.localhost:{}", args.listen.port());
    let intent = format!(
        "apiVersion: paved.dev/v1\nname: api\nowners: [demo@paved.localhost]\nteam: platform\n\
         domains: [api.localhost]\nupstream: {}\nheaders:\n  cors:\n    \
         allowedOrigins: [\"https://shop.example.com\"]\n    allowedMethods: [GET, PUT]\n    \
         allowedHeaders: [content-type, authorization]\n    allowCredentials: true\n",
        args.demo_upstream
    );
    let body = serde_json::json!({
        "query": "mutation($yaml: String!) { applyIntent(yaml: $yaml) { created } }",
        "variables": { "yaml": intent },
    });
    let reply = paved::apply_cmd::post_graphql(
        &args.control_plane.to_string(),
        &platform.credentials.api_token,
        body,
    )
    .await
    .expect("GraphQL answers");
    assert_eq!(reply["data"]["applyIntent"]["created"], true, "{reply}");

    let preflight = |origin: &'static str, method: &'static str| {
        let host = host.clone();
        async move {
            send(
                args.listen,
                "OPTIONS",
                "/orders/7",
                &[
                    ("host", host.as_str()),
                    ("origin", origin),
                    ("access-control-request-method", method),
                    ("access-control-request-headers", "content-type"),
                ],
                b"",
            )
            .await
        }
    };
    // Until the gateway has the new app, its host is unknown (404).
    let applied = Instant::now();
    let allowed = loop {
        let reply = preflight("https://shop.example.com", "PUT").await;
        if reply.status != 404 {
            break reply;
        }
        assert!(
            applied.elapsed() < Duration::from_secs(60),
            "the gateway never served the new app"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(allowed.status, 204, "{:?}", allowed.headers);
    assert_eq!(
        allowed
            .header("access-control-allow-origin")
            .unwrap_or_default(),
        "https://shop.example.com"
    );
    assert_eq!(
        allowed
            .header("access-control-allow-credentials")
            .unwrap_or_default(),
        "true"
    );
    assert!(
        allowed
            .header("access-control-allow-methods")
            .unwrap_or_default()
            .contains("PUT")
    );

    let other_origin = preflight("https://evil.example.net", "PUT").await;
    assert_eq!(other_origin.status, 403, "{:?}", other_origin.headers);
    assert!(
        other_origin.header("access-control-allow-origin").is_none(),
        "no CORS header for an origin the intent does not list"
    );
    let other_method = preflight("https://shop.example.com", "DELETE").await;
    assert_eq!(
        other_method.status, 403,
        "DELETE is not among the allowed methods"
    );

    // The real call from the allowed origin still needs an identity; the page can read why.
    let call = send(
        args.listen,
        "PUT",
        "/orders/7",
        &[
            ("host", host.as_str()),
            ("origin", "https://shop.example.com"),
            ("accept", "application/json"),
            ("content-type", "application/json"),
        ],
        b"{}",
    )
    .await;
    assert_eq!(call.status, 401, "{:?}", call.headers);
    assert_eq!(
        call.header("access-control-allow-origin")
            .unwrap_or_default(),
        "https://shop.example.com"
    );

    up.stop_gateway();
}
