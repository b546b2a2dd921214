//! The alarm list (filtered and paged in the store), an alarm's acknowledgement and its
//! timeline; an equipment unit sees only its own equipment's alarms.

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{caller, json_body, ApiError, AppState, Caller};
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
    let limit = filter.limit.map(|l| l.to_string());
    Ok(with_next_link(
        Json(json!(page.alarms)).into_response(),
        "/api/v1/alarms",
        &[
            ("kind", &filter.kind),
            ("severity", &filter.severity),
            ("state", &filter.state),
            ("using_unit", &filter.using_unit),
            ("area", &filter.area),
            ("limit", &limit),
        ],
        ("before", page.next),
    ))
}

/// `response` with, when another page follows, a `Link: <path?…&before=next>; rel="next"`
/// header (RFC 8288) repeating the request's given query values; the cursor is passed as
/// `before` or `after` as the list takes it.
pub(super) fn with_next_link(
    mut response: Response,
    path: &str,
    query: &[(&str, &Option<String>)],
    (cursor_param, next): (&str, Option<String>),
) -> Response {
    let Some(next) = next else { return response };
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in query {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            serializer.append_pair(key, v);
        }
    }
    serializer.append_pair(cursor_param, &next);
    let link = format!("<{path}?{}>; rel=\"next\"", serializer.finish());
    if let Ok(value) = header::HeaderValue::from_str(&link) {
        response.headers_mut().insert(header::LINK, value);
    }
    response
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
    check_alarm(&state, &c, &id, "acknowledge this alarm").await?;
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
    check_alarm(&state, &c, &id, "read this alarm").await?;
    Ok(Json(json!(state.store.timeline(&id).await?)))
}

/// Whether alarm `id` is one `c` sees (a regulator every one, an equipment unit its own);
/// 404 when there is no such alarm, 403 (may not `what`) when it is another unit's.
async fn check_alarm(
    state: &AppState,
    c: &Caller,
    id: &str,
    what: &'static str,
) -> Result<(), ApiError> {
    let unit = state
        .store
        .alarm_unit(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("alarm {id}")))?;
    if !c.sees_unit(&unit) {
        return Err(ApiError::Forbidden(what));
    }
    Ok(())
}
