//! The equipment page's data: search by registration code, 96333 code, name or address, and
//! one piece of equipment with its registry, readings and history. A regulator sees all; an
//! equipment unit only its own.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::map::display;
use super::{caller, ApiError, AppState};
use crate::central::config::Role;

/// Whose equipment the caller may see: all (None) or one using unit's.
fn scope(c: &super::Caller, what: &'static str) -> Result<Option<String>, ApiError> {
    match c.role {
        Role::Regulator => Ok(None),
        Role::EquipmentUnit => Ok(Some(c.unit.clone().unwrap_or_default())),
        _ => Err(ApiError::Forbidden(what)),
    }
}

#[derive(Deserialize)]
pub(super) struct Search {
    #[serde(default)]
    q: String,
}

/// `GET /api/v1/equipment/search?q=`: at most 20 matches, an exact registration code first.
pub(super) async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    let unit = scope(&c, "search equipment")?;
    Ok(Json(json!(
        state
            .store
            .search_equipment(&search.q, unit.as_deref())
            .await?
    )))
}

/// `GET /api/v1/equipment/{gateway}/{id}`: the registry record, state, latest readings, alarm
/// and dispatch history and fills, with the position in the basemap's system (`display`).
pub(super) async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((gateway, id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    let unit = scope(&c, "read equipment")?;
    let today = chrono::Utc::now().date_naive();
    let detail = state
        .store
        .equipment_detail(&gateway, &id, unit.as_deref(), today)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("equipment {gateway}/{id}")))?;
    let mut value = json!(detail);
    let e = &detail.equipment;
    value["equipment"]["display"] = json!(display(&state.config, e.lat.zip(e.lon)));
    Ok(Json(value))
}
