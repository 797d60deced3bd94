//! The identity provider as the gateway knows it: discovery document and JWKS, fetched on
//! start, refreshed on a schedule and when a token names an unknown key, with backoff when
//! the provider is away. Pure state: the plugin's root context makes the calls this asks for
//! and feeds the answers back.
//!
//! While a refresh is under way or failing, the last good keys stay in use (a provider
//! outage must not become a gateway outage). Refreshes triggered by unknown `kid`s are rate
//! limited: a client inventing `kid`s cannot make the gateway hammer the provider.

use serde::{Deserialize, Serialize};

use crate::discovery::{DiscoveryError, ProviderMetadata, discovery_url};
use crate::jwk::{JwkError, JwksError, KeySet};
use crate::url::{HttpUrl, UrlError};

/// Longest a fetch may stay unanswered before it counts as failed, in seconds.
pub const FETCH_TIMEOUT_SECS: u64 = 30;
/// Longest wait between retries after failures, in seconds.
pub const MAX_BACKOFF_SECS: u64 = 60;

/// What the provider is: its metadata and its current keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Discovery document.
    pub metadata: ProviderMetadata,
    /// Signing keys.
    pub keys: KeySet,
    /// Changes whenever the documents are replaced: what was verified with an older
    /// generation's keys is verified again.
    pub generation: u64,
}

/// A document to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// The discovery document.
    Discovery,
    /// The JWKS.
    Jwks,
}

/// A GET to make through the provider's cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// What it fetches.
    pub what: Fetch,
    /// `:authority`.
    pub authority: String,
    /// `:path`.
    pub path: String,
}

/// Why a fetch did not produce a usable document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// No response (connection, timeout).
    #[error("no response")]
    NoResponse,
    /// A status other than 200.
    #[error("status {0}")]
    Status(u16),
    /// The discovery document was refused.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The JWKS was refused.
    #[error(transparent)]
    Jwks(#[from] JwksError),
    /// A URL to fetch is unusable.
    #[error("bad URL: {0}")]
    Url(#[from] UrlError),
}

/// Timing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Full refresh (discovery and JWKS) this long after the last success, in seconds.
    pub refresh_secs: u64,
    /// At least this long between refreshes triggered by unknown `kid`s, in seconds.
    pub min_key_refresh_secs: u64,
}

/// The cache of one issuer's provider.
#[derive(Debug, Clone)]
pub struct ProviderCache {
    issuer: String,
    schedule: Schedule,
    current: Option<Provider>,
    /// Raw documents of `current`, for sharing with other instances.
    raw: Option<(String, String)>,
    fetched_at: u64,
    /// Discovery document of a refresh under way, waiting for its JWKS.
    pending_metadata: Option<(ProviderMetadata, String)>,
    in_flight: Option<(Fetch, u64)>,
    next_attempt: u64,
    failures: u32,
    key_refresh_wanted: bool,
    last_key_refresh: Option<u64>,
    generation: u64,
}

/// The documents of a loaded provider, as shared between plugin instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSnapshot {
    /// When they were fetched.
    pub fetched_at: u64,
    /// The discovery document, as received.
    pub discovery: String,
    /// The JWKS, as received.
    pub jwks: String,
}

/// What happened when a document arrived, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// Discovery done; the JWKS comes next.
    Discovery,
    /// Keys loaded: the provider is ready; keys skipped in the set, with reasons.
    Keys(Vec<(Option<String>, JwkError)>),
}

impl ProviderCache {
    /// An empty cache for `issuer`.
    pub fn new(issuer: &str, schedule: Schedule) -> ProviderCache {
        ProviderCache {
            issuer: issuer.to_string(),
            schedule,
            current: None,
            raw: None,
            fetched_at: 0,
            pending_metadata: None,
            in_flight: None,
            next_attempt: 0,
            failures: 0,
            key_refresh_wanted: false,
            last_key_refresh: None,
            generation: 0,
        }
    }

