//! Path traversal and local file inclusion.

use super::text::{contains_any, match_indices};
use super::{Hits, Value};
use crate::request::Location;
use crate::rule;

/// Encodings of `.`, `/` and `\` that only evasion needs (checked on the raw value).
const ENCODED_TRAVERSAL: &[&str] = &[
    "%2e%2e",
    "%2e.",
    ".%2e",
    "..%2f",
    "..%5c",
    "%252e",
    "%252f",
    "%255c",
    "%c0%ae",
    "%c0%af",
    "%c1%9c",
    "%c1%1c",
    "%c0%2f",
    "%e0%80%ae",
    "%u002e",
    "%uff0e",
    "%u2215",
    "%u2216",
    "..%u2215",
];

/// Files an application has no business serving or including.
const OS_FILES: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/group",
    "etc/hosts",
    "etc/issue",
    "etc/crontab",
    "etc/sudoers",
    "etc/mysql/my.cnf",
    "proc/self/",
    "proc/version",
    "proc/cpuinfo",
    "proc/1/",
    "win.ini",
    "boot.ini",
    "system.ini",
    "windows/system32",
    "winnt/system32",
    "inetpub/wwwroot",
    ".bash_history",
    ".ssh/",
    "id_rsa",
    "authorized_keys",
    ".aws/credentials",
    ".docker/config.json",
    ".kube/config",
    "web-inf/web.xml",
    "meta-inf/manifest.mf",
    "var/log/",
    "var/run/secrets",
    "php.ini",
    "my.cnf",
    "httpd.conf",
    "apache2.conf",
    "nginx.conf",
    "wp-config.php",
    "localsettings.php",
    "config.inc.php",
    "sam",
];

/// Hidden files and directories of version control, editors and secrets.
const RESTRICTED_FILES: &[&str] = &[
    "/.git/",
    "/.git",
    "/.env",
    "/.svn",
    "/.hg/",
    "/.bzr",
    "/.ds_store",
    "/.htaccess",
    "/.htpasswd",
    "/.idea/",
    "/.vscode/",
    "/.npmrc",
    "/.pypirc",
    "/.dockerenv",
    "/.gitlab-ci.yml",
    "/.travis.yml",
    "/web-inf/",
    "/meta-inf/",
    "/wp-config.php",
    "/.well-known/../",
    "/server-status",
    "/.netrc",
    "/.bash_history",
    "/.ssh",
];

/// Runs the LFI rules on one value.
pub fn detect(value: &Value<'_>, hits: &mut Hits) {
    let raw = value.norm.raw.to_lowercase();
    // Pre-checks: every encoded form has a `%`, every file name a `/` or a `.`.
    if raw.contains('%') && contains_any(&raw, ENCODED_TRAVERSAL) {
        hits.push(rule::PATH_TRAVERSAL_ENCODED);
    }
    let path = value.norm.lower.replace('\\', "/");
    let traversals = traversal_count(&path);
    if traversals >= 1 {
        hits.push(rule::PATH_TRAVERSAL);
    }
    if traversals >= 2 {
        hits.push(rule::PATH_TRAVERSAL_REPEATED);
    }
    let squeezed = squeeze_slashes(&path);
    if squeezed.contains(['/', '.']) && OS_FILES.iter().any(|f| os_file_at_boundary(&squeezed, f)) {
        hits.push(rule::OS_FILE_ACCESS);
    }
    let rooted = if squeezed.starts_with('/') {
        squeezed
    } else {
        format!("/{squeezed}")
    };
    let restricted = rooted.contains(['.', '-'])
        && RESTRICTED_FILES.iter().any(|f| {
            match_indices(&rooted, f).any(|(at, _)| {
                // `/.git` and `/.env` must end there: `/.github/` and `/.envoy` are fine.
                let next = rooted.as_bytes().get(at + f.len());
                f.ends_with('/')
                    || !next.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
            })
        });
    if restricted
        && matches!(
            value.location,
            Location::Path | Location::Arg | Location::FileName
        )
    {
        hits.push(rule::RESTRICTED_FILE_ACCESS);
    }
}

/// Occurrences of `..` followed by a separator (`../`, `..\`, `..;/`), however many dots
/// come before: `....//` is a filter bypass for `../`.
fn traversal_count(path: &str) -> usize {
    let bytes = path.as_bytes();
    match_indices(path, "..")
        .filter(|(at, _)| {
            let after = &bytes[at + 2..];
            after.first() == Some(&b'/') || after.starts_with(b";/")
        })
        .count()
}

fn squeeze_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// The file name must start at the beginning or after `/`, `:`, `=` or a space, so that
/// `sam` matches `c:/windows/repair/sam` but not `sample`.
fn os_file_at_boundary(path: &str, file: &str) -> bool {
    let bytes = path.as_bytes();
    match_indices(path, file).any(|(at, _)| {
        let before_ok = at == 0 || matches!(bytes[at - 1], b'/' | b':' | b'=' | b' ' | b'.');
        let after = bytes.get(at + file.len());
        let short = file.len() <= 4;
        before_ok
            && (!short || !after.is_some_and(|b| b.is_ascii_alphanumeric()))
            && (!short || at > 0 && bytes[at - 1] == b'/')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{Encoding, Normalized};

    fn rules(input: &str, location: Location) -> Hits {
        let norm = Normalized::new(input.as_bytes(), Encoding::Path);
        let mut hits = Hits::new();
        detect(
            &Value {
                location,
                name: "file",
                norm: &norm,
            },
            &mut hits,
        );
        hits
    }

    #[test]
    fn traversal_in_every_disguise_is_found() {
        assert!(
            rules("../../../../etc/passwd", Location::Arg).contains(&rule::PATH_TRAVERSAL_REPEATED)
        );
        assert!(rules("....//....//etc/passwd", Location::Arg).contains(&rule::OS_FILE_ACCESS));
        assert!(
            rules("%2e%2e%2f%2e%2e%2fboot.ini", Location::Arg)
                .contains(&rule::PATH_TRAVERSAL_ENCODED)
        );
        assert!(
            rules("..\\..\\windows\\win.ini", Location::Arg)
                .contains(&rule::PATH_TRAVERSAL_REPEATED)
        );
        assert!(
            rules("%c0%ae%c0%ae/%c0%ae%c0%ae/etc/shadow", Location::Arg)
                .contains(&rule::OS_FILE_ACCESS)
        );
        assert!(rules("/app/.git/config", Location::Path).contains(&rule::RESTRICTED_FILE_ACCESS));
    }

    #[test]
    fn dotted_paths_and_prose_are_fine() {
        for benign in [
            "/static/app.v2.min.js",
            "/docs/v1.2/readme.md",
            "Wait... what?",
            "/.github/workflows",
            "sample.txt",
            "/api/.well-known/openid-configuration",
        ] {
            assert!(rules(benign, Location::Path).is_empty(), "{benign}");
        }
    }
}
