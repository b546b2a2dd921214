//! The gateway's HTTP API: health, readiness, Prometheus metrics, read-only views of the
//! registry, the alarms, their history, the fills, the latest readings and what central
//! refused, and the operator's alarm actions (acknowledge, shelve, unshelve, out of service)
//! with who and a comment, and the config reload (`POST /api/v1/reload`), also with who.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::{AlarmEvent, Equipment, FillRecord, Reading};
use crate::rules::{ActiveAlarm, LifecycleError};
use tokio::sync::{mpsc, oneshot};

/// How many fills the live view keeps for the API, and the most events one reply returns.
pub const HISTORY_LEN: usize = 10_000;

/// What the pipeline knows now, shared with the API.
#[derive(Default)]
pub struct Live {
    /// equipment → metric → latest reading.
    pub latest: RwLock<HashMap<String, BTreeMap<String, Reading>>>,
    pub alarms: RwLock<Vec<ActiveAlarm>>,
    /// The last `[rules.lifecycle] history` events of the incident stream, oldest first.
    pub history: RwLock<VecDeque<AlarmEvent>>,
    /// The last [`HISTORY_LEN`] fill records, oldest first.
    pub fills: RwLock<VecDeque<FillRecord>>,
    /// Where operator actions go: the pipeline, which owns the rule engine, installs it.
    pub alarm_commands: Mutex<Option<mpsc::Sender<AlarmCommand>>>,
    /// Where reload requests go: the task that owns the gateway (`gateway::run`) installs it.
    pub reload: Mutex<Option<mpsc::Sender<ReloadRequest>>>,
    pub site_broker: Arc<AtomicBool>,
    pub central_broker: Arc<AtomicBool>,
    /// What central refused: the `gateway.central_rejected` alarm (`uplink::central`).
    pub central_rejections: Arc<crate::uplink::central::CentralRejections>,
    /// One flag per influx uplink: false after a failed write, true after a good one.
    pub influx: Vec<(String, Arc<AtomicBool>)>,
    /// The outbox lanes, for their backlog and the age of their oldest entry.
    pub outbox: RwLock<Vec<Arc<dyn crate::outbox::LaneStatus>>>,
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

/// An operator action on one alarm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AlarmAction {
    Acknowledge,
    Shelve { duration: Duration },
    Unshelve,
    OutOfService,
    InService,
}

/// An operator action sent to the pipeline, with the time it was asked and where to answer.
#[derive(Debug)]
pub struct AlarmCommand {
    pub equipment: String,
    pub rule: String,
    pub action: AlarmAction,
    pub user: String,
    pub comment: Option<String>,
    pub time: chrono::DateTime<chrono::Utc>,
    /// The events the action put on the incident stream, or why it was refused.
    pub reply: oneshot::Sender<Result<Vec<AlarmEvent>, LifecycleError>>,
}

/// A request to read the config file again, answered with the outcome.
pub type ReloadRequest = oneshot::Sender<ReloadOutcome>;

/// What a reload answers: applied, or refused with every problem.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReloadOutcome {
    pub applied: bool,
    /// One line: what runs now, or that the running config stays.
    pub message: String,
    /// Why it was refused: each problem as `seguard check` prints it (file:line:column), or a
    /// change that needs a restart.
    pub problems: Vec<String>,
}

#[derive(Clone)]
pub struct AppState {
    /// The running config; a reload replaces it.
    pub config: Arc<RwLock<Arc<Config>>>,
    pub metrics: Arc<Metrics>,
    pub live: Arc<Live>,
}

