//! Incidents and fill records to the central service over MQTT at QoS1, on
//! `{prefix}/{gateway}/incidents` and `{prefix}/{gateway}/fills`; the gateway's retained status
//! on `{prefix}/{gateway}/status` with a last will saying offline; and its retained registry on
//! `{prefix}/{gateway}/registry`, published again when a config reload changes it.
//!
//! Every message is sealed with the gateway's `signing_key` (`src/signing.rs`), so central
//! can tell it from a forgery on any broker. A PUBACK says only that the broker has a message:
//! central says which ones it refused on `{prefix}/{gateway}/rejections`; each is counted
//! (`seguard_central_rejections_total{reason}`) and raises the `gateway.central_rejected`
//! alarm, listed in `/api/v1/alarms`. The uplink remembers what it published recently, so the
//! gateway keeps each refused message with central's reason (`refused.rs`), listed at
//! `GET /api/v1/central/rejected` (central keeps its copy too).
//!
//! **Invariant:** a message leaves the outbox lane only after the broker's PUBACK for it. A
//! message not confirmed within `confirm_timeout` is published again; receivers drop the
//! duplicate by its id. **Invariant:** a refusal by central is never silent at the gateway.

pub mod config;
mod rejections;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, Outgoing, Packet, QoS};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::broker::mqtt_options;
use crate::metrics::Metrics;
use crate::model::{GatewayRegistry, GatewayState, GatewayStatus, ToCentral};
use crate::outbox::Lane;
use crate::shutdown::Stop;
use config::CentralUplink;
use rejections::read_rejection;
pub use rejections::{CentralRejections, CENTRAL_REJECTED_RULE, REJECTED_ROUTE};
use secrecy::ExposeSecret;

/// Seals `json` for the topic kind with the uplink's key; without a key the message goes
/// unsigned (and central refuses it, saying so on the rejections topic).
fn sealed(config: &CentralUplink, kind: &str, json: Vec<u8>) -> Vec<u8> {
    match &config.signing_key {
        Some(key) => crate::signing::seal(key.expose_secret().as_bytes(), kind, &json),
        None => json,
    }
}

/// How many messages are published before waiting for their PUBACKs.
const WINDOW: usize = 64;

/// Which publish a packet id belongs to: a slot of the current window, or a status message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Incident { window: u64, slot: usize },
    Status,
}

/// Matches PUBACKs to publishes. rumqttc reports the packet id it gave each publish, in the
/// order the publishes were queued, and reports it again when it retransmits after a reconnect.
#[derive(Default)]
struct Tracker {
    queued: std::collections::VecDeque<Tag>,
    by_pkid: HashMap<u16, Tag>,
    window: u64,
    confirmed: Vec<bool>,
}

/// One central uplink: the publishing session, the client's connection (driven by
/// [`drive_event_loop`] once `run` starts), the lane it drains, and what it reports to.
pub struct CentralPublisher {
    session: Session,
    event_loop: EventLoop,
}

/// What publishing needs while the connection runs apart: the client, the PUBACK tracking,
/// the lane and what it reports to.
struct Session {
    config: CentralUplink,
    gateway: String,
    site: String,
    /// The [`GatewayRegistry`]; a config reload sends a new one.
    registry: watch::Receiver<GatewayRegistry>,
    client: AsyncClient,
    tracker: Arc<Mutex<Tracker>>,
    acked: Arc<Notify>,
    /// The incidents and fill records to publish.
    lane: Arc<Lane<ToCentral>>,
    metrics: Arc<Metrics>,
    /// Whether the broker is connected; `/health` shows it.
    connected: Arc<AtomicBool>,
    /// Central's refusals, kept and raised as an alarm.
    rejections: Arc<CentralRejections>,
}

impl CentralPublisher {
    /// Connects lazily, when `run` starts. `registry` is published retained on every
    /// connection, beside the online status, and whenever it changes.
    pub fn new(
        config: CentralUplink,
        registry: watch::Receiver<GatewayRegistry>,
        lane: Arc<Lane<ToCentral>>,
        metrics: Arc<Metrics>,
        connected: Arc<AtomicBool>,
        rejections: Arc<CentralRejections>,
    ) -> Self {
        let (gateway, site) = {
            let current = registry.borrow();
            (current.gateway.clone(), current.site.id.clone())
        };
        let (gateway, site) = (gateway.as_str(), site.as_str());
        let mut options = mqtt_options(&config.broker);
        let offline = serde_json::to_vec(&GatewayStatus {
            gateway: gateway.to_owned(),
            site: site.to_owned(),
            state: GatewayState::Offline,
            since: None,
        })
        .expect("status serializes");
        let offline = sealed(&config, "status", offline);
        options.set_last_will(LastWill::new(
            config.status_topic(gateway),
            offline,
            QoS::AtLeastOnce,
            true,
        ));
        let (client, event_loop) = AsyncClient::new(options, 1024);
        let session = Session {
            config,
            gateway: gateway.to_owned(),
            site: site.to_owned(),
            registry,
            client,
            tracker: Arc::new(Mutex::new(Tracker::default())),
            acked: Arc::new(Notify::new()),
            lane,
            metrics,
            connected,
            rejections,
        };
        CentralPublisher {
            session,
            event_loop,
        }
    }

