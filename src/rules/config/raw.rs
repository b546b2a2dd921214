//! The `[rules]` and `[[thresholds]]` tables as written: serde structs that mirror the TOML and
//! reject unknown fields.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    #[serde(default)]
    pub threshold: Vec<Spanned<RawThreshold>>,
    #[serde(default)]
    pub elevator: Vec<Spanned<RawElevatorRule>>,
    #[serde(default)]
    pub vessel: Vec<Spanned<RawVesselRule>>,
    #[serde(default)]
    pub rate: Vec<Spanned<RawRateRule>>,
    #[serde(default)]
    pub stale: Vec<Spanned<RawStaleRule>>,
    #[serde(default)]
    pub expr: Vec<Spanned<RawExprRule>>,
    pub fill: Option<Spanned<RawFillRule>>,
    #[serde(default)]
    pub cylinder: Vec<Spanned<RawCylinder>>,
    pub lifecycle: Option<Spanned<RawLifecycle>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawElevatorRule {
    pub id: Spanned<String>,
    /// Default: every elevator and escalator.
    #[serde(default)]
    pub equipment: Vec<Spanned<String>>,
    pub fault_numbering: Option<super::FaultNumbering>,
    pub trapped_delay_at_landing_s: Option<Spanned<f64>>,
    pub trapped_delay_outside_zone_s: Option<Spanned<f64>>,
    pub suppress_in: Option<Vec<Spanned<String>>>,
    /// Service modes with staff in the car: the only ones that keep the trapped rule quiet.
    pub staff_in_car_modes: Option<Vec<Spanned<String>>>,
    /// How long after an elevator's first reading a metric the trapped rule needs may stay
    /// unreported before the rule raises that it is blind.
    pub blind_after_s: Option<Spanned<f64>>,
    #[serde(default)]
    pub metrics: RawElevatorMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawElevatorMetrics {
    pub car_status: Option<String>,
    pub door_zone: Option<String>,
    pub floor: Option<String>,
    pub door_closed_locked: Option<String>,
    pub occupied: Option<String>,
    pub service_mode: Option<String>,
    pub speed: Option<String>,
    pub fault_code: Option<String>,
    pub alarm_button: Option<String>,
    pub power: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVesselRule {
    pub id: Spanned<String>,
    /// Default: every pressure vessel and autoclave.
    #[serde(default)]
    pub equipment: Vec<Spanned<String>>,
    pub metric: Option<String>,
    pub door_metric: Option<String>,
    /// high = high_of_set × set pressure, unless high_mpa is given.
    pub high_of_set: Option<Spanned<f64>>,
    /// high_high = set pressure × (1 - valve_tolerance), unless high_high_mpa is given.
    pub valve_tolerance: Option<Spanned<f64>>,
    pub high_mpa: Option<Spanned<f64>>,
    pub high_high_mpa: Option<Spanned<f64>>,
    pub deadband_mpa: Option<Spanned<f64>>,
    pub on_delay_s: Option<Spanned<f64>>,
    pub off_delay_s: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateRule {
    pub id: Spanned<String>,
    #[serde(default)]
    pub equipment: Vec<Spanned<String>>,
    pub kind: Option<crate::model::EquipmentKind>,
    pub metric: String,
    pub max_rise_per_min: Option<Spanned<f64>>,
    pub max_fall_per_min: Option<Spanned<f64>>,
    pub window_s: Option<Spanned<f64>>,
    pub severity: Option<crate::model::Severity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStaleRule {
    pub id: Spanned<String>,
    #[serde(default)]
    pub equipment: Vec<Spanned<String>>,
    pub kind: Option<crate::model::EquipmentKind>,
    pub metric: Option<String>,
    pub expected_interval_s: Spanned<f64>,
    pub factor: Option<Spanned<f64>>,
    pub severity: Option<crate::model::Severity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExprRule {
    pub id: Spanned<String>,
    #[serde(default)]
    pub equipment: Vec<Spanned<String>>,
    pub kind: Option<crate::model::EquipmentKind>,
    pub when: Spanned<String>,
    pub severity: Option<crate::model::Severity>,
    pub on_delay_s: Option<Spanned<f64>>,
    pub off_delay_s: Option<Spanned<f64>>,
    pub message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFillRule {
    pub id: Option<Spanned<String>>,
    /// Default: every filling station.
    #[serde(default)]
    pub equipment: Vec<Spanned<String>>,
    pub station: Spanned<String>,
    #[serde(default)]
    pub metrics: RawFillMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFillMetrics {
    pub cylinder_code: Option<String>,
    pub medium: Option<String>,
    pub mass_kg: Option<String>,
    pub pressure_mpa: Option<String>,
    pub temperature_c: Option<String>,
    pub residual_pressure_mpa: Option<String>,
    pub operator: Option<String>,
    pub gun: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCylinder {
    pub code: Spanned<String>,
    pub medium: String,
    pub volume_l: f64,
    pub permitted_fill_kg: Spanned<f64>,
    pub next_inspection: Spanned<toml::value::Datetime>,
    pub design_life_end: Option<Spanned<toml::value::Datetime>>,
    #[serde(default)]
    pub scrapped: bool,
    pub station: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLifecycle {
    pub chatter_count: Option<Spanned<usize>>,
    pub chatter_window_s: Option<Spanned<f64>>,
    pub chatter_announce_interval_s: Option<Spanned<f64>>,
    pub flood_count: Option<Spanned<usize>>,
    pub flood_end_count: Option<Spanned<usize>>,
    pub flood_window_s: Option<Spanned<f64>>,
    pub shelve_max_s: Option<Spanned<f64>>,
    #[serde(default)]
    pub latched: Vec<String>,
    pub history: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThreshold {
    pub id: Spanned<String>,
    #[serde(default)]
    pub equipment: Vec<Spanned<String>>,
    pub kind: Option<crate::model::EquipmentKind>,
    pub metric: String,
    pub high_high: Option<Spanned<RawLevel>>,
    pub high: Option<Spanned<RawLevel>>,
    pub low: Option<Spanned<RawLevel>>,
    pub low_low: Option<Spanned<RawLevel>>,
    pub deadband: Option<Spanned<f64>>,
    pub on_delay_s: Option<Spanned<f64>>,
    pub off_delay_s: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLevel {
    pub limit: f64,
    pub severity: Option<crate::model::Severity>,
}