impl AppState {
    fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unknown equipment `{0}`")]
    UnknownEquipment(String),
    #[error("{0}")]
    Lifecycle(#[from] LifecycleError),
    #[error("{0}")]
    BadRequest(String),
    #[error("the rule engine is not running")]
    EngineDown,
    #[error("this gateway takes no reloads now (it is stopping, or runs without a config file)")]
    NoReload,
    #[error("missing or unknown API token: send `Authorization: Bearer <token>` of a [[gateway.api_token]]")]
    Unauthorized,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, reason) = match self {
            ApiError::UnknownEquipment(_)
            | ApiError::Lifecycle(LifecycleError::UnknownAlarm { .. }) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            ApiError::Lifecycle(LifecycleError::ShelfTooLong { .. }) | ApiError::BadRequest(_) => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            ApiError::Lifecycle(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::EngineDown => (StatusCode::SERVICE_UNAVAILABLE, "engine_down"),
            ApiError::NoReload => (StatusCode::SERVICE_UNAVAILABLE, "no_reload"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
        };
        crate::http_error::error_response(status, reason, self)
    }
}

pub fn router(state: AppState) -> Router {
    // What changes things needs a token when the config has any.
    let actions = Router::new()
        .route("/api/v1/alarms/{equipment}/{rule}/ack", post(acknowledge))
        .route("/api/v1/alarms/{equipment}/{rule}/shelve", post(shelve))
        .route("/api/v1/alarms/{equipment}/{rule}/unshelve", post(unshelve))
        .route(
            "/api/v1/alarms/{equipment}/{rule}/out-of-service",
            post(out_of_service),
        )
        .route(
            "/api/v1/alarms/{equipment}/{rule}/in-service",
            post(in_service),
        )
        .route("/api/v1/reload", post(reload))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/equipment", get(equipment))
        .route("/api/v1/alarms", get(alarms))
        .route("/api/v1/alarms/history", get(history))
        .route(
            crate::uplink::central::REJECTED_ROUTE,
            get(central_rejected),
        )
        .route("/api/v1/fills", get(fills))
        .route("/api/v1/readings/latest", get(latest))
        .merge(actions);
    // Read once: a reload does not change the limits (they need a restart).
    let limits = state
        .config
        .read()
        .expect("config lock")
        .gateway
        .http_limits
        .clone();
    let rejected = state.metrics.http_rejected.clone();
    // A caller with a known token is limited per token, any other by its address.
    let known_tokens = (state.config().gateway.api_tokens.iter())
        .map(|t| t.sha256.clone())
        .collect();
    crate::http_limits::apply(router.with_state(state), &limits, known_tokens, rejected)
}

/// Lets a request through when the config has no API tokens (then the API listens on loopback
/// only, which the config check enforces) or when it carries one of them; logs whose it is.
async fn require_token(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    let config = state.config();
    if !config.gateway.api_tokens.is_empty() {
        let hash = crate::auth::bearer(request.headers())
            .map(crate::auth::token_hash)
            .ok_or(ApiError::Unauthorized)?;
        let token = (config.gateway.api_tokens.iter())
            .find(|t| t.sha256 == hash)
            .ok_or(ApiError::Unauthorized)?;
        tracing::info!(token = %token.name, method = %request.method(), path = %request.uri().path(), "API action");
        let holder = TokenHolder(token.name.clone());
        let mut request = request;
        request.extensions_mut().insert(holder);
        return Ok(next.run(request).await);
    }
    Ok(next.run(request).await)
}

/// The holder of the API token a request carried, as `require_token` found it.
#[derive(Clone)]
struct TokenHolder(String);

/// A JSON action body whose `user` is attributed to the token that sent it. The body's `user`
/// is only what the caller claims; with API tokens the record names the token's holder, and
/// the person the body names after it when they differ (`ops-desk (li.wei)`).
struct Attributed<T>(T);

/// A body that names who acts.
trait NamesUser {
    fn user_mut(&mut self) -> &mut String;
}

impl<S, T> axum::extract::FromRequest<S> for Attributed<T>
where
    T: serde::de::DeserializeOwned + NamesUser,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let holder = request.extensions().get::<TokenHolder>().cloned();
        let Json(mut body) = Json::<T>::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if let Some(TokenHolder(holder)) = holder {
            let user = body.user_mut();
            *user = attribute(&holder, user);
        }
        Ok(Attributed(body))
    }
}

