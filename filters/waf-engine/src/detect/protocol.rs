//! Protocol violations: malformed or ambiguous framing (request smuggling), invalid
//! encodings, missing or abnormal headers, control characters.

use super::{Hits, Value};
use crate::normalize::Normalized;
use crate::request::{Location, Request};
use crate::rule;

/// Headers longer than this are refused (cookies and tokens stay well under it).
pub const MAX_HEADER_VALUE_BYTES: usize = 16 * 1024;
/// More headers than this are refused.
pub const MAX_HEADERS: usize = 100;

/// Methods the gateway serves; anything else is refused as an invalid request line.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// Headers that change how a request is routed or proxied by the upstream: `Proxy`
/// (httpoxy) and the URL overrides of some frameworks.
const RESTRICTED_HEADERS: &[&str] = &[
    "proxy",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];
/// File extensions of backups, configuration, databases and keys.
const RESTRICTED_EXTENSIONS: &[&str] = &[
    "bak", "backup", "old", "orig", "save", "swp", "swo", "sql", "sqlite", "sqlite3", "db", "mdb",
    "log", "cfg", "conf", "config", "ini", "env", "pem", "key", "p12", "pfx", "kdbx", "htaccess",
    "htpasswd", "inc", "dist", "tmp", "asa", "cer", "crt", "jks", "keystore",
];

/// The checks on the request's head.
pub fn head(req: &Request<'_>, hits: &mut Hits) {
    request_line(req, hits);
    framing(req, hits);
    let host = req.header("host").or_else(|| req.header(":authority"));
    match host.as_deref().map(str::trim) {
        None => hits.push(rule::MISSING_HOST),
        Some("") => hits.push(rule::EMPTY_HOST),
        Some(h) => {
            let name = h.rsplit_once(':').map_or(h, |(n, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    n
                } else {
                    h
                }
            });
            let ipv4 = name.split('.').count() == 4
                && name
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if ipv4 || name.starts_with('[') {
                hits.push(rule::HOST_IS_IP);
            }
        }
    }
    match req.header("user-agent") {
        None => hits.push(rule::MISSING_USER_AGENT),
        Some(ua) if ua.trim().is_empty() => hits.push(rule::EMPTY_USER_AGENT),
        Some(_) => {}
    }
    if req.header("accept").is_none() {
        hits.push(rule::MISSING_ACCEPT);
    }
    let regular = req.headers.iter().filter(|(n, _)| !n.starts_with(':'));
    if regular.clone().count() > MAX_HEADERS {
        hits.push(rule::TOO_MANY_HEADERS);
    }
    for (name, value) in regular {
        if value.len() > MAX_HEADER_VALUE_BYTES {
            hits.push(rule::HEADER_TOO_LONG);
        }
        if value.iter().any(|&b| b == b'\r' || b == b'\n') {
            hits.push(rule::HEADER_CRLF);
        }
        if value.contains(&0) {
            hits.push(rule::NULL_BYTE);
        }
        if RESTRICTED_HEADERS.contains(&name.as_str()) {
            hits.push(rule::RESTRICTED_HEADER);
        }
        if super::scanner::is_scanner_header(name) {
            hits.push(rule::SCANNER_HEADER);
        }
    }
}

fn request_line(req: &Request<'_>, hits: &mut Hits) {
    let method_ok = METHODS.contains(&req.method);
    let target_ok = req.uri.first() == Some(&b'/') || (req.method == "OPTIONS" && req.uri == b"*");
    let no_whitespace = !req.uri.iter().any(|&b| b == b' ' || b == b'\t');
    if !(method_ok && target_ok && no_whitespace) {
        hits.push(rule::INVALID_REQUEST_LINE);
    }
}

/// Content-Length and Transfer-Encoding: the ambiguities request smuggling exploits.
fn framing(req: &Request<'_>, hits: &mut Hits) {
    let lengths: Vec<String> = req
        .header_values("content-length")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let encodings: Vec<String> = req
        .header_values("transfer-encoding")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    if lengths
        .iter()
        .any(|l| l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()))
    {
        hits.push(rule::CONTENT_LENGTH_NOT_NUMERIC);
    }
    if lengths.len() > 1 {
        hits.push(rule::CONTENT_LENGTH_DUPLICATE);
    }
    if !lengths.is_empty() && !encodings.is_empty() {
        hits.push(rule::CL_AND_TE);
    }
    if encodings.len() > 1 {
        hits.push(rule::TE_DUPLICATE);
    }
    if encodings.iter().any(|te| te != "chunked") {
        hits.push(rule::TE_NOT_CHUNKED);
    }
    let declared_body = lengths.iter().any(|l| l.trim() != "0") || !encodings.is_empty();
    let has_body = declared_body || req.body.is_some_and(|b| !b.bytes.is_empty());
    if has_body && matches!(req.method, "GET" | "HEAD") {
        hits.push(rule::BODY_ON_GET_OR_HEAD);
    }
    if has_body && req.header("content-type").is_none() {
        hits.push(rule::BODY_WITHOUT_CONTENT_TYPE);
    }
    if req.method == "POST" && lengths.is_empty() && encodings.is_empty() && req.body.is_none() {
        hits.push(rule::BODY_WITHOUT_LENGTH);
    }
}

