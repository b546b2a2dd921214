//! Building an engine from a rule set: one unit per equipment with the points of every rule
//! that names it, and each rule's signature for [`super::reload`] to tell which rules changed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::condition::ConditionPoint;
use super::config::{
    ElevatorRule, ExprRule, FillRule, Level, LevelKind, RateRule, RuleSet, StaleRule,
    ThresholdRule, VesselRule,
};
use super::elevator::ElevatorUnit;
use super::fill::FillStation;
use super::lifecycle::Lifecycle;
use super::rate::RatePoint;
use super::stale::StalePoint;
use super::threshold::ThresholdPoint;
use super::{Engine, Unit};
use crate::model::Severity;

impl Engine {
    /// An engine with the given threshold rules and every rule of `rules`.
    pub fn with_rules(gateway: &str, thresholds: &[ThresholdRule], rules: &RuleSet) -> Self {
        let mut momentary = BTreeSet::new();
        if let Some(fill) = &rules.fill {
            momentary.insert(format!("{}.rejected", fill.id));
        }
        let mut engine = Engine {
            gateway: gateway.to_owned(),
            units: Vec::new(),
            by_equipment: HashMap::new(),
            lifecycle: Lifecycle::new(gateway, rules.lifecycle.clone(), momentary),
            dirty: Vec::new(),
            raw: Vec::new(),
            fills: Vec::new(),
            evaluations: 0,
            signatures: HashMap::new(),
        };
        for rule in thresholds {
            engine.add_threshold(rule);
            let written = ThresholdRule {
                equipment: Vec::new(),
                ..rule.clone()
            };
            engine.sign(&rule.equipment, &rule.id, &written);
        }
        for rule in &rules.vessel {
            let written = VesselRule {
                targets: Vec::new(),
                ..rule.clone()
            };
            for target in &rule.targets {
                engine.sign(
                    std::slice::from_ref(&target.equipment),
                    &rule.id,
                    &(&written, target),
                );
                engine.add_threshold(&ThresholdRule {
                    id: rule.id.clone(),
                    equipment: vec![target.equipment.clone()],
                    metric: rule.metric.clone(),
                    levels: vec![
                        Level {
                            kind: LevelKind::HighHigh,
                            limit: target.high_high,
                            severity: Severity::Critical,
                        },
                        Level {
                            kind: LevelKind::High,
                            limit: target.high,
                            severity: Severity::High,
                        },
                    ],
                    deadband: target.deadband,
                    on_delay: rule.on_delay,
                    off_delay: rule.off_delay,
                });
                if let Some(safe_residual) = target.safe_residual {
                    let unit = engine.unit(&target.equipment);
                    unit.keeps_values = true;
                    unit.conditions.push(ConditionPoint::interlock(
                        format!("{}.door_interlock", rule.id),
                        rule.metric.clone(),
                        rule.door_metric.clone(),
                        safe_residual,
                        &target.equipment,
                    ));
                }
            }
        }
        for rule in &rules.elevator {
            let written = ElevatorRule {
                equipment: Vec::new(),
                ..rule.clone()
            };
            engine.sign(&rule.equipment, &rule.id, &written);
            let rule = Arc::new(rule.clone());
            for e in &rule.equipment {
                engine.unit(e).elevator = Some(ElevatorUnit::new(rule.clone(), e));
            }
        }
        for rule in &rules.rate {
            let written = RateRule {
                equipment: Vec::new(),
                ..rule.clone()
            };
            engine.sign(&rule.equipment, &rule.id, &written);
            let rule = Arc::new(rule.clone());
            for e in &rule.equipment {
                engine.unit(e).rates.push(RatePoint::new(rule.clone(), e));
            }
        }
        for rule in &rules.stale {
            let written = StaleRule {
                equipment: Vec::new(),
                ..rule.clone()
            };
            engine.sign(&rule.equipment, &rule.id, &written);
            let rule = Arc::new(rule.clone());
            for e in &rule.equipment {
                engine.unit(e).stale.push(StalePoint::new(rule.clone(), e));
            }
        }
        for rule in &rules.expr {
            let written = ExprRule {
                equipment: Vec::new(),
                ..rule.clone()
            };
            engine.sign(&rule.equipment, &rule.id, &written);
            let rule = Arc::new(rule.clone());
            for e in &rule.equipment {
                let unit = engine.unit(e);
                unit.keeps_values = true;
                unit.conditions.push(ConditionPoint::expr(rule.clone(), e));
            }
        }
        if let Some(fill) = &rules.fill {
            let written = FillRule {
                equipment: Vec::new(),
                ..fill.clone()
            };
            engine.sign(&fill.equipment, &fill.id, &(&written, &rules.cylinders));
            let fill = Arc::new(fill.clone());
            let registry: Arc<HashMap<_, _>> = Arc::new(
                rules
                    .cylinders
                    .iter()
                    .map(|c| (c.code.clone(), c.clone()))
                    .collect(),
            );
            for e in &fill.equipment {
                engine.unit(e).fill = Some(FillStation::new(fill.clone(), registry.clone(), e));
            }
        }
        engine
    }

    fn sign(&mut self, equipment: &[String], rule_id: &str, written: &impl std::fmt::Debug) {
        let written = format!("{written:?}");
        for e in equipment {
            self.signatures
                .entry((e.clone(), rule_id.to_owned()))
                .or_default()
                .push_str(&written);
        }
    }

    fn unit(&mut self, equipment: &str) -> &mut Unit {
        let index = match self.by_equipment.get(equipment) {
            Some(&i) => i,
            None => {
                self.units.push(Unit::new(equipment));
                self.by_equipment
                    .insert(equipment.to_owned(), self.units.len() - 1);
                self.units.len() - 1
            }
        };
        &mut self.units[index]
    }

    fn add_threshold(&mut self, rule: &ThresholdRule) {
        for equipment in &rule.equipment {
            for level in &rule.levels {
                let point = ThresholdPoint::new(rule, level, equipment);
                self.unit(equipment)
                    .thresholds
                    .push((rule.metric.clone(), point));
            }
        }
    }
}