    /// Publishes incidents and fill records from `lane` until `flush` fires and the lane is
    /// empty, or `hard_stop` fires; then says offline and disconnects. Central's refusals go to
    /// `rejections`.
    pub async fn run(self, stop: Stop) {
        let CentralPublisher {
            session,
            event_loop,
        } = self;
        let (lane, metrics) = (session.lane.clone(), session.metrics.clone());
        let (connected, rejections) = (session.connected.clone(), session.rejections.clone());
        let Stop { flush, hard_stop } = stop;
        // Said again on every connection: the broker may have lost its retained messages.
        let on_connect = vec![(
            session.config.status_topic(&session.gateway),
            session.status_payload(GatewayState::Online),
        )];
        let registry = (
            session.config.registry_topic(&session.gateway),
            session.registry.clone(),
        );
        let driver = tokio::spawn(drive_event_loop(
            event_loop,
            session.client.clone(),
            session.config.clone(),
            session.tracker.clone(),
            session.acked.clone(),
            metrics.clone(),
            connected,
            registry,
            on_connect,
            rejections.clone(),
            hard_stop.clone(),
        ));
        let incidents_topic = session.config.incidents_topic(&session.gateway);
        let fills_topic = session.config.fills_topic(&session.gateway);
        'batches: loop {
            let batch = lane.peek_batch(WINDOW, Duration::ZERO, &flush).await;
            if batch.is_empty() {
                break;
            }
            let window = {
                let mut tracker = session.tracker.lock().expect("tracker lock");
                tracker.window += 1;
                tracker.confirmed = vec![false; batch.len()];
                tracker.window
            };
            let messages: Vec<(&str, Vec<u8>)> = batch
                .iter()
                .map(|m| {
                    let (topic, kind, json) = match m {
                        ToCentral::Incident(i) => {
                            (incidents_topic.as_str(), "incidents", serde_json::to_vec(i))
                        }
                        ToCentral::Fill(f) => {
                            (fills_topic.as_str(), "fills", serde_json::to_vec(f))
                        }
                    };
                    let json = json.expect("a central message serializes");
                    rejections.remember(m, &json);
                    (topic, sealed(&session.config, kind, json))
                })
                .collect();
            let mut unconfirmed: Vec<usize> = (0..batch.len()).collect();
            loop {
                for &slot in &unconfirmed {
                    let (topic, payload) = &messages[slot];
                    session
                        .publish_tagged(
                            topic,
                            payload.clone(),
                            false,
                            Tag::Incident { window, slot },
                        )
                        .await;
                }
                let deadline = tokio::time::Instant::now() + session.config.confirm_timeout;
                loop {
                    let acked = session.acked.notified();
                    unconfirmed = {
                        let tracker = session.tracker.lock().expect("tracker lock");
                        (0..batch.len())
                            .filter(|&s| !tracker.confirmed[s])
                            .collect()
                    };
                    if unconfirmed.is_empty() {
                        lane.confirm(batch.len());
                        let fills = batch
                            .iter()
                            .filter(|m| matches!(m, ToCentral::Fill(_)))
                            .count();
                        metrics.incidents_published(batch.len() - fills);
                        metrics.fills_published(fills);
                        continue 'batches;
                    }
                    tokio::select! {
                        _ = acked => {}
                        _ = tokio::time::sleep_until(deadline) => break,
                        _ = hard_stop.cancelled() => {
                            lane.release();
                            tracing::warn!(queued = lane.len(), "stopping with messages to central not yet confirmed by the broker");
                            break 'batches;
                        }
                    }
                }
                tracing::warn!(
                    unconfirmed = unconfirmed.len(),
                    timeout_ms = session.config.confirm_timeout.as_millis() as u64,
                    "messages to central not confirmed in time; publishing them again"
                );
            }
        }
        // A clean disconnect suppresses the last will, so say offline ourselves.
        let offline = session.status_payload(GatewayState::Offline);
        let status_topic = session.config.status_topic(&session.gateway);
        session
            .publish_tagged(&status_topic, offline, true, Tag::Status)
            .await;
        let _ = session.client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(2), driver).await;
    }
}

