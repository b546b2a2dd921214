//! Gas cylinder fills, checked against the cylinder registry (TSG 23-2021 and local rules).
//!
//! A filling scale reports a fill as readings of the station equipment that share one
//! timestamp: the cylinder code, and optionally medium, mass, pressure, temperature, residual
//! pressure, operator and filling gun (metric names configurable). Each snapshot with a
//! cylinder code is one [`FillRecord`]. A refused fill raises `{id}.rejected` and clears it at
//! the same instant: the refusal is a record with its reasons, not a lasting condition.
//!
//! Dates (inspection due, end of design life) are calendar dates in China Standard Time
//! (UTC+8): a fill on the due date itself is accepted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use uuid::Uuid;

use super::config::{Cylinder, FillRule};
use crate::model::{
    AlarmEvent, FillRecord, FillRejection, Severity, Transition, Value, FILL_SCHEMA,
};

#[derive(Debug, Clone, Default)]
struct Pending {
    code: Option<String>,
    medium: Option<String>,
    mass_kg: Option<f64>,
    pressure_mpa: Option<f64>,
    temperature_c: Option<f64>,
    residual_pressure_mpa: Option<f64>,
    operator: Option<String>,
    gun: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FillStation {
    rule: Arc<FillRule>,
    registry: Arc<HashMap<String, Cylinder>>,
    equipment: String,
    pending: Pending,
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::Text(s) => Some(s.clone()),
        Value::Number(n) => Some(format!("{n}")),
        Value::Bool(_) => None,
    }
}

/// The calendar date of an instant in China Standard Time.
pub fn local_date(time: DateTime<Utc>) -> NaiveDate {
    let cst = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    time.with_timezone(&cst).date_naive()
}

impl FillStation {
    pub fn new(
        rule: Arc<FillRule>,
        registry: Arc<HashMap<String, Cylinder>>,
        equipment: &str,
    ) -> Self {
        FillStation {
            rule,
            registry,
            equipment: equipment.to_owned(),
            pending: Pending::default(),
        }
    }

    pub fn rule_id(&self) -> &str {
        &self.rule.id
    }

    pub fn apply(&mut self, metric: &str, value: &Value) {
        let m = &self.rule.metrics;
        let p = &mut self.pending;
        if metric == m.cylinder_code {
            p.code = text(value).map(|c| c.trim().to_owned());
        } else if metric == m.medium {
            p.medium = text(value);
        } else if metric == m.mass_kg {
            p.mass_kg = value.as_f64();
        } else if metric == m.pressure_mpa {
            p.pressure_mpa = value.as_f64();
        } else if metric == m.temperature_c {
            p.temperature_c = value.as_f64();
        } else if metric == m.residual_pressure_mpa {
            p.residual_pressure_mpa = value.as_f64();
        } else if metric == m.operator {
            p.operator = text(value);
        } else if metric == m.gun {
            p.gun = text(value);
        }
    }

    /// Turns the snapshot at `time` into a fill record, when it names a cylinder.
    pub fn settle(
        &mut self,
        gateway: &str,
        time: DateTime<Utc>,
        events: &mut Vec<AlarmEvent>,
        fills: &mut Vec<FillRecord>,
    ) {
        let pending = std::mem::take(&mut self.pending);
        let Some(code) = pending.code.clone().filter(|c| !c.is_empty()) else {
            return;
        };
        let (rejections, explanations) = self.check(&code, &pending, time);
        let key = format!(
            "{gateway}/{}/{code}/{}",
            self.equipment,
            time.timestamp_nanos_opt().unwrap_or_default()
        );
        let record = FillRecord {
            schema: FILL_SCHEMA.to_owned(),
            id: Uuid::new_v5(&Uuid::NAMESPACE_OID, key.as_bytes()),
            gateway: gateway.to_owned(),
            equipment: self.equipment.clone(),
            station: self.rule.station.clone(),
            cylinder_code: code.clone(),
            time,
            medium: pending.medium,
            mass_kg: pending.mass_kg,
            pressure_mpa: pending.pressure_mpa,
            temperature_c: pending.temperature_c,
            residual_pressure_mpa: pending.residual_pressure_mpa,
            operator: pending.operator,
            gun: pending.gun,
            accepted: rejections.is_empty(),
            rejections: rejections.clone(),
        };
        if !rejections.is_empty() {
            let severity = rejections
                .iter()
                .map(|r| r.severity())
                .max()
                .unwrap_or(Severity::High);
            let reasons: Vec<&str> = rejections.iter().map(|r| r.as_str()).collect();
            let mut details = BTreeMap::from([
                ("cylinder".to_owned(), Value::Text(code.clone())),
                ("reason".to_owned(), Value::Text(reasons[0].to_owned())),
                ("reasons".to_owned(), Value::Text(reasons.join(","))),
                ("fill_id".to_owned(), Value::Text(record.id.to_string())),
            ]);
            if let Some(mass) = record.mass_kg {
                details.insert("mass_kg".into(), Value::Number(mass));
            }
            let message = format!(
                "{}: fill of cylinder {code} refused: {}",
                self.equipment,
                explanations.join("; ")
            );
            let rule = format!("{}.rejected", self.rule.id);
            for transition in [Transition::Raise, Transition::Clear] {
                events.push(
                    AlarmEvent::new(
                        gateway,
                        &self.equipment,
                        &rule,
                        severity,
                        transition,
                        time,
                        record.mass_kg,
                        None,
                        message.clone(),
                    )
                    .with_details(details.clone()),
                );
            }
        }
        fills.push(record);
    }

    fn check(
        &self,
        code: &str,
        fill: &Pending,
        time: DateTime<Utc>,
    ) -> (Vec<FillRejection>, Vec<String>) {
        let mut reasons = Vec::new();
        let mut why = Vec::new();
        let Some(cylinder) = self.registry.get(code) else {
            return (
                vec![FillRejection::Unregistered],
                vec!["unregistered: the code is not in the cylinder registry".to_owned()],
            );
        };
        let today = local_date(time);
        if cylinder.scrapped {
            reasons.push(FillRejection::Scrapped);
            why.push("scrapped".to_owned());
        }
        if let Some(end) = cylinder.design_life_end.filter(|end| today > *end) {
            reasons.push(FillRejection::PastDesignLife);
            why.push(format!("past its design life, which ended {end}"));
        }
        if today > cylinder.next_inspection {
            reasons.push(FillRejection::InspectionExpired);
            why.push(format!(
                "periodic inspection expired on {}",
                cylinder.next_inspection
            ));
        }
        if let Some(medium) = &fill.medium {
            if !medium.trim().eq_ignore_ascii_case(cylinder.medium.trim()) {
                reasons.push(FillRejection::WrongMedium);
                why.push(format!(
                    "wrong medium: {medium} into a {} cylinder",
                    cylinder.medium
                ));
            }
        }
        if cylinder.station != self.rule.station {
            reasons.push(FillRejection::NotOwned);
            why.push(format!(
                "not owned by this station: bound to {}",
                cylinder.station
            ));
        }
        if fill.residual_pressure_mpa.is_some_and(|p| p <= 0.0) {
            reasons.push(FillRejection::NoResidualPressure);
            why.push("no residual pressure".to_owned());
        }
        if let Some(mass) = fill.mass_kg.filter(|m| *m > cylinder.permitted_fill_kg) {
            reasons.push(FillRejection::Overfill);
            why.push(format!(
                "overfill: {mass} kg above the permitted {} kg",
                cylinder.permitted_fill_kg
            ));
        }
        (reasons, why)
    }
}
