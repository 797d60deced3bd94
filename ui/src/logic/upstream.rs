//! The upstream as the wizard asks for it (a URL such as `http://10.0.0.5:8080/`, or
//! `host:port`), split into what the intent needs (`host:port`, TLS or not) and the URL the
//! control plane's `checkUpstream` probes.
//!
//! This is input conversion only: whether an endpoint is acceptable is the control plane's
//! call. Text that does not look like a URL is passed to the intent as written, so the
//! control plane's validation names the problem.

/// How the gateway talks to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS (the intent gets `tls: {}`).
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// An upstream URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (the scheme's default when the URL has none).
    pub port: u16,
    /// Path and query, at least `/` (only used for the reachability check).
    pub path: String,
}

impl UpstreamTarget {
    /// The intent's endpoint: `host:port` (`[v6]:port` for IPv6).
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.bracketed_host(), self.port)
    }

    /// The URL `checkUpstream` is asked about.
    pub fn check_url(&self) -> String {
        format!(
            "{}://{}:{}{}",
            self.scheme.as_str(),
            self.bracketed_host(),
            self.port,
            self.path
        )
    }

    /// Whether the gateway must speak TLS to it.
    pub fn tls(&self) -> bool {
        self.scheme == Scheme::Https
    }

    fn bracketed_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

/// Splits `input` (`http(s)://host[:port][/path]` or `host:port`) into its parts; `None` when it
/// is not of that shape (another scheme, credentials, a bad port, spaces).
pub fn parse_upstream(input: &str) -> Option<UpstreamTarget> {
    let input = input.trim();
    let lower = input.to_ascii_lowercase();
    let (scheme, rest, explicit) = if lower.starts_with("https://") {
        (Scheme::Https, &input["https://".len()..], true)
    } else if lower.starts_with("http://") {
        (Scheme::Http, &input["http://".len()..], true)
    } else if lower.contains("://") {
        return None;
    } else {
        (Scheme::Http, input, false)
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    // Credentials in the URL are refused by the control plane; never put them in an intent.
    if authority.is_empty()
        || authority.contains('@')
        || authority
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let (host, port) = split_host_port(authority)?;
    // Bare `host` without a port is ambiguous (which port?): only URLs get a default port.
    let port = match port {
        Some(p) => p,
        None if explicit => scheme.default_port(),
        None => return None,
    };
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('/') => p.to_string(),
        p => format!("/{p}"),
    };
    Some(UpstreamTarget {
        scheme,
        host,
        port,
        path,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        if host.is_empty() {
            return None;
        }
        let port = match after {
            "" => None,
            p => Some(parse_port(p.strip_prefix(':')?)?),
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') => {
            Some((host.to_string(), Some(parse_port(port)?)))
        }
        Some(_) => None,
        None => Some((authority.to_string(), None)),
    }
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_url_with_port_becomes_host_port_without_tls() {
        let t = parse_upstream("http://127.0.0.1:9000/").expect("parses");
        assert_eq!(t.endpoint(), "127.0.0.1:9000");
        assert!(!t.tls());
        assert_eq!(t.check_url(), "http://127.0.0.1:9000/");
    }

    #[test]
    fn https_url_without_port_gets_443_and_tls() {
        let t = parse_upstream("HTTPS://api.internal/healthz?x=1").expect("parses");
        assert_eq!(t.endpoint(), "api.internal:443");
        assert!(t.tls());
        assert_eq!(t.check_url(), "https://api.internal:443/healthz?x=1");
    }

    #[test]
    fn bare_host_port_is_plain_http() {
        let t = parse_upstream(" app.internal:8080 ").expect("parses");
        assert_eq!(t.scheme, Scheme::Http);
        assert_eq!(t.endpoint(), "app.internal:8080");
        assert_eq!(t.check_url(), "http://app.internal:8080/");
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets() {
        let t = parse_upstream("http://[::1]:8080").expect("parses");
        assert_eq!(t.host, "::1");
        assert_eq!(t.endpoint(), "[::1]:8080");
    }

    #[test]
    fn other_schemes_credentials_and_bad_ports_are_not_taken_apart() {
        for input in [
            "ftp://x:21",
            "http://user:pw@host:80",
            "http://host:0",
            "http://host:99999",
            "http://host:8o",
            "host",
            "",
            "http://",
            "http://ho st:80",
            "::1:80",
        ] {
            assert_eq!(parse_upstream(input), None, "{input}");
        }
    }
}
