//! Validation of the thresholds, the domain rules, the other rule kinds and the alarm
//! lifecycle, collecting every problem with its place in the file.
//!
//! Size: about 650 lines, one `impl Check` method per rule kind and the targets they share.

use std::collections::HashSet;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::*;
use crate::diag::{Check, Problem};
use crate::model::{Equipment, EquipmentKind, ValueType};

impl Check {
    pub(crate) fn threshold(
        &mut self,
        raw: &Spanned<RawThreshold>,
        equipment: &[Equipment],
    ) -> Option<ThresholdRule> {
        let t = raw.get_ref();
        self.check_id(&t.id, "rule id");
        let mut targets = Vec::new();
        for id in &t.equipment {
            match equipment.iter().find(|e| e.id == *id.get_ref()) {
                Some(e) => targets.push(e.id.clone()),
                None => self.push(
                    Problem::new(id.span(), format!("unknown equipment `{}`", id.get_ref()))
                        .hint("declare it in an [[equipment]] table first"),
                ),
            }
        }
        if let Some(kind) = t.kind {
            targets.extend(
                equipment
                    .iter()
                    .filter(|e| e.kind == kind)
                    .map(|e| e.id.clone()),
            );
        }
        if t.equipment.is_empty() && t.kind.is_none() {
            self.push(
                Problem::new(
                    t.id.span(),
                    format!("rule `{}` applies to nothing", t.id.get_ref()),
                )
                .hint("add equipment = [\"ID\", ...] or kind = \"pressure_vessel\""),
            );
        }
        targets.sort();
        targets.dedup();

        let mut levels = Vec::new();
        for (kind, level) in [
            (LevelKind::HighHigh, &t.high_high),
            (LevelKind::High, &t.high),
            (LevelKind::Low, &t.low),
            (LevelKind::LowLow, &t.low_low),
        ] {
            if let Some(l) = level {
                if !l.get_ref().limit.is_finite() {
                    self.push(Problem::new(l.span(), "limit must be a finite number"));
                }
                levels.push(Level {
                    kind,
                    limit: l.get_ref().limit,
                    severity: l
                        .get_ref()
                        .severity
                        .unwrap_or_else(|| kind.default_severity()),
                });
            }
        }
        if levels.is_empty() {
            self.push(
                Problem::new(
                    raw.span(),
                    format!("rule `{}` has no level", t.id.get_ref()),
                )
                .hint("add high, high_high, low or low_low = { limit = ... }"),
            );
        }
        // Limits must be ordered: low_low < low < high < high_high.
        for pair in levels.windows(2) {
            if pair[0].limit <= pair[1].limit {
                self.push(
                    Problem::new(
                        raw.span(),
                        format!(
                            "rule `{}`: {} limit {} must be above {} limit {}",
                            t.id.get_ref(),
                            pair[0].kind.as_str(),
                            pair[0].limit,
                            pair[1].kind.as_str(),
                            pair[1].limit
                        ),
                    )
                    .hint("limits are ordered low_low < low < high < high_high"),
                );
            }
        }
        let deadband = t.deadband.as_ref().map_or(0.0, |d| {
            if !(d.get_ref().is_finite() && *d.get_ref() >= 0.0) {
                self.push(Problem::new(d.span(), "deadband must be zero or more"));
            }
            *d.get_ref()
        });
        let on_delay = self.delay(&t.on_delay_s);
        let off_delay = self.delay(&t.off_delay_s);
        Some(ThresholdRule {
            id: t.id.get_ref().clone(),
            equipment: targets,
            metric: t.metric.clone(),
            levels,
            deadband,
            on_delay,
            off_delay,
        })
    }

