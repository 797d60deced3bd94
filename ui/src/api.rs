//! The UI's only way to data: GraphQL requests to the control plane.
//!
//! On the server the request runs in-process against the control plane's schema, as the
//! signed-in person (the host puts a [`server::Backend`](crate::server::Backend) in each
//! request). In the browser it is a `POST /ui/graphql` carrying the session cookie and the
//! `x-paved-csrf` header the host requires on cookie-authenticated requests.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Header that cookie-authenticated GraphQL requests from the browser must carry. A page of
/// another origin cannot set it without a CORS preflight, which the host never grants.
pub const CSRF_HEADER: &str = "x-paved-csrf";

/// The browser's GraphQL endpoint (cookie session).
pub const BROWSER_GRAPHQL_PATH: &str = "/ui/graphql";

/// The browser's GraphQL subscription endpoint (graphql-transport-ws, cookie session).
pub const BROWSER_GRAPHQL_WS_PATH: &str = "/ui/graphql/ws";

/// One GraphQL request as sent over HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphqlRequest {
    /// The query document.
    pub query: String,
    /// Its variables (a JSON object).
    pub variables: serde_json::Value,
}

/// A location in the submitted intent that an error concerns (from the control plane's
/// validation diagnostics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Dotted path of the field, e.g. `routes[0].upstream`, when known.
    #[serde(default)]
    pub field: Option<String>,
    /// 1-based line in the YAML, when known.
    #[serde(default)]
    pub line: Option<u64>,
    /// 1-based column in the YAML, when known.
    #[serde(default)]
    pub column: Option<u64>,
    /// What is wrong and what was expected.
    #[serde(default)]
    pub message: String,
}

/// Why a request failed, as the UI shows it.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum ApiError {
    /// The caller is not signed in (or the session ended).
    #[error("You are signed out. Sign in to continue.")]
    SignedOut,
    /// The API answered with an error: its message, stable code and any field diagnostics.
    #[error("{message}")]
    Graphql {
        /// The first error's message.
        message: String,
        /// Its stable code from `extensions.code` (e.g. `INVALID_INTENT`, `FORBIDDEN`).
        code: Option<String>,
        /// Field-level diagnostics from `extensions.diagnostics`.
        diagnostics: Vec<Diagnostic>,
    },
    /// The request did not reach the API or its answer was not understood.
    #[error("The control plane could not be reached: {0}")]
    Transport(String),
}

impl ApiError {
    /// The stable error code, when the API gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Graphql { code, .. } => code.as_deref(),
            ApiError::SignedOut => Some("UNAUTHENTICATED"),
            ApiError::Transport(_) => None,
        }
    }

    /// Diagnostics that concern `field` or a field below it (`routes` matches `routes[0].path`).
    pub fn diagnostics_for<'a>(&'a self, field: &'a str) -> impl Iterator<Item = &'a Diagnostic> {
        let all: &[Diagnostic] = match self {
            ApiError::Graphql { diagnostics, .. } => diagnostics,
            _ => &[],
        };
        all.iter().filter(move |d| {
            d.field.as_deref().is_some_and(|f| {
                f == field
                    || f.strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
        })
    }
}

/// Turns a GraphQL response (`{"data": ..., "errors": [...]}`) into the typed data or the
/// first error.
pub fn decode_response<T: DeserializeOwned>(response: serde_json::Value) -> Result<T, ApiError> {
    if let Some(first) = response
        .get("errors")
        .and_then(|e| e.as_array())
        .and_then(|errors| errors.first())
    {
        let message = first
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("the request failed")
            .to_string();
        let extensions = first.get("extensions");
        let code = extensions
            .and_then(|x| x.get("code"))
            .and_then(|c| c.as_str())
            .map(str::to_string);
        if code.as_deref() == Some("UNAUTHENTICATED") {
            return Err(ApiError::SignedOut);
        }
        let diagnostics = extensions
            .and_then(|x| x.get("diagnostics"))
            .cloned()
            .and_then(|d| serde_json::from_value(d).ok())
            .unwrap_or_default();
        return Err(ApiError::Graphql {
            message,
            code,
            diagnostics,
        });
    }
    let data = response
        .get("data")
        .cloned()
        .ok_or_else(|| ApiError::Transport("the answer has neither data nor errors".into()))?;
    serde_json::from_value(data)
        .map_err(|e| ApiError::Transport(format!("unexpected answer shape: {e}")))
}

/// A handle on the GraphQL API, valid on the server and in the browser.
#[derive(Clone)]
pub struct Api {
    #[cfg(feature = "ssr")]
    backend: Option<crate::server::Backend>,
}

impl Api {
    /// The API of the current request (call it in a component's body, not inside an async
    /// block: on the server the backend comes from the reactive context).
    pub fn from_context() -> Api {
        Api {
            #[cfg(feature = "ssr")]
            backend: leptos::prelude::use_context::<crate::server::Backend>(),
        }
    }

    /// Runs `query` with `variables` and decodes `data` into `T`.
    pub async fn query<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: serde_json::Value,
    ) -> Result<T, ApiError> {
        let request = GraphqlRequest {
            query: query.to_string(),
            variables,
        };
        decode_response(self.send(request).await?)
    }

    #[cfg(feature = "ssr")]
    async fn send(&self, request: GraphqlRequest) -> Result<serde_json::Value, ApiError> {
        match &self.backend {
            Some(backend) => Ok((backend.execute)(request).await),
            None => Err(ApiError::SignedOut),
        }
    }

    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    async fn send(&self, request: GraphqlRequest) -> Result<serde_json::Value, ApiError> {
        // Futures over JS promises are not `Send`, but Resources and Actions want `Send`
        // futures so the same page code runs on the server. The browser runs one thread, so
        // wrapping is sound there (the wrapper panics if ever moved to another thread).
        send_wrapper::SendWrapper::new(browser::post_graphql(&request)).await
    }

    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    async fn send(&self, _request: GraphqlRequest) -> Result<serde_json::Value, ApiError> {
        Err(ApiError::Transport(
            "built without `ssr` or `hydrate`: no way to reach the API".into(),
        ))
    }
}

