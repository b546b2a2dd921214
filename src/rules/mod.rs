//! Alarm rules. The engine is a pure state machine: readings, clock ticks and operator actions go
//! in, alarm events come out.
//!
//! **Invariant:** rules do no I/O and never read the wall clock. Time comes with each reading,
//! as the `now` of [`Engine::tick`], or with an operator action, so every rule is tested with
//! exact instants.
//!
//! **Invariant:** at most one alarm is open per alarm name and equipment (for a threshold rule,
//! per level), and every raise is followed by exactly one clear before the next raise.
//!
//! Layout, in the order a reading meets them:
//! - `threshold.rs`: levels with deadband and delays (also the nameplate-derived vessel limits);
//! - `rate.rs`, `stale.rs`: rate of change, and no data for N × the expected interval;
//! - `elevator.rs`: the canonical fault enum, both numberings, trapped passenger and friends;
//! - `condition.rs` with `expr.rs` and `debounce.rs`: typed expressions over several metrics,
//!   and the autoclave door interlock;
//! - `fill.rs`: cylinder fills against the registry;
//! - `lifecycle.rs`: ISA-18.2 states, acknowledgement, shelving, suppression, chattering, flood;
//! - `build.rs` makes an engine from a rule set; `reload.rs` swaps the rules for a new
//!   config's; `checkpoint.rs` saves and restores the rule state across a restart (its doc
//!   is the specification of the checkpoint).
//!
//! Readings of one equipment with one timestamp are one snapshot: the rules that look at
//! several metrics (elevators, expressions, interlock, fills) evaluate the whole snapshot once.

mod build;
mod checkpoint;
mod condition;
pub mod config;
mod debounce;
mod elevator;
mod expr;
mod faults;
mod fill;
mod lifecycle;
mod rate;
mod reload;
mod stale;
mod threshold;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{AlarmEvent, FillRecord, Quality, Reading, Severity, Value};
use config::{EngineSettings, RuleSet, ThresholdRule};

pub use crate::model::AlarmStats;
pub use checkpoint::{
    frame as frame_checkpoint, unframe as unframe_checkpoint, CheckpointError, Restored,
    COST_SHARE as CHECKPOINT_COST_SHARE, HEARTBEAT as CHECKPOINT_HEARTBEAT,
    MIN_INTERVAL as CHECKPOINT_MIN_INTERVAL,
};
pub use elevator::SERVICE_MODES;
pub use expr::{parse as parse_expr, Expr, ExprError};
pub use faults::{decode as decode_fault, Code, ElevatorEvent, ElevatorFault};
pub use fill::local_date;
pub use lifecycle::{AlarmState, LifecycleError, Operator};
pub use threshold::ThresholdPoint;

use condition::ConditionPoint;
use elevator::ElevatorUnit;
use fill::FillStation;
use lifecycle::Lifecycle;
use rate::RatePoint;
use stale::StalePoint;

/// An alarm that is not normal now, with its ISA-18.2 state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveAlarm {
    pub equipment: String,
    pub rule: String,
    pub severity: Severity,
    /// When the condition last began.
    pub since: DateTime<Utc>,
    pub value: Option<f64>,
    pub limit: Option<f64>,
    pub message: String,
    pub state: AlarmState,
    /// Whether the rule's condition holds now (false for returned or latched alarms).
    pub condition: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shelved_until: Option<DateTime<Utc>>,
    pub chattering: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, Value>,
}

/// Everything the engine keeps about one equipment.
struct Unit {
    equipment: String,
    /// (metric, point)
    thresholds: Vec<(String, ThresholdPoint)>,
    rates: Vec<RatePoint>,
    stale: Vec<StalePoint>,
    elevator: Option<ElevatorUnit>,
    elevator_suppressed: bool,
    conditions: Vec<ConditionPoint>,
    fill: Option<FillStation>,
    /// Latest good value per metric, kept only when a condition needs it.
    values: HashMap<String, Value>,
    keeps_values: bool,
    /// The instant of the snapshot being collected.
    snapshot: Option<DateTime<Utc>>,
    dirty: bool,
}

impl Unit {
    fn new(equipment: &str) -> Self {
        Unit {
            equipment: equipment.to_owned(),
            thresholds: Vec::new(),
            rates: Vec::new(),
            stale: Vec::new(),
            elevator: None,
            elevator_suppressed: false,
            conditions: Vec::new(),
            fill: None,
            values: HashMap::new(),
            keeps_values: false,
            snapshot: None,
            dirty: false,
        }
    }

    fn has_snapshot_rules(&self) -> bool {
        self.elevator.is_some() || !self.conditions.is_empty() || self.fill.is_some()
    }
}

