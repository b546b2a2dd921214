//! Conditions evaluated on an equipment's snapshot of latest values: the expression rules and
//! the autoclave door interlock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::ExprRule;
use super::debounce::Debounce;
use crate::model::{AlarmEvent, Severity, Transition, Value};

/// What a snapshot condition is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Kind {
    Expr(Arc<ExprRule>),
    /// Pressure above the safe residual while the quick-opening door is not closed and locked.
    Interlock {
        rule: String,
        pressure_metric: String,
        door_metric: String,
        safe_residual: f64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConditionPoint {
    kind: Kind,
    equipment: String,
    debounce: Debounce,
    transitions: Vec<(Transition, DateTime<Utc>)>,
}

impl ConditionPoint {
    pub fn expr(rule: Arc<ExprRule>, equipment: &str) -> Self {
        ConditionPoint {
            debounce: Debounce::new(rule.on_delay, rule.off_delay),
            kind: Kind::Expr(rule),
            equipment: equipment.to_owned(),
            transitions: Vec::new(),
        }
    }

    pub fn interlock(
        rule: String,
        pressure_metric: String,
        door_metric: String,
        safe_residual: f64,
        equipment: &str,
    ) -> Self {
        ConditionPoint {
            kind: Kind::Interlock {
                rule,
                pressure_metric,
                door_metric,
                safe_residual,
            },
            equipment: equipment.to_owned(),
            debounce: Debounce::new(std::time::Duration::ZERO, std::time::Duration::ZERO),
            transitions: Vec::new(),
        }
    }

    /// The rule id of an expression, the alarm name (`{vessel rule}.door_interlock`) of an
    /// interlock.
    pub fn name(&self) -> &str {
        match &self.kind {
            Kind::Expr(rule) => &rule.id,
            Kind::Interlock { rule, .. } => rule,
        }
    }

    fn holds(&self, values: &HashMap<String, Value>) -> bool {
        match &self.kind {
            Kind::Expr(rule) => rule.expr.holds(&|m| values.get(m)) == Some(true),
            Kind::Interlock {
                pressure_metric,
                door_metric,
                safe_residual,
                ..
            } => {
                let pressure = values.get(pressure_metric).and_then(Value::as_f64);
                let door_locked = values.get(door_metric).and_then(Value::as_f64);
                pressure.is_some_and(|p| p > *safe_residual) && door_locked == Some(0.0)
            }
        }
    }

    pub fn settle(
        &mut self,
        gateway: &str,
        values: &HashMap<String, Value>,
        time: DateTime<Utc>,
        out: &mut Vec<AlarmEvent>,
    ) {
        let holds = self.holds(values);
        self.debounce.update(holds, time, &mut self.transitions);
        self.flush(gateway, values, out);
    }

    pub fn expire(
        &mut self,
        gateway: &str,
        values: &HashMap<String, Value>,
        now: DateTime<Utc>,
        out: &mut Vec<AlarmEvent>,
    ) {
        self.debounce.expire(now, &mut self.transitions);
        self.flush(gateway, values, out);
    }

    fn flush(&mut self, gateway: &str, values: &HashMap<String, Value>, out: &mut Vec<AlarmEvent>) {
        for (transition, time) in std::mem::take(&mut self.transitions) {
            out.push(self.event(gateway, values, transition, time));
        }
    }

    fn event(
        &self,
        gateway: &str,
        values: &HashMap<String, Value>,
        transition: Transition,
        time: DateTime<Utc>,
    ) -> AlarmEvent {
        let raise = transition == Transition::Raise;
        match &self.kind {
            Kind::Expr(rule) => {
                let message = match (&rule.message, raise) {
                    (Some(m), true) => format!("{}: {m}", self.equipment),
                    (_, true) => format!("{}: {}", self.equipment, rule.source),
                    (_, false) => format!("{}: no longer {}", self.equipment, rule.source),
                };
                let details: BTreeMap<String, Value> = rule
                    .expr
                    .metrics()
                    .into_iter()
                    .filter_map(|m| values.get(m).map(|v| (m.to_owned(), v.clone())))
                    .collect();
                AlarmEvent::new(
                    gateway,
                    &self.equipment,
                    &rule.id,
                    rule.severity,
                    transition,
                    time,
                    None,
                    None,
                    message,
                )
                .with_details(details)
            }
            Kind::Interlock {
                rule,
                pressure_metric,
                safe_residual,
                ..
            } => {
                let pressure = values.get(pressure_metric).and_then(Value::as_f64);
                let message = if raise {
                    format!(
                        "{}: door not closed and locked at {} MPa, above the safe residual {safe_residual} MPa",
                        self.equipment,
                        pressure.unwrap_or(f64::NAN)
                    )
                } else {
                    format!("{}: door interlock satisfied again", self.equipment)
                };
                AlarmEvent::new(
                    gateway,
                    &self.equipment,
                    rule,
                    Severity::Critical,
                    transition,
                    time,
                    pressure,
                    Some(*safe_residual),
                    message,
                )
            }
        }
    }
}
