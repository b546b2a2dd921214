//! `[intake]`: what MQTT and HTTP intake accept beyond the schema (sizes, counts, time window).

use std::time::Duration;

use serde::Deserialize;

/// Limits of MQTT and HTTP intake (`[intake]`); each refusal is counted with its reason.
#[derive(Debug, Clone)]
pub struct IntakeLimits {
    /// A larger retained registry is refused and the previous one kept.
    pub registry_max_bytes: usize,
    /// A registry listing more equipment is refused and the previous one kept.
    pub registry_max_equipment: usize,
    /// A larger status message is refused.
    pub status_max_bytes: usize,
    /// An event time further in the past than this (a gateway's outbox may hold a long outage)
    /// is stored flagged, ordered by its receive time.
    pub event_time_past: Duration,
    /// An event time further in the future than this is stored flagged, like a past one.
    pub event_time_future: Duration,
    /// How many refused messages the store keeps for `/api/v1/intake/rejected`.
    pub rejected_keep: i64,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        IntakeLimits {
            registry_max_bytes: 1 << 20,
            registry_max_equipment: 5_000,
            status_max_bytes: 4096,
            event_time_past: Duration::from_secs(30 * 24 * 3600),
            event_time_future: Duration::from_secs(300),
            rejected_keep: 1000,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIntake {
    registry_max_bytes: Option<usize>,
    registry_max_equipment: Option<usize>,
    status_max_bytes: Option<usize>,
    event_time_past_s: Option<u64>,
    event_time_future_s: Option<u64>,
    rejected_keep: Option<u32>,
}

impl RawIntake {
    /// The limits as written, each absent one at its default; none can be wrong.
    pub(crate) fn limits(self) -> IntakeLimits {
        let defaults = IntakeLimits::default();
        IntakeLimits {
            registry_max_bytes: self
                .registry_max_bytes
                .unwrap_or(defaults.registry_max_bytes),
            registry_max_equipment: self
                .registry_max_equipment
                .unwrap_or(defaults.registry_max_equipment),
            status_max_bytes: self.status_max_bytes.unwrap_or(defaults.status_max_bytes),
            event_time_past: self
                .event_time_past_s
                .map_or(defaults.event_time_past, Duration::from_secs),
            event_time_future: self
                .event_time_future_s
                .map_or(defaults.event_time_future, Duration::from_secs),
            rejected_keep: self.rejected_keep.map_or(defaults.rejected_keep, i64::from),
        }
    }
}
