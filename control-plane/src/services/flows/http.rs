//! `POST /v1/flows`: flow agents that export straight to the control plane
//! (`paved flow-agent --control-plane URL`) post each batch, JSON as on the wire
//! (docs/flow-telemetry.md), with `Authorization: Bearer <token>` of the `gateway` scope (the
//! infrastructure scope) or `admin`.
//!
//! Answers: `200 {"stored": true|false, "flows": N}` once the batch is stored (`stored:
//! false`: it was stored before); `400` for a batch that breaks the format or the collector's
//! policy (the agent drops it); `401`/`403`; `503` when storing failed (the agent keeps the
//! batch and sends it again).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use paved_flow_proto::{MAX_BATCH_BYTES, decode_batch};
use serde_json::json;

use super::ingest::FlowIngestError;
use crate::Error;
use crate::distribution::error_response;
use crate::http::authenticate;
use crate::services::ControlPlane;

/// Largest batch body accepted (the wire format's own bound).
pub const MAX_FLOW_BODY_BYTES: usize = MAX_BATCH_BYTES;

/// The route agents post batches to.
pub fn routes() -> Router<ControlPlane> {
    Router::new().route(
        "/v1/flows",
        post(receive).layer(DefaultBodyLimit::max(MAX_FLOW_BODY_BYTES)),
    )
}

async fn receive(State(cp): State<ControlPlane>, headers: HeaderMap, body: Bytes) -> Response {
    let who = match authenticate(&cp, &headers).await {
        Ok(Some(who)) => who,
        Ok(None) => {
            return error_response(&Error::Unauthenticated(
                "a bearer token with the `gateway` scope is required".into(),
            ));
        }
        Err(e) => return error_response(&e),
    };
    if !who.can_act_as_gateway() {
        return error_response(&Error::Forbidden(
            "a token with the `gateway` scope is required to send flows".into(),
        ));
    }
    let batch = match decode_batch(&body) {
        Ok(batch) => batch,
        Err(e) => return error_response(&Error::BadRequest(e.to_string())),
    };
    match cp.ingest_flow_batch(&batch).await {
        Ok(stored) => (
            StatusCode::OK,
            Json(json!({"stored": !stored.duplicate, "flows": stored.flows})),
        )
            .into_response(),
        Err(FlowIngestError::Invalid(e)) => {
            tracing::warn!(batch = %batch.id(), error = %e, "refusing a flow batch");
            error_response(&Error::BadRequest(e.to_string()))
        }
        Err(FlowIngestError::Storage(e)) => {
            e.log_if_internal();
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": {"code": "UNAVAILABLE", "message": "storing the batch failed; send it again later"}})),
            )
                .into_response()
        }
    }
}
