//! The gateway: wires ingest → pipeline (rules) → outbox lanes → uplinks, serves the API, and
//! shuts down in order so that what was accepted is flushed.
//!
//! Shutdown: `stop_intake` stops taking messages; the pipeline drains what it holds and hands
//! back the last acknowledgements; then `flush` tells the uplinks to send what is queued and
//! stop, and `hard_stop` ends them after `shutdown_flush` if a receiver is down.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rumqttc::Publish;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState, Live};
use crate::config::Config;
use crate::ingest::mqtt::{Batch, Mapper, MqttIngest};
use crate::metrics::Metrics;
use crate::model::{AlarmEvent, Incident, Reading, SiteRecord, Transition, INCIDENT_SCHEMA};
use crate::outbox::{Lane, Overflow};
use crate::rules::Engine;
use crate::uplink::central::CentralPublisher;
use crate::uplink::influx::{Encoder, InfluxWriter};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running gateway. Dropping it does not stop it; call [`Gateway::stop`].
pub struct Gateway {
    pub http_addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub live: Arc<Live>,
    stop_intake: CancellationToken,
    flush: CancellationToken,
    hard_stop: CancellationToken,
    shutdown_flush: Duration,
    intake_tasks: Vec<JoinHandle<()>>,
    uplink_tasks: Vec<JoinHandle<()>>,
    http_task: JoinHandle<()>,
}

impl Gateway {
    pub async fn start(config: Config) -> Result<Gateway, GatewayError> {
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::new());
        let live = Arc::new(Live::new(config.influx.iter().map(|u| u.name.clone())));
        let stop_intake = CancellationToken::new();
        let flush = CancellationToken::new();
        let hard_stop = CancellationToken::new();
        let mut intake_tasks = Vec::new();
        let mut uplink_tasks = Vec::new();

        let kinds: HashMap<String, _> = config
            .equipment
            .iter()
            .map(|e| (e.id.clone(), e.kind))
            .collect();
        let encoder = Arc::new(Encoder::new(&config.site.id, &config.gateway.id, kinds));
        let mut telemetry_lanes = Vec::new();
        for (uplink, (_, healthy)) in config.influx.iter().zip(&live.influx) {
            let lane = Arc::new(Lane::new(
                format!("telemetry:{}", uplink.name),
                uplink.queue_max_points,
                Overflow::DropOldest,
                metrics.clone(),
            ));
            telemetry_lanes.push(lane.clone());
            let writer = InfluxWriter::new(uplink.clone());
            uplink_tasks.push(tokio::spawn(writer.run(
                lane,
                encoder.clone(),
                metrics.clone(),
                healthy.clone(),
                flush.clone(),
                hard_stop.clone(),
            )));
        }

        let incident_lane = config.central.as_ref().map(|central| {
            let lane = Arc::new(Lane::new(
                "incidents",
                central.queue_max_events,
                Overflow::Wait,
                metrics.clone(),
            ));
            let (publisher, event_loop) =
                CentralPublisher::new(central.clone(), &config.gateway.id, &config.site.id);
            uplink_tasks.push(tokio::spawn(publisher.run(
                event_loop,
                lane.clone(),
                metrics.clone(),
                live.central_broker.clone(),
                flush.clone(),
                hard_stop.clone(),
            )));
            lane
        });

        let (pipeline_tx, pipeline_rx) = mpsc::channel(1024);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let pipeline = Pipeline {
            config: config.clone(),
            engine: Engine::new(&config.gateway.id, &config.thresholds),
            live: live.clone(),
            metrics: metrics.clone(),
            telemetry_lanes,
            incident_lane,
        };
        intake_tasks.push(tokio::spawn(pipeline.run(pipeline_rx, ack_tx)));

        if !config.modbus_devices.is_empty() {
            let ingest = crate::ingest::modbus::ModbusIngest {
                devices: config.modbus_devices.clone(),
                observer: metrics.clone(),
                clock: crate::ingest::modbus::system_clock(),
            };
            intake_tasks.push(tokio::spawn(
                ingest.run(pipeline_tx.clone(), stop_intake.clone()),
            ));
        }
        if let (Some(broker), false) = (&config.mqtt, config.mqtt_mappings.is_empty()) {
            let known = config.equipment.iter().map(|e| e.id.clone()).collect();
            let ingest = MqttIngest {
                broker: broker.clone(),
                mapper: Mapper::new(
                    config.mqtt_mappings.clone(),
                    known,
                    broker.max_payload_bytes,
                ),
                metrics: metrics.clone(),
                connected: live.site_broker.clone(),
            };
            intake_tasks.push(tokio::spawn(ingest.run(
                pipeline_tx,
                ack_rx,
                stop_intake.clone(),
            )));
        } else {
            // No MQTT intake: the pipeline ends when intake stops.
            let stop = stop_intake.clone();
            intake_tasks.push(tokio::spawn(async move {
                stop.cancelled().await;
                drop(pipeline_tx);
                drop(ack_rx);
            }));
        }