    pub(crate) fn rule_set(
        &mut self,
        raw: &RawRules,
        equipment: &[Equipment],
        metric_types: &std::collections::HashMap<String, ValueType>,
        rule_ids: &mut HashSet<String>,
    ) -> RuleSet {
        let mut unique = |v: &mut Self, id: &Spanned<String>| {
            v.check_id(id, "rule id");
            if !rule_ids.insert(id.get_ref().clone()) {
                v.push(Problem::new(
                    id.span(),
                    format!("rule id `{}` is used twice", id.get_ref()),
                ));
            }
        };
        let mut set = RuleSet::default();
        let mut elevators_seen: HashSet<String> = HashSet::new();
        for r in &raw.elevator {
            unique(self, &r.get_ref().id);
            let rule = self.elevator_rule(r, equipment, &mut elevators_seen);
            set.elevator.push(rule);
        }
        for r in &raw.vessel {
            unique(self, &r.get_ref().id);
            let rule = self.vessel_rule(r, equipment);
            set.vessel.push(rule);
        }
        for r in &raw.rate {
            unique(self, &r.get_ref().id);
            let rule = self.rate_rule(r, equipment);
            set.rate.push(rule);
        }
        for r in &raw.stale {
            unique(self, &r.get_ref().id);
            let rule = self.stale_rule(r, equipment);
            set.stale.push(rule);
        }
        for r in &raw.expr {
            unique(self, &r.get_ref().id);
            if let Some(rule) = self.expr_rule(r, equipment, metric_types) {
                set.expr.push(rule);
            }
        }
        if let Some(f) = &raw.fill {
            let id = f
                .get_ref()
                .id
                .clone()
                .unwrap_or_else(|| Spanned::new(f.span(), "fill".to_owned()));
            unique(self, &id);
            set.fill = Some(self.fill_rule(f, &id, equipment));
        }
        let mut codes = HashSet::new();
        for c in &raw.cylinder {
            let code = &c.get_ref().code;
            if !codes.insert(code.get_ref().clone()) {
                self.push(Problem::new(
                    code.span(),
                    format!("cylinder code `{}` is listed twice", code.get_ref()),
                ));
            }
            if let Some(cylinder) = self.cylinder(c) {
                set.cylinders.push(cylinder);
            }
        }
        if !raw.cylinder.is_empty() && raw.fill.is_none() {
            self.push(
                Problem::new(
                    raw.cylinder[0].span(),
                    "a cylinder registry without a fill rule checks nothing",
                )
                .hint("add [rules.fill] with station = \"this station's code\""),
            );
        }
        if let Some(l) = &raw.lifecycle {
            set.lifecycle = self.lifecycle(l);
        }
        set
    }

