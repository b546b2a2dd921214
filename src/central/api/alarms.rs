//! The alarm list (filtered and paged in the store), an alarm's acknowledgement and its
//! timeline; an equipment unit sees only its own equipment's alarms.

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{caller, json_body, ApiError, AppState};
use crate::central::now_ms;
use crate::central::store::{AlarmFilter, StoreError};

/// `GET /api/v1/alarms?kind=&severity=&state=&using_unit=&area=&limit=&before=`: one page of
/// the matching alarms, newest first (store/alarms.rs); a `Link: <…>; rel="next"` header
/// carries the URL of the next page when more match.
pub(super) async fn alarms(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(filter): Query<AlarmFilter>,
) -> Result<Response, ApiError> {
    let c = caller(&state.config, &headers)?;
    let unit = c.equipment_scope("list alarms")?;
    let page = match state.store.alarm_page(&filter, unit).await {
        Err(StoreError::BadQuery(why)) => return Err(ApiError::BadRequest(why)),
        other => other?,
    };
    let mut response = Json(json!(page.alarms)).into_response();
    if let Some(next) = page.next {
        // The same query with the cursor: RFC 8288 `Link: <…>; rel="next"`.
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("kind", &filter.kind),
            ("severity", &filter.severity),
            ("state", &filter.state),
            ("using_unit", &filter.using_unit),
            ("area", &filter.area),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                query.append_pair(key, v);
            }
        }
        if let Some(limit) = filter.limit {
            query.append_pair("limit", &limit.to_string());
        }
        query.append_pair("before", &next);
        let link = format!("</api/v1/alarms?{}>; rel=\"next\"", query.finish());
        if let Ok(value) = header::HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

#[derive(Deserialize)]
struct AckBody {
    #[serde(default)]
    comment: String,
}

pub(super) async fn ack(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    let Json(body) = json_body::<AckBody>(request).await?;
    let unit = state
        .store
        .alarm_unit(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("alarm {id}")))?;
    if !c.sees_unit(&unit) {
        return Err(ApiError::Forbidden("acknowledge this alarm"));
    }
    if !state
        .store
        .ack_alarm(&id, &c.name, c.role.as_str(), &body.comment, now_ms())
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "alarm {id} is already acknowledged"
        )));
    }
    Ok(Json(json!({ "acked": true, "by": c.name })))
}

pub(super) async fn timeline(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    let unit = state
        .store
        .alarm_unit(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("alarm {id}")))?;
    if !c.sees_unit(&unit) {
        return Err(ApiError::Forbidden("read this alarm"));
    }
    Ok(Json(json!(state.store.timeline(&id).await?)))
}
