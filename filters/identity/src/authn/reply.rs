//! The responses authn sends itself. Error bodies name a reason code, never token contents
//! or configuration.

use super::{Decision, Reply};

fn h(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_string(), value.into())
}

/// Quotes a value for an auth-param (`realm="..."`): the characters that could end the
/// string or the header are replaced.
fn quoted(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3): no `error` when the request had no
/// credentials at all, `error="invalid_token"` when a token was refused.
pub(super) fn unauthorized(app: &str, error: Option<&str>, reason: &'static str) -> Reply {
    let mut challenge = format!("Bearer realm=\"{}\"", quoted(app));
    if let Some(error) = error {
        challenge.push_str(&format!(
            ", error=\"{error}\", error_description=\"{reason}\""
        ));
    }
    Reply {
        status: 401,
        headers: vec![
            h("www-authenticate", challenge),
            h("content-type", "application/json"),
            h("cache-control", "no-store"),
        ],
        body: serde_json::json!({"error": "unauthorized", "reason": reason})
            .to_string()
            .into_bytes(),
        decision: Decision::Deny(reason),
        identity: None,
    }
}

/// 503: the identity provider could not be reached in time.
pub(super) fn unavailable() -> Reply {
    Reply {
        status: 503,
        headers: vec![
            h("content-type", "application/json"),
            h("cache-control", "no-store"),
            h("retry-after", "5"),
        ],
        body: br#"{"error":"unavailable","reason":"idp_unavailable"}"#.to_vec(),
        decision: Decision::Deny("idp_unavailable"),
        identity: None,
    }
}

/// 302 to `location`.
pub(super) fn redirect(location: &str, cookies: Vec<String>, decision: Decision) -> Reply {
    let mut headers = vec![h("location", location), h("cache-control", "no-store")];
    headers.extend(cookies.into_iter().map(|c| h("set-cookie", c)));
    Reply {
        status: 302,
        headers,
        body: Vec::new(),
        decision,
        identity: None,
    }
}

/// A small HTML page for a browser whose sign-in failed, with a way to start again.
pub(super) fn login_failed(status: u16, reason: &'static str, cookies: Vec<String>) -> Reply {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>Sign-in failed</title>\
         <p>Sign-in failed ({reason}).</p><p><a href=\"/\">Try again</a></p>\n"
    );
    let mut headers = vec![
        h("content-type", "text/html; charset=utf-8"),
        h("cache-control", "no-store"),
    ];
    headers.extend(cookies.into_iter().map(|c| h("set-cookie", c)));
    Reply {
        status,
        headers,
        body: body.into_bytes(),
        decision: Decision::Deny(reason),
        identity: None,
    }
}

/// The assertion key's JWKS.
pub(super) fn jwks(doc: &str) -> Reply {
    Reply {
        status: 200,
        headers: vec![
            h("content-type", "application/jwk-set+json"),
            h("cache-control", "public, max-age=300"),
        ],
        body: doc.as_bytes().to_vec(),
        decision: Decision::Allow,
        identity: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_realm_cannot_break_the_header() {
        let r = unauthorized("a\"pp\r\n", Some("invalid_token"), "expired");
        let challenge = &r.headers[0].1;
        assert_eq!(
            challenge,
            "Bearer realm=\"a_pp__\", error=\"invalid_token\", error_description=\"expired\""
        );
    }

    #[test]
    fn no_error_code_without_credentials() {
        let r = unauthorized("app", None, "credentials_required");
        assert_eq!(r.headers[0].1, "Bearer realm=\"app\"");
        assert_eq!(r.decision, Decision::Deny("credentials_required"));
    }
}
