//! The regulator's tools over HTTP: the risk ranking (`risk.rs`) and the maintenance-unit
//! scorecards (`scorecard.rs`), as JSON, as CSV (`?format=csv`), and their pages; the upward
//! exchange's status (`exchange.rs`, `/exchange`) and the re-queue of a record it refused.
//! Scopes: a regulator sees everything; an equipment unit sees the ranking of its own equipment;
//! a rescue team sees its own unit's scorecard.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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
        .route("/api/v1/exchange/requeue", post(exchange_requeue))
        .merge(super::hazards_api::routes())
        .merge(super::cylinders_api::routes())
}

#[derive(Debug, Default, Deserialize)]
struct RiskQuery {
    /// A part of the address, ignoring case.
    area: Option<String>,
    kind: Option<String>,
    /// `csv` for a download of every row; JSON otherwise, a page at a time.
    format: Option<String>,
    /// Rows skipped before the page (0 when absent).
    offset: Option<usize>,
    /// Rows in the page: [`RISK_PAGE`] when absent, at most [`RISK_MAX_PAGE`].
    limit: Option<usize>,
}

/// Rows of the risk ranking per page when the request does not say.
pub const RISK_PAGE: usize = 100;
/// The most rows one page of the risk ranking holds.
pub const RISK_MAX_PAGE: usize = 1000;

/// One report (a risk ranking or a month's scorecards) is computed at a time: several
/// regulators opening them at once wait for each other rather than multiply central's memory.
static REPORTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|v| !v.is_empty())
}

/// `GET /api/v1/risk?area=&kind=&offset=&limit=&format=csv`: a page of the ranked equipment
/// with each score's factors, how many the selection holds, and the weights in force; as CSV,
/// every row of the selection. Ranks count within the selection.
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
    let csv = q.format.as_deref() == Some("csv");
    let limit = match q.limit {
        _ if csv => usize::MAX,
        None => RISK_PAGE,
        Some(n @ 1..=RISK_MAX_PAGE) => n,
        Some(n) => {
            return Err(ApiError::BadRequest(format!(
                "limit {n} is not between 1 and {RISK_MAX_PAGE}"
            )))
        }
    };
    let selection = risk::Selection {
        area: given(&q.area),
        kind: given(&q.kind),
        using_unit: unit.as_deref(),
        offset: if csv { 0 } else { q.offset.unwrap_or(0) },
        limit,
    };
    let now = now_ms();
    let _turn = REPORTS
        .acquire()
        .await
        .expect("the semaphore is never closed");
    if csv {
        let ranking =
            risk::ranking(&state.store, &state.config, now, &selection, csv_cells).await?;
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
        let lines = ranking
            .rows
            .into_iter()
            .map(|(rank, cells)| format!("{rank},{cells}"));
        return Ok(csv::streamed("risk-ranking.csv", &header, lines));
    }
    let ranking = risk::ranking(&state.store, &state.config, now, &selection, |r| r).await?;
    let rows: Vec<risk::Ranked> = ranking
        .rows
        .into_iter()
        .map(|(rank, r)| risk::Ranked { rank, ..r })
        .collect();
    Ok(Json(json!({
        "generated": store::rfc3339(now),
        "settings": state.config.risk,
        "total": ranking.total,
        "offset": selection.offset,
        "limit": limit,
        "equipment": rows,
    }))
    .into_response())
}

/// A ranked row's CSV cells after its rank, as one line.
fn csv_cells(r: risk::Ranked) -> String {
    let reasons: Vec<String> = r
        .factors
        .iter()
        .map(|f| format!("{} {} ({})", f.factor, f.value, csv::number(Some(f.points))))
        .collect();
    csv::line(&[
        csv::number(Some(r.score)),
        r.gateway,
        r.id,
        r.name,
        r.kind,
        r.using_unit,
        r.maintenance_unit.unwrap_or_default(),
        r.address,
        reasons.join("; "),
    ])
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
    let _turn = REPORTS
        .acquire()
        .await
        .expect("the semaphore is never closed");
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

#[derive(Debug, Deserialize)]
struct Requeue {
    key: String,
}

/// `POST /api/v1/exchange/requeue {"key"}`: puts a record the receiver refused back in its
/// place in the queue (regulators; audited `exchange.requeue`). 404 when the key names no
/// refused record.
async fn exchange_requeue(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(r): Json<Requeue>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    if c.role != Role::Regulator {
        return Err(ApiError::Forbidden("re-queue an exchange record"));
    }
    let cleared = state
        .store
        .exchange_requeue(&r.key, &c.name, c.role.as_str(), now_ms())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("refused exchange record {}", r.key)))?;
    tracing::info!(key = %r.key, by = %c.name, "refused exchange record re-queued");
    Ok(Json(json!({ "requeued": r.key, "refusal": cleared })))
}
