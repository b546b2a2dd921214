//! The central HTTP API and pages: intake, the dashboard's data, acknowledgements, and the
//! rescue page's steps. Every data route checks a role token (`Authorization: Bearer`), hashed
//! with SHA-256 and compared with the hashes in the config; scopes: a rescue team sees only the
//! dispatches that called its unit, an equipment unit only its own equipment and alarms.
//! This file holds the router, the state, the error, the caller and serving; the routes of each
//! resource are in `api/` (`intake`, `map`, `equipment`, `alarms`, `dispatches`, `reports`,
//! `trends`).

mod alarms;
mod dispatches;
mod equipment;
mod intake;
mod map;
mod reports;
mod trends;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::config::{CentralConfig, Role};
use super::intake::Rejection;
use super::store::{Store, StoreError};
use super::{web, CentralMetrics};
use crate::auth::token_hash;

#[derive(Clone)]
pub struct AppState {
    /// Tokens, limits, the map and dispatch settings the handlers answer by.
    pub config: Arc<CentralConfig>,
    /// Where every handler reads and writes.
    pub store: Store,
    /// HTTP intake counts what it stores, repairs and refuses here, as MQTT intake does.
    pub metrics: Arc<CentralMetrics>,
    /// Whether MQTT intake is connected now, for `/readyz` (true when there is no `[mqtt]`).
    pub mqtt_connected: Arc<AtomicBool>,
    /// Wakes the notifier when an HTTP incident created a dispatch.
    pub wake: Arc<Notify>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Rejected(#[from] Rejection),
    #[error("missing or unknown token")]
    Unauthorized,
    #[error("this token may not {0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Gone(String),
    #[error("{1}")]
    Body(StatusCode, String),
    #[error("the store is unavailable; try again")]
    Store(#[from] StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, reason) = match &self {
            ApiError::Rejected(r) => (r.status(), r.reason()),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Gone(_) => (StatusCode::GONE, "gone"),
            ApiError::Body(status, _) => (*status, "bad_body"),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "store error in API");
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
        };
        crate::http_error::error_response(status, reason, self)
    }
}

/// Who is calling, from the bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    pub name: String,
    pub unit: Option<String>,
}

use crate::auth::request_token;

impl Caller {
    /// The using unit whose equipment and alarms this caller sees: every one (`None`) for a
    /// regulator, its own for an equipment unit; any other role may not `what`.
    fn equipment_scope(&self, what: &'static str) -> Result<Option<&str>, ApiError> {
        match self.role {
            Role::Regulator => Ok(None),
            Role::EquipmentUnit => Ok(self.unit.as_deref()),
            _ => Err(ApiError::Forbidden(what)),
        }
    }

    /// Whether this caller sees the equipment and alarms of `using_unit`.
    fn sees_unit(&self, using_unit: &str) -> bool {
        self.role == Role::Regulator
            || (self.role == Role::EquipmentUnit && self.unit.as_deref() == Some(using_unit))
    }
}

/// The caller, when it is a regulator; any other role may not `what`.
fn regulator(
    config: &CentralConfig,
    headers: &HeaderMap,
    what: &'static str,
) -> Result<Caller, ApiError> {
    let c = caller(config, headers)?;
    if c.role != Role::Regulator {
        return Err(ApiError::Forbidden(what));
    }
    Ok(c)
}

/// The caller of a bearer header, or of the session cookie the pages sign in with.
pub(super) fn caller(config: &CentralConfig, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let hash = token_hash(&request_token(headers).ok_or(ApiError::Unauthorized)?);
    config
        .tokens
        .iter()
        .find(|t| t.sha256 == hash)
        .map(|t| Caller {
            role: t.role,
            name: t.name.clone(),
            unit: t.unit.clone(),
        })
        .ok_or(ApiError::Unauthorized)
}

