//! Rescue dispatches: the board's list, one dispatch with what the rescue page shows, and the
//! steps the unit called now takes. A dispatch's link (`?t=` or its link cookie) stands for
//! the unit it was sent to.

use axum::extract::{Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::alarms::with_next_link;
use super::{caller, json_body, ApiError, AppState, Caller};
use crate::central::config::{CentralConfig, Role};
use crate::central::dispatch::{self, Status};
use crate::central::store::{DispatchFilter, RescueFacts, RescueStep, StoreError};
use crate::central::{geo, now_ms};

/// `GET /api/v1/dispatches?state=open|closed&limit=&before=`: one page of the board, newest
/// first (store/dispatches.rs), with a `Link: <…>; rel="next"` header when more match.
pub(super) async fn dispatches(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(filter): Query<DispatchFilter>,
) -> Result<Response, ApiError> {
    let c = caller(&state.config, &headers)?;
    let unit = match c.role {
        Role::Regulator => None,
        Role::RescueTeam => c.unit.as_deref(),
        _ => return Err(ApiError::Forbidden("list dispatches")),
    };
    let page = match state.store.dispatch_page(&filter, unit).await {
        Err(StoreError::BadQuery(why)) => return Err(ApiError::BadRequest(why)),
        other => other?,
    };
    let list: Vec<serde_json::Value> = page
        .dispatches
        .iter()
        .map(|d| {
            let mut v = json!(d);
            v["tier"] = tier(&state.config, d).into();
            v
        })
        .collect();
    let limit = filter.limit.map(|l| l.to_string());
    Ok(with_next_link(
        Json(json!(list)).into_response(),
        "/api/v1/dispatches",
        &[("state", &filter.state), ("limit", &limit)],
        ("before", page.next),
    ))
}

/// `GET /api/v1/situations`: regional alarm floods (open, and ended within the last hour), each
/// with its dispatches in rescue order (`store/situations.rs`). Regulators only.
pub(super) async fn situations(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    if c.role != Role::Regulator {
        return Err(ApiError::Forbidden("list situations"));
    }
    let list: Vec<serde_json::Value> = (state.store.situations(now_ms() - 3_600_000).await?)
        .iter()
        .map(|s| {
            let mut v = json!(s);
            v["dispatches"] = s
                .dispatches
                .iter()
                .map(|d| {
                    let mut v = json!(d);
                    v["tier"] = tier(&state.config, d).into();
                    v
                })
                .collect();
            v
        })
        .collect();
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
pub(super) struct LinkToken {
    t: Option<String>,
}

/// Who may see or act on a dispatch: the holder of its link token (sent to the called unit, as
/// `?t=` or in the link cookie the rescue page was given for this dispatch), a rescue team that was called for it, or (to read) a regulator. Taking a step is further
/// limited to the unit called now (see [`dispatch::check_step`]).
async fn dispatch_caller(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    link: Option<&str>,
) -> Result<Caller, ApiError> {
    let as_link = |unit: String| Caller {
        role: Role::RescueTeam,
        name: format!("{unit} (link)"),
        unit: Some(unit),
    };
    if let Some(t) = link {
        let unit = state.store.dispatch_link_unit(id, t).await?;
        return unit.map(as_link).ok_or(ApiError::Unauthorized);
    }
    // A link cookie of another dispatch (or a stale one) is no link: the role token decides.
    if let Some(t) = crate::auth::cookie(headers, crate::auth::LINK_COOKIE) {
        if let Some(unit) = state.store.dispatch_link_unit(id, &t).await? {
            return Ok(as_link(unit));
        }
    }
    let c = caller(&state.config, headers)?;
    match c.role {
        Role::Regulator => Ok(c),
        Role::RescueTeam => {
            let unit = c.unit.clone().unwrap_or_default();
            if state.store.dispatch_called(id, &unit).await? {
                Ok(c)
            } else {
                Err(ApiError::Forbidden("see dispatches of another unit"))
            }
        }
        _ => Err(ApiError::Forbidden("see this dispatch")),
    }
}

/// `GET /api/v1/dispatches/{id}`: the dispatch with its steps, and under `access` whether this
/// caller may take the next step (only the unit called now, while the dispatch is open). A link
/// of a unit that was escalated away, or of a closed dispatch, still reads it.
pub(super) async fn dispatch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(link): Query<LinkToken>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = dispatch_caller(&state, &headers, &id, link.t.as_deref()).await?;
    let d = state
        .store
        .dispatch(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("dispatch {id}")))?;
    let refused = match (c.role, &c.unit) {
        (Role::RescueTeam, Some(unit)) => {
            dispatch::may_act(d.status, &d.unit.name, unit).map_err(|e| e.to_string())
        }
        _ => Err("a regulator reads dispatches: the unit called takes their steps".to_owned()),
    };
    let facts = state.store.rescue_facts(&id).await?;
    let mut value = json!(d);
    value["rescue"] = rescue_view(&state.config, &d, &facts);
    value["access"] = json!({
        "unit": c.unit,
        "can_act": refused.is_ok(),
        "reason": refused.err(),
    });
    Ok(Json(value))
}

