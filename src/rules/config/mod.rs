//! The rules' settings: the typed rule set the engine runs (`[[thresholds]]`, `[rules]` and its
//! tables), the raw tables as written (`raw.rs`) and their validation (`validate.rs`), which
//! resolves every rule against the equipment registry. The config composer hands the tables
//! here and checks what rules share with other modules (the elevator rules' inputs).

mod raw;
mod validate;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use raw::*;

use crate::model::{Equipment, Severity};

/// What an engine is built from: the gateway it runs in, the equipment its rules may name and
/// the rules. The gateway's config converts into it (`From<&config::Config>`).
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings<'a> {
    pub gateway_id: &'a str,
    pub equipment: &'a [Equipment],
    pub thresholds: &'a [ThresholdRule],
    pub rules: &'a RuleSet,
}

impl EngineSettings<'_> {
    pub fn has_equipment(&self, id: &str) -> bool {
        self.equipment.iter().any(|e| e.id == id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LevelKind {
    HighHigh,
    High,
    Low,
    LowLow,
}

impl LevelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LevelKind::HighHigh => "high_high",
            LevelKind::High => "high",
            LevelKind::Low => "low",
            LevelKind::LowLow => "low_low",
        }
    }

    pub fn is_high(self) -> bool {
        matches!(self, LevelKind::High | LevelKind::HighHigh)
    }

    pub fn default_severity(self) -> Severity {
        match self {
            LevelKind::HighHigh => Severity::Critical,
            LevelKind::High => Severity::High,
            LevelKind::Low => Severity::Medium,
            LevelKind::LowLow => Severity::High,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Level {
    pub kind: LevelKind,
    pub limit: f64,
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdRule {
    pub id: String,
    /// The equipment it applies to, resolved from ids or kind.
    pub equipment: Vec<String>,
    pub metric: String,
    pub levels: Vec<Level>,
    /// A high alarm clears below `limit - deadband`, a low one above `limit + deadband`.
    pub deadband: f64,
    pub on_delay: Duration,
    pub off_delay: Duration,
}

/// Every rule besides the plain thresholds, resolved against the equipment registry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub elevator: Vec<ElevatorRule>,
    pub vessel: Vec<VesselRule>,
    pub rate: Vec<RateRule>,
    pub stale: Vec<StaleRule>,
    pub expr: Vec<ExprRule>,
    pub fill: Option<FillRule>,
    /// The cylinder registry that fills are checked against.
    pub cylinders: Vec<Cylinder>,
    pub lifecycle: LifecycleSettings,
}

impl RuleSet {
    pub fn len(&self) -> usize {
        self.elevator.len()
            + self.vessel.len()
            + self.rate.len()
            + self.stale.len()
            + self.expr.len()
            + usize::from(self.fill.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which numbering the `fault_code` metric of an elevator uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultNumbering {
    /// GB/T 24476 style (BACnet model): faults 1-8, events 40-47, 90 alarm button, 91-93.
    Gbt24476,
    /// GB/T 38656 `fault_type`: 1-11, escalators 61-65.
    Gbt38656,
}

/// The metric names an elevator rule reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElevatorMetrics {
    pub car_status: String,
    pub door_zone: String,
    pub floor: String,
    pub door_closed_locked: String,
    pub occupied: String,
    pub service_mode: String,
    pub speed: String,
    pub fault_code: String,
    pub alarm_button: String,
    pub power: String,
}

impl Default for ElevatorMetrics {
    fn default() -> Self {
        ElevatorMetrics {
            car_status: "car_status".into(),
            door_zone: "door_zone".into(),
            floor: "floor".into(),
            door_closed_locked: "door_closed_locked".into(),
            occupied: "occupied".into(),
            service_mode: "service_mode".into(),
            speed: "speed".into(),
            fault_code: "fault_code".into(),
            alarm_button: "alarm_button".into(),
            power: "power".into(),
        }
    }
}

/// Fault codes, trapped passengers, overtravel, door open while running and power cut for a
/// set of elevators. Alarm names are `{id}.{alarm}`, for example `lift.trapped`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElevatorRule {
    pub id: String,
    /// Not serialized: a rule is serialized only inside the rule point of one equipment
    /// (`rules/checkpoint.rs`).
    #[serde(skip)]
    pub equipment: Vec<String>,
    pub numbering: FaultNumbering,
    pub metrics: ElevatorMetrics,
    /// Stopped, closed, occupied and in normal service this long at a landing: trapped.
    pub trapped_delay_at_landing: Duration,
    /// The same outside the door zone (非平层关人), the more severe case.
    pub trapped_delay_outside_zone: Duration,
    /// Service modes in which this rule's alarms are suppressed by design.
    pub suppress_in: Vec<String>,
    /// Service modes with staff in the car: only these keep the trapped rule from deciding.
    /// An unknown or unreported mode does not: the rule stays armed and says it is blind.
    pub staff_in_car_modes: Vec<String>,
    /// After an elevator's first reading (or the engine's first clock tick), how long a metric
    /// the trapped rule needs may stay unreported before `{id}.trapped_rule_blind` is raised.
    pub blind_after: Duration,
}

/// High and high-high pressure from the nameplate, and the autoclave door interlock.
#[derive(Debug, Clone, PartialEq)]
pub struct VesselRule {
    pub id: String,
    pub metric: String,
    pub door_metric: String,
    pub targets: Vec<VesselTarget>,
    pub deadband: Option<f64>,
    pub on_delay: Duration,
    pub off_delay: Duration,
}

/// One vessel with its resolved limits in MPa.
#[derive(Debug, Clone, PartialEq)]
pub struct VesselTarget {
    pub equipment: String,
    pub high: f64,
    pub high_high: f64,
    pub deadband: f64,
    /// Autoclaves: pressure above this with the door not locked is the interlock alarm.
    pub safe_residual: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateRule {
    pub id: String,
    /// Not serialized: a rule is serialized only inside the rule point of one equipment
    /// (`rules/checkpoint.rs`).
    #[serde(skip)]
    pub equipment: Vec<String>,
    pub metric: String,
    /// Per minute, both positive; `None` means not watched.
    pub max_rise_per_min: Option<f64>,
    pub max_fall_per_min: Option<f64>,
    /// The rate is the change since the oldest reading inside this window.
    pub window: Duration,
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleRule {
    pub id: String,
    /// Not serialized: a rule is serialized only inside the rule point of one equipment
    /// (`rules/checkpoint.rs`).
    #[serde(skip)]
    pub equipment: Vec<String>,
    /// `None`: any metric of the equipment counts as a sign of life.
    pub metric: Option<String>,
    pub expected_interval: Duration,
    pub factor: f64,
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExprRule {
    pub id: String,
    /// Not serialized: a rule is serialized only inside the rule point of one equipment
    /// (`rules/checkpoint.rs`).
    #[serde(skip)]
    pub equipment: Vec<String>,
    /// As written, for messages.
    pub source: String,
    pub expr: super::Expr,
    pub severity: Severity,
    pub on_delay: Duration,
    pub off_delay: Duration,
    pub message: Option<String>,
}

/// The metric names a filling scale reports a fill with.
#[derive(Debug, Clone, PartialEq)]
pub struct FillMetrics {
    pub cylinder_code: String,
    pub medium: String,
    pub mass_kg: String,
    pub pressure_mpa: String,
    pub temperature_c: String,
    pub residual_pressure_mpa: String,
    pub operator: String,
    pub gun: String,
}

impl Default for FillMetrics {
    fn default() -> Self {
        FillMetrics {
            cylinder_code: "cylinder_code".into(),
            medium: "medium".into(),
            mass_kg: "fill_mass_kg".into(),
            pressure_mpa: "fill_pressure".into(),
            temperature_c: "fill_temperature".into(),
            residual_pressure_mpa: "residual_pressure".into(),
            operator: "operator".into(),
            gun: "gun".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FillRule {
    pub id: String,
    /// Filling-station equipment whose readings carry fill records.
    pub equipment: Vec<String>,
    /// This station's code: cylinders must be bound to it.
    pub station: String,
    pub metrics: FillMetrics,
}

/// One entry of the cylinder registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Cylinder {
    pub code: String,
    pub medium: String,
    pub volume_l: f64,
    pub permitted_fill_kg: f64,
    pub next_inspection: chrono::NaiveDate,
    pub design_life_end: Option<chrono::NaiveDate>,
    pub scrapped: bool,
    pub station: String,
}

/// ISA-18.2 alarm handling (acknowledgement, shelving, chattering, flood), with the defaults
/// the example site config lists.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleSettings {
    /// This many raises of one alarm within `chatter_window` mark it chattering.
    pub chatter_count: usize,
    pub chatter_window: Duration,
    /// A chattering alarm is announced at most once per this interval.
    pub chatter_announce_interval: Duration,
    /// More than `flood_count` announced alarms within `flood_window`: flood; it ends below
    /// `flood_end_count`.
    pub flood_count: usize,
    pub flood_end_count: usize,
    pub flood_window: Duration,
    /// Longest shelf an operator may ask for.
    pub shelve_max: Duration,
    /// Alarm names (or rule ids, which cover every level) that stay until acknowledged.
    pub latched: Vec<String>,
    /// Events kept in the in-memory history.
    pub history: usize,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        LifecycleSettings {
            chatter_count: 3,
            chatter_window: Duration::from_secs(60),
            chatter_announce_interval: Duration::from_secs(60),
            flood_count: 10,
            flood_end_count: 5,
            flood_window: Duration::from_secs(600),
            shelve_max: Duration::from_secs(8 * 3600),
            latched: Vec::new(),
            history: 10_000,
        }
    }
}
