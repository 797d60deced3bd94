//! OpenID Provider metadata (OpenID Connect Discovery 1.0 §3): the endpoints Paved talks to.

use serde::{Deserialize, Serialize};

use crate::url::{HttpUrl, UrlError};

/// Largest discovery document accepted, in bytes.
pub const MAX_DISCOVERY_BYTES: usize = 128 * 1024;

/// The parts of a provider's metadata Paved uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    /// The issuer identifier; equal to the configured issuer, byte for byte.
    pub issuer: String,
    /// Where browsers are sent to sign in.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// The issuer's signing keys.
    pub jwks_uri: String,
    /// Extra claims about the user (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    /// RP-initiated logout (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
    /// How the token endpoint authenticates clients; absent means `client_secret_basic`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// PKCE methods; absent says nothing (many providers support S256 without listing it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code_challenge_methods_supported: Vec<String>,
}

/// Why a discovery document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// Over [`MAX_DISCOVERY_BYTES`].
    #[error("discovery document too large")]
    TooLarge,
    /// Not JSON, or a required member is missing.
    #[error("malformed discovery document: {0}")]
    Malformed(String),
    /// Its `issuer` is not the configured one (a mix-up or a misconfigured URL).
    #[error("discovery issuer {found:?} is not the configured {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// What the document says.
        found: String,
    },
    /// An endpoint is not an absolute http(s) URL.
    #[error("endpoint {name}: {error}")]
    BadEndpoint {
        /// The member.
        name: &'static str,
        /// What is wrong.
        error: UrlError,
    },
    /// The provider lists PKCE methods, and S256 is not among them.
    #[error("the provider does not support PKCE S256")]
    NoPkceS256,
}

/// The discovery URL of an issuer: `{issuer}/.well-known/openid-configuration`.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

impl ProviderMetadata {
    /// Parses and checks a discovery document for `expected_issuer`.
    pub fn parse(bytes: &[u8], expected_issuer: &str) -> Result<ProviderMetadata, DiscoveryError> {
        if bytes.len() > MAX_DISCOVERY_BYTES {
            return Err(DiscoveryError::TooLarge);
        }
        let meta: ProviderMetadata =
            serde_json::from_slice(bytes).map_err(|e| DiscoveryError::Malformed(e.to_string()))?;
        if meta.issuer != expected_issuer {
            return Err(DiscoveryError::IssuerMismatch {
                expected: expected_issuer.to_string(),
                found: meta.issuer.chars().take(200).collect(),
            });
        }
        let check = |name: &'static str, url: &str| {
            HttpUrl::parse(url)
                .map(|_| ())
                .map_err(|error| DiscoveryError::BadEndpoint { name, error })
        };
        check("authorization_endpoint", &meta.authorization_endpoint)?;
        check("token_endpoint", &meta.token_endpoint)?;
        check("jwks_uri", &meta.jwks_uri)?;
        if let Some(u) = &meta.userinfo_endpoint {
            check("userinfo_endpoint", u)?;
        }
        if let Some(u) = &meta.end_session_endpoint {
            check("end_session_endpoint", u)?;
        }
        if !meta.code_challenge_methods_supported.is_empty()
            && !meta
                .code_challenge_methods_supported
                .iter()
                .any(|m| m == "S256")
        {
            return Err(DiscoveryError::NoPkceS256);
        }
        Ok(meta)
    }

    /// How the gateway authenticates at the token endpoint: HTTP Basic unless the provider
    /// lists only `client_secret_post`.
    pub fn prefers_client_secret_post(&self) -> bool {
        let m = &self.token_endpoint_auth_methods_supported;
        !m.is_empty()
            && m.iter().any(|x| x == "client_secret_post")
            && !m.iter().any(|x| x == "client_secret_basic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> serde_json::Value {
        json!({
            "issuer": "https://idp.example",
            "authorization_endpoint": "https://idp.example/auth",
            "token_endpoint": "https://idp.example/token",
            "jwks_uri": "https://idp.example/jwks",
            "userinfo_endpoint": "https://idp.example/me",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["plain", "S256"],
        })
    }

    #[test]
    fn parses_a_provider_document() {
        let meta = ProviderMetadata::parse(doc().to_string().as_bytes(), "https://idp.example")
            .expect("metadata");
        assert_eq!(meta.token_endpoint, "https://idp.example/token");
        assert_eq!(
            meta.userinfo_endpoint.as_deref(),
            Some("https://idp.example/me")
        );
        assert!(!meta.prefers_client_secret_post());
    }

    #[test]
    fn the_issuer_must_match_exactly() {
        let err = ProviderMetadata::parse(doc().to_string().as_bytes(), "https://idp.example/");
        assert!(matches!(err, Err(DiscoveryError::IssuerMismatch { .. })));
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        let mut d = doc();
        d["token_endpoint"] = json!("javascript:alert(1)");
        let err = ProviderMetadata::parse(d.to_string().as_bytes(), "https://idp.example");
        assert!(matches!(
            err,
            Err(DiscoveryError::BadEndpoint {
                name: "token_endpoint",
                ..
            })
        ));
    }

    #[test]
    fn a_provider_without_s256_is_refused() {
        let mut d = doc();
        d["code_challenge_methods_supported"] = json!(["plain"]);
        let err = ProviderMetadata::parse(d.to_string().as_bytes(), "https://idp.example");
        assert_eq!(err, Err(DiscoveryError::NoPkceS256));
    }

    #[test]
    fn missing_endpoints_are_malformed() {
        let mut d = doc();
        d.as_object_mut().map(|o| o.remove("jwks_uri"));
        let err = ProviderMetadata::parse(d.to_string().as_bytes(), "https://idp.example");
        assert!(matches!(err, Err(DiscoveryError::Malformed(_))));
    }

    #[test]
    fn client_secret_post_only_when_basic_is_not_offered() {
        let mut d = doc();
        d["token_endpoint_auth_methods_supported"] = json!(["client_secret_post"]);
        let meta = ProviderMetadata::parse(d.to_string().as_bytes(), "https://idp.example")
            .expect("metadata");
        assert!(meta.prefers_client_secret_post());
    }

    #[test]
    fn discovery_url_has_one_slash() {
        assert_eq!(
            discovery_url("https://idp.example/realms/x/"),
            "https://idp.example/realms/x/.well-known/openid-configuration"
        );
    }
}