/// Who an action is recorded under: the token's holder, then the person the body names.
fn attribute(holder: &str, claimed: &str) -> String {
    let claimed = claimed.trim();
    if claimed.is_empty() || claimed == holder {
        holder.to_owned()
    } else {
        format!("{holder} ({claimed})")
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    let mut checks = serde_json::Map::new();
    let config = state.config();
    if config.mqtt.is_some() && !config.mqtt_mappings.is_empty() {
        checks.insert(
            "site_broker".into(),
            state.live.site_broker.load(Ordering::Relaxed).into(),
        );
    }
    if config.central.is_some() {
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
    // The backlog informs; it does not make the gateway unready (it is still taking input).
    let outbox: serde_json::Map<String, serde_json::Value> = state
        .live
        .outbox
        .read()
        .expect("outbox lock")
        .iter()
        .map(|lane| {
            let status = json!({
                "backlog": lane.backlog(),
                "oldest_age_s": lane.oldest_age().map(|d| d.as_secs_f64()),
                "disk_bytes": lane.disk_bytes(),
            });
            (lane.lane_name().to_owned(), status)
        })
        .collect();
    (
        status,
        Json(json!({ "ready": ready, "checks": checks, "outbox": outbox })),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    crate::metrics::openmetrics_response(state.metrics.render())
}

async fn equipment(State(state): State<AppState>) -> Json<Vec<Equipment>> {
    Json(state.config().equipment.clone())
}

async fn alarms(State(state): State<AppState>) -> Json<Vec<ActiveAlarm>> {
    let mut alarms = state.live.alarms.read().expect("alarms lock").clone();
    alarms.extend(state.live.central_rejections.alarm());
    Json(alarms)
}

/// `GET /api/v1/central/rejected`: the messages central refused, oldest first, each with
/// central's reason and the message as the gateway published it (`uplink/refused.rs`).
async fn central_rejected(
    State(state): State<AppState>,
) -> Json<Vec<crate::uplink::refused::Refused>> {
    Json(state.live.central_rejections.kept())
}

#[derive(Deserialize)]
struct LatestQuery {
    equipment: String,
}

async fn latest(
    State(state): State<AppState>,
    Query(query): Query<LatestQuery>,
) -> Result<Json<Vec<Reading>>, ApiError> {
    if state.config().equipment(&query.equipment).is_none() {
        return Err(ApiError::UnknownEquipment(query.equipment));
    }
    let latest = state.live.latest.read().expect("latest lock");
    let readings = latest
        .get(&query.equipment)
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    Ok(Json(readings))
}

#[derive(Deserialize)]
struct HistoryQuery {
    equipment: Option<String>,
    rule: Option<String>,
    limit: Option<usize>,
}

/// The incident stream as it went out, newest first, optionally for one equipment or alarm.
async fn history(
    State(state): State<AppState>,
    Query(query): Query<HistoryQuery>,
) -> Json<Vec<AlarmEvent>> {
    let history = state.live.history.read().expect("history lock");
    let events = history
        .iter()
        .rev()
        .filter(|e| query.equipment.as_ref().is_none_or(|q| *q == e.equipment))
        .filter(|e| query.rule.as_ref().is_none_or(|q| *q == e.rule))
        .take(query.limit.unwrap_or(100).min(HISTORY_LEN))
        .cloned()
        .collect();
    Json(events)
}

async fn fills(State(state): State<AppState>) -> Json<Vec<FillRecord>> {
    let fills = state.live.fills.read().expect("fills lock");
    Json(fills.iter().rev().take(100).cloned().collect())
}

/// Who acts, and why.
#[derive(Deserialize)]
struct ActionBody {
    user: String,
    comment: Option<String>,
    /// Shelve only: for how long.
    duration_s: Option<f64>,
}

async fn act(
    state: &AppState,
    equipment: String,
    rule: String,
    body: ActionBody,
    action: AlarmAction,
) -> Result<Json<Vec<AlarmEvent>>, ApiError> {
    if state.config().equipment(&equipment).is_none() {
        return Err(ApiError::UnknownEquipment(equipment));
    }
    if body.user.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "`user` is empty: every alarm action records who took it".into(),
        ));
    }
    let sender = state
        .live
        .alarm_commands
        .lock()
        .expect("alarm commands lock")
        .clone()
        .ok_or(ApiError::EngineDown)?;
    let (reply, answer) = oneshot::channel();
    let command = AlarmCommand {
        equipment,
        rule,
        action,
        user: body.user,
        comment: body.comment.filter(|c| !c.trim().is_empty()),
        time: chrono::Utc::now(),
        reply,
    };
    sender
        .send(command)
        .await
        .map_err(|_| ApiError::EngineDown)?;
    let events = answer.await.map_err(|_| ApiError::EngineDown)??;
    Ok(Json(events))
}

