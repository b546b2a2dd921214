//! The data that flows through seguard: readings in, alarm events out, and the equipment
//! registry record that travels with every incident.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What kind of special equipment a registry entry is. It is also the InfluxDB measurement name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EquipmentKind {
    Elevator,
    Escalator,
    PressureVessel,
    Autoclave,
    GasCylinder,
    FillingStation,
}

impl EquipmentKind {
    pub const ALL: [EquipmentKind; 6] = [
        Self::Elevator,
        Self::Escalator,
        Self::PressureVessel,
        Self::Autoclave,
        Self::GasCylinder,
        Self::FillingStation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Elevator => "elevator",
            Self::Escalator => "escalator",
            Self::PressureVessel => "pressure_vessel",
            Self::Autoclave => "autoclave",
            Self::GasCylinder => "gas_cylinder",
            Self::FillingStation => "filling_station",
        }
    }

    pub fn is_pressure_vessel(self) -> bool {
        matches!(self, Self::PressureVessel | Self::Autoclave)
    }
}

impl fmt::Display for EquipmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A position as raw GPS gives it. Stored canonical; converted only when drawn on a basemap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
    /// Always "WGS-84": every coordinate is tagged with its system.
    pub crs: Crs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Crs {
    #[serde(rename = "WGS-84")]
    Wgs84,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceUnit {
    pub name: String,
    /// The number a rescue dispatcher calls first.
    pub phone: String,
}

/// Nameplate values. Which fields apply depends on the kind; the config check enforces that.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Nameplate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rated_speed_m_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rated_load_kg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floors: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_pressure_mpa: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_pressure_mpa: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub design_pressure_mpa: Option<f64>,
    /// Autoclaves: the pressure below which the quick-opening door may be unlocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe_residual_mpa: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_l: Option<f64>,
}

/// One entry of the equipment registry, as configured on the gateway and sent with incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Equipment {
    pub id: String,
    pub kind: EquipmentKind,
    pub name: String,
    pub registration_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_certificate: Option<String>,
    /// The 96333 rescue identification code: 5 or 6 digits, kept as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescue_code: Option<String>,
    pub using_unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_unit: Option<MaintenanceUnit>,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<GeoPoint>,
    pub nameplate: Nameplate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_inspection: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insured: Option<bool>,
}

/// A measured value. Text covers floors like "B2" and cylinder codes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Bool(bool),
    Text(String),
}

impl Value {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Text(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Good,
    /// The device answered with an error or the value could not be decoded.
    Bad,
    /// No fresh value arrived when one was expected.
    Stale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Mqtt,
    Modbus,
    Fill,
    Internal,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Mqtt => "mqtt",
            Source::Modbus => "modbus",
            Source::Fill => "fill",
            Source::Internal => "internal",
        }
    }
}

/// One value of one metric of one piece of equipment at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub equipment: String,
    pub metric: String,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub time: DateTime<Utc>,
    pub quality: Quality,
    pub source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    Raise,
    Clear,
}

/// A rule's alarm changing state. The id is derived from its content, so a duplicate delivered
/// after a crash carries the same id and the receiver can discard it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmEvent {
    pub id: Uuid,
    pub equipment: String,
    pub rule: String,
    pub severity: Severity,
    pub transition: Transition,
    pub time: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    pub message: String,
}

impl AlarmEvent {
    /// Builds an event whose id is a UUIDv5 over everything that identifies it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gateway: &str,
        equipment: &str,
        rule: &str,
        severity: Severity,
        transition: Transition,
        time: DateTime<Utc>,
        value: Option<f64>,
        limit: Option<f64>,
        message: String,
    ) -> Self {
        let key = format!(
            "{gateway}/{equipment}/{rule}/{transition:?}/{}",
            time.timestamp_nanos_opt().unwrap_or_default()
        );
        AlarmEvent {
            id: Uuid::new_v5(&Uuid::NAMESPACE_OID, key.as_bytes()),
            equipment: equipment.to_owned(),
            rule: rule.to_owned(),
            severity,
            transition,
            time,
            value,
            limit,
            message,
        }
    }
}

/// The site a gateway serves, as sent with every incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteRecord {
    pub id: String,
    pub name: String,
    pub address: String,
}

/// What the gateway sends to the central service: an alarm event with everything a dispatcher
/// or a regulator needs to act on it without asking the gateway again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `seguard.incident.v1`; the receiver rejects versions it does not know.
    pub schema: String,
    /// The event id: receivers drop duplicates by it.
    pub id: Uuid,
    pub gateway: String,
    pub site: SiteRecord,
    pub equipment: Equipment,
    pub event: AlarmEvent,
}

pub const INCIDENT_SCHEMA: &str = "seguard.incident.v1";

/// The retained gateway status on `{prefix}/{gateway}/status`; the last will says `offline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayStatus {
    pub gateway: String,
    pub site: String,
    pub state: GatewayState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayState {
    Online,
    Offline,
}
