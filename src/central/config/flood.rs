//! `[flood]`: when many alarms in one area become one regional situation (`central/flood.rs`).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::dispatch::secs;
use crate::diag::{Check, Problem};

/// ISA-18.2's alarm flood at the regional level: more than `count` alarms raised within
/// `radius_km` of one another in `window` open a situation; it ends when fewer than `end_count`
/// joined it in the last `window`. Within a situation each rescue unit is told its new
/// dispatches in one message every `batch` (zero: one message per dispatch, as outside one).
#[derive(Debug, Clone)]
pub struct FloodSettings {
    pub count: i64,
    pub end_count: i64,
    pub window: Duration,
    pub radius_km: f64,
    pub batch: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlood {
    count: Option<Spanned<i64>>,
    end_count: Option<i64>,
    window_s: Option<f64>,
    radius_km: Option<Spanned<f64>>,
    batch_s: Option<f64>,
}

impl Check {
    pub(crate) fn flood_settings(&mut self, f: RawFlood) -> FloodSettings {
        FloodSettings {
            count: f.count.map_or(10, |c| {
                if *c.get_ref() < 1 {
                    self.push(Problem::new(c.span(), "flood count must be at least 1"));
                }
                c.into_inner()
            }),
            end_count: f.end_count.unwrap_or(5).max(1),
            window: secs(f.window_s, 600.0),
            radius_km: f.radius_km.map_or(3.0, |r| {
                if !(r.get_ref().is_finite() && *r.get_ref() > 0.0) {
                    self.push(Problem::new(r.span(), "radius_km must be above 0"));
                }
                r.into_inner()
            }),
            batch: Duration::from_secs_f64(f.batch_s.filter(|s| *s >= 0.0).unwrap_or(5.0)),
        }
    }
}
