//! Intake of incidents and fill records: the MQTT shared subscriptions and the checks both MQTT
//! and HTTP apply.
//!
//! **Invariant:** an MQTT incident is acknowledged (PUBACK, manual acks) only after the store
//! committed it, or after it was rejected and counted. A rejected message is acknowledged so
//! that it does not come back forever; it is never stored, not even in part.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::config::{CentralConfig, CentralMqtt};
use super::store::Store;
use super::{now_ms, CentralMetrics};
use crate::backoff::Backoff;
use crate::model::{
    FillRecord, GatewayRegistry, GatewayStatus, Incident, FILL_SCHEMA, INCIDENT_SCHEMA,
    REGISTRY_SCHEMA,
};

/// Why an incident was refused; each has its HTTP status and its counter label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("missing or unknown gateway token")]
    Unauthorized,
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized { size: usize, limit: usize },
    #[error("malformed incident: {0}")]
    Malformed(String),
    #[error("unknown schema `{found}`; expected `{expected}`")]
    UnknownSchema {
        found: String,
        expected: &'static str,
    },
    #[error("unknown gateway `{0}`; register it in the central config as [[gateway]]")]
    UnknownGateway(String),
    #[error("message of gateway `{claimed}` sent with the credentials of `{sender}`")]
    GatewayMismatch { claimed: String, sender: String },
}

impl Rejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Unauthorized => "unauthorized",
            Rejection::Oversized { .. } => "oversized",
            Rejection::Malformed(_) => "malformed",
            Rejection::UnknownSchema { .. } => "unknown_schema",
            Rejection::UnknownGateway(_) => "unknown_gateway",
            Rejection::GatewayMismatch { .. } => "gateway_mismatch",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Unauthorized => StatusCode::UNAUTHORIZED,
            Rejection::Oversized { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::Malformed(_) => StatusCode::BAD_REQUEST,
            Rejection::UnknownSchema { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::UnknownGateway(_) | Rejection::GatewayMismatch { .. } => {
                StatusCode::FORBIDDEN
            }
        }
    }
}

