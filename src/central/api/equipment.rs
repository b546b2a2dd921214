//! The equipment unit's overview and the equipment page's data: the equipment list (paged,
//! worst state first) and its counts, search by registration code, 96333 code, name or
//! address, and one piece of equipment with its registry, readings and history. A regulator
//! sees all; an equipment unit only its own.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::alarms::with_next_link;
use super::map::display;
use super::{caller, ApiError, AppState};
use crate::central::config::Role;
use crate::central::store::{EquipmentFilter, StoreError};

/// `GET /api/v1/equipment?inspection=overdue&limit=&after=`: one page of the equipment, worst
/// state first (store/equipment_list.rs), each with its position in the basemap's system
/// (`display`); a `Link: <…>; rel="next"` header carries the URL of the next page.
pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(filter): Query<EquipmentFilter>,
) -> Result<Response, ApiError> {
    let c = caller(&state.config, &headers)?;
    let unit = c.equipment_scope("list equipment")?;
    let today = crate::central::zone::today(state.config.zone());
    let page = match state.store.equipment_page(&filter, unit, today).await {
        Err(StoreError::BadQuery(why)) => return Err(ApiError::BadRequest(why)),
        other => other?,
    };
    let rows: Vec<serde_json::Value> = page
        .equipment
        .iter()
        .map(|e| {
            let mut v = json!(e);
            v["display"] = json!(display(&state.config, e.lat.zip(e.lon)));
            v
        })
        .collect();
    let limit = filter.limit.map(|l| l.to_string());
    Ok(with_next_link(
        Json(json!(rows)).into_response(),
        "/api/v1/equipment",
        &[("inspection", &filter.inspection), ("limit", &limit)],
        ("after", page.next),
    ))
}

/// `GET /api/v1/equipment/counts`: how many pieces of the caller's equipment are in each
/// state, past their inspection, and their open alarms; counted in the store, so that the
/// overview's cards need not the whole list.
pub(super) async fn counts(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    let unit = c.equipment_scope("count equipment")?;
    let today = crate::central::zone::today(state.config.zone());
    Ok(Json(json!(
        state.store.equipment_counts(unit, today).await?
    )))
}

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
    let today = crate::central::zone::today(state.config.zone());
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
