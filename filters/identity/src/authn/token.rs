//! Calls to the provider's token and userinfo endpoints, and reading their answers.

use serde::Deserialize;

use super::Settings;
use crate::b64;
use crate::discovery::ProviderMetadata;
use crate::url::{HttpUrl, UrlError, form_encode};

/// Largest token or userinfo response read, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A request to the provider, sent through its cluster.
#[derive(Clone, PartialEq, Eq)]
pub struct CallRequest {
    /// `:method`.
    pub method: &'static str,
    /// `:authority`.
    pub authority: String,
    /// `:path`.
    pub path: String,
    /// Other headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for CallRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bodies and headers carry codes, secrets and tokens.
        f.debug_struct("CallRequest")
            .field("method", &self.method)
            .field("authority", &self.authority)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The provider's answer; `status` 0 when there was none (connection failed, timeout).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CallResponse {
    /// HTTP status, or 0.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for CallResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A POST to the token endpoint with `form`, authenticated as the gateway's client:
/// `client_secret_basic` unless the provider only offers `client_secret_post`; a public
/// client (no secret) sends its `client_id` in the form.
pub(super) fn token_request<'a>(
    s: &'a Settings,
    meta: &ProviderMetadata,
    mut form: Vec<(&'a str, &'a str)>,
) -> Result<CallRequest, UrlError> {
    let url = HttpUrl::parse(&meta.token_endpoint)?;
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("accept".to_string(), "application/json".to_string()),
    ];
    match &s.client_secret {
        Some(secret) if meta.prefers_client_secret_post() => {
            form.push(("client_id", &s.client_id));
            form.push(("client_secret", secret));
        }
        Some(secret) => {
            // RFC 6749 §2.3.1: both parts form-encoded before Basic encoding.
            let user = form_component(&s.client_id);
            let pass = form_component(secret);
            let basic = b64::encode_standard(format!("{user}:{pass}"));
            headers.push(("authorization".to_string(), format!("Basic {basic}")));
        }
        None => form.push(("client_id", &s.client_id)),
    }
    Ok(CallRequest {
        method: "POST",
        authority: url.authority().to_string(),
        path: url.path_and_query().to_string(),
        headers,
        body: form_encode(form).into_bytes(),
    })
}

fn form_component(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A GET of the userinfo endpoint with the access token.
pub(super) fn userinfo_request(meta: &ProviderMetadata, access_token: &str) -> Option<CallRequest> {
    let url = HttpUrl::parse(meta.userinfo_endpoint.as_deref()?).ok()?;
    Some(CallRequest {
        method: "GET",
        authority: url.authority().to_string(),
        path: url.path_and_query().to_string(),
        headers: vec![
            (
                "authorization".to_string(),
                format!("Bearer {access_token}"),
            ),
            ("accept".to_string(), "application/json".to_string()),
        ],
        body: Vec::new(),
    })
}

/// The members of a token response Paved uses.
#[derive(Deserialize, Default)]
pub(super) struct TokenResponse {
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub token_type: Option<String>,
}

/// Reads a successful token response; the error is a reason code.
pub(super) fn parse_token_response(
    resp: &super::CallResponse,
) -> Result<TokenResponse, &'static str> {
    match resp.status {
        0 => return Err("idp_unavailable"),
        200 => {}
        400 | 401 => return Err("grant_refused"),
        _ => return Err("token_endpoint_error"),
    }
    if resp.body.len() > MAX_RESPONSE_BYTES {
        return Err("token_response_too_large");
    }
    let token: TokenResponse =
        serde_json::from_slice(&resp.body).map_err(|_| "malformed_token_response")?;
    if let Some(t) = &token.token_type
        && !t.eq_ignore_ascii_case("bearer")
        && !t.eq_ignore_ascii_case("dpop")
    {
        return Err("unsupported_token_type");
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use paved_model::plugin_config::AuthnConfig;

    fn settings(secret: Option<&str>) -> Settings {
        Settings::from_config(&AuthnConfig {
            issuer: "https://idp.example".into(),
            idp_cluster: "paved-idp".into(),
            client_id: "gw id".into(),
            client_secret: secret.map(str::to_string),
            ..AuthnConfig::default()
        })
        .expect("settings")
    }

    fn meta(methods: &[&str]) -> ProviderMetadata {
        ProviderMetadata {
            issuer: "https://idp.example".into(),
            authorization_endpoint: "https://idp.example/auth".into(),
            token_endpoint: "https://idp.example:8443/oauth/token".into(),
            jwks_uri: "https://idp.example/jwks".into(),
            userinfo_endpoint: Some("https://idp.example/me".into()),
            end_session_endpoint: None,
            token_endpoint_auth_methods_supported: methods.iter().map(|m| m.to_string()).collect(),
            code_challenge_methods_supported: Vec::new(),
        }
    }

    #[test]
    fn confidential_clients_use_basic_auth_by_default() {
        let r = token_request(
            &settings(Some("s:e/c")),
            &meta(&[]),
            vec![("grant_type", "x")],
        )
        .expect("request");
        assert_eq!(
            (r.authority.as_str(), r.path.as_str()),
            ("idp.example:8443", "/oauth/token")
        );
        let basic = r
            .headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v.clone())
            .expect("basic");
        assert_eq!(
            basic,
            format!("Basic {}", b64::encode_standard("gw+id:s%3Ae%2Fc"))
        );
        assert_eq!(r.body, b"grant_type=x");
    }

    #[test]
    fn client_secret_post_when_the_provider_only_offers_it() {
        let r = token_request(
            &settings(Some("sec")),
            &meta(&["client_secret_post"]),
            vec![],
        )
        .expect("request");
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            "client_id=gw+id&client_secret=sec"
        );
        assert!(!r.headers.iter().any(|(n, _)| n == "authorization"));
    }

    #[test]
    fn public_clients_send_only_their_id() {
        let r = token_request(&settings(None), &meta(&[]), vec![]).expect("request");
        assert_eq!(String::from_utf8_lossy(&r.body), "client_id=gw+id");
    }

    #[test]
    fn token_responses_are_checked() {
        let ok = super::super::CallResponse {
            status: 200,
            body: br#"{"id_token":"a.b.c","token_type":"Bearer"}"#.to_vec(),
        };
        assert!(parse_token_response(&ok).is_ok_and(|t| t.id_token.as_deref() == Some("a.b.c")));
        let mac = super::super::CallResponse {
            status: 200,
            body: br#"{"token_type":"mac"}"#.to_vec(),
        };
        assert_eq!(
            parse_token_response(&mac).err(),
            Some("unsupported_token_type")
        );
        let refused = super::super::CallResponse {
            status: 400,
            body: Vec::new(),
        };
        assert_eq!(parse_token_response(&refused).err(), Some("grant_refused"));
        let none = super::super::CallResponse::default();
        assert_eq!(parse_token_response(&none).err(), Some("idp_unavailable"));
    }
}
