//! Rate of change: the change of a metric since the oldest reading inside a window, per minute,
//! against a rise limit and a fall limit (alarms `{id}.rise` and `{id}.fall`).

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::RateRule;
use super::debounce::to_chrono;
use crate::model::{AlarmEvent, Transition};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RatePoint {
    rule: Arc<RateRule>,
    equipment: String,
    samples: VecDeque<(DateTime<Utc>, f64)>,
    rising: bool,
    falling: bool,
}

impl RatePoint {
    pub fn new(rule: Arc<RateRule>, equipment: &str) -> Self {
        RatePoint {
            rule,
            equipment: equipment.to_owned(),
            samples: VecDeque::new(),
            rising: false,
            falling: false,
        }
    }

    pub fn rule_id(&self) -> &str {
        &self.rule.id
    }

    pub fn metric(&self) -> &str {
        &self.rule.metric
    }

    pub fn on_value(
        &mut self,
        gateway: &str,
        value: f64,
        time: DateTime<Utc>,
        out: &mut Vec<AlarmEvent>,
    ) {
        if self.samples.back().is_some_and(|(t, _)| time <= *t) {
            return;
        }
        let horizon = time - to_chrono(self.rule.window);
        while self.samples.front().is_some_and(|(t, _)| *t < horizon) {
            self.samples.pop_front();
        }
        let rate = self.samples.front().map(|(t0, v0)| {
            let seconds = (time - *t0).num_milliseconds() as f64 / 1000.0;
            (value - v0) / seconds * 60.0
        });
        self.samples.push_back((time, value));
        let Some(rate) = rate.filter(|r| r.is_finite()) else {
            return;
        };
        let rise = self.rule.max_rise_per_min.is_some_and(|max| rate > max);
        let fall = self.rule.max_fall_per_min.is_some_and(|max| -rate > max);
        if rise != self.rising {
            self.rising = rise;
            out.push(self.event(gateway, "rise", rise, rate, time));
        }
        if fall != self.falling {
            self.falling = fall;
            out.push(self.event(gateway, "fall", fall, rate, time));
        }
    }

    fn event(
        &self,
        gateway: &str,
        side: &str,
        raise: bool,
        rate: f64,
        time: DateTime<Utc>,
    ) -> AlarmEvent {
        let limit = if side == "rise" {
            self.rule.max_rise_per_min
        } else {
            self.rule.max_fall_per_min.map(|l| -l)
        };
        let rounded = (rate * 1000.0).round() / 1000.0;
        let message = if raise {
            format!(
                "{} {} changes by {rounded}/min, beyond the {side} limit {}/min",
                self.equipment,
                self.rule.metric,
                limit.unwrap_or_default()
            )
        } else {
            format!(
                "{} {} changes by {rounded}/min, back inside the {side} limit",
                self.equipment, self.rule.metric
            )
        };
        AlarmEvent::new(
            gateway,
            &self.equipment,
            &format!("{}.{side}", self.rule.id),
            self.rule.severity,
            if raise {
                Transition::Raise
            } else {
                Transition::Clear
            },
            time,
            Some(rounded),
            limit,
            message,
        )
    }
}