/// The checks on one value: its encodings, control characters, and CR/LF tricks.
pub fn value(value: &Value<'_>, hits: &mut Hits) {
    let norm: &Normalized = value.norm;
    let flags = norm.flags;
    if flags.invalid {
        hits.push(rule::INVALID_URL_ENCODING);
    }
    if flags.multiple {
        hits.push(rule::MULTIPLE_URL_ENCODING);
    }
    if flags.iis_or_overlong {
        hits.push(rule::IIS_UNICODE_ENCODING);
    }
    if flags.null_byte {
        hits.push(rule::NULL_BYTE);
    }
    if flags.control {
        hits.push(rule::NON_PRINTABLE);
    }
    // Only where the wire form is URL-encoded: JSON and multipart text is UTF-8 by right.
    if matches!(value.location, Location::Path | Location::ArgName)
        && norm.raw.bytes().any(|b| !(0x20..0x7f).contains(&b))
    {
        hits.push(rule::NON_ASCII_RAW);
    }
    let decoded = &norm.decoded;
    let has_newline = decoded.contains('\n') || decoded.contains('\r');
    if value.location == Location::ArgName && has_newline {
        hits.push(rule::ARGUMENT_NAME_NEWLINE);
    }
    if has_newline
        && matches!(
            value.location,
            Location::Arg | Location::ArgName | Location::Path | Location::Cookie
        )
    {
        let lower = decoded.to_lowercase();
        let header_after_newline = lower.split(['\r', '\n']).skip(1).any(|line| {
            let line = line.trim_start();
            [
                "set-cookie:",
                "location:",
                "content-type:",
                "content-length:",
                "x-",
                "host:",
                "refresh:",
                "cache-control:",
                "access-control-",
                "transfer-encoding:",
            ]
            .iter()
            .any(|h| line.starts_with(h))
        });
        if header_after_newline {
            hits.push(rule::RESPONSE_SPLITTING);
        }
        let request_after_newline = lower.split(['\r', '\n']).skip(1).any(|line| {
            let line = line.trim_start();
            ["get /", "post /", "put /", "delete /", "head /", "http/1."]
                .iter()
                .any(|m| line.starts_with(m))
        });
        if request_after_newline {
            hits.push(rule::SMUGGLING_IN_ARGUMENT);
        }
    }
    if value.location == Location::Arg
        && decoded.chars().any(|c| {
            !(c.is_ascii_alphanumeric()
                || matches!(c, ' ' | '.' | '-' | '_' | '/' | ',' | '@' | ':'))
        })
    {
        hits.push(rule::STRICT_CHARSET);
    }
}

/// 920440: the last path segment has a restricted extension.
pub fn restricted_extension(path_lower: &str, hits: &mut Hits) {
    let last = path_lower.rsplit('/').next().unwrap_or_default();
    let last = last.split(';').next().unwrap_or(last);
    if let Some((_, ext)) = last.rsplit_once('.')
        && (RESTRICTED_EXTENSIONS.contains(&ext) || last.ends_with('~'))
    {
        hits.push(rule::RESTRICTED_EXTENSION);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Body;

    fn head_rules(method: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Hits {
        let headers: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        let req = Request {
            method,
            uri: b"/",
            headers: &headers,
            body: body.map(|bytes| Body {
                bytes,
                truncated: false,
            }),
        };
        let mut hits = Hits::new();
        head(&req, &mut hits);
        hits
    }

    const BROWSER: [(&str, &str); 3] = [
        ("host", "app.example.com"),
        ("user-agent", "Mozilla/5.0"),
        ("accept", "*/*"),
    ];

    #[test]
    fn a_browser_request_is_clean() {
        assert!(head_rules("GET", &BROWSER, None).is_empty());
    }

    #[test]
    fn smuggling_framings_are_found() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut h = BROWSER.to_vec();
            h.extend_from_slice(extra);
            h.push(("content-type", "text/plain"));
            head_rules("POST", &h, Some(b"x"))
        };
        assert!(
            with(&[("content-length", "5"), ("transfer-encoding", "chunked")])
                .contains(&rule::CL_AND_TE)
        );
        assert!(
            with(&[("content-length", "5"), ("content-length", "6")])
                .contains(&rule::CONTENT_LENGTH_DUPLICATE)
        );
        assert!(with(&[("content-length", "5a")]).contains(&rule::CONTENT_LENGTH_NOT_NUMERIC));
        assert!(
            with(&[("transfer-encoding", "chunked, identity")]).contains(&rule::TE_NOT_CHUNKED)
        );
        assert!(with(&[("transfer-encoding", " chunked")]).contains(&rule::TE_NOT_CHUNKED));
    }

    #[test]
    fn missing_headers_and_bodies_on_get_are_found() {
        let hits = head_rules("GET", &[("content-length", "3")], Some(b"abc"));
        for id in [
            rule::MISSING_HOST,
            rule::MISSING_USER_AGENT,
            rule::MISSING_ACCEPT,
            rule::BODY_ON_GET_OR_HEAD,
            rule::BODY_WITHOUT_CONTENT_TYPE,
        ] {
            assert!(hits.contains(&id), "{id}");
        }
        assert!(head_rules("TRACE", &BROWSER, None).contains(&rule::INVALID_REQUEST_LINE));
    }

    #[test]
    fn restricted_extensions_are_found_in_the_last_segment() {
        let mut hits = Hits::new();
        restricted_extension("/backup/db.sql", &mut hits);
        restricted_extension("/index.php~", &mut hits);
        assert_eq!(
            hits,
            vec![rule::RESTRICTED_EXTENSION, rule::RESTRICTED_EXTENSION]
        );
        let mut hits = Hits::new();
        restricted_extension("/static/app.v2.min.js", &mut hits);
        restricted_extension("/v1.2/docs", &mut hits);
        assert!(hits.is_empty());
    }
}
