//! `[dispatch]` and `[[rescue_unit]]`: who is called for a trapped passenger, in which order,
//! how fast they must respond and arrive, and how each unit is reached.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::Problem;

#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// An alarm whose rule id contains this text is a trapped-passenger incident.
    pub trapped_rule_contains: String,
    /// Escalate when the notified unit has not responded within this time (default 3 min).
    pub respond_within: Duration,
    /// Escalate when the unit has not reached the site within this time (default 30 min).
    pub arrive_within: Duration,
    /// The unit called when the maintenance unit does not respond or arrive in time.
    pub backup_unit: Option<String>,
    /// The last level of escalation.
    pub fire_service: Option<String>,
    /// How often each instance looks for due dispatch timers and pending notifications.
    pub poll_interval: Duration,
    /// How long a claimed notification stays with the instance that claimed it.
    pub lease: Duration,
}

#[derive(Debug, Clone)]
pub struct RescueUnit {
    pub name: String,
    pub phone: String,
    pub webhook: Option<String>,
    pub email: Option<String>,
    pub mqtt_topic: Option<String>,
    /// Overrides `dispatch.backup_unit` for incidents of this unit.
    pub backup: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDispatch {
    pub(super) trapped_rule_contains: Option<Spanned<String>>,
    pub(super) respond_within_s: Option<f64>,
    pub(super) arrive_within_s: Option<f64>,
    pub(super) backup_unit: Option<Spanned<String>>,
    pub(super) fire_service: Option<Spanned<String>>,
    pub(super) poll_interval_ms: Option<u64>,
    pub(super) lease_s: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRescueUnit {
    pub(super) name: Spanned<String>,
    pub(super) phone: String,
    pub(super) webhook: Option<Spanned<String>>,
    pub(super) email: Option<String>,
    pub(super) mqtt_topic: Option<String>,
    pub(super) backup: Option<Spanned<String>>,
}

/// The names of the `[[rescue_unit]]` entries, which every unit named elsewhere must be.
pub(super) struct UnitNames(HashSet<String>);

impl UnitNames {
    pub(super) fn new(units: &[RawRescueUnit]) -> Self {
        UnitNames(units.iter().map(|u| u.name.get_ref().clone()).collect())
    }

    fn check(&self, s: &Spanned<String>, problems: &mut Vec<Problem>) {
        if !self.0.contains(s.get_ref()) {
            problems.push(
                Problem::new(
                    s.span(),
                    format!("no [[rescue_unit]] named `{}`", s.get_ref()),
                )
                .hint("add a [[rescue_unit]] with its phone and webhook, e-mail or MQTT topic"),
            );
        }
    }
}

/// The `[dispatch]` table.
pub(super) fn validate(
    d: RawDispatch,
    units: &UnitNames,
    problems: &mut Vec<Problem>,
) -> DispatchSettings {
    for s in [&d.backup_unit, &d.fire_service].into_iter().flatten() {
        units.check(s, problems);
    }
    let secs = |v: Option<f64>, default: f64| {
        Duration::from_secs_f64(v.filter(|s| *s > 0.0).unwrap_or(default))
    };
    DispatchSettings {
        trapped_rule_contains: d.trapped_rule_contains.map_or_else(
            || "trapped".into(),
            |s| {
                if s.get_ref().is_empty() {
                    problems.push(Problem::new(
                        s.span(),
                        "trapped_rule_contains must not be empty",
                    ));
                }
                s.into_inner()
            },
        ),
        respond_within: secs(d.respond_within_s, 180.0),
        arrive_within: secs(d.arrive_within_s, 1800.0),
        backup_unit: d.backup_unit.map(Spanned::into_inner),
        fire_service: d.fire_service.map(Spanned::into_inner),
        poll_interval: Duration::from_millis(d.poll_interval_ms.unwrap_or(500).max(10)),
        lease: Duration::from_secs(d.lease_s.unwrap_or(30).max(1)),
    }
}

/// The `[[rescue_unit]]` entries.
pub(super) fn validate_rescue_units(
    units: Vec<RawRescueUnit>,
    names: &UnitNames,
    problems: &mut Vec<Problem>,
) -> Vec<RescueUnit> {
    units
        .into_iter()
        .map(|u| {
            if let Some(b) = &u.backup {
                names.check(b, problems);
            }
            if let Some(w) = &u.webhook {
                if url::Url::parse(w.get_ref()).is_err() {
                    problems.push(Problem::new(
                        w.span(),
                        format!("webhook `{}` is not a URL", w.get_ref()),
                    ));
                }
            }
            RescueUnit {
                name: u.name.into_inner(),
                phone: u.phone,
                webhook: u.webhook.map(Spanned::into_inner),
                email: u.email,
                mqtt_topic: u.mqtt_topic,
                backup: u.backup.map(Spanned::into_inner),
            }
        })
        .collect()
}
