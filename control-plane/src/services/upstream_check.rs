//! `checkUpstream`: whether the control plane reaches an app's upstream, for the onboarding
//! wizard ("is the URL right?") before anything is applied.
//!
//! This makes the control plane send a request where a caller says: server-side request
//! forgery by design. Paved fronts internal apps, so internal addresses (private ranges,
//! `localhost`, cluster DNS names) must be allowed. The limits are instead on who and what:
//! only callers that may write some app (the people and tools that onboard apps); `http` and
//! `https` only, no credentials in the URL; one `HEAD` request with a 3 s bound on connecting
//! and on the whole exchange, no redirect followed, no body read, no proxy; at most
//! [`MAX_CONCURRENT_CHECKS`] at a time; and the answer says only whether an HTTP response
//! came back, its status, and a fixed category of failure — never a header, a body or an
//! underlying error message.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::ControlPlane;
use crate::auth::{Access, Principal, Role, Scope};
use crate::{Error, Result};

/// Bound of connecting, and of the whole request.
pub const UPSTREAM_CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// Checks running at once (more wait, up to [`UPSTREAM_CHECK_TIMEOUT`]).
pub const MAX_CONCURRENT_CHECKS: usize = 8;
/// Longest URL accepted.
pub const MAX_URL_CHARS: usize = 2048;

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamCheck {
    /// An HTTP response came back (whatever its status).
    pub reachable: bool,
    /// Its status code.
    pub status: Option<u16>,
    /// Why not, as one of a few fixed phrases.
    pub error: Option<String>,
}

/// Whether `who` may check upstreams: whoever may write some app (admins, app owners, tokens
/// with `apps:write` or `admin`); security reviewers and read-only tokens may not.
pub fn may_check_upstreams(who: &Principal) -> bool {
    if who.is_admin() {
        return true;
    }
    match &who.access {
        Access::Person { role, .. } => *role == Role::AppOwner,
        Access::Token { scopes, .. } => scopes.contains(&Scope::AppsWrite),
        Access::System => true,
    }
}

/// The URL of a check, if it is one we are willing to request.
fn parse_target(url: &str) -> Result<url::Url> {
    if url.len() > MAX_URL_CHARS {
        return Err(Error::BadRequest(format!(
            "the URL is longer than {MAX_URL_CHARS} characters"
        )));
    }
    let parsed = url::Url::parse(url.trim())
        .map_err(|e| Error::BadRequest(format!("`{url}` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::BadRequest(format!(
            "only http:// and https:// upstreams can be checked, not `{}:`",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::BadRequest("the URL has no host".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::BadRequest(
            "the URL must not carry credentials (user:password@)".into(),
        ));
    }
    Ok(parsed)
}

/// The HTTP client of checks: no redirects, no proxy, no cookies, no pooled connections,
/// short timeouts; rustls with the platform's trust store; the system resolver.
fn client() -> Result<&'static reqwest::Client> {
    static CLIENT: OnceLock<std::result::Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .connect_timeout(UPSTREAM_CHECK_TIMEOUT)
                .timeout(UPSTREAM_CHECK_TIMEOUT)
                .pool_max_idle_per_host(0)
                .user_agent("paved-upstream-check")
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Internal(format!("the upstream check's HTTP client: {e}")))
}

fn checks() -> &'static Semaphore {
    static CHECKS: Semaphore = Semaphore::const_new(MAX_CONCURRENT_CHECKS);
    &CHECKS
}

/// A fixed phrase for a failed request: enough to fix the URL, nothing read from the far end.
fn failure_category(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        return "timed out";
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut dns = false;
    let mut tls = false;
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused",
                std::io::ErrorKind::TimedOut => return "timed out",
                // What the TLS connector reports a failed handshake as.
                std::io::ErrorKind::InvalidData => tls = true,
                _ => {}
            }
        }
        // hyper-util reports resolver failures as a `dns error` connect error.
        if s.to_string().starts_with("dns error") {
            dns = true;
        }
        source = s.source();
    }
    if dns {
        "host name not resolved"
    } else if tls {
        "TLS handshake failed"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "no valid HTTP response"
    }
}

impl ControlPlane {
    /// Sends one `HEAD` request to `url` and says whether an HTTP response came back (see the
    /// module's notes on request forgery). `BAD_REQUEST` for a URL that is not `http(s)`,
    /// `FORBIDDEN` for callers that may not write any app.
    pub async fn check_upstream(&self, who: &Principal, url: &str) -> Result<UpstreamCheck> {
        if !may_check_upstreams(who) {
            return Err(Error::Forbidden(
                "checking upstreams needs the right to change some app (app owner, apps:write)"
                    .into(),
            ));
        }
        let target = parse_target(url)?;
        let client = client()?;
        let _permit = tokio::time::timeout(UPSTREAM_CHECK_TIMEOUT, checks().acquire())
            .await
            .map_err(|_| Error::Conflict("too many upstream checks at once; try again".into()))?
            .map_err(|_| Error::Internal("the upstream check semaphore is closed".into()))?;
        let scheme = target.scheme().to_string();
        let host = target.host_str().unwrap_or_default().to_string();
        let port = target.port_or_known_default();
        let outcome = match client.head(target).send().await {
            // The response is dropped unread: its body never comes in.
            Ok(response) => UpstreamCheck {
                reachable: true,
                status: Some(response.status().as_u16()),
                error: None,
            },
            Err(e) => UpstreamCheck {
                reachable: false,
                status: None,
                error: Some(failure_category(&e).to_string()),
            },
        };
        // The path and query are not logged: they may carry secrets.
        tracing::info!(
            actor = %who.name,
            %scheme,
            %host,
            port,
            reachable = outcome.reachable,
            status = outcome.status,
            error = outcome.error.as_deref(),
            "upstream check"
        );
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_are_requested() {
        assert!(parse_target("http://10.0.0.7:8080/health").is_ok());
        assert!(parse_target("https://billing.internal").is_ok());
        for bad in [
            "file:///etc/passwd",
            "gopher://x",
            "ftp://host/",
            "http://user:pw@host/",
            "not a url",
            "127.0.0.1:9000",
        ] {
            assert!(
                matches!(parse_target(bad), Err(Error::BadRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn writers_may_check_and_readers_may_not() {
        let person = |role| Principal {
            name: "p".into(),
            kind: crate::ActorKind::Person,
            access: Access::Person {
                user_id: 1,
                role,
                teams: vec![],
                email: None,
            },
        };
        assert!(may_check_upstreams(&person(Role::AppOwner)));
        assert!(may_check_upstreams(&person(Role::Admin)));
        assert!(!may_check_upstreams(&person(Role::SecurityReviewer)));
        let token = |scopes: Vec<Scope>| Principal {
            name: "token:t".into(),
            kind: crate::ActorKind::Tool,
            access: Access::Token {
                token_id: 1,
                scopes,
                apps: vec!["a".into()],
                teams: vec![],
            },
        };
        assert!(may_check_upstreams(&token(vec![Scope::AppsWrite])));
        assert!(!may_check_upstreams(&token(vec![Scope::AppsRead])));
        assert!(!may_check_upstreams(&token(vec![Scope::Gateway])));
    }
}
