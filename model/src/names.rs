//! Syntax checks shared by the snapshot and the intent: DNS names, host patterns, identifiers,
//! path prefixes and HTTP header names.

/// Checks a DNS host name (`app.example.com`, `localhost`, `10.0.0.1`); returns what was expected
/// when it is not one.
pub(crate) fn check_hostname(name: &str) -> Result<(), String> {
    let expected = || format!("expected a DNS name such as `app.example.com`, found `{name}`");
    if name.is_empty() || name.len() > 253 {
        return Err(expected());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(expected());
        }
    }
    Ok(())
}

/// Checks a route host pattern: an exact name, a wildcard `*.example.com` (one label), or `*`.
pub(crate) fn check_host_pattern(pattern: &str) -> Result<(), String> {
    if pattern == "*" {
        return Ok(());
    }
    let expected = || {
        format!(
            "expected a host name (`app.example.com`), a wildcard (`*.example.com`) or `*`, found `{pattern}`"
        )
    };
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    if name.contains('*') || check_hostname(name).is_err() {
        return Err(expected());
    }
    Ok(())
}

/// Checks an identifier used as a cluster, plugin, upstream or app name: ASCII letters, digits,
/// `-`, `_` and `.`, starting with a letter or digit, at most 63 characters.
pub(crate) fn check_identifier(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected a name of letters, digits, `-`, `_` or `.` (at most 63, starting with a letter or digit), found `{name}`"
        ))
    }
}

/// Checks a path prefix: starts with `/`, no query or fragment, no whitespace or dot segments.
pub(crate) fn check_path_prefix(path: &str) -> Result<(), String> {
    let ok = path.starts_with('/')
        && !path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '\\'))
        && !path.split('/').any(|s| s == "." || s == "..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected a path starting with `/` (no spaces, `?`, `#`, `\\` or dot segments), found `{path}`"
        ))
    }
}

/// Checks an HTTP header name (an RFC 9110 token).
#[cfg(feature = "intent")]
pub(crate) fn check_header_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        });
    if ok {
        Ok(())
    } else {
        Err(format!("expected an HTTP header name, found `{name}`"))
    }
}

/// Checks an HTTP header value: visible ASCII, spaces and tabs, no CR or LF.
#[cfg(feature = "intent")]
pub(crate) fn check_header_value(value: &str) -> Result<(), String> {
    if value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        Ok(())
    } else {
        Err(format!(
            "expected a header value of printable ASCII without line breaks, found {value:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert!(check_hostname("app.example.com").is_ok());
        assert!(check_hostname("localhost").is_ok());
        assert!(check_hostname("127.0.0.1").is_ok());
        assert!(check_hostname("").is_err());
        assert!(check_hostname("a..b").is_err());
        assert!(check_hostname("-a.b").is_err());
        assert!(check_hostname("a b").is_err());
        assert!(check_hostname(&"a".repeat(64)).is_err());
    }

    #[test]
    fn host_patterns() {
        assert!(check_host_pattern("*").is_ok());
        assert!(check_host_pattern("*.example.com").is_ok());
        assert!(check_host_pattern("app.example.com").is_ok());
        assert!(check_host_pattern("*example.com").is_err());
        assert!(check_host_pattern("a.*.com").is_err());
        assert!(check_host_pattern("*.*.com").is_err());
        assert!(check_host_pattern("").is_err());
    }

    #[test]
    fn identifiers() {
        assert!(check_identifier("app").is_ok());
        assert!(check_identifier("billing.api_v2-x").is_ok());
        assert!(check_identifier("").is_err());
        assert!(check_identifier("-x").is_err());
        assert!(check_identifier("a b").is_err());
    }

    #[test]
    fn path_prefixes() {
        assert!(check_path_prefix("/").is_ok());
        assert!(check_path_prefix("/api/").is_ok());
        assert!(check_path_prefix("api").is_err());
        assert!(check_path_prefix("/a?b").is_err());
        assert!(check_path_prefix("/a/../b").is_err());
    }

    #[cfg(feature = "intent")]
    #[test]
    fn headers() {
        assert!(check_header_name("X-Frame-Options").is_ok());
        assert!(check_header_name("Bad Name").is_err());
        assert!(check_header_value("default-src 'self'").is_ok());
        assert!(check_header_value("a\r\nb").is_err());
    }
}