pub struct Engine {
    gateway: String,
    units: Vec<Unit>,
    by_equipment: HashMap<String, usize>,
    lifecycle: Lifecycle,
    /// Units with a snapshot that is not evaluated yet.
    dirty: Vec<usize>,
    /// Raises and clears from the rules, before the lifecycle.
    raw: Vec<AlarmEvent>,
    fills: Vec<FillRecord>,
    evaluations: u64,
    /// (equipment, rule id) → the rule as configured for that equipment (its `Debug` text,
    /// without the rule's equipment list), so a reload can tell which rules did not change.
    signatures: HashMap<(String, String), String>,
}

impl Engine {
    /// An engine with threshold rules only.
    pub fn new(gateway: &str, thresholds: &[ThresholdRule]) -> Self {
        Self::with_rules(gateway, thresholds, &RuleSet::default())
    }

    /// An engine with every rule of a config.
    pub fn from_config<'a>(config: impl Into<EngineSettings<'a>>) -> Self {
        let config = config.into();
        Self::with_rules(config.gateway_id, config.thresholds, config.rules)
    }

    /// Evaluates one reading. Bad and stale readings are not evaluated: a decision needs a
    /// trustworthy value.
    pub fn on_reading(&mut self, reading: &Reading, events: &mut Vec<AlarmEvent>) {
        self.on_readings(std::slice::from_ref(reading), events);
    }

    /// Evaluates a batch of readings, then every snapshot the batch completed.
    pub fn on_readings(&mut self, readings: &[Reading], events: &mut Vec<AlarmEvent>) {
        for reading in readings {
            self.apply(reading, events);
        }
        for index in std::mem::take(&mut self.dirty) {
            self.settle(index, events);
        }
    }

    /// Whether `reading` can change the rule state, which is what the checkpoint journal keeps.
    /// One this says no to is one [`Engine::apply`] leaves without a trace: bad quality, an
    /// equipment without rules, or a metric that no threshold, rate or stale rule of its
    /// equipment watches when the equipment has no snapshot rule (elevator, condition, fill:
    /// those see every reading of their equipment).
    pub fn reads(&self, reading: &Reading) -> bool {
        if reading.quality != Quality::Good {
            return false;
        }
        let Some(&index) = self.by_equipment.get(reading.equipment.as_str()) else {
            return false;
        };
        let unit = &self.units[index];
        let metric = reading.metric.as_str();
        unit.has_snapshot_rules()
            || unit.thresholds.iter().any(|(m, _)| m == metric)
            || unit.rates.iter().any(|p| p.metric() == metric)
            || unit.stale.iter().any(|p| p.watches(metric))
    }

    fn apply(&mut self, reading: &Reading, events: &mut Vec<AlarmEvent>) {
        if reading.quality != Quality::Good {
            return;
        }
        let Some(&index) = self.by_equipment.get(reading.equipment.as_str()) else {
            return;
        };
        if self.units[index].dirty && self.units[index].snapshot.is_some_and(|s| reading.time > s) {
            self.settle(index, events);
        }
        let gateway = self.gateway.as_str();
        let unit = &mut self.units[index];
        let time = reading.time;
        let metric = reading.metric.as_str();
        let mut n = 0u64;
        if let Some(value) = reading.value.as_f64().filter(|v| v.is_finite()) {
            for (m, point) in &mut unit.thresholds {
                if m == metric {
                    point.on_value(gateway, value, reading.unit.as_deref(), time, &mut self.raw);
                    n += 1;
                }
            }
            for point in &mut unit.rates {
                if point.metric() == metric {
                    point.on_value(gateway, value, time, &mut self.raw);
                    n += 1;
                }
            }
        }
        for point in &mut unit.stale {
            if point.watches(metric) {
                point.on_reading(gateway, time, &mut self.raw);
                n += 1;
            }
        }
        let late = unit.snapshot.is_some_and(|s| time < s);
        if unit.has_snapshot_rules() && !late {
            if unit.snapshot != Some(time) {
                // The previous state held until now: let delays that ran out meanwhile act.
                if let Some(elevator) = &mut unit.elevator {
                    elevator.expire(gateway, time, &mut self.raw);
                }
                for c in &mut unit.conditions {
                    c.expire(gateway, &unit.values, time, &mut self.raw);
                }
            }
            let mut used = false;
            if let Some(elevator) = &mut unit.elevator {
                if elevator.reads(metric) {
                    elevator.apply(metric, &reading.value, time);
                    used = true;
                }
            }
            if let Some(fill) = &mut unit.fill {
                fill.apply(metric, &reading.value);
                used = true;
            }
            if unit.keeps_values {
                match unit.values.get_mut(metric) {
                    Some(v) => v.clone_from(&reading.value),
                    None => {
                        unit.values.insert(metric.to_owned(), reading.value.clone());
                    }
                }
                used = true;
            }
            if used {
                n += 1;
                unit.snapshot = Some(time);
                if !unit.dirty {
                    unit.dirty = true;
                    self.dirty.push(index);
                }
            }
        }
        self.evaluations += n;
        self.pass(events);
    }

    /// Evaluates the collected snapshot of one unit.
    fn settle(&mut self, index: usize, events: &mut Vec<AlarmEvent>) {
        let gateway = self.gateway.as_str();
        let unit = &mut self.units[index];
        if !unit.dirty {
            return;
        }
        unit.dirty = false;
        let Some(time) = unit.snapshot else {
            return;
        };
        if let Some(elevator) = &mut unit.elevator {
            let suppressed = elevator.suppressed();
            if suppressed != unit.elevator_suppressed {
                unit.elevator_suppressed = suppressed;
                let reason = if suppressed {
                    "elevator in inspection or out of service"
                } else {
                    "elevator back in service"
                };
                self.lifecycle.set_suppressed(
                    &unit.equipment,
                    elevator.rule_id(),
                    suppressed,
                    reason,
                    time,
                    events,
                );
            }
            elevator.settle(gateway, time, &mut self.raw);
        }
        for c in &mut unit.conditions {
            c.settle(gateway, &unit.values, time, &mut self.raw);
        }
        if let Some(fill) = &mut unit.fill {
            fill.settle(gateway, time, &mut self.raw, &mut self.fills);
        }
        self.pass(events);
    }

    /// Hands the rules' raises and clears to the lifecycle.
    fn pass(&mut self, events: &mut Vec<AlarmEvent>) {
        for event in self.raw.drain(..) {
            self.lifecycle.on_condition(event, events);
        }
    }

    /// Lets delays and shelves expire without a new reading.
    pub fn tick(&mut self, now: DateTime<Utc>, events: &mut Vec<AlarmEvent>) {
        for index in std::mem::take(&mut self.dirty) {
            self.settle(index, events);
        }
        let gateway = self.gateway.as_str();
        for unit in &mut self.units {
            for (_, point) in &mut unit.thresholds {
                point.on_tick(gateway, now, &mut self.raw);
            }
            if let Some(elevator) = &mut unit.elevator {
                elevator.expire(gateway, now, &mut self.raw);
            }
            for c in &mut unit.conditions {
                c.expire(gateway, &unit.values, now, &mut self.raw);
            }
            for point in &mut unit.stale {
                point.on_tick(gateway, now, &mut self.raw);
            }
            for event in self.raw.drain(..) {
                self.lifecycle.on_condition(event, events);
            }
        }
        self.lifecycle.tick(now, events);
    }

    /// Acknowledges an alarm (ISA-18.2: unack → ack, or returned-unack → normal).
    pub fn acknowledge(
        &mut self,
        by: Operator,
        events: &mut Vec<AlarmEvent>,
    ) -> Result<(), LifecycleError> {
        self.lifecycle.acknowledge(by, events)
    }

    /// Shelves an alarm for `duration`; returns when the shelf ends.
    pub fn shelve(
        &mut self,
        by: Operator,
        duration: Duration,
        events: &mut Vec<AlarmEvent>,
    ) -> Result<DateTime<Utc>, LifecycleError> {
        self.lifecycle.shelve(by, duration, events)
    }

    pub fn unshelve(
        &mut self,
        by: Operator,
        events: &mut Vec<AlarmEvent>,
    ) -> Result<(), LifecycleError> {
        self.lifecycle.unshelve(by, events)
    }

    pub fn set_out_of_service(
        &mut self,
        by: Operator,
        out_of_service: bool,
        events: &mut Vec<AlarmEvent>,
    ) -> Result<(), LifecycleError> {
        self.lifecycle
            .set_out_of_service(by, out_of_service, events)
    }

    /// Every alarm that is not normal.
    pub fn active(&self) -> Vec<ActiveAlarm> {
        self.lifecycle.active()
    }

    pub fn state(&self, equipment: &str, rule: &str) -> Option<AlarmState> {
        self.lifecycle.state(equipment, rule)
    }

    /// Whether an alarm is open on the incident stream (raised, not yet cleared).
    pub fn is_open(&self, equipment: &str, rule: &str) -> bool {
        self.lifecycle.is_open(equipment, rule)
    }

    pub fn stats(&self) -> AlarmStats {
        self.lifecycle.stats()
    }

    /// The fill records checked since the last call, accepted and refused.
    pub fn take_fills(&mut self) -> Vec<FillRecord> {
        std::mem::take(&mut self.fills)
    }

    /// Rule evaluations so far: one per rule point a reading reached.
    pub fn evaluations(&self) -> u64 {
        self.evaluations
    }
}

#[cfg(test)]
mod tests;
