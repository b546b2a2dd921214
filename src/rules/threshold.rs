//! One level (high, high-high, low, low-low) of a threshold rule on one piece of equipment.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::{Level, ThresholdRule};
use crate::model::{AlarmEvent, Severity, Transition};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum State {
    Normal,
    /// The condition holds since `since`, waiting for the on-delay.
    Raising {
        since: DateTime<Utc>,
        value: f64,
    },
    Active {
        since: DateTime<Utc>,
        value: f64,
    },
    /// Back inside the deadband since `since`, waiting for the off-delay.
    Clearing {
        raised: DateTime<Utc>,
        since: DateTime<Utc>,
        value: f64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdPoint {
    /// `{rule}.{level}`, for example `vessel-pressure.high_high`.
    rule: String,
    equipment: String,
    level: Level,
    deadband: f64,
    #[serde(with = "super::checkpoint::millis")]
    on_delay: chrono::Duration,
    #[serde(with = "super::checkpoint::millis")]
    off_delay: chrono::Duration,
    unit: Option<String>,
    state: State,
    /// Readings older than this are ignored, so a late message cannot undo a newer decision.
    last_time: Option<DateTime<Utc>>,
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl ThresholdPoint {
    pub fn new(rule: &ThresholdRule, level: &Level, equipment: &str) -> Self {
        ThresholdPoint {
            rule: format!("{}.{}", rule.id, level.kind.as_str()),
            equipment: equipment.to_owned(),
            level: level.clone(),
            deadband: rule.deadband,
            on_delay: to_chrono(rule.on_delay),
            off_delay: to_chrono(rule.off_delay),
            unit: None,
            state: State::Normal,
            last_time: None,
        }
    }

    /// The alarm name, `{rule}.{level}`.
    pub fn name(&self) -> &str {
        &self.rule
    }

    fn beyond_limit(&self, value: f64) -> bool {
        if self.level.kind.is_high() {
            value > self.level.limit
        } else {
            value < self.level.limit
        }
    }

    fn back_inside_deadband(&self, value: f64) -> bool {
        if self.level.kind.is_high() {
            value < self.level.limit - self.deadband
        } else {
            value > self.level.limit + self.deadband
        }
    }

    pub fn on_value(
        &mut self,
        gateway: &str,
        value: f64,
        unit: Option<&str>,
        time: DateTime<Utc>,
        events: &mut Vec<AlarmEvent>,
    ) {
        if self.last_time.is_some_and(|last| time < last) {
            return;
        }
        self.last_time = Some(time);
        if self.unit.as_deref() != unit {
            self.unit = unit.map(str::to_owned);
        }
        // Let a pending delay that expired before this reading take effect first, at its own time.
        self.on_tick(gateway, time, events);
        self.state = match self.state {
            State::Normal if self.beyond_limit(value) => {
                if self.on_delay.is_zero() {
                    events.push(self.event(gateway, Transition::Raise, time, value));
                    State::Active { since: time, value }
                } else {
                    State::Raising { since: time, value }
                }
            }
            State::Raising { since, .. } if self.beyond_limit(value) => {
                State::Raising { since, value }
            }
            State::Raising { .. } => State::Normal,
            State::Active { since, .. } if self.back_inside_deadband(value) => {
                if self.off_delay.is_zero() {
                    events.push(self.event(gateway, Transition::Clear, time, value));
                    State::Normal
                } else {
                    State::Clearing {
                        raised: since,
                        since: time,
                        value,
                    }
                }
            }
            State::Active { since, .. } => State::Active { since, value },
            State::Clearing { raised, since, .. } if self.back_inside_deadband(value) => {
                State::Clearing {
                    raised,
                    since,
                    value,
                }
            }
            State::Clearing { raised, .. } => State::Active {
                since: raised,
                value,
            },
            state @ State::Normal => state,
        };
    }

    /// Completes an on- or off-delay that has run out by `now`, stamping the event with the
    /// exact instant the delay ended.
    pub fn on_tick(&mut self, gateway: &str, now: DateTime<Utc>, events: &mut Vec<AlarmEvent>) {
        match self.state {
            State::Raising { since, value } if now - since >= self.on_delay => {
                let at = since + self.on_delay;
                events.push(self.event(gateway, Transition::Raise, at, value));
                self.state = State::Active { since: at, value };
            }
            State::Clearing { since, value, .. } if now - since >= self.off_delay => {
                events.push(self.event(gateway, Transition::Clear, since + self.off_delay, value));
                self.state = State::Normal;
            }
            _ => {}
        }
    }

    fn event(
        &self,
        gateway: &str,
        transition: Transition,
        time: DateTime<Utc>,
        value: f64,
    ) -> AlarmEvent {
        AlarmEvent::new(
            gateway,
            &self.equipment,
            &self.rule,
            self.severity(),
            transition,
            time,
            Some(value),
            Some(self.level.limit),
            self.message(transition, value),
        )
    }

    fn severity(&self) -> Severity {
        self.level.severity
    }

    fn message(&self, transition: Transition, value: f64) -> String {
        let unit = self
            .unit
            .as_deref()
            .map(|u| format!(" {u}"))
            .unwrap_or_default();
        let side = if self.level.kind.is_high() {
            "above"
        } else {
            "below"
        };
        match transition {
            Transition::Raise => format!(
                "{} {value}{unit} {side} {} limit {}{unit}",
                self.equipment,
                self.level.kind.as_str(),
                self.level.limit
            ),
            _ => format!(
                "{} back to {value}{unit}, inside {} limit {}{unit} and its deadband",
                self.equipment,
                self.level.kind.as_str(),
                self.level.limit
            ),
        }
    }
}