pub fn router(state: AppState) -> Router {
    let router = Router::new()
        .route(
            "/",
            get(|s: State<AppState>, uri: Uri| page(s, uri, web::MAP_HTML)),
        )
        .route(
            "/alarms",
            get(|s: State<AppState>, uri: Uri| page(s, uri, web::ALARMS_HTML)),
        )
        .route(
            "/indicators",
            get(|s: State<AppState>, uri: Uri| page(s, uri, web::INDICATORS_HTML)),
        )
        .route(
            "/board",
            get(|s: State<AppState>, uri: Uri| page(s, uri, web::BOARD_HTML)),
        )
        .route(
            "/search",
            get(|s: State<AppState>, uri: Uri| page(s, uri, web::SEARCH_HTML)),
        )
        .route(
            "/unit",
            get(|s: State<AppState>, uri: Uri| page(s, uri, web::UNIT_HTML)),
        )
        .route(
            "/equipment/{gateway}/{id}",
            get(|s: State<AppState>, uri: Uri| page(s, uri, web::EQUIPMENT_HTML)),
        )
        .route(
            "/rescue/{id}",
            get(
                |s: State<AppState>, uri: Uri, Path(id): Path<String>| async move {
                    web::session::page(&s, &uri, web::RESCUE_HTML, Some(&id)).await
                },
            ),
        )
        .route("/signout", post(web::session::sign_out))
        .route("/assets/{*file}", get(asset))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/intake/incidents", post(intake::intake_incident))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/ui", get(ui_settings))
        .route("/api/v1/map/config", get(map::map_config))
        .route("/api/v1/map/district", get(map::map_district))
        .route("/api/v1/map/markers", get(map::markers))
        .route("/api/v1/equipment", get(equipment::list))
        .route("/api/v1/equipment/counts", get(equipment::counts))
        .route("/api/v1/equipment/search", get(equipment::search))
        .route("/api/v1/equipment/{gateway}/{id}", get(equipment::detail))
        .route("/api/v1/alarms", get(alarms::alarms))
        .route("/api/v1/alarms/{id}/ack", post(alarms::ack))
        .route("/api/v1/alarms/{id}/timeline", get(alarms::timeline))
        .route("/api/v1/indicators", get(reports::indicators))
        .route("/api/v1/indicators/trends", get(trends::trends))
        .route("/api/v1/dispatches", get(dispatches::dispatches))
        .route("/api/v1/situations", get(dispatches::situations))
        .route("/api/v1/dispatches/{id}", get(dispatches::dispatch))
        .route(
            "/api/v1/dispatches/{id}/status",
            post(dispatches::dispatch_status),
        )
        .route("/api/v1/audit", get(reports::audit))
        .route("/api/v1/intake/rejected", get(intake::rejected))
        .route(
            "/api/v1/cylinders/{code}/fills",
            get(reports::cylinder_fills),
        )
        .merge(super::regulator_api::routes());
    let limits = state.config.http_limits.clone();
    let rejected = state.metrics.http_rejected.clone();
    let config = &state.config;
    let known_tokens = (config.tokens.iter().map(|t| t.sha256.clone()))
        .chain(config.gateways.iter().map(|g| g.token_sha256.clone()))
        .collect();
    let headers = state.config.clone();
    let limited =
        crate::http_limits::apply(router.with_state(state), &limits, known_tokens, rejected);
    web::headers::apply(limited, &headers)
}

/// A page, or the exchange of a `?token=` sign-in link for the session cookie.
async fn page(State(state): State<AppState>, uri: Uri, html: &'static str) -> Response {
    web::session::page(&state, &uri, html, None).await
}

/// Serves the router until `stop` fires; for tests on a real socket.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let https = state.config.https.clone();
    serve_router(listener, router(state), https.as_ref(), stop).await
}

/// Serves `router` on `listener` until `stop` fires: HTTPS when `https` is set, plain HTTP
/// otherwise. Handlers see the peer address (`ConnectInfo`), which the rate limit uses for
/// callers without a token.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    https: Option<&crate::tls::Https>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let Some(https) = https else {
        return axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    };
    let handle = axum_server::Handle::new();
    let on_stop = handle.clone();
    tokio::spawn(async move {
        stop.cancelled().await;
        on_stop.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
    });
    let config = axum_server::tls_rustls::RustlsConfig::from_config(https.server_config.clone());
    axum_server::from_tcp_rustls(listener.into_std()?, config)
        .handle(handle)
        .serve(app)
        .await
}

async fn asset(Path(file): Path<String>) -> Response {
    match web::asset(&file) {
        Some((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store.event_count().await.is_ok();
    let mqtt = state.mqtt_connected.load(Ordering::Relaxed);
    let ready = store && mqtt;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ready": ready, "checks": { "store": store, "mqtt": mqtt } })),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    crate::metrics::openmetrics_response(state.metrics.render())
}

async fn whoami(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    Ok(Json(
        json!({ "role": c.role.as_str(), "name": c.name, "unit": c.unit }),
    ))
}

/// `GET /api/v1/ui`: what every page needs before it draws, without a token (the rescue page
/// opens with a link): the time zone central shows times in, and the response and arrival
/// deadlines the dispatch board counts down.
async fn ui_settings(State(state): State<AppState>) -> Json<serde_json::Value> {
    let d = &state.config.dispatch;
    Json(json!({
        "time_zone": state.config.time_zone,
        "respond_within_s": d.respond_within.as_secs_f64(),
        "arrive_within_s": d.arrive_within.as_secs_f64(),
    }))
}

/// Parses a JSON body after the caller was authorised, so an unauthorised request gets 401
/// whatever it sends; the rejections are axum's (415 without a JSON content type, 400, 422).
pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
    request: Request,
) -> Result<Json<T>, ApiError> {
    Json::<T>::from_request(request, &())
        .await
        .map_err(|rejection| ApiError::Body(rejection.status(), rejection.body_text()))
}
