//! Reading `Cookie` headers and writing `Set-Cookie` values.
//!
//! Every cookie Paved sets is `Secure; HttpOnly; SameSite=Lax; Path=/` without `Domain`
//! (host-only): scripts cannot read it, it never travels over plain HTTP (browsers treat
//! `localhost` as secure), it is not sent on cross-site subrequests, and it stays on the
//! exact host that set it.

/// Largest cookie (name and value) browsers reliably keep.
pub const MAX_COOKIE_BYTES: usize = 4000;

/// The value of cookie `name` in a `Cookie` header (`a=1; b=2`); the first one wins.
pub fn get<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    all(header).find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// Every `(name, value)` pair of a `Cookie` header, quotes around values removed.
pub fn all(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Some((name.trim(), value))
    })
}

/// Whether `name` is a valid cookie name (an RFC 7230 token).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
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
        })
}

/// A `Set-Cookie` value for a Paved cookie that lives `max_age_secs` (a session cookie when
/// `None`: gone when the browser closes).
pub fn set(name: &str, value: &str, max_age_secs: Option<u64>) -> String {
    let mut out = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age_secs {
        out.push_str(&format!("; Max-Age={age}"));
    }
    out
}

/// A `Set-Cookie` value that deletes cookie `name`.
pub fn clear(name: &str) -> String {
    format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cookies_by_exact_name() {
        let h = "a=1; paved_session=v1.abc; paved_session_login_x=\"q\"";
        assert_eq!(get(h, "paved_session"), Some("v1.abc"));
        assert_eq!(get(h, "paved_session_login_x"), Some("q"));
        assert_eq!(get(h, "paved"), None);
        assert_eq!(
            get("paved_session=first; paved_session=second", "paved_session"),
            Some("first")
        );
    }

    #[test]
    fn set_cookie_has_the_security_attributes() {
        let c = set("s", "v", Some(60));
        for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=60"] {
            assert!(c.contains(attr), "{c}");
        }
        assert!(!c.contains("Domain"));
        assert!(clear("s").contains("Max-Age=0"));
    }

    #[test]
    fn cookie_names_are_tokens() {
        assert!(valid_name("paved_session"));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a;b"));
        assert!(!valid_name(""));
    }
}
