//! `GET /api/v1/indicators/trends?weeks=12&offset_min=480` (regulators): the weekly series and
//! the breakdowns by area, using unit and maintenance unit (`store/trends.rs`). The page passes
//! the UTC offset of central's time zone, so weeks start on its Monday.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{caller, ApiError, AppState};
use crate::central::config::Role;
use crate::central::now_ms;
use crate::central::store::Trends;

/// The most weeks one request may ask for (two years).
const MAX_WEEKS: usize = 104;

#[derive(Deserialize)]
pub(super) struct TrendQuery {
    weeks: Option<usize>,
    /// Minutes east of UTC; China Standard Time (480) when not given.
    offset_min: Option<i64>,
}

pub(super) async fn trends(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TrendQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    if c.role != Role::Regulator {
        return Err(ApiError::Forbidden("read indicators"));
    }
    let weeks = q.weeks.unwrap_or(12);
    if !(1..=MAX_WEEKS).contains(&weeks) {
        return Err(ApiError::BadRequest(format!(
            "weeks must be between 1 and {MAX_WEEKS}, not {weeks}"
        )));
    }
    let offset_min = q.offset_min.unwrap_or(480);
    if offset_min.abs() > 14 * 60 {
        return Err(ApiError::BadRequest(format!(
            "offset_min must be within ±840, not {offset_min}"
        )));
    }
    let now = now_ms();
    let offset = offset_min * 60_000;
    // A day more than the weeks asked for: the first week starts on a Monday before that.
    let from = now - (weeks as i64 * 7 + 8) * 24 * 3600 * 1000;
    let input = state.store.trend_input(from).await?;
    let d = &state.config.dispatch;
    let trends = Trends::compute(
        &input,
        now,
        weeks,
        offset,
        d.respond_within.as_millis() as i64,
        d.arrive_within.as_millis() as i64,
    );
    Ok(Json(json!(trends)))
}
