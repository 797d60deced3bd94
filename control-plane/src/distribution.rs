//! Config distribution, server side (the protocol is in docs/config-distribution.md).
//!
//! - `GET /v1/gateways/{gateway_id}/snapshot?after=N&wait=S`: long poll. As soon as a snapshot
//!   with a version greater than `after` exists: `200` with the snapshot JSON and
//!   `x-paved-version: <version>`. Otherwise `304` after `wait` seconds (at most the configured
//!   bound, 30 s by default). Without `after`, the latest snapshot at once.
//! - `POST /v1/gateways/{gateway_id}/status` with `{"version": N, "ok": true}` or
//!   `{"version": N, "ok": false, "error": "..."}`: records an ACK or NACK; `204`.
//!
//! - `POST /v1/gateways/{gateway_id}/traffic` with a JSON array of access-log records: stores
//!   them (all or none: a bad record is a `400` naming its index and field); `200` with
//!   `{"stored": N, "duplicates": M}`.
//!
//! All need `Authorization: Bearer <token>` with the `gateway` scope (or `admin`).

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::Error;
use crate::auth::Principal;
use crate::http::authenticate;
use crate::services::{ControlPlane, GatewayReport, MAX_TRAFFIC_BODY_BYTES, check_gateway_id};

/// Header carrying the version of a snapshot response (and of a `304`: the latest version).
pub const VERSION_HEADER: &str = "x-paved-version";

/// Largest status report accepted.
pub const MAX_STATUS_BYTES: usize = 16 * 1024;

/// The distribution routes.
pub fn routes() -> Router<ControlPlane> {
    Router::new()
        .route("/v1/gateways/{gateway_id}/snapshot", get(snapshot))
        .route(
            "/v1/gateways/{gateway_id}/status",
            post(status).layer(DefaultBodyLimit::max(MAX_STATUS_BYTES)),
        )
        .route(
            "/v1/gateways/{gateway_id}/traffic",
            post(traffic).layer(DefaultBodyLimit::max(MAX_TRAFFIC_BODY_BYTES)),
        )
}

/// A JSON error response `{"error": {"code": "...", "message": "..."}}`.
pub fn error_response(e: &Error) -> Response {
    e.log_if_internal();
    let status = match e.code() {
        "UNAUTHENTICATED" => StatusCode::UNAUTHORIZED,
        "FORBIDDEN" => StatusCode::FORBIDDEN,
        "NOT_FOUND" => StatusCode::NOT_FOUND,
        "BAD_REQUEST" | "INVALID_INTENT" => StatusCode::BAD_REQUEST,
        "CONFLICT" => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut r = (
        status,
        Json(json!({"error": {"code": e.code(), "message": e.public_message()}})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"paved\""),
        );
    }
    r
}

async fn gateway_principal(cp: &ControlPlane, headers: &HeaderMap) -> Result<Principal, Error> {
    let who = authenticate(cp, headers).await?.ok_or_else(|| {
        Error::Unauthenticated("a bearer token with the `gateway` scope is required".into())
    })?;
    if !who.can_act_as_gateway() {
        return Err(Error::Forbidden(
            "a token with the `gateway` scope is required".into(),
        ));
    }
    Ok(who)
}

/// Query of the snapshot long poll.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    /// The version the gateway has (0: none).
    after: Option<u64>,
    /// Seconds to wait for a newer version (bounded by the configuration).
    wait: Option<u64>,
}

fn version_header(v: i64) -> HeaderValue {
    HeaderValue::from_str(&v.to_string()).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

async fn snapshot(
    State(cp): State<ControlPlane>,
    Path(gateway_id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<SnapshotQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(e) = gateway_principal(&cp, &headers).await {
        return error_response(&e);
    }
    if let Err(e) = check_gateway_id(&gateway_id) {
        return error_response(&e);
    }
    let Ok(Query(q)) = query else {
        return error_response(&Error::BadRequest(
            "expected the query `after=<version>&wait=<seconds>` with non-negative integers".into(),
        ));
    };
    let after = i64::try_from(q.after.unwrap_or(0)).unwrap_or(i64::MAX);
    let max = cp.config().max_long_poll;
    let wait = Duration::from_secs(q.wait.unwrap_or(max.as_secs())).min(max);
    let mut rx = cp.watch_snapshots();
    let mut stopping = cp.watch_shutdown();
    let deadline = tokio::time::Instant::now() + wait;
    let found = loop {
        let current = rx.borrow_and_update().clone();
        if let Some(s) = current.filter(|s| s.version > after) {
            break Some(s);
        }
        if *stopping.borrow_and_update() {
            break None;
        }
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, rx.changed()) => match changed {
                Ok(Ok(())) => continue,
                // The sender lives as long as the control plane; a closed channel means shutdown.
                Ok(Err(_)) | Err(_) => break None,
            },
            // Stopping: answer "nothing new" now; the gateway polls again (elsewhere, later).
            _ = stopping.changed() => continue,
        }
    };
    match found {
        Some(s) => {
            if let Err(e) = cp.gateway_polled(&gateway_id, Some(s.version)).await {
                e.log_if_internal();
            }
            tracing::debug!(gateway = %gateway_id, version = s.version, after, "snapshot delivered");
            let mut r = (StatusCode::OK, s.json.to_string()).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(VERSION_HEADER, version_header(s.version));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        None => {
            if let Err(e) = cp.gateway_polled(&gateway_id, None).await {
                e.log_if_internal();
            }
            let latest = cp.latest_snapshot().map_or(0, |s| s.version);
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            r.headers_mut()
                .insert(VERSION_HEADER, version_header(latest));
            r
        }
    }
}

async fn status(
    State(cp): State<ControlPlane>,
    Path(gateway_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match gateway_principal(&cp, &headers).await {
        Ok(w) => w,
        Err(e) => return error_response(&e),
    };
    let report: GatewayReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_response(&Error::BadRequest(format!(
                "expected {{\"version\": N, \"ok\": true}} or {{\"version\": N, \"ok\": false, \"error\": \"...\"}}: {e}"
            )));
        }
    };
    match cp.record_gateway_report(&who, &gateway_id, report).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(&e),
    }
}

async fn traffic(
    State(cp): State<ControlPlane>,
    Path(gateway_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match gateway_principal(&cp, &headers).await {
        Ok(w) => w,
        Err(e) => return error_response(&e),
    };
    let records: Vec<serde_json::Value> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_response(&Error::BadRequest(format!(
                "expected a JSON array of access-log records: {e}"
            )));
        }
    };
    match cp.ingest_traffic(&who, &gateway_id, &records).await {
        Ok(done) => (
            StatusCode::OK,
            Json(json!({"stored": done.stored, "duplicates": done.duplicates})),
        )
            .into_response(),
        Err(e) => error_response(&e),
    }
}
