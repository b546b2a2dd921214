//! The central HTTP API and pages: intake, the dashboard's data, acknowledgements, and the
//! rescue page's steps. Every data route checks a role token (`Authorization: Bearer`), hashed
//! with SHA-256 and compared with the hashes in the config; scopes: a rescue team sees only the
//! dispatches that called its unit, an equipment unit only its own equipment and alarms.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::config::{token_hash, CentralConfig, Role, TileCrs};
use super::dispatch::{self, Status};
use super::intake::{self, Rejection};
use super::store::{AlarmFilter, RescueStep, Store, StoreError};
use super::{geo, now_ms, web, CentralMetrics};

mod equipment;
mod trends;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<CentralConfig>,
    pub store: Store,
    pub metrics: Arc<CentralMetrics>,
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

use crate::auth::{bearer, request_token};

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
        .route("/api/v1/intake/incidents", post(intake_incident))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/ui", get(ui_settings))
        .route("/api/v1/map/config", get(map_config))
        .route("/api/v1/map/district", get(map_district))
        .route("/api/v1/equipment", get(equipment))
        .route("/api/v1/equipment/search", get(equipment::search))
        .route("/api/v1/equipment/{gateway}/{id}", get(equipment::detail))
        .route("/api/v1/alarms", get(alarms))
        .route("/api/v1/alarms/{id}/ack", post(ack))
        .route("/api/v1/alarms/{id}/timeline", get(timeline))
        .route("/api/v1/indicators", get(indicators))
        .route("/api/v1/indicators/trends", get(trends::trends))
        .route("/api/v1/dispatches", get(dispatches))
        .route("/api/v1/situations", get(situations))
        .route("/api/v1/dispatches/{id}", get(dispatch))
        .route("/api/v1/dispatches/{id}/status", post(dispatch_status))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/intake/rejected", get(rejected))
        .route("/api/v1/cylinders/{code}/fills", get(cylinder_fills))
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

/// `POST /api/v1/intake/incidents` with the gateway's token. 201 when stored, 200 for a
/// duplicate; 401, 413, 400, 422, 403 for the rejections, each counted.
async fn intake_incident(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let reject = |r: Rejection| {
        state
            .metrics
            .intake_rejected("http", r.reason(), &r.to_string());
        ApiError::Rejected(r)
    };
    let sender = bearer(&headers)
        .map(token_hash)
        .and_then(|hash| {
            state
                .config
                .gateways
                .iter()
                .find(|g| g.token_sha256 == hash)
        })
        .map(|g| g.id.clone())
        .ok_or_else(|| reject(Rejection::Unauthorized))?;
    let limit = state.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        reject(Rejection::Oversized {
            size: limit + 1,
            limit,
        })
    })?;
    let accepted = intake::decode(&state.config, &bytes, &sender, now_ms()).map_err(reject)?;
    let incident = &accepted.message;
    let started = std::time::Instant::now();
    let outcome = state
        .store
        .ingest_incident(&state.config, incident, &accepted.notes, "http", now_ms())
        .await?;
    for note in accepted.notes.iter().filter(|_| outcome.stored) {
        let what = incident.id.to_string();
        state.metrics.intake_noted("http", note.as_str(), &what);
    }
    if outcome.stored {
        state
            .metrics
            .intake_stored("http", started.elapsed().as_secs_f64());
    } else {
        state.metrics.intake_duplicate("http");
    }
    if let Some(d) = &outcome.dispatch {
        state.metrics.dispatch_created(d);
        state.wake.notify_one();
    }
    let status = if outcome.stored {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "id": incident.id, "stored": outcome.stored, "duplicate": !outcome.stored, "dispatch": outcome.dispatch }))).into_response())
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

async fn map_config(State(state): State<AppState>) -> Json<serde_json::Value> {
    let m = &state.config.map;
    let center = match m.tile_crs {
        TileCrs::Wgs84 => m.center,
        TileCrs::Gcj02 => {
            let (lat, lon) = geo::wgs84_to_gcj02(m.center[0], m.center[1]);
            [lat, lon]
        }
    };
    Json(json!({
        "tile_url": m.tile_url,
        "tile_subdomains": m.tile_subdomains,
        "label_url": m.label_url,
        "tile_crs": m.tile_crs,
        "tile_attribution": m.tile_attribution,
        "center": center,
        "zoom": m.zoom,
        "district": m.district_geojson.is_some(),
    }))
}

async fn map_district(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let path = state
        .config
        .map
        .district_geojson
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("district outline".into()))?;
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| ApiError::NotFound(format!("district outline ({e})")))?;
    let mut value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ApiError::BadRequest(format!("district outline is not GeoJSON: {e}")))?;
    if state.config.map.tile_crs == TileCrs::Gcj02 {
        geo::geojson_to_gcj02(&mut value);
    }
    Ok(Json(value))
}