#[cfg(all(feature = "hydrate", not(feature = "ssr")))]
mod browser {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;

    use super::{ApiError, BROWSER_GRAPHQL_PATH, CSRF_HEADER, GraphqlRequest};

    fn js_error(what: &str, e: wasm_bindgen::JsValue) -> ApiError {
        ApiError::Transport(format!("{what}: {}", e.as_string().unwrap_or_default()))
    }

    /// `POST /ui/graphql` with the session cookie and the CSRF header.
    pub async fn post_graphql(request: &GraphqlRequest) -> Result<serde_json::Value, ApiError> {
        let body = serde_json::to_string(request)
            .map_err(|e| ApiError::Transport(format!("cannot encode the request: {e}")))?;
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_credentials(web_sys::RequestCredentials::SameOrigin);
        init.set_body(&wasm_bindgen::JsValue::from_str(&body));
        let headers = web_sys::Headers::new().map_err(|e| js_error("headers", e))?;
        headers
            .set("content-type", "application/json")
            .map_err(|e| js_error("headers", e))?;
        headers
            .set(CSRF_HEADER, "1")
            .map_err(|e| js_error("headers", e))?;
        init.set_headers(&headers);
        let request = web_sys::Request::new_with_str_and_init(BROWSER_GRAPHQL_PATH, &init)
            .map_err(|e| js_error("request", e))?;
        let window = web_sys::window().ok_or_else(|| ApiError::Transport("no window".into()))?;
        let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
            .await
            .map_err(|e| js_error("fetch", e))?
            .dyn_into()
            .map_err(|e| js_error("fetch", e))?;
        if response.status() == 401 {
            return Err(ApiError::SignedOut);
        }
        let text = JsFuture::from(response.text().map_err(|e| js_error("body", e))?)
            .await
            .map_err(|e| js_error("body", e))?
            .as_string()
            .unwrap_or_default();
        serde_json::from_str(&text)
            .map_err(|e| ApiError::Transport(format!("the answer is not JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Me {
        name: String,
    }

    #[test]
    fn data_decodes_into_the_requested_type() {
        let me: serde_json::Value = json!({"data": {"name": "ada"}});
        assert_eq!(decode_response::<Me>(me), Ok(Me { name: "ada".into() }));
    }

    #[test]
    fn first_error_carries_code_and_field_diagnostics() {
        let response = json!({"data": null, "errors": [{
            "message": "invalid intent",
            "extensions": {"code": "INVALID_INTENT", "diagnostics": [
                {"field": "routes[0].upstream", "line": 4, "column": 7, "message": "expected a URL"},
                {"field": "domains", "message": "at least one domain"}
            ]}
        }]});
        let err = decode_response::<Me>(response).expect_err("errors win over data");
        assert_eq!(err.code(), Some("INVALID_INTENT"));
        assert_eq!(err.to_string(), "invalid intent");
        let routes: Vec<_> = err.diagnostics_for("routes").collect();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].line, Some(4));
        assert_eq!(
            err.diagnostics_for("domain").count(),
            0,
            "prefix must end at a separator"
        );
        assert_eq!(err.diagnostics_for("domains").count(), 1);
    }

    #[test]
    fn unauthenticated_error_means_signed_out() {
        let response =
            json!({"errors": [{"message": "sign in", "extensions": {"code": "UNAUTHENTICATED"}}]});
        assert_eq!(decode_response::<Me>(response), Err(ApiError::SignedOut));
    }

    #[test]
    fn answer_without_data_or_errors_is_a_transport_error() {
        assert!(matches!(
            decode_response::<Me>(json!({})),
            Err(ApiError::Transport(_))
        ));
    }
}
