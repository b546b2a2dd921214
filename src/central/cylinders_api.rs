//! Cylinders over HTTP (`cylinders.rs` has the rules):
//! - `POST /api/v1/cylinders/import` (CSV): a filling unit's register; a regulator imports any,
//!   an equipment unit only rows it owns. 200 with what changed, 422 with every bad line
//!   (`problems`: line, zh, en) and nothing stored.
//! - `GET /api/v1/cylinders/{code}`: the register entry, its history and its fills.
//! - `GET /api/v1/cylinders/indicators`: per filling station (regulators).
//! - `/c/{code}`: the phone page a QR code opens.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::api::{caller, ApiError, AppState};
use super::config::Role;
use super::{cylinders, now_ms, web};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/c/{code}",
            get(|s: State<AppState>, uri: Uri| async move {
                web::session::page(&s, &uri, web::CYLINDER_HTML, None).await
            }),
        )
        .route("/api/v1/cylinders/import", post(import))
        .route("/api/v1/cylinders/indicators", get(indicators))
        .route("/api/v1/cylinders/{code}", get(cylinder))
}

async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let c = caller(&state.config, &headers)?;
    let owner = match c.role {
        Role::Regulator => None,
        Role::EquipmentUnit => c.unit.clone(),
        _ => return Err(ApiError::Forbidden("import cylinder registers")),
    };
    let bytes = axum::body::to_bytes(request.into_body(), state.config.max_body_bytes)
        .await
        .map_err(|e| ApiError::Body(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::BadRequest("the register must be UTF-8 CSV".into()))?;
    let rows = match cylinders::parse_register(&text) {
        Ok(rows) => rows,
        Err(problems) => return Ok(super::csv::refused("invalid_register", &problems)),
    };
    if let Some(unit) = &owner {
        if let Some(other) = rows.iter().find(|r| &r.owner != unit) {
            return Err(ApiError::BadRequest(format!(
                "cylinder {} belongs to {}, not {unit}: a unit imports its own register",
                other.code, other.owner
            )));
        }
    }
    let done = state
        .store
        .import_register(&rows, &c.name, c.role.as_str(), now_ms())
        .await?;
    Ok(Json(json!(done)).into_response())
}

async fn cylinder(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    let register = state.store.cylinder(&code).await?;
    let allowed = match c.role {
        Role::Regulator => true,
        Role::EquipmentUnit => register
            .as_ref()
            .is_some_and(|r| Some(&r.owner) == c.unit.as_ref()),
        _ => false,
    };
    if !allowed {
        return Err(ApiError::Forbidden("read this cylinder"));
    }
    let fills = state.store.fills_of_cylinder(&code, 500).await?;
    if register.is_none() && fills.is_empty() {
        return Err(ApiError::NotFound(format!("cylinder {code}")));
    }
    let events = state.store.cylinder_events(&code).await?;
    Ok(Json(
        json!({ "code": code, "register": register, "events": events, "fills": fills }),
    ))
}

async fn indicators(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    if c.role != Role::Regulator {
        return Err(ApiError::Forbidden("read cylinder indicators"));
    }
    Ok(Json(json!(state.store.cylinder_indicators().await?)))
}
