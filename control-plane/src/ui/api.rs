//! The UI's way to the GraphQL schema: in-process for server rendering (a
//! [`Backend`](paved_ui::server::Backend) per request), and `POST /ui/graphql` and
//! `GET /ui/graphql/ws` for the browser, authenticated by the session cookie.
//!
//! Cookies go with every request a browser makes, including those other sites trigger, so the
//! cookie endpoints also demand proof that the page is ours: the `x-paved-csrf` header (a
//! cross-site page cannot set it without a CORS preflight, which is never granted) and, when
//! the browser sends one, our own `Origin`. A WebSocket cannot carry headers, so there the
//! `Origin` is required (cross-site WebSocket hijacking).

use std::sync::Arc;

use async_graphql::Variables;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use bytes::Bytes;
use paved_ui::api::{CSRF_HEADER, GraphqlRequest};
use paved_ui::server::{Backend, GraphqlFuture};
use serde_json::{Value, json};

use super::UiState;
use super::session::{self, Session};
use crate::auth::Principal;
use crate::graphql::{self, RequestAuth};

/// The [`Backend`] of one page request: GraphQL executed in this process as `who`.
pub fn backend(ui: &UiState, who: Principal) -> Backend {
    let ui = ui.clone();
    Backend {
        execute: Arc::new(move |request: GraphqlRequest| -> GraphqlFuture {
            let ui = ui.clone();
            let who = who.clone();
            Box::pin(async move {
                let request = async_graphql::Request::new(request.query)
                    .variables(Variables::from_json(request.variables));
                let response = graphql::execute(&ui.schema, &ui.cp, Some(who), request).await;
                serde_json::to_value(&response).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "a GraphQL response does not serialize");
                    error_body("INTERNAL", "internal error")
                })
            })
        }),
    }
}

fn error_body(code: &str, message: &str) -> Value {
    json!({"errors": [{"message": message, "extensions": {"code": code}}]})
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let mut r = (status, Json(error_body(code, message))).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Whether the request's `Origin` is ours (`required`: whether a missing one is refused).
fn origin_ok(ui: &UiState, headers: &HeaderMap, required: bool) -> bool {
    match headers.get(header::ORIGIN) {
        Some(origin) => origin.as_bytes() == ui.origin.as_bytes(),
        None => !required,
    }
}

/// The session of a cookie request, or the response refusing it.
async fn session_or_refuse(ui: &UiState, headers: &HeaderMap) -> Result<Session, Response> {
    match session::session(&ui.cp, ui.cookies, headers).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "sign in at /ui/login",
        )),
        Err(e) => {
            e.log_if_internal();
            Err(refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "internal error",
            ))
        }
    }
}

/// `POST /ui/graphql`: one GraphQL request (`{query, variables, operationName}`) as the
/// signed-in person.
pub async fn post(State(ui): State<UiState>, headers: HeaderMap, body: Bytes) -> Response {
    if !headers.contains_key(CSRF_HEADER) {
        return refuse(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "cookie-authenticated requests need the x-paved-csrf header",
        );
    }
    if !origin_ok(&ui, &headers, false) {
        return refuse(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "cross-origin request refused",
        );
    }
    let session = match session_or_refuse(&ui, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("the body is not a GraphQL request: {e}"),
            );
        }
    };
    let response = graphql::execute(&ui.schema, &ui.cp, Some(session.principal), request).await;
    let mut r = Json(response).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /ui/graphql/ws`: subscriptions (graphql-transport-ws) as the signed-in person, until
/// the session ends.
pub async fn ws(
    State(ui): State<UiState>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !origin_ok(&ui, &headers, true) {
        return refuse(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "cross-origin WebSocket refused",
        );
    }
    let session = match session_or_refuse(&ui, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let remaining = session.remaining();
    let data = graphql::request_data(&ui.cp, RequestAuth(Ok(Some(session.principal))));
    let schema = (*ui.schema).clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            // The cookie's person stays the caller: a `connection_init` payload adds nothing.
            // The connection ends with the session, as a new request would be refused then.
            let serve = GraphQLWebSocket::new(socket, schema, protocol)
                .with_data(data)
                .serve();
            let _ = tokio::time::timeout(remaining, serve).await;
        })
}
