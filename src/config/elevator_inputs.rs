//! Cross-references between the elevator rules and what feeds them: the metrics and service
//! modes the MQTT mappings and Modbus profiles can produce for each elevator.

use std::collections::HashSet;
use std::ops::Range;

use super::*;
use crate::diag::Check;

/// The type of every metric the MQTT mappings produce; a metric mapped with two types is left
/// out (expressions then infer its type from how they use it).
pub(super) fn mapped_metric_types(
    mappings: &[MqttMapping],
) -> std::collections::HashMap<String, ValueType> {
    let mut types = std::collections::HashMap::new();
    let mut conflicting = HashSet::new();
    for field in mappings.iter().flat_map(|m| &m.fields) {
        match types.insert(field.metric.clone(), field.value_type) {
            Some(t) if t != field.value_type => {
                conflicting.insert(field.metric.clone());
            }
            _ => {}
        }
    }
    for metric in conflicting {
        types.remove(&metric);
    }
    types
}

/// The cross-references of the elevator rules and what feeds them.
impl Check {
    /// Compares what the mappings and Modbus profiles can produce for each elevator with what
    /// its rule reads: a value the rule cannot read is a problem, a metric or a service mode
    /// that can never arrive is a warning (the rule would run blind and say so at run time).
    pub(super) fn check_elevator_inputs(
        &mut self,
        rules: &[(ElevatorRule, Range<usize>)],
        mappings: &[(MqttMapping, Range<usize>)],
        modbus: &[std::sync::Arc<crate::ingest::modbus::ModbusDevice>],
    ) {
        use crate::model::Value;
        for (rule, rule_span) in rules {
            let m = &rule.metrics;
            for (mapping, span) in mappings {
                if mapping
                    .equipment
                    .as_ref()
                    .is_some_and(|e| !rule.equipment.contains(e))
                {
                    continue;
                }
                for f in &mapping.fields {
                    let expected: Option<(&str, &[&str])> = if f.metric == m.car_status {
                        Some(("text", &["stopped", "running"]))
                    } else if f.metric == m.service_mode {
                        Some(("text", &crate::rules::SERVICE_MODES))
                    } else if [
                        &m.door_zone,
                        &m.door_closed_locked,
                        &m.occupied,
                        &m.alarm_button,
                    ]
                    .contains(&&f.metric)
                    {
                        Some(("bool", &[]))
                    } else {
                        None
                    };
                    let Some((kind, words)) = expected else {
                        continue;
                    };
                    let wrong_type = match kind {
                        "text" => f.value_type != ValueType::Text,
                        _ => f.value_type == ValueType::Text,
                    };
                    if wrong_type {
                        self.push(
                            Problem::new(
                                span.clone(),
                                format!(
                                    "field `{}` gives metric `{}` a type rule `{}` cannot read",
                                    f.pointer, f.metric, rule.id
                                ),
                            )
                            .hint(format!(
                                "map it as type = \"{kind}\"; a terminal that sends codes needs values = {{ ... }} with unknown = ..."
                            )),
                        );
                        continue;
                    }
                    for value in f.codes.iter().flat_map(|c| c.values()) {
                        if let Value::Text(word) = value {
                            if !words.contains(&word.as_str()) {
                                self.push(
                                    Problem::new(
                                        span.clone(),
                                        format!(
                                            "field `{}` can give `{}` the value \"{word}\", which rule `{}` does not know",
                                            f.pointer, f.metric, rule.id
                                        ),
                                    )
                                    .hint(format!("use one of: {}", words.join(", "))),
                                );
                            }
                        }
                    }
                }
            }
            for equipment in &rule.equipment {
                // Everything that may reach this elevator: (metric, texts it can take, or None
                // when any text can come).
                let mut produced: Vec<(&str, Option<Vec<String>>)> = Vec::new();
                for (mapping, _) in mappings {
                    if mapping.equipment.as_ref().is_some_and(|e| e != equipment) {
                        continue;
                    }
                    for f in &mapping.fields {
                        let texts = f.codes.as_ref().map(|c| {
                            c.values()
                                .filter_map(|v| match v {
                                    Value::Text(t) => Some(t.clone()),
                                    _ => None,
                                })
                                .collect()
                        });
                        produced.push((f.metric.as_str(), texts));
                    }
                }
                for device in modbus.iter().filter(|d| &d.equipment == equipment) {
                    for point in device.groups.iter().flat_map(|g| g.points.iter()) {
                        let texts = (!point.labels.is_empty())
                            .then(|| point.labels.iter().map(|(_, t)| t.clone()).collect());
                        produced.push((point.metric.as_str(), texts));
                    }
                }
                let has = |metric: &str| produced.iter().any(|(p, _)| *p == metric);
                let mut missing: Vec<&str> = Vec::new();
                if !has(&m.car_status) && !has(&m.speed) {
                    missing.push(&m.car_status);
                }
                for metric in [&m.door_closed_locked, &m.occupied, &m.service_mode] {
                    if !has(metric) {
                        missing.push(metric);
                    }
                }
                if !missing.is_empty() {
                    self.warnings.push(
                        Problem::new(
                            rule_span.clone(),
                            format!(
                                "nothing maps {} for `{equipment}`: rule `{}` cannot decide on a trapped passenger without {} and will raise {}.trapped_rule_blind",
                                missing.join(", "),
                                rule.id,
                                if missing.len() == 1 { "it" } else { "them" },
                                rule.id
                            ),
                        )
                        .hint("map these metrics in an [[ingest.mqtt]] mapping or a Modbus profile"),
                    );
                    continue;
                }
                let modes: Option<Vec<&String>> = produced
                    .iter()
                    .filter(|(p, _)| *p == m.service_mode)
                    .map(|(_, texts)| texts.as_ref())
                    .collect::<Option<Vec<_>>>()
                    .map(|lists| lists.into_iter().flatten().collect());
                if let Some(modes) = modes {
                    if !rule.staff_in_car_modes.iter().any(|s| modes.contains(&s)) {
                        self.warnings.push(
                            Problem::new(
                                rule_span.clone(),
                                format!(
                                    "the code tables for `{equipment}` never give {} the modes {}: rule `{}` cannot tell staff in the car from a trapped passenger",
                                    m.service_mode,
                                    rule.staff_in_car_modes.join(", "),
                                    rule.id
                                ),
                            )
                            .hint("map the terminal's inspection and out-of-service codes to \"inspection\" and \"out_of_service\""),
                        );
                    }
                }
            }
        }
    }
}
