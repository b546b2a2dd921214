//! Stale data: no reading (of one metric, or of any) for `factor` × the expected interval.
//! The clock starts at the first tick, so a device that never reports is also caught.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::StaleRule;
use super::debounce::to_chrono;
use crate::model::{AlarmEvent, Transition, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StalePoint {
    rule: Arc<StaleRule>,
    equipment: String,
    #[serde(with = "super::checkpoint::millis")]
    limit: chrono::Duration,
    last_seen: Option<DateTime<Utc>>,
    /// The first instant the engine saw: the reference until a reading arrives.
    started: Option<DateTime<Utc>>,
    active: bool,
}

impl StalePoint {
    pub fn new(rule: Arc<StaleRule>, equipment: &str) -> Self {
        let limit = to_chrono(rule.expected_interval.mul_f64(rule.factor));
        StalePoint {
            rule,
            equipment: equipment.to_owned(),
            limit,
            last_seen: None,
            started: None,
            active: false,
        }
    }

    pub fn rule_id(&self) -> &str {
        &self.rule.id
    }

    pub fn watches(&self, metric: &str) -> bool {
        self.rule.metric.as_deref().is_none_or(|m| m == metric)
    }

    pub fn on_reading(&mut self, gateway: &str, time: DateTime<Utc>, out: &mut Vec<AlarmEvent>) {
        self.on_tick(gateway, time, out);
        if self.last_seen.is_some_and(|t| time <= t) {
            return;
        }
        self.last_seen = Some(time);
        if self.active {
            self.active = false;
            out.push(self.event(gateway, Transition::Clear, time));
        }
    }

    pub fn on_tick(&mut self, gateway: &str, now: DateTime<Utc>, out: &mut Vec<AlarmEvent>) {
        let started = *self.started.get_or_insert(now);
        let reference = self.last_seen.unwrap_or(started);
        if !self.active && now - reference >= self.limit {
            self.active = true;
            out.push(self.event(gateway, Transition::Raise, reference + self.limit));
        }
    }

    fn event(&self, gateway: &str, transition: Transition, time: DateTime<Utc>) -> AlarmEvent {
        let what = self.rule.metric.as_deref().unwrap_or("any metric");
        let message = match transition {
            Transition::Raise => format!(
                "{}: no reading of {what} for {} s ({} × the expected {} s)",
                self.equipment,
                self.limit.num_milliseconds() as f64 / 1000.0,
                self.rule.factor,
                self.rule.expected_interval.as_secs_f64()
            ),
            _ => format!("{}: {what} reports again", self.equipment),
        };
        let mut event = AlarmEvent::new(
            gateway,
            &self.equipment,
            &self.rule.id,
            self.rule.severity,
            transition,
            time,
            None,
            None,
            message,
        );
        if let (Transition::Raise, Some(seen)) = (transition, self.last_seen) {
            event = event.with_details(
                [("last_seen".to_owned(), Value::Text(seen.to_rfc3339()))]
                    .into_iter()
                    .collect(),
            );
        }
        event
    }
}