async fn acknowledge(
    State(state): State<AppState>,
    Path((equipment, rule)): Path<(String, String)>,
    Attributed(body): Attributed<ActionBody>,
) -> Result<Json<Vec<AlarmEvent>>, ApiError> {
    // Central's refusals are events, not a rule's condition: acknowledging ends the alarm
    // until the next refusal.
    if rule == crate::uplink::central::CENTRAL_REJECTED_RULE
        && state
            .live
            .central_rejections
            .acknowledge(&equipment, &body.user)
    {
        return Ok(Json(Vec::new()));
    }
    act(&state, equipment, rule, body, AlarmAction::Acknowledge).await
}

async fn shelve(
    State(state): State<AppState>,
    Path((equipment, rule)): Path<(String, String)>,
    Attributed(body): Attributed<ActionBody>,
) -> Result<Json<Vec<AlarmEvent>>, ApiError> {
    let seconds = body.duration_s.ok_or_else(|| {
        ApiError::BadRequest("`duration_s` is missing: a shelf always ends".into())
    })?;
    if !(seconds.is_finite() && seconds > 0.0 && seconds < 1e9) {
        return Err(ApiError::BadRequest(
            "`duration_s` must be a number of seconds above 0".into(),
        ));
    }
    let duration = Duration::from_secs_f64(seconds);
    act(
        &state,
        equipment,
        rule,
        body,
        AlarmAction::Shelve { duration },
    )
    .await
}

async fn unshelve(
    State(state): State<AppState>,
    Path((equipment, rule)): Path<(String, String)>,
    Attributed(body): Attributed<ActionBody>,
) -> Result<Json<Vec<AlarmEvent>>, ApiError> {
    act(&state, equipment, rule, body, AlarmAction::Unshelve).await
}

async fn out_of_service(
    State(state): State<AppState>,
    Path((equipment, rule)): Path<(String, String)>,
    Attributed(body): Attributed<ActionBody>,
) -> Result<Json<Vec<AlarmEvent>>, ApiError> {
    act(&state, equipment, rule, body, AlarmAction::OutOfService).await
}

async fn in_service(
    State(state): State<AppState>,
    Path((equipment, rule)): Path<(String, String)>,
    Attributed(body): Attributed<ActionBody>,
) -> Result<Json<Vec<AlarmEvent>>, ApiError> {
    act(&state, equipment, rule, body, AlarmAction::InService).await
}

/// Who asks for a reload.
#[derive(Deserialize)]
struct ReloadBody {
    user: String,
}

impl NamesUser for ReloadBody {
    fn user_mut(&mut self) -> &mut String {
        &mut self.user
    }
}

impl NamesUser for ActionBody {
    fn user_mut(&mut self) -> &mut String {
        &mut self.user
    }
}

/// Reads the config file again: 200 with what changed when applied, 422 with every problem when
/// refused (the running config stays).
async fn reload(
    State(state): State<AppState>,
    Attributed(body): Attributed<ReloadBody>,
) -> Result<Response, ApiError> {
    if body.user.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "`user` is empty: a reload records who asked for it".into(),
        ));
    }
    let sender = state
        .live
        .reload
        .lock()
        .expect("reload lock")
        .clone()
        .ok_or(ApiError::NoReload)?;
    tracing::info!(user = %body.user, "config reload asked over the API");
    let (reply, answer) = oneshot::channel();
    sender.send(reply).await.map_err(|_| ApiError::NoReload)?;
    let outcome = answer.await.map_err(|_| ApiError::NoReload)?;
    let status = if outcome.applied {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(outcome)).into_response())
}

#[cfg(test)]
mod tests {
    use super::attribute;

    #[test]
    fn an_action_is_recorded_under_the_tokens_holder() {
        for (holder, claimed, recorded) in [
            ("ops-desk", "li.wei", "ops-desk (li.wei)"),
            ("ops-desk", "ops-desk", "ops-desk"),
            ("ops-desk", "  ", "ops-desk"),
            ("ops-desk", " li.wei ", "ops-desk (li.wei)"),
        ] {
            assert_eq!(attribute(holder, claimed), recorded, "{claimed:?}");
        }
    }
}
