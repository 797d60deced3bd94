//! Where a browser may be sent after login or logout: only to the app's own pages.
//!
//! Accepted: a path on the current host (`/reports?q=1`), or an absolute URL on the current
//! host or one of the app's own domains. Refused: anything a browser might resolve to another
//! host — scheme-relative `//evil`, `/\evil` and `\\evil` (browsers read `\` as `/`), tabs and
//! newlines (browsers drop them, so `/\t/evil` becomes `//evil`), userinfo
//! (`https://app@evil`), encoded slashes that a later hop may decode, other schemes
//! (`javascript:`), and non-ASCII. A refused target becomes `/`: the login still completes.

use crate::url::{HttpUrl, host_of};

/// Longest target kept (longer ones are refused: they only bloat the login cookie).
pub const MAX_TARGET_BYTES: usize = 2048;

/// Who the app is: the host the request came to, and the app's other domains.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// Scheme of the current request (`http` allowed in absolute targets only if this is).
    pub scheme: &'a str,
    /// Host of the current request (`:authority`, port allowed).
    pub host: &'a str,
    /// The app's domains: exact names, or `*.example.com` for any one-label subdomain.
    pub domains: &'a [String],
}

/// `target` if it is safe to redirect to, else `None`.
pub fn safe_target(target: &str, origin: Origin<'_>) -> Option<String> {
    if target.is_empty()
        || target.len() > MAX_TARGET_BYTES
        || target.bytes().any(|b| !(0x21..0x7f).contains(&b))
        || target.contains('\\')
    {
        return None;
    }
    let decoded_prefix = percent_decode_prefix(target, 8).to_ascii_lowercase();
    if decoded_prefix.contains('\\') {
        return None;
    }
    if let Some(rest) = target.strip_prefix('/') {
        // `//host` and `/%2fhost`: scheme-relative once decoded by anyone.
        if rest.starts_with('/') || decoded_prefix.starts_with("//") {
            return None;
        }
        return Some(target.to_string());
    }
    let url = HttpUrl::parse(target).ok()?;
    if !url.is_https() && !origin.scheme.eq_ignore_ascii_case("http") {
        return None;
    }
    let host = url.host().trim_end_matches('.');
    let own = host.eq_ignore_ascii_case(host_of(origin.host).trim_end_matches('.'))
        || origin.domains.iter().any(|d| domain_matches(d, host));
    own.then(|| url.to_string())
}

/// Whether `host` is `pattern` (case-insensitive), or one label under `*.suffix`.
fn domain_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .and_then(|label| label.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => host == pattern,
    }
}

/// The first `n` characters of `text` with percent escapes decoded (as text, lossy).
fn percent_decode_prefix(text: &str, n: usize) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() && out.len() < n {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin<'static> {
        static DOMAINS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        Origin {
            scheme: "https",
            host: "app.example.com",
            domains: DOMAINS
                .get_or_init(|| vec!["app.example.com".into(), "*.apps.example.com".into()]),
        }
    }

    #[test]
    fn paths_on_the_same_host_are_kept() {
        for t in ["/", "/reports?q=1&x=%20y", "/a/b#frag", "/%7Euser"] {
            assert_eq!(safe_target(t, origin()).as_deref(), Some(t), "{t}");
        }
    }

    #[test]
    fn open_redirect_attempts_are_refused() {
        let attacks = [
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/%2fevil.example",
            "/%2F%2Fevil.example",
            "/%5cevil.example",
            "https://evil.example/",
            "https://app.example.com@evil.example/",
            "https://evil.example\\@app.example.com/",
            "https://app.example.com.evil.example/",
            "https:evil.example",
            "https:/evil.example",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>",
            "evil.example",
            " /x",
            "/caf\u{e9}",
            "http://app.example.com/",
            "https://a.b.apps.example.com/",
            "",
        ];
        for t in attacks {
            assert_eq!(safe_target(t, origin()), None, "{t:?}");
        }
    }

    #[test]
    fn absolute_urls_on_the_apps_domains_are_kept() {
        assert_eq!(
            safe_target("https://APP.example.com:443/x?y=1", origin()).as_deref(),
            Some("https://app.example.com:443/x?y=1")
        );
        assert!(safe_target("https://team.apps.example.com/", origin()).is_some());
        let dev = Origin {
            scheme: "http",
            host: "localhost:8080",
            domains: &[],
        };
        assert!(safe_target("http://localhost:8080/x", dev).is_some());
        assert!(safe_target("http://localhost.evil.example/x", dev).is_none());
    }

    #[test]
    fn overlong_targets_are_refused() {
        let long = format!("/{}", "a".repeat(MAX_TARGET_BYTES));
        assert_eq!(safe_target(&long, origin()), None);
    }
}
