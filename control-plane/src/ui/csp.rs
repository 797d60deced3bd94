//! Security headers of the UI's responses, and the Content-Security-Policy of its pages.
//!
//! Hydration needs inline scripts: Leptos writes a `<script type="module">` that imports
//! `/pkg/paved_ui.js`, and with out-of-order streaming one more `<script>` per resolved
//! `<Suspense>` carrying that data. Their content changes with every response, so hashes
//! cannot be known in advance (and hashing the rendered page would also allow any script
//! injected into it). Nonces can: `leptos_axum` turns on Leptos' `nonce` feature, makes a
//! fresh 128-bit nonce per response and puts it on every script it writes. The header has to
//! carry the same nonce; the host reads it from the first `<script>` tag of the document head
//! (written by the UI's shell, before any data) while the body streams through.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;

/// Policy of plain pages without script (sign-in errors, signed out).
pub const PLAIN_PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How much of a page is searched for the nonce (its head is far smaller).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The policy of a UI page whose scripts carry `nonce`. `'wasm-unsafe-eval'` lets the page
/// compile the WebAssembly module (and nothing else); `'self'` covers the module's JS glue,
/// which the inline script imports; `connect-src` the wasm fetch, `/ui/graphql` and its
/// WebSocket (`ws_origin`, named because older browsers do not count `ws:` as `'self'`).
/// Without a nonce no inline script runs: the page stays server-rendered.
pub fn page_policy(nonce: Option<&str>, ws_origin: &str) -> String {
    let nonce = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'{nonce} 'wasm-unsafe-eval'; \
         style-src 'self'{nonce}; img-src 'self' data:; font-src 'self'; \
         connect-src 'self' {ws_origin}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// Headers every UI response gets: no MIME sniffing, no referrer to other sites, no framing
/// (also for browsers without CSP `frame-ancestors`).
pub fn add_common_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The nonce of the first `<script ...>` tag of `html`, when the tag is complete and has one.
/// `Err(())`: the tag is cut off by the end of the buffer (read more).
fn first_script_nonce(html: &[u8]) -> Result<Option<String>, ()> {
    let Some(start) = find(html, b"<script") else {
        return Ok(None);
    };
    let rest = &html[start..];
    let Some(end) = rest.iter().position(|&b| b == b'>') else {
        return Err(());
    };
    let tag = &rest[..end];
    let Some(at) = find(tag, b" nonce=\"") else {
        return Ok(None);
    };
    let value = &tag[at + b" nonce=\"".len()..];
    let Some(close) = value.iter().position(|&b| b == b'"') else {
        return Ok(None);
    };
    let nonce = &value[..close];
    // Leptos' nonces are 16 random bytes in base64url; anything else is not one of them, and
    // must not reach the header (where `'` or `;` would change the policy).
    let valid = (16..=128).contains(&nonce.len())
        && nonce
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    Ok(valid.then(|| String::from_utf8_lossy(nonce).into_owned()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Adds the security headers to a rendered page: reads the beginning of the HTML for the
/// nonce, sets the policy, and streams the page on unchanged.
pub async fn secure_page(response: Response, ws_origin: &str) -> Response {
    let (mut parts, body) = response.into_parts();
    add_common_headers(&mut parts.headers);
    // Pages are per person.
    parts.headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    let is_html = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !is_html {
        parts.headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
        return Response::from_parts(parts, body);
    }
    let mut stream = body.into_data_stream();
    let mut head = BytesMut::new();
    let mut nonce = None;
    let mut failed = None;
    while head.len() < MAX_HEAD_BYTES {
        match stream.next().await {
            Some(Ok(chunk)) => {
                head.extend_from_slice(&chunk);
                match first_script_nonce(&head) {
                    Ok(Some(n)) => {
                        nonce = Some(n);
                        break;
                    }
                    Ok(None) if find(&head, b"<script").is_some() => break,
                    // The head ended without any script.
                    Ok(None) if find(&head, b"</head>").is_some() => break,
                    _ => {}
                }
            }
            Some(Err(e)) => {
                failed = Some(e);
                break;
            }
            None => break,
        }
    }
    if nonce.is_none() {
        tracing::debug!("UI page without a script nonce: served without inline scripts");
    }
    let policy = page_policy(nonce.as_deref(), ws_origin);
    if let Ok(v) = HeaderValue::from_str(&policy) {
        parts.headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    let first: Bytes = head.freeze();
    let tail = match failed {
        // Pass a rendering error on as the stream's end, as it would have been without us.
        Some(e) => futures_util::stream::iter(vec![Err(e)]).boxed(),
        None => stream.boxed(),
    };
    let body = futures_util::stream::once(async move { Ok::<_, axum::Error>(first) }).chain(tail);
    Response::from_parts(parts, Body::from_stream(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_script_tags_nonce_is_found() {
        let html = br#"<!DOCTYPE html><html><head><link rel="modulepreload" href="/pkg/paved_ui.js" crossorigin="abc"><script type="module" nonce="AAAAAAAAAAAAAAAAAAAAAA">import("x")</script>"#;
        assert_eq!(
            first_script_nonce(html),
            Ok(Some("AAAAAAAAAAAAAAAAAAAAAA".into()))
        );
        assert_eq!(first_script_nonce(b"<html><head><scr"), Ok(None));
        assert_eq!(first_script_nonce(b"<head><script type=\"mod"), Err(()));
        assert_eq!(first_script_nonce(b"<script>x</script>"), Ok(None));
        // Only the first script counts, and the value must look like a nonce.
        assert_eq!(
            first_script_nonce(b"<script src=a></script><script nonce=\"BBBBBBBBBBBBBBBBBBBBBB\">"),
            Ok(None)
        );
        assert_eq!(
            first_script_nonce(b"<script nonce=\"x'; script-src *\">"),
            Ok(None)
        );
    }

    #[test]
    fn policy_allows_hydration_and_nothing_inline_without_the_nonce() {
        let p = page_policy(Some("N0nce"), "ws://127.0.0.1:8081");
        assert!(p.contains("script-src 'self' 'nonce-N0nce' 'wasm-unsafe-eval'"));
        assert!(p.contains("frame-ancestors 'none'"));
        assert!(p.contains("connect-src 'self' ws://127.0.0.1:8081;"));
        assert!(!p.contains("unsafe-inline"));
        assert!(!page_policy(None, "ws://h").contains("nonce"));
    }
}
