//! `seguard central`: the regional service. It takes incidents from many gateways (MQTT shared
//! subscription and HTTP POST), keeps them with the equipment registry in the store (SQLite or
//! PostgreSQL), dispatches trapped-elevator alerts to rescue units and escalates them, and
//! serves the regulators' dashboard (map, alarm list, indicators) and the rescue page.
//!
//! Data flow:
//! ```text
//! MQTT $share/…/+/incidents ─┐                        ┌─► dispatch timers (timers.rs)
//! HTTP POST /api/v1/intake ──┴─► intake ─► store ─────┤
//! MQTT …/+/status (retained) ───────────────►  │      └─► notifications (notify.rs):
//!                                              ▼            webhook, MQTT, e-mail
//!                                   dashboard + API (api.rs)
//! ```
//! **Invariant:** every piece of state is in the store; an instance holds none that another
//! instance would need to take over (timers are rows, notifications are rows).

pub mod api;
pub mod clean;
pub mod config;
pub mod csv;
pub mod cylinders;
mod cylinders_api;
pub mod dispatch;
pub mod exchange;
pub mod flood;
pub mod geo;
pub mod hazards;
mod hazards_api;
pub mod inspection_csv;
pub mod intake;
pub mod notify;
mod regulator_api;
pub mod risk;
pub mod scorecard;
pub mod store;
pub mod timers;
mod web;
pub mod zone;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::CentralConfig;
use store::Store;

