//! The gateway: wires ingest → pipeline (rules) → outbox lanes → uplinks, serves the API, and
//! shuts down in order so that what was accepted is flushed.
//!
//! Shutdown: `stop_intake` stops taking messages; the pipeline drains what it holds and hands
//! back the last acknowledgements; then `flush` tells the uplinks to send what is queued and
//! stop, and `hard_stop` ends them after `shutdown_flush` if a receiver is down.
//!
//! Reload (`Gateway::reload`, on SIGHUP or `POST /api/v1/reload`): the new file is validated
//! and compared with the running config; what only a restart can change is refused. Otherwise
//! the intake (ingest tasks and pipeline) stops as at shutdown, so every message it took is in
//! the outbox and acknowledged; the rules are swapped with `Engine::reload`, which keeps the
//! state of unchanged rules; and a new intake starts on the new config. The lanes and uplinks
//! keep running throughout (the central uplink publishes the changed registry); MQTT messages
//! that arrive meanwhile wait in the persistent session.
//!
//! With the durable outbox, the rules' state is checkpointed (`checkpoint.rs`) and restored at
//! start, so timers and open alarms survive a restart.

mod checkpoint;
mod pipeline;
mod reload;

use pipeline::Pipeline;
pub use pipeline::{Batch, DATA_LOSS_RULE};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a reload answers (the API's reload route carries it, so it is defined there).
pub use crate::api::ReloadOutcome;
use crate::api::{self, AppState, Live, ReloadRequest};
use crate::config::Config;
use crate::ingest::mqtt::{Mapper, MqttIngest};
use crate::metrics::Metrics;
use crate::model::{
    AlarmEvent, EquipmentKind, GatewayRegistry, SiteRecord, ToCentral, REGISTRY_SCHEMA,
};
use crate::outbox::{Lane, Overflow};
use crate::rules::Engine;
use crate::shutdown::Stop;
use crate::uplink::central::CentralPublisher;
use crate::uplink::influx::{Encoder, InfluxWriter, Point};
use crate::uplink::linefile::LineFileWriter;

/// The registry message central keeps for this gateway.
fn gateway_registry(config: &Config) -> GatewayRegistry {
    GatewayRegistry {
        schema: REGISTRY_SCHEMA.to_owned(),
        gateway: config.gateway.id.clone(),
        site: site_record(config),
        equipment: config.equipment.clone(),
    }
}

/// The site as incidents and the registry message carry it.
fn site_record(config: &Config) -> SiteRecord {
    SiteRecord {
        id: config.site.id.clone(),
        name: config.site.name.clone(),
        address: config.site.address.clone(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Outbox(#[from] crate::outbox::OutboxError),
}

/// Opens a lane: durable in the outbox directory, or in memory (bounded by `capacity`
/// entries) when the config asks for `[outbox] kind = "memory"`.
async fn open_lane<T>(
    config: &Config,
    name: String,
    capacity: usize,
    overflow: Overflow,
    metrics: &Arc<Metrics>,
) -> Result<Arc<Lane<T>>, GatewayError>
where
    T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let Some(outbox) = &config.outbox else {
        return Ok(Arc::new(Lane::new(
            name,
            capacity,
            overflow,
            crate::outbox::Timing::default(),
            metrics.clone(),
        )));
    };
    let options = match overflow {
        Overflow::DropOldest => outbox.telemetry_lane(),
        Overflow::Wait => outbox.incident_lane(),
    };
    let (dir, metrics) = (outbox.dir.clone(), metrics.clone());
    let lane_name = name.clone();
    // Opening scans every segment: keep it off the async workers.
    let (lane, recovery) =
        tokio::task::spawn_blocking(move || Lane::open(&dir, lane_name, options, metrics))
            .await
            .expect("outbox open task does not panic")?;
    tracing::info!(lane = %name, ?recovery, "outbox lane opened");
    Ok(Arc::new(lane))
}

/// A running gateway. Dropping it does not stop it; call [`Gateway::stop`].
pub struct Gateway {
    pub http_addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub live: Arc<Live>,
    /// The file [`Gateway::reload`] reads; `None` for a gateway started from a `Config` alone.
    pub config_path: Option<PathBuf>,
    config: Arc<Config>,
    /// The config the API serves; a reload replaces it.
    api_config: Arc<RwLock<Arc<Config>>>,
    encoder: Arc<Encoder>,
    /// What the central uplink publishes as this gateway's registry.
    registry: watch::Sender<GatewayRegistry>,
    outputs: Outputs,
    /// `None` only while a reload swaps it.
    intake: Option<Intake>,
    /// What every uplink was started with: `flush` drains them, `hard_stop` ends them.
    stop: Stop,
    shutdown_flush: Duration,
    uplink_tasks: Vec<JoinHandle<()>>,
    http_task: JoinHandle<()>,
}

/// Where the pipeline's output goes; outlives every intake.
#[derive(Clone)]
struct Outputs {
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    /// Closed (flushed and fsynced) after the uplinks stop.
    telemetry_lanes: Vec<Arc<Lane<Point>>>,
    incident_lane: Option<Arc<Lane<ToCentral>>>,
    /// The rule-state checkpoint, with the durable outbox.
    checkpoints: Option<Arc<checkpoint::Checkpoints>>,
}

/// The part a reload restarts: the ingest tasks and the pipeline, which owns the rule engine.
struct Intake {
    stop: CancellationToken,
    ingest: Vec<JoinHandle<()>>,
    pipeline: JoinHandle<Engine>,
}

impl Intake {
    /// Starts the pipeline on `engine` (announcing `pending` events first) and the ingest of
    /// `config`.
    fn start(
        config: &Arc<Config>,
        engine: Engine,
        pending: Vec<AlarmEvent>,
        previous: Option<Arc<Config>>,
        outputs: &Outputs,
    ) -> Intake {
        let stop = CancellationToken::new();
        let mut ingest = Vec::new();
        let (pipeline_tx, pipeline_rx) = mpsc::channel(1024);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let pipeline = Pipeline {
            config: config.clone(),
            previous,
            engine,
            live: outputs.live.clone(),
            metrics: outputs.metrics.clone(),
            telemetry_lanes: outputs.telemetry_lanes.clone(),
            incident_lane: outputs.incident_lane.clone(),
            checkpoints: outputs.checkpoints.clone(),
        };
        let pipeline = tokio::spawn(pipeline.run(pipeline_rx, ack_tx, pending));

        if !config.modbus_devices.is_empty() {
            let modbus = crate::ingest::modbus::ModbusIngest {
                devices: config.modbus_devices.clone(),
                observer: outputs.metrics.clone(),
                clock: crate::ingest::system_clock(),
            };
            ingest.push(tokio::spawn(modbus.run(pipeline_tx.clone(), stop.clone())));
        }
        if let (Some(broker), false) = (&config.mqtt, config.mqtt_mappings.is_empty()) {
            let known = config.equipment.iter().map(|e| e.id.clone()).collect();
            let mqtt = MqttIngest {
                broker: broker.clone(),
                mapper: Mapper::new(
                    config.mqtt_mappings.clone(),
                    known,
                    broker.max_payload_bytes,
                ),
                metrics: outputs.metrics.clone(),
                connected: outputs.live.site_broker.clone(),
                clock: crate::ingest::system_clock(),
            };
            ingest.push(tokio::spawn(mqtt.run(pipeline_tx, ack_rx, stop.clone())));
        } else {
            // No MQTT intake: the pipeline ends when intake stops.
            let stop = stop.clone();
            ingest.push(tokio::spawn(async move {
                stop.cancelled().await;
                drop(pipeline_tx);
                drop(ack_rx);
            }));
        }
        Intake {
            stop,
            ingest,
            pipeline,
        }
    }

    /// Stops taking input and lets the pipeline drain into the outbox and hand back the last
    /// acknowledgements; returns its engine.
    async fn stop(self) -> Option<Engine> {
        self.stop.cancel();
        for task in self.ingest {
            let _ = task.await;
        }
        self.pipeline.await.ok()
    }
}

fn equipment_kinds(config: &Config) -> HashMap<String, EquipmentKind> {
    config
        .equipment
        .iter()
        .map(|e| (e.id.clone(), e.kind))
        .collect()
}

impl Gateway {
    pub async fn start(config: Config) -> Result<Gateway, GatewayError> {
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::new());
        let live = Arc::new(Live::new(config.influx.iter().map(|u| u.name.clone())));
        let stop = Stop::default();
        let mut uplink_tasks = Vec::new();

        let encoder = Arc::new(Encoder::new(
            &config.site.id,
            &config.gateway.id,
            equipment_kinds(&config),
        ));
        match &config.outbox {
            Some(outbox) => {
                tracing::info!(dir = %outbox.dir.display(), "outbox on disk: what is acknowledged survives a crash")
            }
            None => tracing::warn!(
                "outbox in memory ([outbox] kind = \"memory\"): a crash loses what is queued"
            ),
        }
        let mut telemetry_lanes = Vec::new();
        for (uplink, (_, healthy)) in config.influx.iter().zip(&live.influx) {
            let lane = open_lane(
                &config,
                format!("telemetry:{}", uplink.name),
                uplink.queue_max_points,
                Overflow::DropOldest,
                &metrics,
            )
            .await?;
            telemetry_lanes.push(lane.clone());
            let writer = InfluxWriter::new(
                uplink.clone(),
                lane,
                encoder.clone(),
                metrics.clone(),
                healthy.clone(),
            );
            uplink_tasks.push(tokio::spawn(writer.run(stop.clone())));
        }

        for (uplink, queue_max_points) in &config.line_files {
            let lane = open_lane(
                &config,
                format!("telemetry:{}", uplink.name),
                *queue_max_points,
                Overflow::DropOldest,
                &metrics,
            )
            .await?;
            telemetry_lanes.push(lane.clone());
            let writer =
                LineFileWriter::new(uplink.clone(), lane, encoder.clone(), metrics.clone());
            uplink_tasks.push(tokio::spawn(writer.run(stop.clone())));
        }

        let registry = watch::Sender::new(gateway_registry(&config));
        let mut incident_lane = None;
        if let Some(central) = &config.central {
            let lane = open_lane(
                &config,
                "incidents".to_owned(),
                central.queue_max_events,
                Overflow::Wait,
                &metrics,
            )
            .await?;
            if let Some(outbox) = &config.outbox {
                // What central refused survives a restart beside the lanes. Unreadable, it is
                // kept in memory only: incidents must flow all the same.
                if let Err(e) = live.central_rejections.keep_in(&outbox.dir) {
                    tracing::error!(dir = %outbox.dir.display(), error = %e, "cannot keep central's refusals on disk; kept in memory only");
                }
            }
            let publisher = CentralPublisher::new(
                central.clone(),
                registry.subscribe(),
                lane.clone(),
                metrics.clone(),
                live.central_broker.clone(),
                live.central_rejections.clone(),
            );
            uplink_tasks.push(tokio::spawn(publisher.run(stop.clone())));
            incident_lane = Some(lane);
        }

        {
            let mut statuses = live.outbox.write().expect("outbox lock");
            for lane in &telemetry_lanes {
                statuses.push(lane.clone());
            }
            if let Some(lane) = &incident_lane {
                statuses.push(lane.clone());
            }
        }

        let checkpoints = config
            .outbox
            .as_ref()
            .map(|o| Arc::new(checkpoint::Checkpoints::open(&o.dir, metrics.clone())));
        let mut pending = Vec::new();
        let engine = match &checkpoints {
            Some(c) => c.restore(&config, &mut pending),
            None => Engine::from_config(&config),
        };
        let outputs = Outputs {
            live: live.clone(),
            metrics: metrics.clone(),
            telemetry_lanes,
            incident_lane,
            checkpoints,
        };
        let intake = Intake::start(&config, engine, pending, None, &outputs);

        let addr = config.gateway.http_listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| GatewayError::Listen { addr, source })?;
        let http_addr = listener
            .local_addr()
            .map_err(|source| GatewayError::Listen { addr, source })?;
        let api_config = Arc::new(RwLock::new(config.clone()));
        let router = api::router(AppState {
            config: api_config.clone(),
            metrics: metrics.clone(),
            live: live.clone(),
        });
        let http_stop = stop.hard_stop.clone();
        let http_task = tokio::spawn(async move {
            let app = router.into_make_service_with_connect_info::<SocketAddr>();
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { http_stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        tracing::info!(gateway = %config.gateway.id, http = %http_addr, "gateway started");

        Ok(Gateway {
            http_addr,
            metrics,
            live,
            config_path: None,
            shutdown_flush: config.gateway.shutdown_flush,
            config,
            api_config,
            encoder,
            registry,
            outputs,
            intake: Some(intake),
            stop,
            uplink_tasks,
            http_task,
        })
    }

    /// Reads [`Gateway::config_path`] again and applies it, or refuses it (an invalid file, or
    /// a change only a restart can apply) and keeps running as before.
    pub async fn reload(&mut self) -> ReloadOutcome {
        let Some(path) = &self.config_path else {
            return self.refuse(vec![
                "this gateway was started without a config file; there is nothing to read again"
                    .to_owned(),
            ]);
        };
        match crate::config::load(path) {
            Ok(config) => self.apply(config).await,
            Err(e) if e.problems().is_empty() => self.refuse(vec![e.to_string()]),
            Err(e) => self.refuse(e.problems().iter().map(ToString::to_string).collect()),
        }
    }

    /// Applies a new config to the running gateway, or refuses it when it changes what only a
    /// restart can.
    pub async fn apply(&mut self, config: Config) -> ReloadOutcome {
        let refused = reload::needs_restart(&self.config, &config);
        if !refused.is_empty() {
            return self.refuse(refused);
        }
        let changed = reload::changed(&self.config, &config);
        if changed.is_empty() {
            let message = "config unchanged: nothing to apply".to_owned();
            self.metrics.config_reload_applied(&message);
            return ReloadOutcome {
                applied: true,
                message,
                problems: Vec::new(),
            };
        }
        let config = Arc::new(config);
        let intake = self.intake.take().expect("an intake runs between reloads");
        // Everything the old intake took is in the outbox and acknowledged when it returns.
        let engine = intake.stop().await.unwrap_or_else(|| {
            tracing::error!(
                "the pipeline had failed; the rules start again without their alarm state"
            );
            Engine::from_config(&self.config)
        });
        let mut ended = Vec::new();
        let engine = engine.reload(&config, Utc::now(), &mut ended);
        self.encoder.set_kinds(equipment_kinds(&config));
        let registry = gateway_registry(&config);
        self.registry.send_if_modified(|current| {
            let changed = *current != registry;
            *current = registry;
            changed
        });
        self.live
            .latest
            .write()
            .expect("latest lock")
            .retain(|equipment, _| config.equipment(equipment).is_some());
        *self.api_config.write().expect("config lock") = config.clone();
        self.shutdown_flush = config.gateway.shutdown_flush;
        let previous = std::mem::replace(&mut self.config, config.clone());
        self.intake = Some(Intake::start(
            &config,
            engine,
            ended,
            Some(previous),
            &self.outputs,
        ));
        let message = format!(
            "reloaded: {}; changed: {}",
            config.summary(),
            changed.join(", ")
        );
        self.metrics.config_reload_applied(&message);
        ReloadOutcome {
            applied: true,
            message,
            problems: Vec::new(),
        }
    }

    fn refuse(&self, problems: Vec<String>) -> ReloadOutcome {
        self.metrics.config_reload_refused(&problems);
        ReloadOutcome {
            applied: false,
            message: format!(
                "reload refused ({} problem{}), the running config stays",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            ),
            problems,
        }
    }

    /// Stops intake, drains the pipeline, flushes the uplinks (at most `shutdown_flush`), and
    /// stops the HTTP server.
    pub async fn stop(mut self) {
        tracing::info!("stopping: no new input, flushing queues");
        if let Some(intake) = self.intake.take() {
            intake.stop().await;
        }
        if let Some(checkpoints) = self.outputs.checkpoints.clone() {
            let _ = tokio::task::spawn_blocking(move || checkpoints.close()).await;
        }
        self.stop.flush.cancel();
        let deadline = tokio::time::Instant::now() + self.shutdown_flush;
        for task in &mut self.uplink_tasks {
            if tokio::time::timeout_at(deadline, &mut *task).await.is_err() {
                tracing::warn!(
                    seconds = self.shutdown_flush.as_secs(),
                    "flush did not finish in time; what is left stays in the outbox"
                );
                break;
            }
        }
        self.stop.hard_stop.cancel();
        // Those still running end promptly now; a handle awaited above must not be polled again.
        for task in self.uplink_tasks {
            if !task.is_finished() {
                let _ = task.await;
            }
        }
        for lane in &self.outputs.telemetry_lanes {
            if let Err(e) = lane.close().await {
                tracing::error!(lane = lane.name(), error = %e, "cannot close the outbox lane");
            }
        }
        if let Some(lane) = &self.outputs.incident_lane {
            if let Err(e) = lane.close().await {
                tracing::error!(lane = lane.name(), error = %e, "cannot close the outbox lane");
            }
        }
        let _ = self.http_task.await;
        tracing::info!("stopped");
    }
}

/// Runs a gateway until SIGTERM or ctrl-c, then stops it gracefully. SIGHUP and
/// `POST /api/v1/reload` read `path` again ([`Gateway::reload`]).
pub async fn run(config: Config, path: PathBuf) -> Result<(), GatewayError> {
    // First, so that a SIGHUP during start does not end the process (its default action).
    let mut hangups = Hangups::new();
    let mut gateway = Gateway::start(config).await?;
    gateway.config_path = Some(path);
    let (reload_tx, mut reload_requests) = mpsc::channel::<ReloadRequest>(4);
    *gateway.live.reload.lock().expect("reload lock") = Some(reload_tx);
    let shutdown = crate::shutdown::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = hangups.recv() => {
                tracing::info!("SIGHUP: reading the config again");
                gateway.reload().await;
            }
            Some(reply) = reload_requests.recv() => {
                let _ = reply.send(gateway.reload().await);
            }
        }
    }
    *gateway.live.reload.lock().expect("reload lock") = None;
    gateway.stop().await;
    Ok(())
}

/// SIGHUP, on unix.
struct Hangups {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangups {
    fn new() -> Self {
        Hangups {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .expect("installing a SIGHUP handler"),
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        self.signal.recv().await;
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    }
}