/// What the rescue page shows to get there and whom to call: the lift's position in WGS-84,
/// GCJ-02 (AMap) and BD-09 (Baidu), the floor the car stopped at, the rescue tier of the unit
/// called now, and the phone numbers central knows.
fn rescue_view(
    config: &CentralConfig,
    d: &dispatch::Dispatch,
    facts: &RescueFacts,
) -> serde_json::Value {
    let position = facts
        .position
        .filter(|(lat, lon)| geo::is_wgs84(*lat, *lon))
        .map(|(lat, lon)| {
            let (g_lat, g_lon) = geo::wgs84_to_gcj02(lat, lon);
            let (b_lat, b_lon) = geo::gcj02_to_bd09(g_lat, g_lon);
            json!({ "wgs84": [lat, lon], "gcj02": [g_lat, g_lon], "bd09": [b_lat, b_lon] })
        });
    let tier = tier(config, d);
    // Central's own numbers first (`[[rescue_unit]]`); the registry's maintenance phone when
    // central has none for that unit.
    let mut phones = vec![json!({ "role": "called", "name": d.unit.name, "phone": d.unit.phone })];
    if let Some(m) = &d.maintenance_unit {
        let phone = config
            .rescue_unit(&m.name)
            .map(|u| u.phone.clone())
            .unwrap_or_else(|| m.phone.clone());
        if m.name != d.unit.name {
            phones.push(json!({ "role": "maintenance", "name": m.name, "phone": phone }));
        }
    }
    match config.rescue_unit(&d.using_unit) {
        Some(u) => phones.push(json!({ "role": "using", "name": u.name, "phone": u.phone })),
        None => phones.push(
            json!({ "role": "using", "name": d.using_unit, "phone": facts.using_unit_phone }),
        ),
    }
    phones.push(json!({ "role": "building", "name": d.address, "phone": facts.building_phone }));
    phones.retain(|p| p["phone"].as_str().is_some_and(|s| !s.trim().is_empty()));
    json!({ "position": position, "floor": facts.floor, "tier": tier, "phones": phones })
}

/// The rescue tier of the unit called now: `1` the maintenance unit, `2` a rescue service,
/// `fire` the fire service.
fn tier(config: &CentralConfig, d: &dispatch::Dispatch) -> &'static str {
    let maintenance = d.maintenance_unit.as_ref().map(|m| m.name.as_str());
    if config.dispatch.fire_service.as_deref() == Some(d.unit.name.as_str()) {
        "fire"
    } else if maintenance == Some(d.unit.name.as_str()) {
        "1"
    } else {
        "2"
    }
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
    #[serde(default)]
    note: String,
}

/// `POST /api/v1/dispatches/{id}/status`: a rescue step by the unit called now. 410 Gone when
/// the caller's unit was escalated away or the dispatch is closed: such a link only reads.
pub(super) async fn dispatch_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(link): Query<LinkToken>,
    request: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = dispatch_caller(&state, &headers, &id, link.t.as_deref()).await?;
    let unit = match (c.role, &c.unit) {
        (Role::RescueTeam, Some(unit)) => unit.clone(),
        _ => return Err(ApiError::Forbidden("update this dispatch")),
    };
    let Json(body) = json_body::<StatusBody>(request).await?;
    let status = Status::parse(&body.status)
        .filter(|s| *s != Status::Occurred)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown step `{}`: use responded, on_site, completed or false_alarm",
                body.status
            ))
        })?;
    match state
        .store
        .set_dispatch_status(
            &state.config,
            &id,
            &RescueStep {
                status,
                unit: &unit,
                actor: &c.name,
                role: c.role.as_str(),
                note: &body.note,
                now: now_ms(),
            },
        )
        .await?
    {
        Ok(d) => Ok(Json(json!(d))),
        Err(why) if why.is_gone() => Err(ApiError::Gone(why.to_string())),
        Err(why) => Err(ApiError::Conflict(why.to_string())),
    }
}
