//! Swapping the rules for those of a new config without forgetting the alarms that carry on.
//!
//! A rule point whose rule is configured exactly as before for its equipment (same id, same
//! settings; the rule's equipment list aside) moves into the new engine with its state: delays,
//! latest values, open alarms, acknowledgements and shelves. So an unchanged rule neither clears
//! nor raises again because of a reload. An alarm whose rule or equipment was removed, or whose
//! rule changed, ends: if it is open, a clear with the reason goes out; a changed rule is
//! evaluated afresh from the next reading and raises again if its condition holds.

use chrono::{DateTime, Utc};

use super::config::EngineSettings;
use super::lifecycle::group_of;
use super::Engine;
use crate::model::AlarmEvent;

/// Why the alarms of one rule on one equipment end at a reload.
const EQUIPMENT_REMOVED: &str = "the equipment was removed from the config by a reload";
const RULE_REMOVED: &str = "the rule no longer applies to this equipment after a reload";
const RULE_CHANGED: &str =
    "the rule changed in a reload; it is evaluated again from the next reading";

impl Engine {
    /// The engine for `config`, carrying over this engine's state for every rule that did not
    /// change; clears of the alarms that end go to `events`.
    pub fn reload<'a>(
        mut self,
        config: impl Into<EngineSettings<'a>>,
        now: DateTime<Utc>,
        events: &mut Vec<AlarmEvent>,
    ) -> Engine {
        let config = config.into();
        // Snapshots collected under the old rules are evaluated under them.
        for index in std::mem::take(&mut self.dirty) {
            self.settle(index, events);
        }
        let mut new = Engine::from_config(config);
        let old_signatures = std::mem::take(&mut self.signatures);
        let gone = |equipment: &str, rule: &str| -> Option<&'static str> {
            let key = (equipment.to_owned(), rule.to_owned());
            match (old_signatures.get(&key), new.signatures.get(&key)) {
                (Some(old), Some(current)) if old == current => None,
                (_, Some(_)) => Some(RULE_CHANGED),
                _ if !config.has_equipment(equipment) => Some(EQUIPMENT_REMOVED),
                _ => Some(RULE_REMOVED),
            }
        };
        for unit in &mut new.units {
            let Some(&index) = self.by_equipment.get(&unit.equipment) else {
                continue;
            };
            let old = &mut self.units[index];
            let e = unit.equipment.as_str();
            let kept = |name: &str| gone(e, group_of(name)).is_none();
            carry(
                &mut unit.thresholds,
                &mut old.thresholds,
                |(_, p)| p.name(),
                kept,
            );
            carry(&mut unit.rates, &mut old.rates, |p| p.rule_id(), kept);
            carry(&mut unit.stale, &mut old.stale, |p| p.rule_id(), kept);
            carry(
                &mut unit.conditions,
                &mut old.conditions,
                |p| p.name(),
                kept,
            );
            if let (Some(current), Some(previous)) = (&unit.elevator, &old.elevator) {
                if current.rule_id() == previous.rule_id() && kept(current.rule_id()) {
                    unit.elevator = old.elevator.take();
                    unit.elevator_suppressed = old.elevator_suppressed;
                }
            }
            if let (Some(current), Some(previous)) = (&unit.fill, &old.fill) {
                if current.rule_id() == previous.rule_id() && kept(current.rule_id()) {
                    unit.fill = old.fill.take();
                }
            }
            if unit.keeps_values {
                unit.values = std::mem::take(&mut old.values);
            }
        }
        new.lifecycle.carry_over(self.lifecycle, gone, now, events);
        new.evaluations = self.evaluations;
        new
    }
}

