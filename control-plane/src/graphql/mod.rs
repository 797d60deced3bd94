//! The GraphQL API (async-graphql on axum): queries, mutations, subscriptions over
//! graphql-transport-ws (and the older graphql-ws), depth and complexity limits, DataLoaders,
//! and errors with stable codes in `extensions.code`.
//!
//! Authentication: `Authorization: Bearer <token>` on the HTTP request (or the WebSocket
//! upgrade), or `{"Authorization": "Bearer <token>"}` in the `connection_init` payload.

mod flows;
mod loaders;
mod roots;
mod traffic;
mod types;

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql::{Data, ErrorExtensions, Schema};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

pub use loaders::{IntentVersionLoader, VersionCountLoader};
pub use roots::{MutationRoot, QueryRoot, SubscriptionRoot};

use crate::auth::Principal;
use crate::config::GraphqlLimits;
use crate::services::ControlPlane;
use crate::{Error, http};

/// The schema type.
pub type PavedSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Largest GraphQL request body.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// The authentication outcome of a request, in the GraphQL context.
#[derive(Debug, Clone)]
pub struct RequestAuth(pub Result<Option<Principal>, String>);

/// Builds the schema with the given limits.
pub fn build_schema(limits: GraphqlLimits) -> PavedSchema {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .finish()
}

/// The schema's SDL (what `control-plane/schema.graphql` holds).
pub fn sdl() -> String {
    build_schema(GraphqlLimits::default()).sdl()
}

/// Turns a service error into a GraphQL error with `extensions.code` (and, for invalid intents,
/// `extensions.diagnostics`: `[{source, field, line, column, message}]`).
pub fn to_gql(e: Error) -> async_graphql::Error {
    e.log_if_internal();
    let code = e.code();
    let diagnostics = e.diagnostics_json();
    let has_diagnostics = !e.diagnostics().is_empty();
    async_graphql::Error::new(e.public_message()).extend_with(move |_, ext| {
        ext.set("code", code);
        if has_diagnostics && let Ok(v) = async_graphql::Value::from_json(diagnostics.clone()) {
            ext.set("diagnostics", v);
        }
    })
}

/// Per-request context data: the control plane, the caller, and fresh DataLoaders.
pub fn request_data(cp: &ControlPlane, auth: RequestAuth) -> Data {
    let mut data = Data::default();
    data.insert(cp.clone());
    data.insert(auth);
    data.insert(DataLoader::new(
        IntentVersionLoader(cp.clone()),
        tokio::spawn,
    ));
    data.insert(DataLoader::new(
        VersionCountLoader(cp.clone()),
        tokio::spawn,
    ));
    data
}

/// Executes one GraphQL request as `auth` (for tests and in-process callers).
pub async fn execute(
    schema: &PavedSchema,
    cp: &ControlPlane,
    auth: Option<Principal>,
    request: impl Into<async_graphql::Request>,
) -> async_graphql::Response {
    let mut request = request.into();
    request.data = request_data(cp, RequestAuth(Ok(auth)));
    schema.execute(request).await
}

#[derive(Clone)]
struct GqlState {
    cp: ControlPlane,
    schema: Arc<PavedSchema>,
}

/// The GraphQL routes: `POST /graphql`, `GET /graphql` (GraphiQL in development),
/// `GET /graphql/ws` (subscriptions).
pub fn router(cp: ControlPlane) -> Router {
    let schema = Arc::new(build_schema(cp.config().graphql));
    Router::new()
        .route("/graphql", get(graphiql).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(GqlState { cp, schema })
}

async fn auth_of(cp: &ControlPlane, headers: &HeaderMap) -> RequestAuth {
    RequestAuth(http::authenticate(cp, headers).await.map_err(|e| {
        e.log_if_internal();
        e.public_message()
    }))
}

async fn graphql_post(
    State(state): State<GqlState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let auth = auth_of(&state.cp, &headers).await;
    let mut request = request.into_inner();
    request.data = request_data(&state.cp, auth);
    state.schema.execute(request).await.into()
}

async fn graphiql(State(state): State<GqlState>) -> Response {
    if !state.cp.config().development {
        return (
            StatusCode::NOT_FOUND,
            "GraphiQL is served in development mode only; POST queries to /graphql",
        )
            .into_response();
    }
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
    .into_response()
}

async fn graphql_ws(
    State(state): State<GqlState>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let auth = auth_of(&state.cp, &headers).await;
    let data = request_data(&state.cp, auth);
    let cp = state.cp.clone();
    let schema = (*state.schema).clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, schema, protocol)
                .with_data(data)
                .on_connection_init(move |payload| async move {
                    // A token in the payload replaces the upgrade request's header, for browser
                    // clients that cannot set headers on WebSockets.
                    let token = payload
                        .get("Authorization")
                        .or_else(|| payload.get("authorization"))
                        .and_then(|v| v.as_str())
                        .map(str::to_string);
                    let mut data = Data::default();
                    if let Some(value) = token {
                        let auth = http::authenticate_bearer(&cp, &value)
                            .await
                            .map(Some)
                            .map_err(|e| e.public_message());
                        data.insert(RequestAuth(auth));
                    }
                    Ok(data)
                })
                .serve()
        })
}
