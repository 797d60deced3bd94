//! Remote file inclusion and SSRF through URLs in arguments.

use super::text::{has, match_indices};
use super::{Hits, Value};
use crate::request::Location;
use crate::rule;

/// Parameter names that file-inclusion bugs typically read.
const INCLUSION_PARAMETERS: &[&str] = &[
    "file",
    "filename",
    "page",
    "include",
    "inc",
    "template",
    "tpl",
    "path",
    "dir",
    "document",
    "doc",
    "folder",
    "root",
    "load",
    "require",
    "module",
    "conf",
    "config",
    "lang",
    "language",
    "style",
    "layout",
    "view",
    "show",
    "content",
    "site",
    "pg",
    "mod",
    "skin",
    "theme",
    "mosconfig_absolute_path",
    "base_dir",
    "basedir",
];

/// Schemes of PHP stream wrappers and of protocols SSRF uses to reach non-HTTP services.
const WRAPPERS: &[&str] = &[
    "php://",
    "phar://",
    "zip://",
    "data://",
    "expect://",
    "glob://",
    "file://",
    "gopher://",
    "dict://",
    "ldap://",
    "ldaps://",
    "jar:",
    "netdoc:",
    "ssh2.",
    "ogg://",
    "rar://",
    "tftp://",
    "zlib:",
    "compress.zlib://",
    "compress.bzip2://",
];

/// Cloud metadata services: the usual target of SSRF.
const METADATA_HOSTS: &[&str] = &[
    "169.254.169.254",
    "metadata.google.internal",
    "metadata.azure.com",
    "100.100.100.200",
    "fd00:ec2::254",
    "169.254.170.2",
];

/// Runs the RFI rules on one value.
pub fn detect(value: &Value<'_>, hits: &mut Hits) {
    if !matches!(
        value.location,
        Location::Arg | Location::Cookie | Location::Body
    ) {
        return;
    }
    let lower = value.norm.lower.trim();
    // UNC paths (`\\host\share\file`) make Windows servers fetch files over SMB.
    let unc = value.norm.decoded.trim_start().starts_with("\\\\")
        && value.norm.decoded.trim_start()[2..].starts_with(|c: char| c.is_ascii_alphanumeric());
    if WRAPPERS.iter().any(|w| has(lower, w)) || unc {
        hits.push(rule::RFI_STREAM_WRAPPER);
    }
    let urls = urls(lower);
    if urls.is_empty() {
        return;
    }
    hits.push(rule::RFI_OFF_DOMAIN);
    for url in &urls {
        let host = host_of(url);
        if is_ip_literal(host) {
            hits.push(rule::RFI_IP_URL);
        }
        if METADATA_HOSTS
            .iter()
            .any(|m| host.trim_matches(|c| c == '[' || c == ']') == *m)
            || is_obfuscated_ip(host)
        {
            hits.push(rule::RFI_METADATA);
        }
    }
    let leaf = value.name.rsplit(['.', '[']).next().unwrap_or(value.name);
    let leaf = leaf.trim_end_matches(']');
    if INCLUSION_PARAMETERS.contains(&leaf) && lower.starts_with(urls[0].as_str()) {
        hits.push(rule::RFI_PARAMETER);
    }
    let trimmed = lower.trim_end_matches("%00").trim_end_matches('\0');
    if trimmed.ends_with('?') && urls.iter().any(|u| trimmed.ends_with(u.as_str())) {
        hits.push(rule::RFI_TRAILING_QUESTION_MARK);
    }
}

/// The `http`, `https`, `ftp` and `ftps` URLs in `text`, each up to the next space.
fn urls(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in match_indices(text, "://") {
        let scheme_start = text[..at]
            .rfind(|c: char| !c.is_ascii_alphanumeric())
            .map_or(0, |p| p + 1);
        let scheme = &text[scheme_start..at];
        if matches!(scheme, "http" | "https" | "ftp" | "ftps") {
            let end = text[at..].find(' ').map_or(text.len(), |p| at + p);
            out.push(text[scheme_start..end].to_string());
        }
    }
    out
}

/// The host of a URL (userinfo and port removed).
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or(rest);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map_or(host, |h| &host[..h.len() + 1]);
    }
    host.split(':').next().unwrap_or(host)
}

fn is_ip_literal(host: &str) -> bool {
    let dotted = host.split('.').count() == 4
        && host
            .split('.')
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    dotted || (host.starts_with('[') && host.contains(':'))
}

/// IPv4 addresses written as one decimal, hex or octal number (`2130706433`, `0x7f000001`),
/// which only evasion uses.
fn is_obfuscated_ip(host: &str) -> bool {
    let decimal = host.len() >= 8 && host.bytes().all(|b| b.is_ascii_digit());
    let hex = host
        .strip_prefix("0x")
        .is_some_and(|h| h.len() >= 6 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    let octal_dotted = host.split('.').count() == 4
        && host.split('.').any(|p| p.len() > 1 && p.starts_with('0'))
        && host
            .split('.')
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit() || b == b'x'));
    decimal || hex || octal_dotted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{Encoding, Normalized};

    fn rules(name: &str, input: &str) -> Hits {
        let norm = Normalized::new(input.as_bytes(), Encoding::Form);
        let mut hits = Hits::new();
        detect(
            &Value {
                location: Location::Arg,
                name,
                norm: &norm,
            },
            &mut hits,
        );
        hits
    }

    #[test]
    fn inclusion_urls_are_found() {
        assert!(
            rules("page", "http://evil.example/shell.txt?")
                .contains(&rule::RFI_TRAILING_QUESTION_MARK)
        );
        assert!(rules("page", "http://evil.example/shell.txt").contains(&rule::RFI_PARAMETER));
        assert!(rules("u", "http://10.0.0.1/x").contains(&rule::RFI_IP_URL));
        assert!(
            rules("u", "http://169.254.169.254/latest/meta-data/").contains(&rule::RFI_METADATA)
        );
        assert!(rules("u", "http://2130706433/").contains(&rule::RFI_METADATA));
        assert!(
            rules("f", "php://filter/convert.base64-encode/resource=index.php")
                .contains(&rule::RFI_STREAM_WRAPPER)
        );
    }

    #[test]
    fn ordinary_urls_are_only_noted_at_higher_paranoia() {
        assert_eq!(
            rules("redirect_uri", "https://app.example.com/callback?x=1"),
            vec![rule::RFI_OFF_DOMAIN]
        );
        assert_eq!(host_of("https://user@host.example:8443/a"), "host.example");
    }
}
