//! Pure route matching: picks the route for a request's host and path.
//!
//! Host first, like virtual hosts: an exact host beats a wildcard (`*.example.com`, one label),
//! which beats `*`. Within the chosen host, the longest path prefix wins, matched on whole
//! segments: `/api` matches `/api` and `/api/x` but not `/apix`. A request whose host group has
//! no matching prefix does not fall back to a less specific host (an app's routes never leak
//! into another's policy).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::names::check_host_pattern;
use crate::snapshot::Route;

/// A host pattern that does not parse; says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HostPatternError(pub String);

/// A route whose host pattern does not parse (validated snapshots have none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("routes[{index}].host: {error}")]
pub struct RouteTableError {
    /// Index of the route.
    pub index: usize,
    /// What is wrong with its host.
    pub error: HostPatternError,
}

/// A parsed route host pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Any host (`*`).
    Any,
    /// Any host with one more label in front of this suffix (`*.example.com` → `example.com`).
    Wildcard(String),
    /// Exactly this host (lowercase).
    Exact(String),
}

impl HostPattern {
    /// Parses `*`, `*.example.com` or `app.example.com` (case-insensitive).
    pub fn parse(pattern: &str) -> Result<HostPattern, HostPatternError> {
        let lower = pattern.to_ascii_lowercase();
        check_host_pattern(&lower).map_err(HostPatternError)?;
        Ok(if lower == "*" {
            HostPattern::Any
        } else if let Some(suffix) = lower.strip_prefix("*.") {
            HostPattern::Wildcard(suffix.to_string())
        } else {
            HostPattern::Exact(lower)
        })
    }

    /// True when `host` (already normalized by [`normalize_host`]) matches this pattern.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        }
    }
}

/// Lowercases a `Host`/`:authority`/SNI value and removes its port and trailing dot:
/// `App.Example.com.:8443` → `app.example.com`, `[::1]:80` → `[::1]`.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

/// True when `path` is under `prefix` on segment boundaries. A prefix ending in `/` matches
/// paths that start with it; otherwise the path must equal the prefix or continue with `/`.
pub fn path_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Why a request path cannot be routed safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("the path does not start with `/`")]
    NotAbsolute,
    /// The path encodes `/`, `\`, `.` or NUL with percent escapes, or holds `\` or control bytes.
    #[error("the path holds an encoded separator, backslash or control character")]
    AmbiguousEncoding,
    /// `..` segments climb above the root.
    #[error("the path climbs above the root with `..`")]
    AboveRoot,
    /// A `%` is not followed by two hexadecimal digits.
    #[error("the path holds a `%` that is not followed by two hexadecimal digits")]
    InvalidEscape,
}

/// Rewrites percent escapes into one canonical form (RFC 3986 §6.2.2): escaped unreserved
/// characters (letters, digits, `-`, `_`, `~`) are decoded and every other escape gets
/// upper-case hex. Without it `/%61dmin` would miss the `/admin` route's policy while the
/// upstream, decoding it, serves `/admin`.
fn canonical_escapes(path: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    if !path.contains('%') {
        return Ok(std::borrow::Cow::Borrowed(path));
    }
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            // Copy the run of plain characters up to the next escape (keeps UTF-8 intact).
            let end = path[i..].find('%').map_or(bytes.len(), |n| i + n);
            out.push_str(&path[i..end]);
            i = end;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathError::InvalidEscape);
        };
        // Both digits are < 16, so the value fits in a byte.
        let byte = (hi * 16 + lo) as u8;
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            // Writing into a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
        i += 3;
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// Normalizes a request path before matching: drops the query, merges repeated `/`, resolves
/// `.` and `..` segments, and rejects encodings that upstreams may decode differently
/// (`%2e`, `%2f`, `%5c`, `%00`, `\`, control bytes), and decodes escaped unreserved
/// characters (`/%61dmin` is `/admin`). Matching a raw path instead would let
/// `/public/../admin` reach `/admin` under the public route's policy.
pub fn normalize_path(path: &str) -> Result<String, PathError> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let path = canonical_escapes(path)?;
    let path = path.as_ref();
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|e| lower.contains(e))
        || path.bytes().any(|b| b == b'\\' || b.is_ascii_control())
    {
        return Err(PathError::AmbiguousEncoding);
    }
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let last = parts.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in parts.iter().enumerate() {
        match *seg {
            "" | "." => trailing_slash = i == last,
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = i == last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The outcome of a route lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index of the route in the slice the table was built from.
    pub index: usize,
}

/// Routes indexed by host pattern, each host's prefixes sorted longest first.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    exact: HashMap<String, Vec<(String, usize)>>,
    wildcard: HashMap<String, Vec<(String, usize)>>,
    any: Vec<(String, usize)>,
}

