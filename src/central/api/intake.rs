//! Intake over HTTP (`POST /api/v1/intake/incidents` with a gateway's token), and the list of
//! what intake refused (regulators).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{regulator, ApiError, AppState};
use crate::auth::{bearer, token_hash};
use crate::central::intake::{self, Rejection};
use crate::central::now_ms;

/// `POST /api/v1/intake/incidents` with the gateway's token. 201 when stored, 200 for a
/// duplicate; 401, 413, 400, 422, 403 for the rejections, each counted.
pub(super) async fn intake_incident(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let reject = |r: Rejection| {
        state
            .metrics
            .intake_rejected("http", r.reason(), &r.to_string());
        ApiError::Rejected(r)
    };
    let sender = bearer(&headers)
        .map(token_hash)
        .and_then(|hash| {
            state
                .config
                .gateways
                .iter()
                .find(|g| g.token_sha256 == hash)
        })
        .map(|g| g.id.clone())
        .ok_or_else(|| reject(Rejection::Unauthorized))?;
    let limit = state.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        reject(Rejection::Oversized {
            size: limit + 1,
            limit,
        })
    })?;
    let accepted = intake::decode(&state.config, &bytes, &sender, now_ms()).map_err(reject)?;
    let incident = &accepted.message;
    let started = std::time::Instant::now();
    let outcome = state
        .store
        .ingest_incident(&state.config, incident, &accepted.notes, "http", now_ms())
        .await?;
    for note in accepted.notes.iter().filter(|_| outcome.stored) {
        let what = incident.id.to_string();
        state.metrics.intake_noted("http", note.as_str(), &what);
    }
    if outcome.stored {
        state
            .metrics
            .intake_stored("http", started.elapsed().as_secs_f64());
    } else {
        state.metrics.intake_duplicate("http");
    }
    if let Some(d) = &outcome.dispatch {
        state.metrics.dispatch_created(d);
        state.wake.notify_one();
    }
    let status = if outcome.stored {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "id": incident.id, "stored": outcome.stored, "duplicate": !outcome.stored, "dispatch": outcome.dispatch }))).into_response())
}

/// `GET /api/v1/intake/rejected`: the messages intake refused, newest first (regulators).
pub(super) async fn rejected(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    regulator(&state.config, &headers, "read refused messages")?;
    Ok(Json(json!(state.store.rejected(500).await?)))
}
