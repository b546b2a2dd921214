//! The regulator's tools over HTTP: the risk ranking (`risk.rs`) and the maintenance-unit
//! scorecards (`scorecard.rs`), as JSON, as CSV (`?format=csv`), and their pages; the upward
//! exchange's status (`exchange.rs`, `/exchange`).
//! Scopes: a regulator sees everything; an equipment unit sees the ranking of its own equipment;
//! a rescue team sees its own unit's scorecard.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::api::{caller, ApiError, AppState};
use super::config::Role;
use super::scorecard::{self, Period};
use super::{csv, now_ms, risk, store, web};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/risk",
            get(|s: State<AppState>, uri: Uri| async move {
                web::session::page(&s, &uri, web::RISK_HTML, None).await
            }),
        )
        .route(
            "/scorecards",
            get(|s: State<AppState>, uri: Uri| async move {
                web::session::page(&s, &uri, web::SCORECARDS_HTML, None).await
            }),
        )
        .route(
            "/scorecards/report",
            get(|s: State<AppState>, uri: Uri| async move {
                web::session::page(&s, &uri, web::SCORECARD_REPORT_HTML, None).await
            }),
        )
        .route(
            "/exchange",
            get(|s: State<AppState>, uri: Uri| async move {
                web::session::page(&s, &uri, web::EXCHANGE_HTML, None).await
            }),
        )
        .route("/api/v1/risk", get(risk_list))
        .route("/api/v1/scorecards", get(scorecards))
        .route("/api/v1/exchange/status", get(exchange_status))
        .merge(super::hazards_api::routes())
        .merge(super::cylinders_api::routes())
}

#[derive(Debug, Default, Deserialize)]
struct RiskQuery {
    /// A part of the address, ignoring case.
    area: Option<String>,
    kind: Option<String>,
    /// `csv` for a download; JSON otherwise.
    format: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|v| !v.is_empty())
}

/// `GET /api/v1/risk?area=&kind=&format=csv`: the ranked equipment with each score's factors,
/// and the weights in force.
async fn risk_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RiskQuery>,
) -> Result<Response, ApiError> {
    let c = caller(&state.config, &headers)?;
    let unit = match c.role {
        Role::Regulator => None,
        Role::EquipmentUnit => c.unit.clone(),
        _ => return Err(ApiError::Forbidden("read the risk ranking")),
    };
    let now = now_ms();
    let ranked: Vec<risk::Ranked> = risk::ranking(&state.store, &state.config, now)
        .await?
        .into_iter()
        .filter(|r| risk::matches(r, given(&q.area), given(&q.kind)))
        .filter(|r| unit.as_ref().is_none_or(|u| &r.using_unit == u))
        .collect();
    if q.format.as_deref() == Some("csv") {
        let rows: Vec<Vec<String>> = ranked
            .iter()
            .map(|r| {
                let reasons: Vec<String> = r
                    .factors
                    .iter()
                    .map(|f| format!("{} {} ({})", f.factor, f.value, csv::number(Some(f.points))))
                    .collect();
                vec![
                    r.rank.to_string(),
                    csv::number(Some(r.score)),
                    r.gateway.clone(),
                    r.id.clone(),
                    r.name.clone(),
                    r.kind.clone(),
                    r.using_unit.clone(),
                    r.maintenance_unit.clone().unwrap_or_default(),
                    r.address.clone(),
                    reasons.join("; "),
                ]
            })
            .collect();
        let header = [
            "rank",
            "score",
            "gateway",
            "equipment",
            "name",
            "kind",
            "using_unit",
            "maintenance_unit",
            "address",
            "factors",
        ];
        return Ok(csv::response(
            "risk-ranking.csv",
            csv::to_csv(&header, &rows),
        ));
    }
    Ok(Json(json!({
        "generated": store::rfc3339(now),
        "settings": state.config.risk,
        "equipment": ranked,
    }))
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
struct ScorecardQuery {
    /// `YYYY-MM`; the current month when absent.
    month: Option<String>,
    format: Option<String>,
}

/// `GET /api/v1/scorecards?month=YYYY-MM&format=csv`: every maintenance unit's scorecard of
/// the month, best grade first, with the thresholds in force.
async fn scorecards(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ScorecardQuery>,
) -> Result<Response, ApiError> {
    let c = caller(&state.config, &headers)?;
    let unit = match c.role {
        Role::Regulator => None,
        Role::RescueTeam => c.unit.clone(),
        _ => return Err(ApiError::Forbidden("read maintenance-unit scorecards")),
    };
    let zone = state.config.zone();
    let now = now_ms();
    let period = match given(&q.month) {
        None => Period::month_of(now, zone),
        Some(m) => Period::month(m, zone)
            .ok_or_else(|| ApiError::BadRequest(format!("month `{m}` is not YYYY-MM")))?,
    };
    let cards: Vec<scorecard::Scorecard> =
        scorecard::for_period(&state.store, &state.config, &period, now)
            .await?
            .into_iter()
            .filter(|card| unit.as_ref().is_none_or(|u| &card.unit == u))
            .collect();
    if q.format.as_deref() == Some("csv") {
        let rows: Vec<Vec<String>> = cards.iter().map(|k| csv_row(&period, k)).collect();
        let header = [
            "period",
            "unit",
            "grade",
            "elevators",
            "insured",
            "insurance_rate",
            "trapped",
            "trapped_per_100",
            "dispatches",
            "response_rate",
            "arrival_rate",
            "response_median_s",
            "response_p90_s",
            "arrival_median_s",
            "arrival_p90_s",
            "second_level",
            "recurring_faults",
        ];
        let name = format!("scorecards-{}.csv", period.label);
        return Ok(csv::response(&name, csv::to_csv(&header, &rows)));
    }
    Ok(Json(json!({
        "period": period,
        "from": store::rfc3339(period.from_ms),
        "to": store::rfc3339(period.to_ms),
        "generated": store::rfc3339(now),
        "settings": state.config.scorecard,
        "respond_within_s": state.config.dispatch.respond_within.as_secs_f64(),
        "arrive_within_s": state.config.dispatch.arrive_within.as_secs_f64(),
        "units": cards,
    }))
    .into_response())
}

fn csv_row(period: &Period, k: &scorecard::Scorecard) -> Vec<String> {
    vec![
        period.label.clone(),
        k.unit.clone(),
        k.grade.to_owned(),
        k.elevators.to_string(),
        k.insured.to_string(),
        csv::number(k.insurance_rate),
        k.trapped.to_string(),
        csv::number(k.trapped_per_100),
        k.dispatches.to_string(),
        csv::number(k.response_rate),
        csv::number(k.arrival_rate),
        csv::number(k.response_median_s),
        csv::number(k.response_p90_s),
        csv::number(k.arrival_median_s),
        csv::number(k.arrival_p90_s),
        k.second_level.to_string(),
        k.recurring_faults.to_string(),
    ]
}

/// `GET /api/v1/exchange/status`: the upward exchange's queue (regulators).
async fn exchange_status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    if c.role != Role::Regulator {
        return Err(ApiError::Forbidden("read the exchange status"));
    }
    Ok(Json(json!({
        "settings": state.config.exchange,
        "queue": state.store.exchange_status().await?,
    })))
}