impl RouteTable {
    /// Builds the table; fails on a host pattern that does not parse (validated snapshots never
    /// do). Of two routes with the same host and prefix the first wins.
    pub fn new(routes: &[Route]) -> Result<RouteTable, RouteTableError> {
        let mut table = RouteTable::default();
        for (i, route) in routes.iter().enumerate() {
            let entry = (route.path_prefix.clone(), i);
            let pattern = HostPattern::parse(&route.host)
                .map_err(|error| RouteTableError { index: i, error })?;
            match pattern {
                HostPattern::Any => table.any.push(entry),
                HostPattern::Exact(h) => table.exact.entry(h).or_default().push(entry),
                HostPattern::Wildcard(s) => table.wildcard.entry(s).or_default().push(entry),
            }
        }
        let sort = |v: &mut Vec<(String, usize)>| {
            // Longest prefix first; ties keep the routes' order (stable sort).
            v.sort_by_key(|entry| std::cmp::Reverse(entry.0.len()));
        };
        table.exact.values_mut().for_each(sort);
        table.wildcard.values_mut().for_each(sort);
        sort(&mut table.any);
        Ok(table)
    }

    /// Picks the route for a request. `host` may carry a port and any case; `path` should be
    /// normalized with [`normalize_path`] first (a query string is ignored).
    pub fn lookup(&self, host: &str, path: &str) -> Option<RouteMatch> {
        let host = normalize_host(host);
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let group = self
            .exact
            .get(&host)
            .or_else(|| {
                host.split_once('.')
                    .filter(|(label, _)| !label.is_empty())
                    .and_then(|(_, suffix)| self.wildcard.get(suffix))
            })
            .unwrap_or(&self.any);
        group
            .iter()
            .find(|(prefix, _)| path_matches(prefix, path))
            .map(|(_, index)| RouteMatch { index: *index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: &str, prefix: &str) -> Route {
        Route {
            host: host.into(),
            path_prefix: prefix.into(),
            cluster: Some("c".into()),
            static_site: None,
            app: None,
            plugins: vec![],
        }
    }

    fn table() -> (RouteTable, Vec<Route>) {
        let routes = vec![
            route("*", "/"),                     // 0
            route("*.example.com", "/"),         // 1
            route("app.example.com", "/"),       // 2
            route("app.example.com", "/api"),    // 3
            route("app.example.com", "/api/v2"), // 4
            route("*.example.com", "/static/"),  // 5
            route("only.example.com", "/x"),     // 6
        ];
        (RouteTable::new(&routes).expect("valid"), routes)
    }

    fn at(t: &RouteTable, host: &str, path: &str) -> Option<usize> {
        t.lookup(host, path).map(|m| m.index)
    }

    #[test]
    fn exact_beats_wildcard_beats_any() {
        let (t, _) = table();
        assert_eq!(at(&t, "app.example.com", "/"), Some(2));
        assert_eq!(at(&t, "other.example.com", "/"), Some(1));
        assert_eq!(at(&t, "example.com", "/"), Some(0));
        assert_eq!(
            at(&t, "a.b.example.com", "/"),
            Some(0),
            "wildcards cover one label"
        );
        assert_eq!(at(&t, "elsewhere.org", "/anything"), Some(0));
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let (t, _) = table();
        assert_eq!(at(&t, "app.example.com", "/api"), Some(3));
        assert_eq!(at(&t, "app.example.com", "/api/x"), Some(3));
        assert_eq!(at(&t, "app.example.com", "/apix"), Some(2));
        assert_eq!(at(&t, "app.example.com", "/api/v2/users"), Some(4));
        assert_eq!(at(&t, "app.example.com", "/api/v23"), Some(3));
        assert_eq!(at(&t, "app.example.com", "/api?x=1"), Some(3));
        assert_eq!(at(&t, "x.example.com", "/static/app.js"), Some(5));
        assert_eq!(
            at(&t, "x.example.com", "/static"),
            Some(1),
            "`/static/` needs the slash"
        );
    }

    #[test]
    fn no_fallback_to_a_less_specific_host() {
        let (t, _) = table();
        assert_eq!(at(&t, "only.example.com", "/x/y"), Some(6));
        assert_eq!(at(&t, "only.example.com", "/y"), None);
    }

    #[test]
    fn hosts_are_normalized() {
        let (t, _) = table();
        assert_eq!(at(&t, "APP.Example.COM:8443", "/api"), Some(3));
        assert_eq!(at(&t, "app.example.com.", "/api"), Some(3));
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("localhost"), "localhost");
    }

    #[test]
    fn host_patterns() {
        assert_eq!(HostPattern::parse("*"), Ok(HostPattern::Any));
        assert_eq!(
            HostPattern::parse("*.Example.com"),
            Ok(HostPattern::Wildcard("example.com".into()))
        );
        assert!(HostPattern::parse("*.example.com").is_ok_and(|p| p.matches("a.example.com")));
        assert!(HostPattern::parse("*.example.com").is_ok_and(|p| !p.matches("example.com")));
        assert!(HostPattern::parse("a*b").is_err());
        assert_eq!(
            RouteTable::new(&[route("*", "/"), route("a..b", "/")]).err().map(|e| e.to_string()),
            Some("routes[1].host: expected a host name (`app.example.com`), a wildcard (`*.example.com`) or `*`, found `a..b`".to_string())
        );
    }

    #[test]
    fn same_host_and_prefix_first_wins() {
        let routes = vec![route("*", "/"), route("*", "/")];
        let t = RouteTable::new(&routes).expect("valid");
        assert_eq!(at(&t, "h", "/"), Some(0));
    }

    #[test]
    fn paths_are_normalized_or_rejected() {
        assert_eq!(normalize_path("/a/b").as_deref(), Ok("/a/b"));
        assert_eq!(normalize_path("/a//b/").as_deref(), Ok("/a/b/"));
        assert_eq!(normalize_path("/public/../admin").as_deref(), Ok("/admin"));
        assert_eq!(normalize_path("/a/./b/.").as_deref(), Ok("/a/b/"));
        assert_eq!(normalize_path("/a/..").as_deref(), Ok("/"));
        assert_eq!(normalize_path("/").as_deref(), Ok("/"));
        assert_eq!(normalize_path("/x?y=/../z").as_deref(), Ok("/x"));
        assert_eq!(normalize_path("/.."), Err(PathError::AboveRoot));
        assert_eq!(normalize_path("x"), Err(PathError::NotAbsolute));
        assert_eq!(
            normalize_path("/a/%2E%2E/b"),
            Err(PathError::AmbiguousEncoding)
        );
        assert_eq!(normalize_path("/a%2fb"), Err(PathError::AmbiguousEncoding));
        assert_eq!(normalize_path("/a\\b"), Err(PathError::AmbiguousEncoding));
    }

    #[test]
    fn escaped_unreserved_characters_are_decoded_before_matching() {
        assert_eq!(normalize_path("/%61dmin").as_deref(), Ok("/admin"));
        assert_eq!(normalize_path("/%41%7e%2D%5f9").as_deref(), Ok("/A~-_9"));
        let routes = vec![route("*", "/admin"), route("*", "/")];
        let t = RouteTable::new(&routes).expect("valid");
        let path = normalize_path("/%61dmin/users").expect("valid path");
        assert_eq!(
            at(&t, "h", &path),
            Some(0),
            "the admin route's policy applies"
        );
    }

    #[test]
    fn other_escapes_keep_one_canonical_spelling() {
        assert_eq!(normalize_path("/a%20b%3f").as_deref(), Ok("/a%20b%3F"));
        assert_eq!(normalize_path("/caf%c3%a9").as_deref(), Ok("/caf%C3%A9"));
        assert_eq!(
            normalize_path("/café").as_deref(),
            Ok("/café"),
            "raw UTF-8 is kept"
        );
    }

    #[test]
    fn broken_escapes_are_rejected() {
        assert_eq!(normalize_path("/a%zz"), Err(PathError::InvalidEscape));
        assert_eq!(normalize_path("/a%4"), Err(PathError::InvalidEscape));
        assert_eq!(normalize_path("/a%"), Err(PathError::InvalidEscape));
        assert_eq!(
            normalize_path("/%252e%252e/x").as_deref(),
            Ok("/%252e%252e/x"),
            "one decoding step only: %25 stays an escape"
        );
    }

    #[test]
    fn segment_matching() {
        assert!(path_matches("/", "/anything"));
        assert!(path_matches("/api", "/api"));
        assert!(path_matches("/api", "/api/"));
        assert!(!path_matches("/api", "/apix"));
        assert!(path_matches("/api/", "/api/x"));
        assert!(!path_matches("/api/", "/api"));
    }
}