/// Wall-clock milliseconds since the epoch: the time base of every stored timestamp.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabel {
    source: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NoteLabel {
    source: &'static str,
    note: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabel {
    level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// The central service's own telemetry: each counted thing is one method that counts and logs.
pub struct CentralMetrics {
    registry: Registry,
    intake_stored: Family<SourceLabel, Counter>,
    intake_duplicates: Family<SourceLabel, Counter>,
    intake_rejected: Family<RejectLabel, Counter>,
    intake_noted: Family<NoteLabel, Counter>,
    fills_received: Family<OutcomeLabel, Counter>,
    dispatches_created: Counter,
    escalations: Family<LevelLabel, Counter>,
    notifications_sent: Family<ChannelLabel, Counter>,
    notification_failures: Family<ChannelLabel, Counter>,
    exchange_refused: Family<KindLabel, Counter>,
    intake_commit_seconds: Histogram,
    /// Requests refused by the API's limits (`http_limits.rs` counts them).
    pub http_rejected: crate::http_limits::Rejections,
    log_limiter: crate::log_limit::LogLimiter,
}

impl Default for CentralMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl CentralMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("seguard_central");
        let intake_stored = Family::default();
        registry.register(
            "intake_stored",
            "Incidents stored, by source",
            intake_stored.clone(),
        );
        let intake_duplicates = Family::default();
        registry.register(
            "intake_duplicates",
            "Incidents already stored (same event id), by source",
            intake_duplicates.clone(),
        );
        let intake_rejected = Family::default();
        registry.register(
            "intake_rejected",
            "Incidents and fill records rejected, by source and reason",
            intake_rejected.clone(),
        );
        let intake_noted = Family::default();
        registry.register(
            "intake_noted",
            "Messages stored with a repair (text replaced, location dropped, time outside the window), by source and note",
            intake_noted.clone(),
        );
        let fills_received = Family::default();
        registry.register(
            "fills_received",
            "Fill records received, by outcome: stored or duplicate (same id)",
            fills_received.clone(),
        );
        let dispatches_created = Counter::default();
        registry.register(
            "dispatches_created",
            "Rescue dispatches created",
            dispatches_created.clone(),
        );
        let escalations = Family::default();
        registry.register(
            "dispatch_escalations",
            "Rescue dispatches escalated, by new level",
            escalations.clone(),
        );
        let notifications_sent = Family::default();
        registry.register(
            "notifications_sent",
            "Notifications delivered, by channel",
            notifications_sent.clone(),
        );
        let notification_failures = Family::default();
        registry.register(
            "notification_failures",
            "Failed notification attempts (retried), by channel",
            notification_failures.clone(),
        );
        let exchange_refused = Family::default();
        registry.register(
            "exchange_refused",
            "Records the higher-level platform refused, set aside from the upward exchange, by kind",
            exchange_refused.clone(),
        );
        let intake_commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "intake_commit_seconds",
            "Time to store one incident",
            intake_commit_seconds.clone(),
        );
        let http_rejected = crate::http_limits::register(&mut registry);
        CentralMetrics {
            registry,
            http_rejected,
            intake_stored,
            intake_duplicates,
            intake_rejected,
            intake_noted,
            fills_received,
            dispatches_created,
            escalations,
            notifications_sent,
            notification_failures,
            exchange_refused,
            intake_commit_seconds,
            log_limiter: Default::default(),
        }
    }

    pub fn intake_stored(&self, source: &'static str, seconds: f64) {
        self.intake_stored
            .get_or_create(&SourceLabel { source })
            .inc();
        self.intake_commit_seconds.observe(seconds);
    }

    pub fn intake_duplicate(&self, source: &'static str) {
        self.intake_duplicates
            .get_or_create(&SourceLabel { source })
            .inc();
        tracing::debug!(source, "duplicate incident ignored");
    }

    pub fn intake_rejected(&self, source: &'static str, reason: &'static str, detail: &str) {
        self.intake_rejected
            .get_or_create(&RejectLabel { source, reason })
            .inc();
        self.log_limiter.log(reason, |suppressed| {
            tracing::warn!(
                source,
                reason,
                detail,
                suppressed,
                "intake rejected a message"
            )
        });
    }

    /// A message stored with a repair (`clean.rs`); `what` names the message.
    pub fn intake_noted(&self, source: &'static str, note: &'static str, what: &str) {
        self.intake_noted
            .get_or_create(&NoteLabel { source, note })
            .inc();
        self.log_limiter.log(note, |suppressed| {
            tracing::warn!(
                source,
                note,
                what,
                suppressed,
                "intake repaired a message and stored it"
            )
        });
    }

    /// How many messages were stored with this repair.
    pub fn noted(&self, source: &'static str, note: &'static str) -> u64 {
        self.intake_noted
            .get_or_create(&NoteLabel { source, note })
            .get()
    }

    pub fn fill_received(&self, stored: bool) {
        let outcome = if stored { "stored" } else { "duplicate" };
        self.fills_received
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// How many incidents were rejected for this source and reason.
    pub fn rejected(&self, source: &'static str, reason: &'static str) -> u64 {
        self.intake_rejected
            .get_or_create(&RejectLabel { source, reason })
            .get()
    }

    pub fn dispatch_created(&self, id: &str) {
        self.dispatches_created.inc();
        tracing::warn!(dispatch = id, "rescue dispatch created");
    }

    pub fn escalated(&self, level: i64) {
        self.escalations
            .get_or_create(&LevelLabel {
                level: level.to_string(),
            })
            .inc();
    }

    pub fn notification_sent(&self, channel: &str) {
        self.notifications_sent
            .get_or_create(&ChannelLabel {
                channel: channel.into(),
            })
            .inc();
    }

    pub fn notification_failed(&self, channel: &str, error: &str) {
        self.notification_failures
            .get_or_create(&ChannelLabel {
                channel: channel.into(),
            })
            .inc();
        self.log_limiter.log("notification", |suppressed| {
            tracing::warn!(
                channel,
                error,
                suppressed,
                "notification failed; will retry"
            )
        });
    }

    /// The higher-level platform refused one record, now set aside (`exchange.rs`); logged
    /// once per record, not rate-limited: each needs a regulator's look.
    pub fn exchange_refused(&self, kind: &str, key: &str, status: u16, answer: &str) {
        self.exchange_refused
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
        tracing::warn!(
            kind,
            key,
            status,
            answer,
            "the higher-level platform refused a record; set aside until a regulator re-queues it"
        );
    }

    /// How many records of `kind` the higher-level platform refused.
    pub fn exchange_refused_count(&self, kind: &str) -> u64 {
        self.exchange_refused
            .get_or_create(&KindLabel { kind: kind.into() })
            .get()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("encoding metrics");
        out
    }
}