/// Equipment with its state and, for drawing, its position in the basemap's system.
async fn equipment(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    let unit = match c.role {
        Role::Regulator => None,
        Role::EquipmentUnit => c.unit.as_deref(),
        _ => return Err(ApiError::Forbidden("list equipment")),
    };
    let today = chrono::Utc::now().date_naive();
    let rows = state.store.equipment_states(unit, today).await?;
    let out: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|e| {
            let mut v = serde_json::to_value(&e).expect("equipment serializes");
            v["display"] = json!(display(&state.config, e.lat.zip(e.lon)));
            v
        })
        .collect();
    Ok(Json(json!(out)))
}

/// A WGS-84 position in the basemap's system, for drawing. A coordinate off the globe is not
/// drawn: one such marker would zoom the map out to the whole world.
fn display(config: &CentralConfig, position: Option<(f64, f64)>) -> Option<[f64; 2]> {
    position
        .filter(|(lat, lon)| geo::is_wgs84(*lat, *lon))
        .map(|(lat, lon)| match config.map.tile_crs {
            TileCrs::Gcj02 => {
                let (a, b) = geo::wgs84_to_gcj02(lat, lon);
                [a, b]
            }
            TileCrs::Wgs84 => [lat, lon],
        })
}

/// `GET /api/v1/alarms?kind=&severity=&state=&using_unit=&area=&limit=&before=`: one page of
/// the matching alarms, newest first (store/alarms.rs); a `Link: <…>; rel="next"` header
/// carries the URL of the next page when more match.
async fn alarms(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(filter): Query<AlarmFilter>,
) -> Result<Response, ApiError> {
    let c = caller(&state.config, &headers)?;
    let unit = match c.role {
        Role::Regulator => None,
        Role::EquipmentUnit => c.unit.as_deref(),
        _ => return Err(ApiError::Forbidden("list alarms")),
    };
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

async fn ack(
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
    let allowed = c.role == Role::Regulator
        || (c.role == Role::EquipmentUnit && c.unit.as_deref() == Some(unit.as_str()));
    if !allowed {
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

async fn timeline(
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
    if !(c.role == Role::Regulator
        || (c.role == Role::EquipmentUnit && c.unit.as_deref() == Some(unit.as_str())))
    {
        return Err(ApiError::Forbidden("read this alarm"));
    }
    Ok(Json(json!(state.store.timeline(&id).await?)))
}

async fn indicators(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    if c.role != Role::Regulator {
        return Err(ApiError::Forbidden("read indicators"));
    }
    Ok(Json(state.store.indicators(&state.config, now_ms()).await?))
}

/// `GET /api/v1/cylinders/{code}/fills`: a cylinder's fill records, newest first (regulators).
async fn cylinder_fills(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    if c.role != Role::Regulator {
        return Err(ApiError::Forbidden("read fill records"));
    }
    Ok(Json(json!(
        state.store.fills_of_cylinder(&code, 500).await?
    )))
}

async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    if c.role != Role::Regulator {
        return Err(ApiError::Forbidden("read the audit log"));
    }
    Ok(Json(json!(state.store.audit(500).await?)))
}

/// `GET /api/v1/intake/rejected`: the messages intake refused, newest first (regulators).
async fn rejected(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    if c.role != Role::Regulator {
        return Err(ApiError::Forbidden("read refused messages"));
    }
    Ok(Json(json!(state.store.rejected(500).await?)))
}

async fn dispatches(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = caller(&state.config, &headers)?;
    let unit = match c.role {
        Role::Regulator => None,
        Role::RescueTeam => c.unit.as_deref(),
        _ => return Err(ApiError::Forbidden("list dispatches")),
    };
    let list: Vec<serde_json::Value> = (state.store.dispatches(unit).await?)
        .iter()
        .map(|d| {
            let mut v = json!(d);
            v["tier"] = tier(&state.config, d).into();
            v
        })
        .collect();
    Ok(Json(json!(list)))
}

/// `GET /api/v1/situations`: regional alarm floods (open, and ended within the last hour), each
/// with its dispatches in rescue order (`store/situations.rs`). Regulators only.
async fn situations(
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
struct LinkToken {
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
async fn dispatch(
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
    facts: &super::store::RescueFacts,
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
async fn dispatch_status(
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

/// Parses a JSON body after the caller was authorised, so an unauthorised request gets 401
/// whatever it sends; the rejections are axum's (415 without a JSON content type, 400, 422).
pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
    request: Request,
) -> Result<Json<T>, ApiError> {
    Json::<T>::from_request(request, &())
        .await
        .map_err(|rejection| ApiError::Body(rejection.status(), rejection.body_text()))
}
