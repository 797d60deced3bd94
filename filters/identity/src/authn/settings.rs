//! authn's configuration, checked once at `on_configure`: a plugin with a bad configuration
//! refuses to start (the gateway then fails its routes closed) instead of guessing.

use paved_model::plugin_config::{AuthnConfig, AuthnMode};
use zeroize::Zeroizing;

use crate::assertion::{AssertionKeyError, parse_signing_key};
use crate::claims::MAX_SKEW_SECS;
use crate::cookie;
use crate::identity::headers;
use crate::jwt::SigningKey;
use crate::seal::{KeyFormatError, SealKey};
use crate::url::HttpUrl;

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required field is empty.
    #[error("`{0}` is required")]
    Missing(&'static str),
    /// `issuer` is not an absolute http(s) URL.
    #[error("`issuer` must be an absolute http(s) URL")]
    Issuer,
    /// A path field does not start with `/` or holds a query.
    #[error("`{0}` must be a path starting with `/`")]
    Path(&'static str),
    /// Two of the gateway's own paths are the same.
    #[error("`{0}` and `{1}` must differ")]
    SamePath(&'static str, &'static str),
    /// `cookie_name` is not a cookie name.
    #[error("`cookie_name` must be a token of at most 64 characters")]
    CookieName,
    /// A header name field is not a lowercase header name.
    #[error("`{0}` must be a lowercase header name")]
    HeaderName(&'static str),
    /// A number is out of its range.
    #[error("`{field}` must be between {min} and {max}")]
    Range {
        /// The field.
        field: &'static str,
        /// Smallest value.
        min: u64,
        /// Largest value.
        max: u64,
    },
    /// A session key is unusable.
    #[error("`{field}`: {error}")]
    SessionKey {
        /// The field.
        field: &'static str,
        /// What is wrong.
        error: KeyFormatError,
    },
    /// The assertion key is unusable.
    #[error("`assertion_key`: {0}")]
    AssertionKey(AssertionKeyError),
}

/// The keys a configuration names; missing ones are for the plugin to provide (generated and
/// shared between the instances of one gateway process).
pub struct ConfiguredKeys {
    /// Session cookie key.
    pub session: Option<SealKey>,
    /// Older session keys still accepted.
    pub previous_sessions: Vec<SealKey>,
    /// Assertion signing key.
    pub assertion: Option<SigningKey>,
}

impl ConfiguredKeys {
    /// Reads the keys of a configuration.
    pub fn from_config(config: &AuthnConfig) -> Result<ConfiguredKeys, ConfigError> {
        let session = config
            .session_key
            .as_deref()
            .filter(|k| !k.trim().is_empty())
            .map(SealKey::from_base64)
            .transpose()
            .map_err(|error| ConfigError::SessionKey {
                field: "session_key",
                error,
            })?;
        let previous_sessions = config
            .previous_session_keys
            .iter()
            .map(|k| SealKey::from_base64(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| ConfigError::SessionKey {
                field: "previous_session_keys",
                error,
            })?;
        let assertion = config
            .assertion_key
            .as_deref()
            .filter(|k| !k.trim().is_empty())
            .map(parse_signing_key)
            .transpose()
            .map_err(ConfigError::AssertionKey)?;
        Ok(ConfiguredKeys {
            session,
            previous_sessions,
            assertion,
        })
    }
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// App name: realm of `WWW-Authenticate`, audience of assertions.
    pub app: String,
    /// Required or optional.
    pub mode: AuthnMode,
    /// Issuer.
    pub issuer: String,
    /// Cluster of the provider.
    pub idp_cluster: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: Option<Zeroizing<String>>,
    /// Scopes, space-separated, `openid` first.
    pub scope: String,
    /// Audiences accepted in bearer tokens.
    pub audiences: Vec<String>,
    /// Callback path.
    pub callback_path: String,
    /// Logout path.
    pub logout_path: String,
    /// Explicit login path.
    pub login_path: String,
    /// Path of the assertion JWKS.
    pub jwks_path: String,
    /// Session cookie name.
    pub cookie_name: String,
    /// Session lifetime.
    pub session_ttl_secs: u64,
    /// Interval of session refreshes.
    pub session_refresh_secs: u64,
    /// Lifetime of a login in progress.
    pub login_ttl_secs: u64,
    /// Clock skew allowed.
    pub clock_skew_secs: u64,
    /// Claim with the groups.
    pub groups_claim: String,
    /// Header of the assertion.
    pub identity_header: String,
    /// Headers stripped from every request (lowercase), including every header authn sets.
    pub strip_headers: Vec<String>,
    /// The app's domains (absolute redirect targets).
    pub domains: Vec<String>,
    /// Fetch userinfo at login.
    pub fetch_userinfo: bool,
    /// End the provider's session at logout too.
    pub idp_logout: bool,
    /// Where logout sends the browser.
    pub post_logout_redirect: String,
    /// Budget of exposed claims.
    pub max_claims_bytes: usize,
    /// Timeout of calls to the provider.
    pub http_timeout_ms: u64,
    /// Longest a request waits for the provider.
    pub max_wait_ms: u64,
    /// Most requests waiting per instance.
    pub max_waiting: usize,
    /// Full refresh interval of discovery and JWKS.
    pub jwks_refresh_secs: u64,
    /// Least interval of key refreshes for unknown `kid`s.
    pub jwks_min_refresh_secs: u64,
    /// `iss` of assertions.
    pub assertion_issuer: String,
    /// Lifetime of assertions.
    pub assertion_ttl_secs: u64,
}

fn path(field: &'static str, value: &str) -> Result<String, ConfigError> {
    if !value.starts_with('/') || value.starts_with("//") || value.contains(['?', '#', ' ']) {
        return Err(ConfigError::Path(field));
    }
    Ok(value.to_string())
}

fn range(field: &'static str, value: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::Range { field, min, max })
    }
}

fn header_name(field: &'static str, value: &str) -> Result<String, ConfigError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(value.to_string())
    } else {
        Err(ConfigError::HeaderName(field))
    }
}

impl Settings {
    /// Checks a configuration.
    pub fn from_config(c: &AuthnConfig) -> Result<Settings, ConfigError> {
        if c.issuer.is_empty() {
            return Err(ConfigError::Missing("issuer"));
        }
        HttpUrl::parse(&c.issuer).map_err(|_| ConfigError::Issuer)?;
        if c.idp_cluster.is_empty() {
            return Err(ConfigError::Missing("idp_cluster"));
        }
        if c.client_id.is_empty() {
            return Err(ConfigError::Missing("client_id"));
        }
        let paths = [
            ("callback_path", path("callback_path", &c.callback_path)?),
            ("logout_path", path("logout_path", &c.logout_path)?),
            ("login_path", path("login_path", &c.login_path)?),
            ("jwks_path", path("jwks_path", &c.jwks_path)?),
        ];
        for (i, (a, pa)) in paths.iter().enumerate() {
            for (b, pb) in &paths[i + 1..] {
                if pa == pb {
                    return Err(ConfigError::SamePath(a, b));
                }
            }
        }
        if !cookie::valid_name(&c.cookie_name) || c.cookie_name.len() > 64 {
            return Err(ConfigError::CookieName);
        }
        let identity_header = header_name("identity_header", &c.identity_header)?;
        let mut scopes: Vec<&str> = vec!["openid"];
        for s in &c.scopes {
            if !s.is_empty() && !scopes.contains(&s.as_str()) {
                scopes.push(s);
            }
        }
        let audiences = if c.audiences.is_empty() {
            vec![c.client_id.clone()]
        } else {
            c.audiences.clone()
        };
        // Every header authn sets upstream is stripped from the client's request first,
        // whatever the configured list says.
        for h in &c.strip_headers {
            header_name("strip_headers", &h.to_ascii_lowercase())?;
        }
        let mut strip: Vec<String> = c
            .strip_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .chain(std::iter::once(identity_header.clone()))
            .chain(headers::ALL.iter().map(|h| h.to_string()))
            .collect();
        strip.sort();
        strip.dedup();
        let post_logout = path("post_logout_redirect", &c.post_logout_redirect).or_else(|_| {
            HttpUrl::parse(&c.post_logout_redirect)
                .map(|_| c.post_logout_redirect.clone())
                .map_err(|_| ConfigError::Path("post_logout_redirect"))
        })?;
        Ok(Settings {
            app: c.app.clone(),
            mode: c.mode,
            issuer: c.issuer.clone(),
            idp_cluster: c.idp_cluster.clone(),
            client_id: c.client_id.clone(),
            client_secret: c
                .client_secret
                .clone()
                .filter(|s| !s.is_empty())
                .map(Zeroizing::new),
            scope: scopes.join(" "),
            audiences,
            callback_path: paths[0].1.clone(),
            logout_path: paths[1].1.clone(),
            login_path: paths[2].1.clone(),
            jwks_path: paths[3].1.clone(),
            cookie_name: c.cookie_name.clone(),
            session_ttl_secs: range("session_ttl_secs", c.session_ttl_secs, 60, 30 * 86_400)?,
            session_refresh_secs: range(
                "session_refresh_secs",
                c.session_refresh_secs,
                30,
                30 * 86_400,
            )?,
            login_ttl_secs: range("login_ttl_secs", c.login_ttl_secs, 30, 3600)?,
            clock_skew_secs: range("clock_skew_secs", c.clock_skew_secs, 0, MAX_SKEW_SECS)?,
            groups_claim: c.groups_claim.clone(),
            identity_header,
            strip_headers: strip,
            domains: c.domains.clone(),
            fetch_userinfo: c.fetch_userinfo,
            idp_logout: c.idp_logout,
            post_logout_redirect: post_logout,
            max_claims_bytes: range("max_claims_bytes", c.max_claims_bytes, 0, 16 * 1024)? as usize,
            http_timeout_ms: range("http_timeout_ms", c.http_timeout_ms, 100, 60_000)?,
            max_wait_ms: range("max_wait_ms", c.max_wait_ms, 0, 60_000)?,
            max_waiting: range("max_waiting", c.max_waiting as u64, 0, 100_000)? as usize,
            jwks_refresh_secs: range("jwks_refresh_secs", c.jwks_refresh_secs, 60, 86_400)?,
            jwks_min_refresh_secs: range(
                "jwks_min_refresh_secs",
                c.jwks_min_refresh_secs,
                1,
                3600,
            )?,
            assertion_issuer: if c.assertion_issuer.is_empty() {
                return Err(ConfigError::Missing("assertion_issuer"));
            } else {
                c.assertion_issuer.clone()
            },
            assertion_ttl_secs: range("assertion_ttl_secs", c.assertion_ttl_secs, 5, 3600)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthnConfig {
        AuthnConfig {
            app: "payroll".into(),
            issuer: "https://idp.example".into(),
            idp_cluster: "paved-idp".into(),
            client_id: "gw".into(),
            ..AuthnConfig::default()
        }
    }

    #[test]
    fn the_defaults_with_an_issuer_are_valid() {
        let s = Settings::from_config(&config()).expect("valid");
        assert_eq!(s.audiences, vec!["gw"]);
        assert!(s.scope.starts_with("openid "));
        for h in [
            "x-paved-identity",
            "x-paved-user",
            "x-paved-email",
            "x-paved-groups",
            "x-paved-client-id",
        ] {
            assert!(s.strip_headers.iter().any(|x| x == h), "{h}");
        }
    }

    #[test]
    fn missing_and_bad_fields_are_refused() {
        let cases: Vec<(AuthnConfig, ConfigError)> = vec![
            (
                AuthnConfig {
                    issuer: String::new(),
                    ..config()
                },
                ConfigError::Missing("issuer"),
            ),
            (
                AuthnConfig {
                    issuer: "idp.example".into(),
                    ..config()
                },
                ConfigError::Issuer,
            ),
            (
                AuthnConfig {
                    client_id: String::new(),
                    ..config()
                },
                ConfigError::Missing("client_id"),
            ),
            (
                AuthnConfig {
                    callback_path: "cb".into(),
                    ..config()
                },
                ConfigError::Path("callback_path"),
            ),
            (
                AuthnConfig {
                    logout_path: "/.paved/callback".into(),
                    ..config()
                },
                ConfigError::SamePath("callback_path", "logout_path"),
            ),
            (
                AuthnConfig {
                    cookie_name: "a b".into(),
                    ..config()
                },
                ConfigError::CookieName,
            ),
            (
                AuthnConfig {
                    identity_header: "X-Bad Header".into(),
                    ..config()
                },
                ConfigError::HeaderName("identity_header"),
            ),
            (
                AuthnConfig {
                    strip_headers: vec!["x-ok".into(), "bad header".into()],
                    ..config()
                },
                ConfigError::HeaderName("strip_headers"),
            ),
            (
                AuthnConfig {
                    clock_skew_secs: 3600,
                    ..config()
                },
                ConfigError::Range {
                    field: "clock_skew_secs",
                    min: 0,
                    max: MAX_SKEW_SECS,
                },
            ),
        ];
        for (c, want) in cases {
            assert_eq!(Settings::from_config(&c).err(), Some(want));
        }
    }

    #[test]
    fn keys_are_read_or_refused() {
        let mut c = config();
        assert!(
            ConfiguredKeys::from_config(&c)
                .is_ok_and(|k| k.session.is_none() && k.assertion.is_none())
        );
        c.session_key = Some("short".into());
        assert!(matches!(
            ConfiguredKeys::from_config(&c),
            Err(ConfigError::SessionKey {
                field: "session_key",
                ..
            })
        ));
        c.session_key = Some(crate::b64::encode([7u8; 32]));
        c.assertion_key =
            Some("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----".into());
        assert!(matches!(
            ConfiguredKeys::from_config(&c),
            Err(ConfigError::AssertionKey(_))
        ));
    }
}
