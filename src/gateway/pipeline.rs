//! The pipeline: the processing step between ingest and the outbox. It takes [`Batch`]es from
//! every ingest (MQTT, Modbus), runs the rules on each message's readings, keeps the live view,
//! and pushes whole points to the telemetry lanes and incidents to the central lane, handing an
//! MQTT message's acknowledgement back only once its readings are in the outbox.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rumqttc::Publish;
use tokio::sync::mpsc;

use super::checkpoint;
use crate::api::{self, AlarmAction, AlarmCommand, Live};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::{
    AlarmEvent, Incident, Quality, Reading, SiteRecord, Source, ToCentral, Transition, Value,
    INCIDENT_SCHEMA,
};
use crate::outbox::Lane;
use crate::rules::{Engine, LifecycleError, Operator};
use crate::uplink::influx::Point;

/// The pipeline's input, as every source hands it over.
pub use crate::ingest::Batch;

/// Messages the pipeline takes at once into one outbox append.
const GROUP_MAX_MESSAGES: usize = 256;

/// The alarm raised when telemetry was lost from the outbox.
pub const DATA_LOSS_RULE: &str = "gateway.data_loss";

/// The processing step between ingest and the outbox: rules, the live view, and the lanes.
pub(super) struct Pipeline {
    pub(super) config: Arc<Config>,
    /// The config before the last reload: the registry records of removed equipment, for the
    /// clears that close their alarms.
    pub(super) previous: Option<Arc<Config>>,
    pub(super) engine: Engine,
    pub(super) live: Arc<Live>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) telemetry_lanes: Vec<Arc<Lane<Point>>>,
    pub(super) incident_lane: Option<Arc<Lane<ToCentral>>>,
    pub(super) checkpoints: Option<Arc<checkpoint::Checkpoints>>,
}

