//! Alarm rules. The engine is a pure state machine: readings and clock ticks go in, alarm events
//! come out.
//!
//! **Invariant:** rules do no I/O and never read the wall clock. Time comes with each reading,
//! or as the `now` of [`Engine::tick`], so every rule is tested with exact instants.
//!
//! **Invariant:** at most one alarm is active per rule and equipment (for a threshold rule, per
//! level), and every raise is followed by at most one clear.

mod threshold;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::ThresholdRule;
use crate::model::{AlarmEvent, Quality, Reading, Severity};

pub use threshold::ThresholdPoint;

/// An alarm that is raised now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveAlarm {
    pub equipment: String,
    pub rule: String,
    pub severity: Severity,
    pub since: DateTime<Utc>,
    pub value: Option<f64>,
    pub limit: Option<f64>,
    pub message: String,
}

pub struct Engine {
    gateway: String,
    points: Vec<ThresholdPoint>,
    /// (equipment, metric) → indexes into `points`.
    by_input: HashMap<(String, String), Vec<usize>>,
}

impl Engine {
    pub fn new(gateway: &str, thresholds: &[ThresholdRule]) -> Self {
        let mut points = Vec::new();
        let mut by_input: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for rule in thresholds {
            for equipment in &rule.equipment {
                for level in &rule.levels {
                    by_input
                        .entry((equipment.clone(), rule.metric.clone()))
                        .or_default()
                        .push(points.len());
                    points.push(ThresholdPoint::new(rule, level, equipment));
                }
            }
        }
        Engine {
            gateway: gateway.to_owned(),
            points,
            by_input,
        }
    }

    /// Evaluates every rule that reads this reading's metric. Bad and stale readings are not
    /// evaluated: a threshold decision needs a trustworthy value.
    pub fn on_reading(&mut self, reading: &Reading, events: &mut Vec<AlarmEvent>) {
        if reading.quality != Quality::Good {
            return;
        }
        let Some(value) = reading.value.as_f64() else {
            return;
        };
        // Looking up with borrowed strings would need a custom key type; the clone is cheap next
        // to the encode and network work every reading costs anyway.
        let key = (reading.equipment.clone(), reading.metric.clone());
        let Some(indexes) = self.by_input.get(&key) else {
            return;
        };
        for &i in indexes {
            self.points[i].on_value(
                &self.gateway,
                value,
                reading.unit.as_deref(),
                reading.time,
                events,
            );
        }
    }

    /// Lets delays expire without a new reading.
    pub fn tick(&mut self, now: DateTime<Utc>, events: &mut Vec<AlarmEvent>) {
        for point in &mut self.points {
            point.on_tick(&self.gateway, now, events);
        }
    }

    pub fn active(&self) -> Vec<ActiveAlarm> {
        self.points
            .iter()
            .filter_map(ThresholdPoint::active)
            .collect()
    }
}

#[cfg(test)]
mod tests;
