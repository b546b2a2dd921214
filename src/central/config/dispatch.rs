//! `[dispatch]`: which alarms are trapped passengers, and when a dispatch escalates to whom.
//! The units it names are checked against `[[rescue_unit]]` by the composer (`mod.rs`).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Check, Problem};

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDispatch {
    trapped_rule_contains: Option<Spanned<String>>,
    respond_within_s: Option<f64>,
    arrive_within_s: Option<f64>,
    pub(super) backup_unit: Option<Spanned<String>>,
    pub(super) fire_service: Option<Spanned<String>>,
    poll_interval_ms: Option<u64>,
    lease_s: Option<u64>,
}

/// Seconds as written, or `default` when absent or not above zero.
pub(super) fn secs(v: Option<f64>, default: f64) -> Duration {
    Duration::from_secs_f64(v.filter(|s| *s > 0.0).unwrap_or(default))
}

impl Check {
    pub(crate) fn dispatch_settings(&mut self, d: RawDispatch) -> DispatchSettings {
        DispatchSettings {
            trapped_rule_contains: d.trapped_rule_contains.map_or_else(
                || "trapped".into(),
                |s| {
                    if s.get_ref().is_empty() {
                        self.push(Problem::new(
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
}
