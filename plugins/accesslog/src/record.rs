//! The access log record: what a request was, what happened to it, and what every filter
//! decided. Pure: the filter gathers the facts, this module shapes and redacts them.

use serde::Serialize;
use serde_json::{Map, Value};

/// Query parameters whose values are replaced by `REDACTED`: names that are, contain, or
/// end with one of these (case-insensitive).
pub const SECRET_PARAMETERS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "key",
    "code",
    "session",
    "sid",
    "auth",
    "signature",
    "sig",
    "credential",
    "jwt",
    "assertion",
    "otp",
    "pin",
    "ticket",
    "nonce",
    "state",
    "cookie",
];

/// What the filter read about a request.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Record {
    /// When the request started (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// The gateway's request ID.
    pub request_id: String,
    /// The app (from the configuration).
    pub app: String,
    /// The route's path prefix (from the configuration).
    pub route: String,
    /// The route's name (`route_name` property), when the gateway gives one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub route_name: String,
    /// The method.
    pub method: String,
    /// The host requested.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// The path, with secret-looking query values redacted.
    pub path: String,
    /// The response status (0 when there was no response).
    pub status: i64,
    /// From the request's start to the log call, in milliseconds.
    pub latency_ms: f64,
    /// The request body size, from `Content-Length`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    /// The response body size, from `Content-Length`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    /// The client's address, without port.
    pub client_ip: String,
    /// The identity subject `authn` established, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Request headers the configuration asks for.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub headers: Map<String, Value>,
    /// Every filter's decision, by filter name (`paved.decision.<name>`).
    pub decisions: Map<String, Value>,
    /// Details filters recorded (`paved.waf.rules` → `{"waf": {"rules": ...}}`).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
}

impl Record {
    /// The record as one line of JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Adds a `paved.*` property: `paved.decision.<filter>` to `decisions`,
    /// `paved.<filter>.<field>` to `details`. Numbers stay numbers.
    pub fn add_property(&mut self, name: &str, value: &str) {
        let Some(rest) = name.strip_prefix("paved.") else {
            return;
        };
        if let Some(filter) = rest.strip_prefix("decision.") {
            self.decisions
                .insert(filter.to_string(), Value::String(value.to_string()));
            return;
        }
        let Some((filter, field)) = rest.split_once('.') else {
            return;
        };
        let value = value
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(value.to_string()));
        if let Value::Object(fields) = self
            .details
            .entry(filter.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
        {
            fields.insert(field.to_string(), value);
        }
    }
}

/// Whether a query parameter name looks like it carries a secret.
pub fn is_secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let words: Vec<&str> = name.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    SECRET_PARAMETERS.iter().any(|secret| {
        words.iter().any(|w| w == secret || w.ends_with(secret)) || name.ends_with(secret)
    })
}

/// The path with the values of secret-looking query parameters replaced by `REDACTED`, and
/// any fragment dropped. Names and order are kept, so the record still shows the shape.
pub fn redact_path(path: &str) -> String {
    let path = path.split('#').next().unwrap_or(path);
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_parameter(&percent_decode(name)) => {
                format!("{name}=REDACTED")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

/// Percent-decodes a parameter name (so `%74oken` is `token`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_query_values_are_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_path("/cb?code=abc&state=xyz&page=2&access_token=t0k&apiKey=k&q=token"),
            "/cb?code=REDACTED&state=REDACTED&page=2&access_token=REDACTED&apiKey=REDACTED&q=token"
        );
        assert_eq!(
            redact_path("/reset?%74oken=s3cret#frag"),
            "/reset?%74oken=REDACTED"
        );
        assert_eq!(redact_path("/plain/path"), "/plain/path");
        assert_eq!(
            redact_path("/x?session_id=1&sort=asc"),
            "/x?session_id=REDACTED&sort=asc"
        );
    }

    #[test]
    fn ordinary_parameter_names_are_not_secrets() {
        for name in ["page", "q", "sort", "lang", "category", "keyboard"] {
            assert!(!is_secret_parameter(name), "{name}");
        }
    }

    #[test]
    fn properties_land_in_decisions_and_details() {
        let mut r = Record::default();
        r.add_property("paved.decision.waf", "deny");
        r.add_property("paved.waf.rules", "942100,941110");
        r.add_property("paved.waf.score", "10");
        r.add_property("unrelated", "x");
        let json: Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(json["decisions"]["waf"], "deny");
        assert_eq!(json["details"]["waf"]["rules"], "942100,941110");
        assert_eq!(json["details"]["waf"]["score"], 10);
    }
}