    /// The provider, once loaded.
    pub fn provider(&self) -> Option<&Provider> {
        self.current.as_ref()
    }

    /// When the current documents were fetched.
    pub fn fetched_at(&self) -> u64 {
        self.fetched_at
    }

    /// Failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether a fetch should start now; if so, marks it under way and returns the request.
    pub fn next_fetch(&mut self, now: u64) -> Result<Option<FetchRequest>, FetchError> {
        if let Some((_, started)) = self.in_flight {
            if now < started + FETCH_TIMEOUT_SECS {
                return Ok(None);
            }
            // The answer never came: count it as failed and try again below.
            self.fail(now);
        }
        if now < self.next_attempt {
            return Ok(None);
        }
        let what = if self.pending_metadata.is_some()
            || (self.key_refresh_wanted && self.current.is_some())
        {
            Fetch::Jwks
        } else if self.current.is_none() || now >= self.fetched_at + self.schedule.refresh_secs {
            Fetch::Discovery
        } else {
            return Ok(None);
        };
        let url = match what {
            Fetch::Discovery => discovery_url(&self.issuer),
            Fetch::Jwks => self.jwks_uri().unwrap_or_default(),
        };
        let url = HttpUrl::parse(&url).inspect_err(|_| self.fail(now))?;
        if what == Fetch::Jwks {
            self.key_refresh_wanted = false;
            self.last_key_refresh = Some(now);
        }
        self.in_flight = Some((what, now));
        Ok(Some(FetchRequest {
            what,
            authority: url.authority().to_string(),
            path: url.path_and_query().to_string(),
        }))
    }

    fn jwks_uri(&self) -> Option<String> {
        self.pending_metadata
            .as_ref()
            .map(|(m, _)| m.jwks_uri.clone())
            .or_else(|| self.current.as_ref().map(|p| p.metadata.jwks_uri.clone()))
    }

    fn fail(&mut self, now: u64) {
        self.in_flight = None;
        self.pending_metadata = None;
        self.failures = self.failures.saturating_add(1);
        let backoff = 1u64 << self.failures.min(6);
        self.next_attempt = now + backoff.min(MAX_BACKOFF_SECS);
    }

    /// Feeds the answer to a fetch: `status` 0 when there was none. After a discovery
    /// document, call [`ProviderCache::next_fetch`] again for the JWKS.
    pub fn on_response(
        &mut self,
        what: Fetch,
        status: u16,
        body: &[u8],
        now: u64,
    ) -> Result<Loaded, FetchError> {
        let result = self.accept(what, status, body, now);
        match &result {
            Ok(Loaded::Discovery) => {
                self.in_flight = None;
                // The JWKS follows at once.
                self.next_attempt = 0;
            }
            Ok(Loaded::Keys(_)) => {
                self.in_flight = None;
                self.failures = 0;
                self.next_attempt = 0;
            }
            Err(_) => self.fail(now),
        }
        result
    }

    fn accept(
        &mut self,
        what: Fetch,
        status: u16,
        body: &[u8],
        now: u64,
    ) -> Result<Loaded, FetchError> {
        match status {
            0 => return Err(FetchError::NoResponse),
            200 => {}
            s => return Err(FetchError::Status(s)),
        }
        match what {
            Fetch::Discovery => {
                let meta = ProviderMetadata::parse(body, &self.issuer)?;
                let raw = String::from_utf8_lossy(body).into_owned();
                self.pending_metadata = Some((meta, raw));
                Ok(Loaded::Discovery)
            }
            Fetch::Jwks => {
                let parsed = KeySet::parse(body)?;
                let jwks_raw = String::from_utf8_lossy(body).into_owned();
                let (metadata, discovery_raw) = match self.pending_metadata.take() {
                    Some(pending) => pending,
                    None => match (&self.current, &self.raw) {
                        (Some(p), Some((d, _))) => (p.metadata.clone(), d.clone()),
                        _ => return Err(FetchError::NoResponse),
                    },
                };
                self.generation += 1;
                self.current = Some(Provider {
                    metadata,
                    keys: parsed.keys,
                    generation: self.generation,
                });
                self.raw = Some((discovery_raw, jwks_raw));
                self.fetched_at = now;
                Ok(Loaded::Keys(parsed.skipped))
            }
        }
    }