/// A running central instance. It holds no state another instance would need: everything
/// that must survive it is in the store.
pub struct Central {
    /// The address HTTP is bound to (the real port when the config asked for port 0), for
    /// links and for tests.
    pub addr: SocketAddr,
    /// The shared store; a handle (a pool), cloned into every task.
    pub store: Store,
    /// Counters and logs of everything central refuses, repairs, sends or escalates, rendered
    /// at `/metrics`; shared with every task.
    pub metrics: Arc<CentralMetrics>,
    /// The validated config, shared read-only with every task (central does not reload).
    pub config: Arc<CentralConfig>,
    /// Cancelled by `stop`: every task watches it and winds down.
    stop: CancellationToken,
    /// The running tasks by name (MQTT intake, timers, notifier, HTTP), awaited on `stop` so
    /// that a stuck one is named in the log.
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Central {
    /// Opens the store, binds HTTP, and starts intake, timers and notifications.
    pub async fn start(config: CentralConfig) -> Result<Central, CentralError> {
        let listener = tokio::net::TcpListener::bind(config.http_listen)
            .await
            .map_err(|source| CentralError::Bind {
                addr: config.http_listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| CentralError::Bind {
            addr: config.http_listen,
            source,
        })?;
        let mut config = config;
        // A default public URL on port 0 names the port actually bound.
        if config.public_url == format!("http://{}", config.http_listen) {
            config.public_url = format!("http://{addr}");
        }
        let config = Arc::new(config);
        let store = Store::open(secrecy::ExposeSecret::expose_secret(&config.store_url))
            .await?
            .with_exchange(config.exchange.is_some());
        let metrics = Arc::new(CentralMetrics::new());
        let stop = CancellationToken::new();
        let wake = Arc::new(tokio::sync::Notify::new());
        let mqtt_connected = Arc::new(AtomicBool::new(config.mqtt.is_none()));
        let mut tasks = Vec::new();
        let mqtt_client = match &config.mqtt {
            Some(m) => {
                let (client, event_loop) = intake::mqtt_client(m);
                tasks.push((
                    "central-mqtt-intake",
                    tokio::spawn(intake::run_mqtt(
                        config.clone(),
                        store.clone(),
                        metrics.clone(),
                        client.clone(),
                        event_loop,
                        mqtt_connected.clone(),
                        wake.clone(),
                        stop.clone(),
                    )),
                ));
                Some(client)
            }
            None => None,
        };
        tasks.push((
            "central-dispatch-timers",
            tokio::spawn(timers::run_timers(
                config.clone(),
                store.clone(),
                metrics.clone(),
                stop.clone(),
            )),
        ));
        tasks.push((
            "central-exchange",
            tokio::spawn(exchange::run(
                config.clone(),
                store.clone(),
                metrics.clone(),
                stop.clone(),
            )),
        ));
        tasks.push((
            "central-hazard-overdue",
            tokio::spawn(hazards::run_overdue(
                config.clone(),
                store.clone(),
                stop.clone(),
            )),
        ));
        tasks.push((
            "central-notifier",
            tokio::spawn(notify::run(
                config.clone(),
                store.clone(),
                mqtt_client,
                metrics.clone(),
                wake.clone(),
                stop.clone(),
            )),
        ));
        let router = api::router(api::AppState {
            config: config.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            mqtt_connected,
            wake,
        });
        let http_stop = stop.clone();
        let https = config.https.clone();
        tasks.push((
            "central-http",
            tokio::spawn(async move {
                let served = api::serve_router(listener, router, https.as_ref(), http_stop).await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "central HTTP server failed");
                }
            }),
        ));
        tracing::info!(instance = %config.instance, %addr, https = config.https.is_some(), store = ?store.backend, "central started");
        Ok(Central {
            addr,
            store,
            metrics,
            config,
            stop,
            tasks,
        })
    }

    /// Stops gracefully: intake stops (unacknowledged messages stay with the broker), HTTP
    /// drains, then the store closes.
    pub async fn stop(self) {
        self.stop.cancel();
        for (name, task) in self.tasks {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!(task = name, "task did not stop in time");
            }
        }
        self.store.close().await;
    }

    /// Ends every task at once, as a crash would: nothing is flushed or said goodbye to.
    pub fn abort(self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}

/// Runs `seguard central -c FILE` until SIGTERM or Ctrl-C.
pub async fn run(config_path: &Path) -> Result<(), CentralError> {
    // First, so that a SIGHUP during start does not end the process (its default action).
    let hangups = log_hangups();
    let config = config::load(config_path)?;
    let central = Central::start(config).await?;
    crate::shutdown::shutdown_signal().await;
    hangups.abort();
    tracing::info!("stopping central");
    central.stop().await;
    Ok(())
}

/// Central does not reload its config: a SIGHUP is logged and changes nothing.
fn log_hangups() -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    if let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        return tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                tracing::warn!(
                    "SIGHUP ignored: central does not reload its config; restart it to apply a change (systemctl restart seguard-central). Still running."
                );
            }
        });
    }
    tokio::spawn(async {})
}