impl Pipeline {
    /// Runs until every ingest sender is gone; returns the engine, for a reload to carry on.
    pub(super) async fn run(
        mut self,
        mut input: mpsc::Receiver<Batch>,
        acks: mpsc::UnboundedSender<Publish>,
        pending: Vec<AlarmEvent>,
    ) -> Engine {
        let (command_tx, mut commands) = mpsc::channel::<AlarmCommand>(64);
        *self
            .live
            .alarm_commands
            .lock()
            .expect("alarm commands lock") = Some(command_tx);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        *self.live.alarms.write().expect("alarms lock") = self.engine.active();
        let mut events = pending;
        self.emit(&mut events).await;
        loop {
            tokio::select! {
                batch = input.recv() => {
                    let Some(first) = batch else { break };
                    // Group commit: take what else is waiting, so one durable append (one fsync)
                    // covers many messages. Each message is still evaluated on its own.
                    let mut batches = vec![first];
                    while batches.len() < GROUP_MAX_MESSAGES {
                        match input.try_recv() {
                            Ok(b) => batches.push(b),
                            Err(_) => break,
                        }
                    }
                    let mut readings = Vec::new();
                    for batch in &mut batches {
                        self.engine.on_readings(&batch.readings, &mut events);
                        readings.append(&mut batch.readings);
                    }
                    if let Some(checkpoints) = &self.checkpoints {
                        checkpoints.journal(&self.engine, &readings);
                    }
                    self.record_latest(&readings);
                    let fills = self.take_fills(&mut readings);
                    // Incidents and fills first: an alarm's way to central does not wait for
                    // the telemetry's fsync.
                    self.emit(&mut events).await;
                    self.send_to_central(fills).await;
                    // The lanes' unit is a point: delivered or dropped whole. A full lane waits
                    // here (backpressure) and so holds back the acknowledgements below.
                    let points = Point::group(readings);
                    if let Some((last, others)) = self.telemetry_lanes.split_last() {
                        for lane in others {
                            lane.push_all(points.iter().cloned()).await;
                        }
                        last.push_all(points).await;
                    }
                    for publish in batches.into_iter().filter_map(|b| b.ack) {
                        // The ingest task may already be gone at shutdown; the broker redelivers.
                        let _ = acks.send(publish);
                    }
                }
                Some(command) = commands.recv() => {
                    let result = self.command(&command, &mut events);
                    let answer = result.map(|()| events.clone());
                    self.emit(&mut events).await;
                    let _ = command.reply.send(answer);
                }
                _ = tick.tick() => {
                    let now = Utc::now();
                    self.engine.tick(now, &mut events);
                    self.data_loss(now, &mut events);
                    self.emit(&mut events).await;
                }
            }
            // After the step's events are in the outbox (rules/checkpoint.rs).
            if let Some(checkpoints) = &self.checkpoints {
                checkpoints.offer(&self.engine);
            }
        }
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.save(&self.engine);
        }
        *self
            .live
            .alarm_commands
            .lock()
            .expect("alarm commands lock") = None;
        self.engine
    }

    /// Raises the data-loss alarm when a telemetry lane dropped entries (quota full) or lost
    /// corrupt ones since the last tick. Loss is an event, not a condition: raised and cleared
    /// at once, so every loss reaches central and none stays open.
    fn data_loss(&self, now: chrono::DateTime<Utc>, events: &mut Vec<AlarmEvent>) {
        for lane in &self.telemetry_lanes {
            let age = lane.oldest_age().map_or(0.0, |d| d.as_secs_f64());
            self.metrics.outbox_oldest_age(lane.name(), age);
            let lost = lane.take_lost();
            if lost == 0 {
                continue;
            }
            let gateway = &self.config.gateway.id;
            let message = format!(
                "{gateway}: outbox lane {} lost {lost} entries (disk quota full or corrupt records)",
                lane.name()
            );
            tracing::error!(lane = lane.name(), lost, "telemetry lost: data-loss alarm");
            for transition in [Transition::Raise, Transition::Clear] {
                events.push(AlarmEvent::new(
                    gateway,
                    gateway,
                    DATA_LOSS_RULE,
                    crate::model::Severity::High,
                    transition,
                    now,
                    Some(lost as f64),
                    None,
                    message.clone(),
                ));
            }
        }
    }

    /// The registry record an incident carries: the equipment's, or the gateway's own for
    /// alarms about the gateway (data loss).
    fn incident_equipment(&self, id: &str) -> Option<crate::model::Equipment> {
        let previous = self.previous.as_ref().and_then(|c| c.equipment(id));
        if let Some(e) = self.config.equipment(id).or(previous) {
            return Some(e.clone());
        }
        (id == self.config.gateway.id).then(|| crate::model::Equipment {
            id: id.to_owned(),
            kind: crate::model::EquipmentKind::Gateway,
            name: format!("gateway {id}"),
            registration_code: String::new(),
            use_certificate: None,
            rescue_code: None,
            using_unit: self.config.site.name.clone(),
            using_unit_phone: None,
            maintenance_unit: None,
            building_phone: None,
            address: self.config.site.address.clone(),
            location: None,
            nameplate: crate::model::Nameplate::default(),
            next_inspection: None,
            insured: None,
            in_service: None,
        })
    }

    fn command(
        &mut self,
        c: &AlarmCommand,
        events: &mut Vec<AlarmEvent>,
    ) -> Result<(), LifecycleError> {
        let by = Operator {
            equipment: &c.equipment,
            rule: &c.rule,
            user: &c.user,
            comment: c.comment.as_deref(),
            now: c.time,
        };
        match c.action {
            AlarmAction::Acknowledge => self.engine.acknowledge(by, events),
            AlarmAction::Shelve { duration } => {
                self.engine.shelve(by, duration, events).map(|_| ())
            }
            AlarmAction::Unshelve => self.engine.unshelve(by, events),
            AlarmAction::OutOfService | AlarmAction::InService => {
                let out = c.action == AlarmAction::OutOfService;
                self.engine.set_out_of_service(by, out, events)
            }
        }
    }

    /// Counts and keeps the fills the engine checked, adds readings of each to its station
    /// (`fill_accepted`, `fill_rejection`, `fill_cylinder`) for InfluxDB, and returns the
    /// records for central.
    fn take_fills(&mut self, readings: &mut Vec<Reading>) -> Vec<ToCentral> {
        let fills = self.engine.take_fills();
        if fills.is_empty() {
            return Vec::new();
        }
        let records = fills
            .iter()
            .map(|f| ToCentral::Fill(Box::new(f.clone())))
            .collect();
        let mut kept = self.live.fills.write().expect("fills lock");
        for fill in fills {
            let outcome = fill.rejections.first().map_or("accepted", |r| r.as_str());
            self.metrics.fill_checked(outcome);
            tracing::info!(station = %fill.equipment, cylinder = %fill.cylinder_code, accepted = fill.accepted, outcome, "fill checked");
            let reading = |metric: &str, value: Value| Reading {
                equipment: fill.equipment.clone(),
                metric: metric.to_owned(),
                value,
                unit: None,
                time: fill.time,
                quality: Quality::Good,
                source: Source::Fill,
            };
            readings.push(reading("fill_accepted", Value::Bool(fill.accepted)));
            readings.push(reading(
                "fill_cylinder",
                Value::Text(fill.cylinder_code.clone()),
            ));
            if !fill.accepted {
                let reasons: Vec<&str> = fill.rejections.iter().map(|r| r.as_str()).collect();
                readings.push(reading("fill_rejection", Value::Text(reasons.join(","))));
            }
            if kept.len() >= api::HISTORY_LEN {
                kept.pop_front();
            }
            kept.push_back(fill);
        }
        records
    }

    fn record_latest(&self, readings: &[Reading]) {
        let mut latest = self.live.latest.write().expect("latest lock");
        for r in readings {
            // The keys are cloned only the first time an equipment or metric is seen.
            if !latest.contains_key(&r.equipment) {
                latest.insert(r.equipment.clone(), Default::default());
            }
            let Some(metrics) = latest.get_mut(&r.equipment) else {
                continue;
            };
            match metrics.get_mut(&r.metric) {
                // Same equipment and metric: the rest is copied into what is kept, reusing its
                // strings instead of allocating new ones for every reading.
                Some(kept) => {
                    let Reading {
                        equipment: _,
                        metric: _,
                        value,
                        unit,
                        time,
                        quality,
                        source,
                    } = r;
                    kept.value.clone_from(value);
                    kept.unit.clone_from(unit);
                    kept.time = *time;
                    kept.quality = *quality;
                    kept.source = *source;
                }
                None => {
                    metrics.insert(r.metric.clone(), r.clone());
                }
            }
        }
    }

    async fn emit(&mut self, events: &mut Vec<AlarmEvent>) {
        if events.is_empty() {
            return;
        }
        *self.live.alarms.write().expect("alarms lock") = self.engine.active();
        self.metrics.alarm_stats(&self.engine.stats());
        {
            let mut history = self.live.history.write().expect("history lock");
            let keep = self.config.rules.lifecycle.history;
            for event in events.iter() {
                while history.len() >= keep {
                    history.pop_front();
                }
                history.push_back(event.clone());
            }
        }
        let mut incidents = Vec::with_capacity(events.len());
        for event in events.drain(..) {
            match event.transition {
                Transition::Raise if event.rule.ends_with(".trapped_rule_blind") => {
                    self.metrics.alarm_raised(event.severity.as_str());
                    self.metrics
                        .trapped_rule_blind(&event.equipment, &event.message);
                }
                Transition::Raise => self.metrics.alarm_raised(event.severity.as_str()),
                Transition::Clear => self.metrics.alarm_cleared(),
                _ => {}
            }
            self.metrics.alarm_transition(event.transition.as_str());
            tracing::info!(equipment = %event.equipment, rule = %event.rule, transition = ?event.transition, severity = event.severity.as_str(), message = %event.message, "alarm");
            let Some(equipment) = self.incident_equipment(&event.equipment) else {
                continue;
            };
            incidents.push(ToCentral::Incident(Box::new(Incident {
                schema: INCIDENT_SCHEMA.to_owned(),
                id: event.id,
                gateway: self.config.gateway.id.clone(),
                site: SiteRecord {
                    id: self.config.site.id.clone(),
                    name: self.config.site.name.clone(),
                    address: self.config.site.address.clone(),
                },
                equipment,
                event,
            })));
        }
        self.send_to_central(incidents).await;
    }

    /// Durably queues incidents and fill records for central; they never drop (the lane waits).
    async fn send_to_central(&self, messages: Vec<ToCentral>) {
        if let Some(lane) = &self.incident_lane {
            if !messages.is_empty() {
                lane.push_all(messages).await;
            }
        }
    }
}
