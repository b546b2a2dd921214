//! The MQTT side of intake: the client and its subscriptions, the worker that checks each
//! message (`super::decode*`), stores it and only then acknowledges it, and the refusal that
//! is counted, kept and told to the gateway.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, Packet, Publish, QoS};
use secrecy::ExposeSecret;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::{
    decode, decode_fill, decode_registry, decode_status, verify_origin, Accepted, Rejection,
};
use crate::backoff::Backoff;

use crate::central::config::{CentralConfig, CentralMqtt};
use crate::central::store::{IngestOutcome, Refused, Store};
use crate::central::{now_ms, CentralMetrics};
use crate::model::{CentralRejection, FillRecord, Incident, REJECTION_SCHEMA};

/// The intake's client: the options of every configured broker connection (`broker.rs`: fixed
/// client id, persistent session, no packet limit, credentials and TLS), acknowledged by hand
/// once a message is stored.
pub fn mqtt_client(m: &CentralMqtt) -> (AsyncClient, EventLoop) {
    let mut options = crate::broker::mqtt_options(&m.broker);
    options.set_manual_acks(true);
    AsyncClient::new(options, 1024)
}

/// Runs `attempt` until the store answers, backing off between failures, or until `stop`
/// fires (then `None`: the message is not acknowledged and the broker keeps it).
async fn until_stored<T, F, Fut>(what: &str, stop: &CancellationToken, attempt: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::central::store::StoreError>>,
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

/// The most incidents the worker stores in one transaction.
pub const BATCH_MAX: usize = 64;
/// How long the worker, holding one message, waits for more to store with it.
pub const BATCH_LINGER: Duration = Duration::from_millis(3);

/// Stores one incident, retrying the store until it answers or `stop` fires. Returns whether
/// the message may be acknowledged.
pub async fn store_incident(
    config: &CentralConfig,
    store: &Store,
    metrics: &CentralMetrics,
    wake: &Notify,
    accepted: &Accepted<Incident>,
    source: &'static str,
    stop: &CancellationToken,
) -> bool {
    let started = Instant::now();
    let incident = &accepted.message;
    let what = format!("incident {}", incident.id);
    let Some(outcome) = until_stored(&what, stop, || {
        store.ingest_incident(config, incident, &accepted.notes, source, now_ms())
    })
    .await
    else {
        return false;
    };
    counted(metrics, wake, accepted, &outcome, source, started);
    true
}

/// Stores a batch of incidents in one transaction (`Store::ingest_incidents`), ordered by
/// equipment (a stable sort: one lift's raise stays before its clear) so that two instances
/// lock rows in one order. When the batch fails, its incidents are stored one by one, each
/// retried until the store answers. Returns whether the messages may be acknowledged.
pub async fn store_incidents(
    config: &CentralConfig,
    store: &Store,
    metrics: &CentralMetrics,
    wake: &Notify,
    incidents: &[Accepted<Incident>],
    source: &'static str,
    stop: &CancellationToken,
) -> bool {
    if incidents.len() <= 1 {
        return match incidents.first() {
            Some(a) => store_incident(config, store, metrics, wake, a, source, stop).await,
            None => true,
        };
    }
    let started = Instant::now();
    let mut order: Vec<&Accepted<Incident>> = incidents.iter().collect();
    order.sort_by(|a, b| {
        (&a.message.gateway, &a.message.equipment.id)
            .cmp(&(&b.message.gateway, &b.message.equipment.id))
    });
    let batch: Vec<_> = order.iter().map(|a| (&a.message, &a.notes)).collect();
    match store
        .ingest_incidents(config, &batch, source, now_ms())
        .await
    {
        Ok(outcomes) => {
            for (accepted, outcome) in order.iter().zip(&outcomes) {
                counted(metrics, wake, accepted, outcome, source, started);
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, incidents = incidents.len(), "cannot store the batch; storing its incidents one by one");
            for accepted in order {
                if !store_incident(config, store, metrics, wake, accepted, source, stop).await {
                    return false;
                }
            }
            true
        }
    }
}

/// Counts a stored (or duplicate) incident, and wakes the notifier for its dispatch.
fn counted(
    metrics: &CentralMetrics,
    wake: &Notify,
    accepted: &Accepted<Incident>,
    outcome: &IngestOutcome,
    source: &'static str,
    started: Instant,
) {
    let incident = &accepted.message;
    if outcome.stored {
        for note in accepted.notes.iter() {
            metrics.intake_noted(source, note.as_str(), &incident.id.to_string());
        }
        metrics.intake_stored(source, started.elapsed().as_secs_f64());
    } else {
        metrics.intake_duplicate(source);
    }
    if let Some(d) = &outcome.dispatch {
        metrics.dispatch_created(d);
        wake.notify_one();
    }
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
    // Its own share group: the embedded demo broker (rumqttd 0.20) keeps one read cursor per
    // group name across all its filters, so fills in the incidents' group were never delivered.
    let fills = format!("$share/{}-fills/{}/+/fills", m.share_group, m.prefix);
    // Unbounded: the event loop must never wait for the worker. It hands over the publishes it
    // already read before it sends the worker's acknowledgements, so with a bounded channel a
    // burst larger than both queues (a 2,300-incident power cut) stopped both for good: the loop
    // waited for room in the worker's channel, the worker for room for its acks. What central
    // holds is bounded by what the broker sends unacknowledged (its inflight window).
    let (tx, rx) = mpsc::unbounded_channel::<Publish>();
    let worker = tokio::spawn(work(
        config.clone(),
        store,
        metrics,
        client.clone(),
        rx,
        wake,
        stop.clone(),
    ));
    let mut backoff = Backoff::new(m.broker.reconnect_min, m.broker.reconnect_max);
    loop {
        let event = tokio::select! {
            event = event_loop.poll() => event,
            _ = stop.cancelled() => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                connected.store(true, Ordering::Relaxed);
                backoff.reset();
                tracing::info!(host = %m.broker.host, port = m.broker.port, session_present = ack.session_present, "central intake connected");
                if !ack.session_present {
                    for filter in [&incidents, &fills, &status, &registry] {
                        if let Err(e) = client.try_subscribe(filter.as_str(), QoS::AtLeastOnce) {
                            tracing::error!(error = %e, filter, "cannot subscribe");
                        }
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send(p).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                connected.store(false, Ordering::Relaxed);
                let delay = backoff.next_delay();
                if !crate::tls::log_refusal("intake broker", &m.broker.host, m.broker.port, &e) {
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

/// The kind of message a topic `{prefix}/{gateway}/{kind}` carries, and its gateway level.
fn topic_parts(topic: &str) -> (&str, &str) {
    let mut levels = topic.rsplit('/');
    let kind = levels.next().unwrap_or_default();
    let gateway = levels.next().unwrap_or_default();
    (gateway, kind)
}

/// What the worker made of one message.
enum Handled {
    /// Done with (stored or refused): acknowledge it.
    Ack,
    /// An incident to store with the batch before it is acknowledged.
    Incident(Box<Accepted<Incident>>),
    /// Stopping before it was stored: neither it nor what follows is acknowledged.
    Stop,
}

#[allow(clippy::too_many_arguments)]
async fn work(
    config: Arc<CentralConfig>,
    store: Store,
    metrics: Arc<CentralMetrics>,
    client: AsyncClient,
    mut rx: mpsc::UnboundedReceiver<Publish>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    // The messages that arrived together (at most `BATCH_MAX`, waiting at most `BATCH_LINGER`
    // for more): their incidents are stored in one transaction, then every message of the
    // batch is acknowledged, in the order received. Nothing is acknowledged before its commit.
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let linger = tokio::time::Instant::now() + BATCH_LINGER;
        while batch.len() < BATCH_MAX {
            match tokio::time::timeout_at(linger, rx.recv()).await {
                Ok(Some(p)) => batch.push(p),
                _ => break,
            }
        }
        let mut incidents = Vec::new();
        for p in &batch {
            match handle(&config, &store, &metrics, &client, p, &stop).await {
                Handled::Ack => {}
                Handled::Incident(accepted) => incidents.push(*accepted),
                Handled::Stop => return,
            }
        }
        if !store_incidents(&config, &store, &metrics, &wake, &incidents, "mqtt", &stop).await {
            return;
        }
        for p in &batch {
            if let Err(e) = client.ack(p).await {
                tracing::warn!(error = %e, "cannot acknowledge incident; the broker will send it again");
            }
        }
    }
}

/// Checks one message and stores or refuses it, except an incident, which is returned to be
/// stored with its batch.
async fn handle(
    config: &CentralConfig,
    store: &Store,
    metrics: &CentralMetrics,
    client: &AsyncClient,
    p: &Publish,
    stop: &CancellationToken,
) -> Handled {
    // `{prefix}/{gateway}/{kind}`: the gateway level is whose key must have signed it.
    let (sender, kind) = topic_parts(&p.topic);
    let source = match kind {
        "registry" => "mqtt_registry",
        "status" => "mqtt_status",
        "fills" => "mqtt_fill",
        _ => "mqtt",
    };
    // Deleting a retained message publishes an empty one: nothing to store or refuse.
    if p.payload.is_empty() && matches!(kind, "registry" | "status") {
        return Handled::Ack;
    }
    let message = match verify_origin(config, sender, kind, &p.payload) {
        Ok(message) => message,
        Err(r) => {
            // The id the message claims, unproven: the gateway finds by it what it
            // published. A forger reusing one of the gateway's ids makes the gateway
            // list its own message as refused: a false alarm, never a loss.
            let claimed = crate::signing::open(&p.payload)
                .ok()
                .and_then(|o| message_id(o.message));
            refuse(config, store, metrics, client, p, source, claimed, &r).await;
            return Handled::Ack;
        }
    };
    let refused = match kind {
        "registry" => match decode_registry(config, message, sender) {
            Ok(r) => {
                for note in r.notes.iter() {
                    metrics.intake_noted(source, note.as_str(), sender);
                }
                if let Err(e) = store.merge_registry(&r.message, now_ms()).await {
                    tracing::warn!(error = %e, "cannot store gateway registry");
                }
                return Handled::Ack;
            }
            Err(r) => (None, r),
        },
        "status" => match decode_status(config, message, sender) {
            Ok(status) => {
                if let Err(e) = store.set_gateway_status(&status, now_ms()).await {
                    tracing::warn!(error = %e, "cannot store gateway status");
                }
                return Handled::Ack;
            }
            Err(r) => (None, r),
        },
        "fills" => match decode_fill(config, message, sender) {
            Ok(fill) => {
                return if store_fill(store, metrics, &fill, stop).await {
                    Handled::Ack
                } else {
                    Handled::Stop
                };
            }
            Err(r) => (message_id(message), r),
        },
        _ => match decode(config, message, sender, now_ms()) {
            Ok(incident) => return Handled::Incident(Box::new(incident)),
            Err(r) => (message_id(message), r),
        },
    };
    let (id, r) = refused;
    refuse(config, store, metrics, client, p, source, id, &r).await;
    Handled::Ack
}

/// The `id` of a message central refused, when it has one.
fn message_id(message: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(message).ok()?;
    value.get("id")?.as_str().map(str::to_owned)
}

/// Counts a refused MQTT message, keeps it in the store, and tells the gateway of its topic on
/// `{prefix}/{gateway}/rejections` (sealed with that gateway's key when central has one).
#[allow(clippy::too_many_arguments)]
async fn refuse(
    config: &CentralConfig,
    store: &Store,
    metrics: &CentralMetrics,
    client: &AsyncClient,
    p: &Publish,
    source: &'static str,
    id: Option<String>,
    rejection: &Rejection,
) {
    let detail = rejection.to_string();
    metrics.intake_rejected(source, rejection.reason(), &detail);
    let (gateway, kind) = topic_parts(&p.topic);
    let now = now_ms();
    if let Err(e) = store
        .record_rejected(
            &Refused {
                topic: &p.topic,
                message_id: id.as_deref(),
                reason: rejection.reason(),
                detail: &detail,
                payload: &p.payload,
            },
            now,
            config.intake.rejected_keep,
        )
        .await
    {
        tracing::warn!(error = %e, "cannot keep the refused message in the store");
    }
    let Some(m) = &config.mqtt else { return };
    let answer = CentralRejection {
        schema: REJECTION_SCHEMA.to_owned(),
        gateway: gateway.to_owned(),
        kind: kind.to_owned(),
        id,
        reason: rejection.reason().to_owned(),
        detail,
        time: chrono::Utc::now(),
    };
    let json = serde_json::to_vec(&answer).expect("a rejection serializes");
    let key = config
        .gateways
        .iter()
        .find(|g| g.id == gateway)
        .and_then(|g| g.signing_key.as_ref());
    let payload = match key {
        Some(key) => crate::signing::seal(key.expose_secret().as_bytes(), "rejections", &json),
        None => json,
    };
    let topic = format!("{}/{gateway}/rejections", m.prefix);
    if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, false, payload) {
        tracing::warn!(error = %e, "cannot tell the gateway about its refused message");
    }
}