/// Parses a message of `schema` from a known gateway. `sender` is the gateway the transport
/// vouches for: the topic's gateway level for MQTT, the token's gateway for HTTP.
fn parse<T: serde::de::DeserializeOwned>(
    config: &CentralConfig,
    payload: &[u8],
    schema: &'static str,
    sender: &str,
    gateway_of: impl Fn(&T) -> &str,
) -> Result<T, Rejection> {
    if payload.len() > config.max_body_bytes {
        return Err(Rejection::Oversized {
            size: payload.len(),
            limit: config.max_body_bytes,
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| Rejection::Malformed(e.to_string()))?;
    match value.get("schema").and_then(|s| s.as_str()) {
        Some(s) if s == schema => {}
        Some(other) => {
            return Err(Rejection::UnknownSchema {
                found: other.to_owned(),
                expected: schema,
            })
        }
        None => return Err(Rejection::Malformed("missing field `schema`".into())),
    }
    // PostgreSQL text cannot hold NUL: the store would fail on the message every time it is
    // delivered, and MQTT intake would retry it forever.
    if holds_nul(&value) {
        return Err(Rejection::Malformed(
            "text holds a NUL character (\\u0000)".into(),
        ));
    }
    let message: T =
        serde_json::from_value(value).map_err(|e| Rejection::Malformed(e.to_string()))?;
    let gateway = gateway_of(&message);
    if !config.gateways.iter().any(|g| g.id == gateway) {
        return Err(Rejection::UnknownGateway(gateway.to_owned()));
    }
    if gateway != sender {
        return Err(Rejection::GatewayMismatch {
            claimed: gateway.to_owned(),
            sender: sender.to_owned(),
        });
    }
    Ok(message)
}

/// Decodes and checks a fill record (see [`parse`] for `sender`).
pub fn decode_fill(
    config: &CentralConfig,
    payload: &[u8],
    sender: &str,
) -> Result<FillRecord, Rejection> {
    let fill: FillRecord = parse(config, payload, FILL_SCHEMA, sender, |f: &FillRecord| {
        &f.gateway
    })?;
    if fill.cylinder_code.trim().is_empty() {
        return Err(Rejection::Malformed("empty `cylinder_code`".into()));
    }
    Ok(fill)
}

/// Decodes and checks an incident (see [`parse`] for `sender`).
pub fn decode(config: &CentralConfig, payload: &[u8], sender: &str) -> Result<Incident, Rejection> {
    let incident: Incident = parse(config, payload, INCIDENT_SCHEMA, sender, |i: &Incident| {
        &i.gateway
    })?;
    if incident.event.equipment != incident.equipment.id {
        return Err(Rejection::Malformed(format!(
            "event equipment `{}` differs from equipment `{}`",
            incident.event.equipment, incident.equipment.id
        )));
    }
    Ok(incident)
}

/// Whether any text or key in the JSON holds a NUL character.
fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// The largest packet MQTT allows: bigger incidents are rejected one by one by the payload
/// limit (counted), not by dropping the connection (which would loop on redelivery).
const MQTT_MAX_PACKET_BYTES: usize = 268_435_455;

pub fn mqtt_client(m: &CentralMqtt, _max_body_bytes: usize) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(&m.client_id, &m.host, m.port);
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(m.keep_alive)
        .set_max_packet_size(MQTT_MAX_PACKET_BYTES, MQTT_MAX_PACKET_BYTES);
    crate::tls::secure_mqtt(
        &mut options,
        m.username.as_deref(),
        m.password.as_ref(),
        m.tls.as_ref(),
    );
    AsyncClient::new(options, 1024)
}

/// Runs `attempt` until the store answers, backing off between failures, or until `stop`
/// fires (then `None`: the message is not acknowledged and the broker keeps it).
async fn until_stored<T, F, Fut>(what: &str, stop: &CancellationToken, attempt: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, super::store::StoreError>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(e) => {
                tracing::warn!(error = %e, what, "cannot store; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => return None,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Stores one incident, retrying the store until it answers or `stop` fires. Returns whether
/// the message may be acknowledged.
pub async fn store_incident(
    config: &CentralConfig,
    store: &Store,
    metrics: &CentralMetrics,
    wake: &Notify,
    incident: &Incident,
    source: &'static str,
    stop: &CancellationToken,
) -> bool {
    let started = Instant::now();
    let what = format!("incident {}", incident.id);
    let Some(outcome) = until_stored(&what, stop, || {
        store.ingest_incident(config, incident, source, now_ms())
    })
    .await
    else {
        return false;
    };
    if outcome.stored {
        metrics.intake_stored(source, started.elapsed().as_secs_f64());
    } else {
        metrics.intake_duplicate(source);
    }
    if let Some(d) = &outcome.dispatch {
        metrics.dispatch_created(d);
        wake.notify_one();
    }
    true
}

/// Stores one fill record (idempotent by its id), retrying the store until it answers or
/// `stop` fires. Returns whether the message may be acknowledged.
async fn store_fill(
    store: &Store,
    metrics: &CentralMetrics,
    fill: &FillRecord,
    stop: &CancellationToken,
) -> bool {
    let what = format!("fill record {}", fill.id);
    match until_stored(&what, stop, || store.ingest_fill(fill, now_ms())).await {
        Some(stored) => {
            metrics.fill_received(stored);
            true
        }
        None => false,
    }
}

/// Drives the MQTT client: subscribes on every ConnAck without a session, hands publishes to
/// the worker, and reconnects with backoff.
#[allow(clippy::too_many_arguments)]
pub async fn run_mqtt(
    config: Arc<CentralConfig>,
    store: Store,
    metrics: Arc<CentralMetrics>,
    client: AsyncClient,
    mut event_loop: EventLoop,
    connected: Arc<AtomicBool>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let Some(m) = config.mqtt.clone() else { return };
    let incidents = format!("$share/{}/{}/+/incidents", m.share_group, m.prefix);
    let status = format!("{}/+/status", m.prefix);
    let registry = format!("{}/+/registry", m.prefix);
    let fills = format!("$share/{}/{}/+/fills", m.share_group, m.prefix);
    let (tx, rx) = mpsc::channel::<Publish>(1024);
    let worker = tokio::spawn(work(
        config.clone(),
        store,
        metrics,
        client.clone(),
        rx,
        wake,
        stop.clone(),
    ));
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        let event = tokio::select! {
            event = event_loop.poll() => event,
            _ = stop.cancelled() => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                connected.store(true, Ordering::Relaxed);
                backoff.reset();
                tracing::info!(host = %m.host, port = m.port, session_present = ack.session_present, "central intake connected");
                if !ack.session_present {
                    for filter in [&incidents, &fills, &status, &registry] {
                        if let Err(e) = client.try_subscribe(filter.as_str(), QoS::AtLeastOnce) {
                            tracing::error!(error = %e, filter, "cannot subscribe");
                        }
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send(p).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                connected.store(false, Ordering::Relaxed);
                let delay = backoff.next_delay();
                if !crate::tls::log_refusal("intake broker", &m.host, m.port, &e) {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "central intake disconnected");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => break,
                }
            }
        }
    }
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), worker).await;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while event_loop.poll().await.is_ok() {}
    })
    .await;
}

