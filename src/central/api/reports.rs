//! What only a regulator reads: the indicators, a cylinder's fill records and the audit log.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::json;

use super::{regulator, ApiError, AppState};
use crate::central::now_ms;

pub(super) async fn indicators(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    regulator(&state.config, &headers, "read indicators")?;
    Ok(Json(state.store.indicators(&state.config, now_ms()).await?))
}

/// `GET /api/v1/cylinders/{code}/fills`: a cylinder's fill records, newest first (regulators).
pub(super) async fn cylinder_fills(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    regulator(&state.config, &headers, "read fill records")?;
    Ok(Json(json!(
        state.store.fills_of_cylinder(&code, 500).await?
    )))
}

pub(super) async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    regulator(&state.config, &headers, "read the audit log")?;
    Ok(Json(json!(state.store.audit(500).await?)))
}