/// Moves each point of `old` whose rule is `kept` into the place of the new point of the same
/// name.
pub(super) fn carry<T>(
    new: &mut [T],
    old: &mut Vec<T>,
    name: impl Fn(&T) -> &str,
    kept: impl Fn(&str) -> bool,
) {
    for point in new.iter_mut() {
        let wanted = name(point).to_owned();
        if !kept(&wanted) {
            continue;
        }
        if let Some(i) = old.iter().position(|p| name(p) == wanted) {
            *point = old.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::{Quality, Reading, Source, Transition, Value};

    /// Pressure vessels `equipment` with `rules` (TOML).
    fn config(equipment: &[&str], rules: &str) -> crate::config::Config {
        let mut text = "[site]\nid = \"s\"\nname = \"S\"\n[gateway]\nid = \"gw\"\n".to_owned();
        for id in equipment {
            text.push_str(&format!(
                "[[equipment]]\nid = \"{id}\"\nkind = \"pressure_vessel\"\nregistration_code = \"1\"\n\
                 nameplate = {{ working_pressure_mpa = 1.0, set_pressure_mpa = 1.1, design_pressure_mpa = 1.2 }}\n"
            ));
        }
        text.push_str(rules);
        crate::config::parse(&text, std::path::Path::new("site.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn high(id: &str, limit: f64) -> String {
        format!("[[rules.threshold]]\nid = \"{id}\"\nkind = \"pressure_vessel\"\nmetric = \"pressure\"\nhigh = {{ limit = {limit} }}\n")
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn pressure(engine: &mut Engine, equipment: &str, t: i64, value: f64) -> Vec<AlarmEvent> {
        let reading = Reading {
            equipment: equipment.into(),
            metric: "pressure".into(),
            value: Value::Number(value),
            unit: None,
            time: at(t),
            quality: Quality::Good,
            source: Source::Mqtt,
        };
        let mut events = Vec::new();
        engine.on_reading(&reading, &mut events);
        events
    }

    fn summary(events: &[AlarmEvent]) -> Vec<(&str, &str, Transition)> {
        events
            .iter()
            .map(|e| (e.equipment.as_str(), e.rule.as_str(), e.transition))
            .collect()
    }

    /// pv-1 and pv-2 both in alarm under rule `p` (high 1.05).
    fn engine_in_alarm() -> Engine {
        let mut engine = Engine::from_config(&config(&["pv-1", "pv-2"], &high("p", 1.05)));
        assert_eq!(pressure(&mut engine, "pv-1", 0, 1.2).len(), 1);
        assert_eq!(pressure(&mut engine, "pv-2", 0, 1.2).len(), 1);
        engine
    }

    #[test]
    fn an_unchanged_rule_keeps_its_alarm_through_a_reload() {
        let new = config(&["pv-1", "pv-2"], &(high("p", 1.05) + &high("q", 5.0)));
        let mut events = Vec::new();
        let mut engine = engine_in_alarm().reload(&new, at(1), &mut events);
        assert!(events.is_empty(), "{events:?}");
        assert!(engine.is_open("pv-1", "p.high"));
        assert!(
            pressure(&mut engine, "pv-1", 2, 1.3).is_empty(),
            "no second raise"
        );
        let cleared = pressure(&mut engine, "pv-1", 3, 0.5);
        assert_eq!(summary(&cleared), [("pv-1", "p.high", Transition::Clear)]);
        // The added rule works from the next reading.
        let raised = pressure(&mut engine, "pv-2", 4, 6.0);
        assert_eq!(summary(&raised), [("pv-2", "q.high", Transition::Raise)]);
    }

    #[test]
    fn removed_equipment_and_changed_rules_close_their_alarms_with_the_reason() {
        let new = config(&["pv-1"], &high("p", 1.25));
        let mut events = Vec::new();
        let mut engine = engine_in_alarm().reload(&new, at(1), &mut events);
        assert_eq!(
            summary(&events),
            [
                ("pv-1", "p.high", Transition::Clear),
                ("pv-2", "p.high", Transition::Clear)
            ]
        );
        assert!(
            events[0].message.ends_with(RULE_CHANGED),
            "{}",
            events[0].message
        );
        assert!(
            events[1].message.ends_with(EQUIPMENT_REMOVED),
            "{}",
            events[1].message
        );
        assert!(engine.active().is_empty());
        // The changed rule is evaluated afresh against its new limit.
        assert!(pressure(&mut engine, "pv-1", 2, 1.2).is_empty());
        let raised = pressure(&mut engine, "pv-1", 3, 1.3);
        assert_eq!(summary(&raised), [("pv-1", "p.high", Transition::Raise)]);
    }

    #[test]
    fn a_rule_removed_from_a_kept_equipment_closes_its_alarm() {
        let new = config(&["pv-1", "pv-2"], "");
        let mut events = Vec::new();
        engine_in_alarm().reload(&new, at(1), &mut events);
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.message.ends_with(RULE_REMOVED)));
    }
}