        let addr = config.gateway.http_listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| GatewayError::Listen { addr, source })?;
        let http_addr = listener
            .local_addr()
            .map_err(|source| GatewayError::Listen { addr, source })?;
        let router = api::router(AppState {
            config: config.clone(),
            metrics: metrics.clone(),
            live: live.clone(),
        });
        let http_stop = hard_stop.clone();
        let http_task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
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
            stop_intake,
            flush,
            hard_stop,
            shutdown_flush: config.gateway.shutdown_flush,
            intake_tasks,
            uplink_tasks,
            http_task,
        })
    }

    /// Stops intake, drains the pipeline, flushes the uplinks (at most `shutdown_flush`), and
    /// stops the HTTP server.
    pub async fn stop(self) {
        tracing::info!("stopping: no new input, flushing queues");
        self.stop_intake.cancel();
        for task in self.intake_tasks {
            let _ = task.await;
        }
        self.flush.cancel();
        let uplinks = futures_join_all(self.uplink_tasks);
        if tokio::time::timeout(self.shutdown_flush, uplinks)
            .await
            .is_err()
        {
            tracing::warn!(
                seconds = self.shutdown_flush.as_secs(),
                "flush did not finish in time"
            );
        }
        self.hard_stop.cancel();
        let _ = self.http_task.await;
        tracing::info!("stopped");
    }
}

async fn futures_join_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// Runs a gateway until SIGTERM or ctrl-c, then stops it gracefully.
pub async fn run(config: Config) -> Result<(), GatewayError> {
    let gateway = Gateway::start(config).await?;
    shutdown_signal().await;
    gateway.stop().await;
    Ok(())
}

pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The processing step between ingest and the outbox: rules, the live view, and the lanes.
struct Pipeline {
    config: Arc<Config>,
    engine: Engine,
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    telemetry_lanes: Vec<Arc<Lane<Reading>>>,
    incident_lane: Option<Arc<Lane<Incident>>>,
}

impl Pipeline {
    async fn run(mut self, mut input: mpsc::Receiver<Batch>, acks: mpsc::UnboundedSender<Publish>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events = Vec::new();
        loop {
            tokio::select! {
                batch = input.recv() => {
                    let Some(batch) = batch else { break };
                    for reading in &batch.readings {
                        self.engine.on_reading(reading, &mut events);
                    }
                    self.record_latest(&batch.readings);
                    for lane in &self.telemetry_lanes {
                        lane.push_all(batch.readings.iter().cloned()).await;
                    }
                    self.emit(&mut events).await;
                    if let Some(publish) = batch.ack {
                        // The ingest task may already be gone at shutdown; the broker redelivers.
                        let _ = acks.send(publish);
                    }
                }
                _ = tick.tick() => {
                    self.engine.tick(Utc::now(), &mut events);
                    self.emit(&mut events).await;
                }
            }
        }
    }

    fn record_latest(&self, readings: &[Reading]) {
        let mut latest = self.live.latest.write().expect("latest lock");
        for r in readings {
            latest
                .entry(r.equipment.clone())
                .or_default()
                .insert(r.metric.clone(), r.clone());
        }
    }

    async fn emit(&mut self, events: &mut Vec<AlarmEvent>) {
        if events.is_empty() {
            return;
        }
        *self.live.alarms.write().expect("alarms lock") = self.engine.active();
        let mut incidents = Vec::with_capacity(events.len());
        for event in events.drain(..) {
            match event.transition {
                Transition::Raise => self.metrics.alarm_raised(event.severity.as_str()),
                Transition::Clear => self.metrics.alarm_cleared(),
            }
            tracing::info!(equipment = %event.equipment, rule = %event.rule, transition = ?event.transition, severity = event.severity.as_str(), message = %event.message, "alarm");
            let Some(equipment) = self.config.equipment(&event.equipment) else {
                continue;
            };
            incidents.push(Incident {
                schema: INCIDENT_SCHEMA.to_owned(),
                id: event.id,
                gateway: self.config.gateway.id.clone(),
                site: SiteRecord {
                    id: self.config.site.id.clone(),
                    name: self.config.site.name.clone(),
                    address: self.config.site.address.clone(),
                },
                equipment: equipment.clone(),
                event,
            });
        }
        if let Some(lane) = &self.incident_lane {
            lane.push_all(incidents).await;
        }
    }
}
