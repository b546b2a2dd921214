//! The gateway's HTTP API: health, readiness, Prometheus metrics, and read-only views of the
//! registry, the active alarms and the latest readings.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::{Equipment, Reading};
use crate::rules::ActiveAlarm;

/// What the pipeline knows now, shared with the API.
#[derive(Default)]
pub struct Live {
    /// equipment → metric → latest reading.
    pub latest: RwLock<HashMap<String, BTreeMap<String, Reading>>>,
    pub alarms: RwLock<Vec<ActiveAlarm>>,
    pub site_broker: Arc<AtomicBool>,
    pub central_broker: Arc<AtomicBool>,
    /// One flag per influx uplink: false after a failed write, true after a good one.
    pub influx: Vec<(String, Arc<AtomicBool>)>,
}

impl Live {
    pub fn new(influx_names: impl IntoIterator<Item = String>) -> Self {
        Live {
            influx: influx_names
                .into_iter()
                .map(|n| (n, Arc::new(AtomicBool::new(true))))
                .collect(),
            ..Live::default()
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub live: Arc<Live>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unknown equipment `{0}`")]
    UnknownEquipment(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::UnknownEquipment(_) => StatusCode::NOT_FOUND,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/equipment", get(equipment))
        .route("/api/v1/alarms", get(alarms))
        .route("/api/v1/readings/latest", get(latest))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> Response {
    let mut checks = serde_json::Map::new();
    if state.config.mqtt.is_some() && !state.config.mqtt_mappings.is_empty() {
        checks.insert(
            "site_broker".into(),
            state.live.site_broker.load(Ordering::Relaxed).into(),
        );
    }
    if state.config.central.is_some() {
        checks.insert(
            "central_broker".into(),
            state.live.central_broker.load(Ordering::Relaxed).into(),
        );
    }
    for (name, healthy) in &state.live.influx {
        checks.insert(
            format!("influx:{name}"),
            healthy.load(Ordering::Relaxed).into(),
        );
    }
    let ready = checks.values().all(|v| v.as_bool() == Some(true));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready, "checks": checks }))).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn equipment(State(state): State<AppState>) -> Json<Vec<Equipment>> {
    Json(state.config.equipment.clone())
}

async fn alarms(State(state): State<AppState>) -> Json<Vec<ActiveAlarm>> {
    Json(state.live.alarms.read().expect("alarms lock").clone())
}

#[derive(Deserialize)]
struct LatestQuery {
    equipment: String,
}

async fn latest(
    State(state): State<AppState>,
    Query(query): Query<LatestQuery>,
) -> Result<Json<Vec<Reading>>, ApiError> {
    if state.config.equipment(&query.equipment).is_none() {
        return Err(ApiError::UnknownEquipment(query.equipment));
    }
    let latest = state.live.latest.read().expect("latest lock");
    let readings = latest
        .get(&query.equipment)
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    Ok(Json(readings))
}
