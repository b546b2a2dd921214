//! Inspection reports and hazard ledgers over HTTP (`hazards.rs` has the rules):
//! - `POST /api/v1/inspections` (inspection agency): one report as JSON; 201 when stored, 200
//!   for a report number the agency posted before, 404 for equipment central does not know,
//!   422 with every problem.
//! - `GET /api/v1/inspections`: the agency's own reports (a regulator's: all).
//! - `GET /api/v1/hazards?manufacturer=&closed=true`: a ledger, overdue first: all for a
//!   regulator, the using unit's own for an equipment unit, its reports' for an agency.
//! - `POST /api/v1/hazards/{id}/correction` (the using unit): cause, responsibility and
//!   corrective action, all three required.
//! - `POST /api/v1/hazards/{id}/verify` (a regulator, or the agency that reported it):
//!   `{"accepted": true}` closes the item, false sends it back.

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::api::{caller, json_body, ApiError, AppState, Caller};
use super::config::Role;
use super::hazards::{Correction, HazardRefused, ReportIn, Verdict};
use super::store::hazards::{HazardRow, Ledger, Stored};
use super::{now_ms, web};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/hazards",
            get(|s: State<AppState>, uri: Uri| async move {
                web::session::page(&s, &uri, web::HAZARDS_HTML, None).await
            }),
        )
        .route("/api/v1/inspections", get(reports).post(post_report))
        .route("/api/v1/hazards", get(hazards))
        .route("/api/v1/hazards/{id}/correction", post(correct))
        .route("/api/v1/hazards/{id}/verify", post(verify))
}

async fn post_report(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let c = caller(&state.config, &headers)?;
    if c.role != Role::InspectionAgency {
        return Err(ApiError::Forbidden("post inspection reports"));
    }
    let Json(report) = json_body::<ReportIn>(request).await?;
    let problems = report.problems();
    if !problems.is_empty() {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": problems.join("; "), "reason": "invalid_report", "problems": problems })),
        )
            .into_response());
    }
    let agency = c.unit.clone().unwrap_or_default();
    match state
        .store
        .insert_report(&agency, &c.name, &report, now_ms())
        .await?
    {
        Stored::Created { id, hazards } => Ok((
            StatusCode::CREATED,
            Json(json!({ "id": id, "hazards": hazards, "duplicate": false })),
        )
            .into_response()),
        Stored::Duplicate { id } => {
            Ok(Json(json!({ "id": id, "hazards": [], "duplicate": true })).into_response())
        }
        Stored::UnknownEquipment => Err(ApiError::NotFound(format!(
            "equipment {}/{}",
            report.gateway, report.equipment
        ))),
    }
}

async fn reports(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    let agency = match c.role {
        Role::Regulator => None,
        Role::InspectionAgency => c.unit.clone(),
        _ => return Err(ApiError::Forbidden("read inspection reports")),
    };
    Ok(Json(json!(state.store.reports(agency.as_deref()).await?)))
}

#[derive(Debug, Default, Deserialize)]
struct HazardQuery {
    /// A manufacturer's ledger: its product defects.
    manufacturer: Option<String>,
    /// Also the verified (closed) items.
    #[serde(default)]
    closed: bool,
}

fn ledger_of(c: &Caller) -> Result<Ledger, ApiError> {
    Ok(match c.role {
        Role::Regulator => Ledger::default(),
        Role::EquipmentUnit => Ledger {
            using_unit: c.unit.clone(),
            ..Ledger::default()
        },
        Role::InspectionAgency => Ledger {
            agency: c.unit.clone(),
            ..Ledger::default()
        },
        _ => return Err(ApiError::Forbidden("read hazard ledgers")),
    })
}

async fn hazards(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HazardQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    let mut ledger = ledger_of(&c)?;
    ledger.manufacturer = q.manufacturer.filter(|m| !m.is_empty());
    let offset = state.config.scorecard.utc_offset_minutes;
    let rows = state
        .store
        .hazards(&ledger, q.closed, now_ms(), offset)
        .await?;
    Ok(Json(json!(rows)))
}

fn refused(r: HazardRefused) -> ApiError {
    match r {
        HazardRefused::NotFound(id) => ApiError::NotFound(format!("hazard {id}")),
        HazardRefused::Unclear(_) => {
            ApiError::Body(StatusCode::UNPROCESSABLE_ENTITY, r.to_string())
        }
        HazardRefused::WrongState(..) => ApiError::Conflict(r.to_string()),
    }
}

async fn correct(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = permitted(
        &state,
        &headers,
        &id,
        "record the correction of this hazard",
        |c, h| c.role == Role::EquipmentUnit && c.unit.as_deref() == Some(h.using_unit.as_str()),
    )
    .await?;
    let Json(correction) = json_body::<Correction>(request).await?;
    state
        .store
        .correct_hazard(&id, &correction, &c.name, c.role.as_str(), now_ms())
        .await?
        .map_err(refused)?;
    current(&state, &id).await
}

async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = permitted(&state, &headers, &id, "verify this hazard", |c, h| {
        c.role == Role::Regulator
            || (c.role == Role::InspectionAgency && c.unit.as_deref() == Some(h.agency.as_str()))
    })
    .await?;
    let Json(verdict) = json_body::<Verdict>(request).await?;
    state
        .store
        .verify_hazard(&id, &verdict, &c.name, c.role.as_str(), now_ms())
        .await?
        .map_err(refused)?;
    current(&state, &id).await
}

/// The caller, when `may` lets it act on hazard `id` (a hazard it cannot see is forbidden like
/// one that does not exist, so that ids are not probed); otherwise 403 naming `action`.
async fn permitted(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    action: &'static str,
    may: impl Fn(&Caller, &HazardRow) -> bool,
) -> Result<Caller, ApiError> {
    let c = caller(&state.config, headers)?;
    let offset = state.config.scorecard.utc_offset_minutes;
    let hazard = state.store.hazard(id, now_ms(), offset).await?;
    if !hazard.as_ref().is_some_and(|h| may(&c, h)) {
        return Err(ApiError::Forbidden(action));
    }
    Ok(c)
}

/// The hazard as it stands after a step, as the step's answer.
async fn current(state: &AppState, id: &str) -> Result<Json<serde_json::Value>, ApiError> {
    let offset = state.config.scorecard.utc_offset_minutes;
    Ok(Json(json!(state.store.hazard(id, now_ms(), offset).await?)))
}