    /// Whether a token's unknown `kid` may trigger a JWKS refresh now.
    pub fn key_refresh_allowed(&self, now: u64) -> bool {
        self.current.is_some()
            && self
                .last_key_refresh
                .is_none_or(|t| now >= t + self.schedule.min_key_refresh_secs)
            && now
                >= self.fetched_at
                    + self
                        .schedule
                        .min_key_refresh_secs
                        .min(self.schedule.refresh_secs)
    }

    /// Asks for a JWKS refresh (an unknown `kid` appeared); `false` when rate-limited.
    pub fn request_key_refresh(&mut self, now: u64) -> bool {
        if self.key_refresh_wanted {
            return true;
        }
        if !self.key_refresh_allowed(now) {
            return false;
        }
        self.key_refresh_wanted = true;
        self.next_attempt = self.next_attempt.min(now);
        true
    }

    /// Whether a key refresh was asked for and has not started yet, or is under way.
    pub fn key_refresh_pending(&self) -> bool {
        self.key_refresh_wanted || matches!(self.in_flight, Some((Fetch::Jwks, _)))
    }

    /// Whether a first load or a refresh is under way or waiting to start.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some() || self.key_refresh_wanted || self.current.is_none()
    }

    /// The current documents, to share with other instances.
    pub fn snapshot(&self) -> Option<ProviderSnapshot> {
        let (discovery, jwks) = self.raw.clone()?;
        Some(ProviderSnapshot {
            fetched_at: self.fetched_at,
            discovery,
            jwks,
        })
    }

    /// Takes documents another instance fetched, if they are newer than ours and valid.
    /// Returns whether they were taken.
    pub fn adopt(&mut self, snapshot: &ProviderSnapshot) -> bool {
        if snapshot.fetched_at <= self.fetched_at && self.current.is_some() {
            return false;
        }
        let Ok(metadata) = ProviderMetadata::parse(snapshot.discovery.as_bytes(), &self.issuer)
        else {
            return false;
        };
        let Ok(parsed) = KeySet::parse(snapshot.jwks.as_bytes()) else {
            return false;
        };
        self.generation += 1;
        self.current = Some(Provider {
            metadata,
            keys: parsed.keys,
            generation: self.generation,
        });
        self.raw = Some((snapshot.discovery.clone(), snapshot.jwks.clone()));
        self.fetched_at = snapshot.fetched_at;
        self.failures = 0;
        self.next_attempt = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISSUER: &str = "https://idp.example";
    const SCHEDULE: Schedule = Schedule {
        refresh_secs: 600,
        min_key_refresh_secs: 30,
    };

    fn discovery() -> Vec<u8> {
        json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://idp.example/auth",
            "token_endpoint": "https://idp.example/token",
            "jwks_uri": "https://keys.idp.example/jwks.json",
        })
        .to_string()
        .into_bytes()
    }

    fn jwks(kid: &str) -> Vec<u8> {
        json!({"keys": [crate::testkeys::rsa_a_public_jwk(kid)]})
            .to_string()
            .into_bytes()
    }

    fn loaded(now: u64) -> ProviderCache {
        let mut c = ProviderCache::new(ISSUER, SCHEDULE);
        let d = c.next_fetch(now).expect("ok").expect("discovery");
        assert_eq!(d.what, Fetch::Discovery);
        assert_eq!(d.path, "/.well-known/openid-configuration");
        assert_eq!(
            c.on_response(Fetch::Discovery, 200, &discovery(), now),
            Ok(Loaded::Discovery)
        );
        let j = c.next_fetch(now).expect("ok").expect("jwks");
        assert_eq!(
            (j.what, j.authority.as_str(), j.path.as_str()),
            (Fetch::Jwks, "keys.idp.example", "/jwks.json")
        );
        assert!(matches!(
            c.on_response(Fetch::Jwks, 200, &jwks("k1"), now),
            Ok(Loaded::Keys(_))
        ));
        c
    }

    #[test]
    fn loads_discovery_then_keys() {
        let c = loaded(1000);
        assert!(c.provider().is_some_and(|p| p.keys.has_kid("k1")));
        assert!(!c.busy());
    }

    #[test]
    fn one_fetch_at_a_time() {
        let mut c = ProviderCache::new(ISSUER, SCHEDULE);
        assert!(c.next_fetch(0).expect("ok").is_some());
        assert!(c.next_fetch(1).expect("ok").is_none());
        // Unanswered for too long: a failure, tried again after the backoff.
        assert!(c.next_fetch(FETCH_TIMEOUT_SECS).expect("ok").is_none());
        assert_eq!(c.failures(), 1);
        assert!(c.next_fetch(FETCH_TIMEOUT_SECS + 2).expect("ok").is_some());
    }

    #[test]
    fn failures_back_off_and_keep_the_old_keys() {
        let mut c = loaded(1000);
        let t = 1000 + SCHEDULE.refresh_secs;
        assert_eq!(
            c.next_fetch(t).expect("ok").map(|f| f.what),
            Some(Fetch::Discovery)
        );
        assert_eq!(
            c.on_response(Fetch::Discovery, 503, b"", t),
            Err(FetchError::Status(503))
        );
        assert!(c.provider().is_some(), "old keys stay");
        assert!(c.next_fetch(t + 1).expect("ok").is_none(), "backing off");
        assert!(c.next_fetch(t + 2).expect("ok").is_some());
        assert_eq!(
            c.on_response(Fetch::Discovery, 0, b"", t + 2),
            Err(FetchError::NoResponse)
        );
        assert!(c.next_fetch(t + 5).expect("ok").is_none());
        assert!(c.next_fetch(t + 6).expect("ok").is_some());
    }

    #[test]
    fn an_unknown_kid_refreshes_the_jwks_once_per_interval() {
        let mut c = loaded(1000);
        assert!(!c.request_key_refresh(1010), "too soon after the load");
        assert!(c.request_key_refresh(1030));
        let f = c.next_fetch(1030).expect("ok").expect("fetch");
        assert_eq!(f.what, Fetch::Jwks);
        assert!(matches!(
            c.on_response(Fetch::Jwks, 200, &jwks("k2"), 1031),
            Ok(Loaded::Keys(_))
        ));
        assert!(c.provider().is_some_and(|p| p.keys.has_kid("k2")));
        assert!(!c.request_key_refresh(1040), "rate limited");
        assert!(c.request_key_refresh(1061));
    }

    #[test]
    fn a_discovery_for_another_issuer_is_refused() {
        let mut c = ProviderCache::new("https://other.example", SCHEDULE);
        assert!(c.next_fetch(0).expect("ok").is_some());
        assert!(matches!(
            c.on_response(Fetch::Discovery, 200, &discovery(), 0),
            Err(FetchError::Discovery(DiscoveryError::IssuerMismatch { .. }))
        ));
        assert!(c.provider().is_none());
    }

    #[test]
    fn instances_share_newer_documents() {
        let a = loaded(1000);
        let mut b = ProviderCache::new(ISSUER, SCHEDULE);
        let snap = a.snapshot().expect("snapshot");
        assert!(b.adopt(&snap));
        assert!(b.provider().is_some_and(|p| p.keys.has_kid("k1")));
        assert!(!b.adopt(&snap), "not newer");
        let mut bad = snap.clone();
        bad.fetched_at += 1;
        bad.jwks = "{}".into();
        assert!(!b.adopt(&bad));
    }
}