    /// Resolves `equipment = [...]`, or else every equipment of `kinds`.
    fn rule_targets(
        &mut self,
        rule_id: &Spanned<String>,
        listed: &[Spanned<String>],
        kinds: &[EquipmentKind],
        equipment: &[Equipment],
    ) -> Vec<String> {
        let mut targets = Vec::new();
        for id in listed {
            match equipment.iter().find(|e| e.id == *id.get_ref()) {
                Some(e) if kinds.contains(&e.kind) => targets.push(e.id.clone()),
                Some(e) => self.push(
                    Problem::new(
                        id.span(),
                        format!(
                            "rule `{}` does not apply to {} `{}`",
                            rule_id.get_ref(),
                            e.kind,
                            e.id
                        ),
                    )
                    .hint(format!(
                        "this kind of rule applies to: {}",
                        kinds
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                ),
                None => self.push(
                    Problem::new(id.span(), format!("unknown equipment `{}`", id.get_ref()))
                        .hint("declare it in an [[equipment]] table first"),
                ),
            }
        }
        if listed.is_empty() {
            targets.extend(
                equipment
                    .iter()
                    .filter(|e| kinds.contains(&e.kind))
                    .map(|e| e.id.clone()),
            );
        }
        targets.sort();
        targets.dedup();
        targets
    }

    fn elevator_rule(
        &mut self,
        raw: &Spanned<RawElevatorRule>,
        equipment: &[Equipment],
        seen: &mut HashSet<String>,
    ) -> ElevatorRule {
        let r = raw.get_ref();
        let equipment_ids = self.rule_targets(
            &r.id,
            &r.equipment,
            &[EquipmentKind::Elevator, EquipmentKind::Escalator],
            equipment,
        );
        for e in &equipment_ids {
            if !seen.insert(e.clone()) {
                self.push(
                    Problem::new(raw.span(), format!("elevator `{e}` is covered by two elevator rules"))
                        .hint("list each elevator in one [[rules.elevator]] only: a second one would raise every alarm twice"),
                );
            }
        }
        let defaults = ElevatorMetrics::default();
        let m = &r.metrics;
        let pick = |v: &Option<String>, d: &String| v.clone().unwrap_or_else(|| d.clone());
        let metrics = ElevatorMetrics {
            car_status: pick(&m.car_status, &defaults.car_status),
            door_zone: pick(&m.door_zone, &defaults.door_zone),
            floor: pick(&m.floor, &defaults.floor),
            door_closed_locked: pick(&m.door_closed_locked, &defaults.door_closed_locked),
            occupied: pick(&m.occupied, &defaults.occupied),
            service_mode: pick(&m.service_mode, &defaults.service_mode),
            speed: pick(&m.speed, &defaults.speed),
            fault_code: pick(&m.fault_code, &defaults.fault_code),
            alarm_button: pick(&m.alarm_button, &defaults.alarm_button),
            power: pick(&m.power, &defaults.power),
        };
        let suppress_in = match &r.suppress_in {
            None => vec!["inspection".to_owned(), "out_of_service".to_owned()],
            Some(modes) => self.service_modes(modes, "suppress_in"),
        };
        // Firefighter service (phase II) is driven from inside the car by a firefighter.
        let staff_in_car_modes = match &r.staff_in_car_modes {
            None => ["inspection", "out_of_service", "firefighter"]
                .map(str::to_owned)
                .to_vec(),
            Some(modes) => self.service_modes(modes, "staff_in_car_modes"),
        };
        ElevatorRule {
            id: r.id.get_ref().clone(),
            equipment: equipment_ids,
            numbering: r.fault_numbering.unwrap_or(FaultNumbering::Gbt24476),
            metrics,
            trapped_delay_at_landing: self.seconds_or(&r.trapped_delay_at_landing_s, 60.0),
            trapped_delay_outside_zone: self.seconds_or(&r.trapped_delay_outside_zone_s, 30.0),
            suppress_in,
            staff_in_car_modes,
            blind_after: self.seconds_or(&r.blind_after_s, 120.0),
        }
    }

    /// Service modes listed in an elevator rule. `unknown` (and `normal`) cannot silence the
    /// trapped rule: a mode nobody recognised says nothing about who is in the car.
    fn service_modes(&mut self, modes: &[Spanned<String>], key: &str) -> Vec<String> {
        modes
            .iter()
            .filter_map(|mode| {
                let name = mode.get_ref().as_str();
                if matches!(name, "unknown" | "normal") {
                    self.push(
                        Problem::new(mode.span(), format!("`{name}` cannot be in {key}"))
                            .hint("list only modes where staff are in the car, such as inspection and out_of_service: the trapped rule must not go quiet for a mode it does not know"),
                    );
                    None
                } else if crate::rules::SERVICE_MODES.contains(&name) {
                    Some(name.to_owned())
                } else {
                    self.push(
                        Problem::new(mode.span(), format!("`{name}` is not a service mode"))
                            .hint(format!(
                                "use one of: {}",
                                crate::rules::SERVICE_MODES.join(", ")
                            )),
                    );
                    None
                }
            })
            .collect()
    }

    fn vessel_rule(&mut self, raw: &Spanned<RawVesselRule>, equipment: &[Equipment]) -> VesselRule {
        let r = raw.get_ref();
        let rule = r.id.get_ref();
        let ids = self.rule_targets(
            &r.id,
            &r.equipment,
            &[EquipmentKind::PressureVessel, EquipmentKind::Autoclave],
            equipment,
        );
        let high_of_set = self.fraction(&r.high_of_set, 0.95, "high_of_set");
        let valve_tolerance = self.fraction(&r.valve_tolerance, 0.03, "valve_tolerance");
        let high_mpa = self.positive(&r.high_mpa, "high_mpa");
        let high_high_mpa = self.positive(&r.high_high_mpa, "high_high_mpa");
        let deadband = r.deadband_mpa.as_ref().map(|d| {
            if !(d.get_ref().is_finite() && *d.get_ref() >= 0.0) {
                self.push(Problem::new(d.span(), "deadband must be zero or more"));
            }
            *d.get_ref()
        });
        let place = |v: &Option<Spanned<f64>>| v.as_ref().map_or_else(|| raw.span(), |s| s.span());
        let mut targets = Vec::new();
        for id in ids {
            let Some(e) = equipment.iter().find(|e| e.id == id) else {
                continue;
            };
            let n = &e.nameplate;
            // The nameplate check reports a missing or broken ladder already.
            let (Some(set), Some(design)) = (n.set_pressure_mpa, n.design_pressure_mpa) else {
                continue;
            };
            if set > design {
                continue;
            }
            let high = high_mpa.unwrap_or(high_of_set * set);
            let high_high = high_high_mpa.unwrap_or(set * (1.0 - valve_tolerance));
            let mut not_below =
                |span: Range<usize>, what: &str, limit: f64, bound: &str, hint: &str| {
                    let limit = round4(limit);
                    let message = format!(
                    "rule `{rule}`: {what} limit {limit} MPa of `{id}` is not below its {bound}"
                );
                    self.push(Problem::new(span, message).hint(hint));
                };
            let set_pressure = format!("safety-valve set pressure {set} MPa");
            if high >= set {
                let hint = "the high alarm must come before the valve lifts: lower high_mpa or high_of_set";
                not_below(place(&r.high_mpa), "high", high, &set_pressure, hint);
            }
            if high_high >= set {
                not_below(
                    place(&r.high_high_mpa),
                    "high_high",
                    high_high,
                    &set_pressure,
                    "place high_high below set pressure minus the valve tolerance",
                );
            }
            if high >= high_high {
                not_below(
                    raw.span(),
                    "high",
                    high,
                    &format!("high_high limit {} MPa", round4(high_high)),
                    "lower high_of_set or valve_tolerance, or give high_mpa and high_high_mpa",
                );
            }
            let safe_residual = if e.kind == EquipmentKind::Autoclave {
                if n.safe_residual_mpa.is_none() {
                    self.push(
                        Problem::new(raw.span(), format!("autoclave `{id}` has no safe_residual_mpa for the door interlock"))
                            .hint("add safe_residual_mpa to its nameplate: the pressure below which the door may open"),
                    );
                }
                n.safe_residual_mpa
            } else {
                None
            };
            targets.push(VesselTarget {
                equipment: id,
                high,
                high_high,
                // Two percent of the set pressure keeps a noisy transmitter from chattering.
                deadband: deadband.unwrap_or(0.02 * set),
                safe_residual,
            });
        }
        VesselRule {
            id: rule.clone(),
            metric: r.metric.clone().unwrap_or_else(|| "pressure".to_owned()),
            door_metric: r
                .door_metric
                .clone()
                .unwrap_or_else(|| "door_closed_locked".to_owned()),
            targets,
            deadband,
            on_delay: self.delay(&r.on_delay_s),
            off_delay: self.delay(&r.off_delay_s),
        }
    }

    fn any_targets(
        &mut self,
        id: &Spanned<String>,
        listed: &[Spanned<String>],
        kind: Option<EquipmentKind>,
        equipment: &[Equipment],
    ) -> Vec<String> {
        if listed.is_empty() && kind.is_none() {
            self.push(
                Problem::new(
                    id.span(),
                    format!("rule `{}` applies to nothing", id.get_ref()),
                )
                .hint("add equipment = [\"ID\", ...] or kind = \"pressure_vessel\""),
            );
            return Vec::new();
        }
        let kinds: Vec<EquipmentKind> = match kind {
            Some(k) if listed.is_empty() => vec![k],
            _ => EquipmentKind::ALL.to_vec(),
        };
        self.rule_targets(id, listed, &kinds, equipment)
    }

    fn rate_rule(&mut self, raw: &Spanned<RawRateRule>, equipment: &[Equipment]) -> RateRule {
        let r = raw.get_ref();
        let targets = self.any_targets(&r.id, &r.equipment, r.kind, equipment);
        let rise = self.positive(&r.max_rise_per_min, "max_rise_per_min");
        let fall = self.positive(&r.max_fall_per_min, "max_fall_per_min");
        if r.max_rise_per_min.is_none() && r.max_fall_per_min.is_none() {
            self.push(
                Problem::new(
                    raw.span(),
                    format!("rule `{}` has no limit", r.id.get_ref()),
                )
                .hint("add max_rise_per_min, max_fall_per_min or both"),
            );
        }
        let window = self.positive(&r.window_s, "window_s").unwrap_or(60.0);
        RateRule {
            id: r.id.get_ref().clone(),
            equipment: targets,
            metric: r.metric.clone(),
            max_rise_per_min: rise,
            max_fall_per_min: fall,
            window: Duration::from_secs_f64(window.min(1e9)),
            severity: r.severity.unwrap_or(Severity::High),
        }
    }

    fn stale_rule(&mut self, raw: &Spanned<RawStaleRule>, equipment: &[Equipment]) -> StaleRule {
        let r = raw.get_ref();
        let targets = self.any_targets(&r.id, &r.equipment, r.kind, equipment);
        let interval = self
            .positive(&Some(r.expected_interval_s.clone()), "expected_interval_s")
            .unwrap_or(1.0);
        let factor = self.positive(&r.factor, "factor").unwrap_or(3.0);
        StaleRule {
            id: r.id.get_ref().clone(),
            equipment: targets,
            metric: r.metric.clone(),
            expected_interval: Duration::from_secs_f64(interval.min(1e9)),
            factor: factor.min(1e6),
            severity: r.severity.unwrap_or(Severity::Medium),
        }
    }

    fn expr_rule(
        &mut self,
        raw: &Spanned<RawExprRule>,
        equipment: &[Equipment],
        metric_types: &std::collections::HashMap<String, ValueType>,
    ) -> Option<ExprRule> {
        let r = raw.get_ref();
        let targets = self.any_targets(&r.id, &r.equipment, r.kind, equipment);
        let source = r.when.get_ref();
        let expr = match crate::rules::parse_expr(source, metric_types) {
            Ok(expr) => Some(expr),
            Err(e) => {
                // The span covers the quoted string: skip its opening quote. Escapes inside the
                // string would shift the column; expressions have no reason to use them.
                let start = r.when.span().start + 1 + e.offset;
                let mut problem =
                    Problem::new(start..start + 1, format!("in `when`: {}", e.message));
                if let Some(hint) = e.hint {
                    problem = problem.hint(hint);
                }
                self.push(problem);
                None
            }
        };
        let on_delay = self.delay(&r.on_delay_s);
        let off_delay = self.delay(&r.off_delay_s);
        Some(ExprRule {
            id: r.id.get_ref().clone(),
            equipment: targets,
            source: source.clone(),
            expr: expr?,
            severity: r.severity.unwrap_or(Severity::Medium),
            on_delay,
            off_delay,
            message: r.message.clone(),
        })
    }

    fn fill_rule(
        &mut self,
        raw: &Spanned<RawFillRule>,
        id: &Spanned<String>,
        equipment: &[Equipment],
    ) -> FillRule {
        let r = raw.get_ref();
        let targets = self.rule_targets(
            id,
            &r.equipment,
            &[EquipmentKind::FillingStation],
            equipment,
        );
        if targets.is_empty() {
            self.push(
                Problem::new(raw.span(), "the fill rule has no filling station")
                    .hint("declare an [[equipment]] with kind = \"filling_station\""),
            );
        }
        if r.station.get_ref().trim().is_empty() {
            self.push(
                Problem::new(r.station.span(), "station is empty")
                    .hint("write this station's code, as cylinders are bound to it"),
            );
        }
        let d = FillMetrics::default();
        let m = &r.metrics;
        let pick = |v: &Option<String>, d: &String| v.clone().unwrap_or_else(|| d.clone());
        FillRule {
            id: id.get_ref().clone(),
            equipment: targets,
            station: r.station.get_ref().clone(),
            metrics: FillMetrics {
                cylinder_code: pick(&m.cylinder_code, &d.cylinder_code),
                medium: pick(&m.medium, &d.medium),
                mass_kg: pick(&m.mass_kg, &d.mass_kg),
                pressure_mpa: pick(&m.pressure_mpa, &d.pressure_mpa),
                temperature_c: pick(&m.temperature_c, &d.temperature_c),
                residual_pressure_mpa: pick(&m.residual_pressure_mpa, &d.residual_pressure_mpa),
                operator: pick(&m.operator, &d.operator),
                gun: pick(&m.gun, &d.gun),
            },
        }
    }

    fn cylinder(&mut self, raw: &Spanned<RawCylinder>) -> Option<Cylinder> {
        let c = raw.get_ref();
        if c.code.get_ref().trim().is_empty() {
            self.push(Problem::new(c.code.span(), "cylinder code is empty"));
        }
        let permitted = *c.permitted_fill_kg.get_ref();
        if !(permitted.is_finite() && permitted > 0.0) {
            self.push(Problem::new(
                c.permitted_fill_kg.span(),
                "permitted_fill_kg must be a number above 0",
            ));
        }
        let next_inspection = self.date(&c.next_inspection);
        let design_life_end = c.design_life_end.as_ref().and_then(|d| self.date(d));
        Some(Cylinder {
            code: c.code.get_ref().clone(),
            medium: c.medium.clone(),
            volume_l: c.volume_l,
            permitted_fill_kg: permitted,
            next_inspection: next_inspection?,
            design_life_end,
            scrapped: c.scrapped,
            station: c.station.clone(),
        })
    }

    fn lifecycle(&mut self, raw: &Spanned<RawLifecycle>) -> LifecycleSettings {
        let l = raw.get_ref();
        let d = LifecycleSettings::default();
        let count = |v: &mut Self, raw: &Option<Spanned<usize>>, default: usize| match raw {
            None => default,
            Some(c) if *c.get_ref() >= 1 => *c.get_ref(),
            Some(c) => {
                v.push(Problem::new(c.span(), "a count must be 1 or more"));
                default
            }
        };
        let settings = LifecycleSettings {
            chatter_count: count(self, &l.chatter_count, d.chatter_count),
            flood_count: count(self, &l.flood_count, d.flood_count),
            flood_end_count: count(self, &l.flood_end_count, d.flood_end_count),
            chatter_window: self.seconds_or(&l.chatter_window_s, 60.0),
            chatter_announce_interval: self.seconds_or(&l.chatter_announce_interval_s, 60.0),
            flood_window: self.seconds_or(&l.flood_window_s, 600.0),
            shelve_max: self.seconds_or(&l.shelve_max_s, 8.0 * 3600.0),
            latched: l.latched.clone(),
            history: l.history.unwrap_or(d.history).max(1),
        };
        if settings.flood_end_count > settings.flood_count {
            self.push(
                Problem::new(raw.span(), "flood_end_count is above flood_count")
                    .hint("a flood starts above flood_count and ends below flood_end_count"),
            );
        }
        settings
    }
}

/// Derived limits shown in messages without floating-point noise.
fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