impl Session {
    fn status_payload(&self, state: GatewayState) -> Vec<u8> {
        let json = serde_json::to_vec(&GatewayStatus {
            gateway: self.gateway.clone(),
            site: self.site.clone(),
            state,
            since: Some(Utc::now()),
        })
        .expect("status serializes");
        sealed(&self.config, "status", json)
    }

    /// Queues a publish and records its tag in the same order rumqttc will number it.
    async fn publish_tagged(&self, topic: &str, payload: Vec<u8>, retain: bool, tag: Tag) {
        loop {
            {
                let mut tracker = self.tracker.lock().expect("tracker lock");
                if self
                    .client
                    .try_publish(topic, QoS::AtLeastOnce, retain, payload.clone())
                    .is_ok()
                {
                    tracker.queued.push_back(tag);
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive_event_loop(
    mut event_loop: EventLoop,
    client: AsyncClient,
    config: CentralUplink,
    tracker: Arc<Mutex<Tracker>>,
    acked: Arc<Notify>,
    metrics: Arc<Metrics>,
    connected: Arc<AtomicBool>,
    (registry_topic, mut registry): (String, watch::Receiver<GatewayRegistry>),
    on_connect: Vec<(String, Vec<u8>)>,
    rejections: Arc<CentralRejections>,
    hard_stop: CancellationToken,
) {
    let gateway = registry.borrow().gateway.clone();
    let rejections_topic = config.rejections_topic(&gateway);
    let mut backoff = Backoff::new(config.broker.reconnect_min, config.broker.reconnect_max);
    // Retained, and tracked like a status message so PUBACKs stay matched to their publishes.
    let publish_registry = |registry: &GatewayRegistry, t: &mut Tracker| {
        let json = serde_json::to_vec(registry).expect("registry serializes");
        let payload = sealed(&config, "registry", json);
        if client
            .try_publish(&registry_topic, QoS::AtLeastOnce, true, payload)
            .is_ok()
        {
            t.queued.push_back(Tag::Status);
        }
    };
    loop {
        let event = tokio::select! {
            event = event_loop.poll() => event,
            Ok(()) = registry.changed() => {
                tracing::info!("registry changed; publishing it to central");
                let mut t = tracker.lock().expect("tracker lock");
                publish_registry(&registry.borrow_and_update(), &mut t);
                continue;
            }
            _ = hard_stop.cancelled() => return,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                connected.store(true, Ordering::Relaxed);
                metrics.broker_connected("central", true);
                backoff.reset();
                tracing::info!(broker = %config.broker.host, port = config.broker.port, "central uplink connected");
                if let Err(e) = client.try_subscribe(&rejections_topic, QoS::AtLeastOnce) {
                    tracing::error!(error = %e, topic = %rejections_topic, "cannot subscribe to central's rejections");
                }
                let mut t = tracker.lock().expect("tracker lock");
                publish_registry(&registry.borrow(), &mut t);
                for (topic, payload) in &on_connect {
                    if client
                        .try_publish(topic, QoS::AtLeastOnce, true, payload.clone())
                        .is_ok()
                    {
                        t.queued.push_back(Tag::Status);
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut t = tracker.lock().expect("tracker lock");
                if !t.by_pkid.contains_key(&pkid) {
                    if let Some(tag) = t.queued.pop_front() {
                        t.by_pkid.insert(pkid, tag);
                    }
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let mut t = tracker.lock().expect("tracker lock");
                if let Some(Tag::Incident { window, slot }) = t.by_pkid.remove(&ack.pkid) {
                    if window == t.window {
                        if let Some(c) = t.confirmed.get_mut(slot) {
                            *c = true;
                        }
                    }
                }
                drop(t);
                acked.notify_one();
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == rejections_topic => {
                match read_rejection(&config, &gateway, &p.payload) {
                    Some((r, verified)) => rejections.record(&r, verified, &metrics),
                    None => {
                        tracing::warn!(topic = %p.topic, "notice from central not understood; ignored")
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                connected.store(false, Ordering::Relaxed);
                metrics.broker_connected("central", false);
                let delay = backoff.next_delay();
                let broker = &config.broker;
                if !crate::tls::log_refusal("central broker", &broker.host, broker.port, &e) {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "central uplink disconnected");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = hard_stop.cancelled() => return,
                }
            }
        }
    }
}