async fn work(
    config: Arc<CentralConfig>,
    store: Store,
    metrics: Arc<CentralMetrics>,
    client: AsyncClient,
    mut rx: mpsc::Receiver<Publish>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    while let Some(p) = rx.recv().await {
        let levels: Vec<&str> = p.topic.split('/').collect();
        // `{prefix}/{gateway}/{kind}`: the gateway level is what the broker's ACL vouches for.
        let sender = levels
            .len()
            .checked_sub(2)
            .map(|i| levels[i])
            .unwrap_or_default();
        let ack = if p.topic.ends_with("/registry") {
            match serde_json::from_slice::<GatewayRegistry>(&p.payload) {
                Ok(r)
                    if r.schema == REGISTRY_SCHEMA
                        && sender == r.gateway
                        && config.gateways.iter().any(|g| g.id == r.gateway) =>
                {
                    if let Err(e) = store.merge_registry(&r, now_ms()).await {
                        tracing::warn!(error = %e, "cannot store gateway registry");
                    }
                }
                _ if p.payload.is_empty() => {}
                _ => tracing::warn!(topic = %p.topic, "gateway registry not understood; ignored"),
            }
            true
        } else if p.topic.ends_with("/status") {
            if let Ok(status) = serde_json::from_slice::<GatewayStatus>(&p.payload) {
                if let Err(e) = store.set_gateway_status(&status, now_ms()).await {
                    tracing::warn!(error = %e, "cannot store gateway status");
                }
            } else if !p.payload.is_empty() {
                tracing::warn!(topic = %p.topic, "gateway status is not JSON; ignored");
            }
            true
        } else if p.topic.ends_with("/fills") {
            match decode_fill(&config, &p.payload, sender) {
                Ok(fill) => store_fill(&store, &metrics, &fill, &stop).await,
                Err(r) => {
                    metrics.intake_rejected("mqtt_fill", r.reason(), &r.to_string());
                    true
                }
            }
        } else {
            match decode(&config, &p.payload, sender) {
                Ok(incident) => {
                    store_incident(&config, &store, &metrics, &wake, &incident, "mqtt", &stop).await
                }
                Err(r) => {
                    metrics.intake_rejected("mqtt", r.reason(), &r.to_string());
                    true
                }
            }
        };
        if ack {
            if let Err(e) = client.ack(&p).await {
                tracing::warn!(error = %e, "cannot acknowledge incident; the broker will send it again");
            }
        } else {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config() -> CentralConfig {
        let text = r#"
[central]
instance = "test"
[store]
url = "sqlite::memory:"
[[gateway]]
id = "gw1"
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
"#;
        super::super::config::parse(text, Path::new("central.toml")).expect("valid config")
    }

    fn incident(site_id: &str) -> String {
        serde_json::json!({
            "schema": INCIDENT_SCHEMA,
            "id": "00000000-0000-4000-8000-000000000001",
            "gateway": "gw1",
            "site": { "id": site_id, "name": "Tower site", "address": "1 Test Road" },
            "equipment": {
                "id": "lift-1", "kind": "elevator", "name": "Lift 1",
                "registration_code": "31103101002016010001", "using_unit": "Tower Property Co.",
                "address": "1 Test Road", "nameplate": {}
            },
            "event": {
                "id": "00000000-0000-4000-8000-000000000001", "equipment": "lift-1",
                "rule": "elevator.trapped", "severity": "critical", "transition": "raise",
                "time": "2026-05-01T08:00:00Z", "message": "trapped",
                "details": { "floor\u{0}": "B2" }
            }
        })
        .to_string()
    }

    /// Fuzz finding (fuzz/README.md): an incident with a NUL character in its text was
    /// accepted; PostgreSQL refuses NUL in text, so the store failed on it at every delivery
    /// and MQTT intake retried it forever.
    #[test]
    fn text_with_a_nul_character_is_malformed() {
        let config = config();
        let with_nul_in_a_key = incident("s1");
        let with_nul_in_a_value = incident("s\u{0}1").replace("floor\\u0000", "floor");
        for payload in [with_nul_in_a_key, with_nul_in_a_value] {
            let rejection = decode(&config, payload.as_bytes(), "gw1").unwrap_err();
            assert_eq!(rejection.reason(), "malformed", "{payload}");
            assert!(rejection.to_string().contains("NUL"), "{rejection}");
        }
        let clean = incident("s1").replace("floor\\u0000", "floor");
        assert!(decode(&config, clean.as_bytes(), "gw1").is_ok());
    }

    /// Fuzz finding (fuzz/README.md): a number with many digits was parsed one unit in the last
    /// place off, so the stored JSON read back as a different number than the one accepted.
    #[test]
    fn an_accepted_incident_reads_back_equal_from_its_stored_json() {
        let config = config();
        let digits =
            "6222222222222222222222222222222222222222222222222222222222222222222222222222221";
        let payload = incident("s1").replace(
            "\"floor\\u0000\":\"B2\"",
            &format!("\"stopped_s\": {digits}"),
        );
        assert!(payload.contains(digits), "{payload}");
        let accepted = decode(&config, payload.as_bytes(), "gw1").expect("valid incident");
        let stored = serde_json::to_string(&accepted).expect("serializes");
        assert_eq!(decode(&config, stored.as_bytes(), "gw1"), Ok(accepted));
    }
}
