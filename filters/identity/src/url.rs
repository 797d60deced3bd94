//! Just enough URL handling for an identity provider's endpoints: absolute `http(s)` URLs
//! split into the authority and path a `proxy_http_call` needs, and query strings built
//! and read with form encoding.
//!
//! A full URL crate would bring IDNA tables into every plugin for nothing: provider
//! endpoints are ASCII, and anything unusual in them is refused.

use std::fmt;

/// Why a URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `http://` or `https://`.
    #[error("not an http(s) URL")]
    Scheme,
    /// Empty host, userinfo (`user@`), or characters that do not belong in a host.
    #[error("bad host")]
    Host,
    /// Whitespace, control or non-ASCII characters, or a fragment.
    #[error("bad characters")]
    Characters,
}

/// An absolute `http` or `https` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    https: bool,
    authority: String,
    path_and_query: String,
}

impl HttpUrl {
    /// Parses an absolute URL.
    pub fn parse(text: &str) -> Result<HttpUrl, UrlError> {
        if text.bytes().any(|b| !(0x21..0x7f).contains(&b)) || text.contains('#') {
            return Err(UrlError::Characters);
        }
        let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
        let (https, rest) = if lower.starts_with("https://") {
            (true, &text[8..])
        } else if lower.starts_with("http://") {
            (false, &text[7..])
        } else {
            return Err(UrlError::Scheme);
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if !valid_authority(authority) {
            return Err(UrlError::Host);
        }
        let path_and_query = match tail {
            "" => "/".to_string(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_string(),
        };
        Ok(HttpUrl {
            https,
            authority: authority.to_ascii_lowercase(),
            path_and_query,
        })
    }

    /// `host[:port]`, lowercase: the `:authority` of a call.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The host without port.
    pub fn host(&self) -> &str {
        host_of(&self.authority)
    }

    /// Path and query: the `:path` of a call.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// This URL with form-encoded `pairs` appended to its query.
    pub fn with_query<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
        let mut out = self.to_string();
        let mut sep = if self.path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        if out.ends_with('?') || out.ends_with('&') {
            sep = '\0';
        }
        let query = form_encode(pairs);
        if !query.is_empty() {
            if sep != '\0' {
                out.push(sep);
            }
            out.push_str(&query);
        }
        out
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.path_and_query)
    }
}

/// The host part of `host[:port]` (IPv6 literals keep their brackets).
pub fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Whether `authority` is a plain `host[:port]`: letters, digits, `-`, `.`, an IPv6 literal
/// in brackets, an optional numeric port; no userinfo, no spaces, no percent escapes.
pub fn valid_authority(authority: &str) -> bool {
    if authority.is_empty() || authority.len() > 255 {
        return false;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.is_empty()
            || !inside
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match after {
            "" => ("x", None),
            p => match p.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let host_ok = !host.is_empty()
        && !host.starts_with('.')
        && !host.starts_with('-')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn form_encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// The first value of `name` in a query string or form body (`a=1&b=2`).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// How many times `name` appears (a repeated `state` is an attack or a bug).
pub fn query_count(query: &str, name: &str) -> usize {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == name)
        .count()
}

/// Splits a request target into path and query.
pub fn split_target(target: &str) -> (&str, &str) {
    match target.split_once('?') {
        Some((path, query)) => (path, query),
        None => (target, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints_into_authority_and_path() {
        let u = HttpUrl::parse("https://IdP.example:8443/realms/x/token?a=1").expect("url");
        assert_eq!(u.authority(), "idp.example:8443");
        assert_eq!(u.host(), "idp.example");
        assert_eq!(u.path_and_query(), "/realms/x/token?a=1");
        assert!(u.is_https());
        let u = HttpUrl::parse("http://127.0.0.1:8081").expect("url");
        assert_eq!(u.path_and_query(), "/");
        assert_eq!(u.to_string(), "http://127.0.0.1:8081/");
    }

    #[test]
    fn refuses_userinfo_other_schemes_and_odd_characters() {
        for bad in [
            "https://user@idp.example/",
            "ftp://idp.example/",
            "https:///path",
            "https://idp.example/a b",
            "https://idp.example/#frag",
            "//idp.example/",
            "https://idp.exa%6dple/",
            "https://idp.example:port/",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_literals_are_hosts() {
        let u = HttpUrl::parse("http://[::1]:8080/x").expect("url");
        assert_eq!(u.host(), "[::1]");
        assert_eq!(u.authority(), "[::1]:8080");
    }

    #[test]
    fn with_query_appends_encoded_pairs() {
        let u = HttpUrl::parse("https://idp.example/auth?prompt=login").expect("url");
        assert_eq!(
            u.with_query([
                ("redirect_uri", "https://a.example/cb?x=1"),
                ("scope", "openid email")
            ]),
            "https://idp.example/auth?prompt=login&redirect_uri=https%3A%2F%2Fa.example%2Fcb%3Fx%3D1&scope=openid+email"
        );
    }

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(
            query_param("a=1&state=x%2By&state=z", "state").as_deref(),
            Some("x+y")
        );
        assert_eq!(query_count("a=1&state=x&state=z", "state"), 2);
        assert_eq!(split_target("/p?q=1"), ("/p", "q=1"));
    }
}
