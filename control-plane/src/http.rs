//! The HTTP surface: one axum [`Router`] with GraphQL (`/graphql`, `/graphql/ws`), the OpenID
//! provider, config distribution (`/v1/gateways/...`), flow batches of agents (`/v1/flows`), the
//! internal CA's certificate (`/v1/ca.pem`), `/healthz`, and the web UI (pages, `/ui/...`,
//! `/pkg/...`; see [`crate::ui`]).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::auth::Principal;
use crate::services::{ControlPlane, TOKEN_PREFIX};
use crate::{Error, Result};

/// The control plane's routes, ready to serve (`axum::serve(listener, router)`).
pub fn router(cp: ControlPlane) -> Router {
    let mut app = Router::new()
        .merge(crate::distribution::routes())
        .merge(crate::services::flows::routes())
        .route("/v1/ca.pem", get(ca_pem))
        .route("/healthz", get(|| async { "ok" }));
    if cp.config().oidc.enabled {
        app = app.merge(crate::oidc::routes());
    }
    app.with_state(cp.clone())
        .merge(crate::graphql::router(cp.clone()))
        // The web UI: pages, people's sign-in (/ui/...), the browser module (/pkg/...).
        .merge(crate::ui::router(cp))
}

/// The principal of a request's `Authorization: Bearer ...` header: an API token
/// (`pvd_...`) for tools, or an access token of the control plane's OpenID provider issued to
/// its UI client for people. `Ok(None)` without the header.
pub async fn authenticate(cp: &ControlPlane, headers: &HeaderMap) -> Result<Option<Principal>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Error::Unauthenticated("malformed Authorization header".into()))?;
    authenticate_bearer(cp, value).await.map(Some)
}

/// The principal of an `Authorization` header value (`Bearer <token>`).
pub async fn authenticate_bearer(cp: &ControlPlane, value: &str) -> Result<Principal> {
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Unauthenticated("expected `Authorization: Bearer <token>`".into()))?;
    if token.starts_with(TOKEN_PREFIX) {
        cp.authenticate_token(token).await
    } else {
        crate::oidc::principal_for_access_token(cp, token).await
    }
}

async fn ca_pem(State(cp): State<ControlPlane>) -> Response {
    match cp.ca_certificate_pem() {
        Some(pem) => (
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            pem.to_string(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

impl ControlPlane {
    /// The axum router the binary serves (see [`router`]).
    pub fn router(&self) -> Router {
        router(self.clone())
    }
}
