//! The data that flows through seguard: readings in, alarm events out, and the equipment
//! registry record that travels with every incident.

use std::collections::BTreeMap;
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
    /// The gateway itself, for alarms about it (data loss). Not configurable as equipment.
    Gateway,
}

impl EquipmentKind {
    /// The kinds a site configures (every kind but `Gateway`).
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
            Self::Gateway => "gateway",
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
    /// The using unit's number (its safety manager or duty desk), for the rescue page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub using_unit_phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_unit: Option<MaintenanceUnit>,
    /// The building's duty room or property desk, who opens doors for the rescue team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building_phone: Option<String>,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<GeoPoint>,
    pub nameplate: Nameplate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_inspection: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insured: Option<bool>,
    /// The date it was put into use (投入使用日期): central's risk ranking counts its age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_service: Option<NaiveDate>,
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
    /// The condition began (or, for a shelved or suppressed alarm, is announced now).
    Raise,
    /// The condition ended; the incident is closed.
    Clear,
    /// An operator acknowledged the alarm (`actor`, `comment`).
    Acknowledge,
    /// An operator shelved the alarm until `details.shelved_until`.
    Shelve,
    /// The shelf ended, by an operator or because its time ran out.
    Unshelve,
    /// Suppressed by design, for example an elevator in inspection.
    Suppress,
    Unsuppress,
    /// An operator took the alarm out of service, or returned it.
    OutOfService,
    InService,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Raise => "raise",
            Transition::Clear => "clear",
            Transition::Acknowledge => "acknowledge",
            Transition::Shelve => "shelve",
            Transition::Unshelve => "unshelve",
            Transition::Suppress => "suppress",
            Transition::Unsuppress => "unsuppress",
            Transition::OutOfService => "out_of_service",
            Transition::InService => "in_service",
        }
    }
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
    /// Who acknowledged, shelved or took the alarm out of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Facts a rule adds for whoever acts on the alarm: for a trapped passenger the floor, the
    /// door zone and the time stopped; for a refused fill the cylinder and the reasons.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, Value>,
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
            actor: None,
            comment: None,
            details: BTreeMap::new(),
        }
    }

    /// Adds facts to the event. They take part in the id, so two events of one rule at one
    /// instant that differ in their facts (two refused fills) keep distinct ids.
    pub fn with_details(mut self, details: BTreeMap<String, Value>) -> Self {
        if !details.is_empty() {
            let facts = serde_json::to_string(&details).unwrap_or_default();
            let key = format!("{}/{facts}", self.id);
            self.id = Uuid::new_v5(&Uuid::NAMESPACE_OID, key.as_bytes());
        }
        self.details = details;
        self
    }

    /// Records the operator and comment of a lifecycle action.
    pub fn by(mut self, actor: &str, comment: Option<&str>) -> Self {
        self.actor = Some(actor.to_owned());
        self.comment = comment.map(str::to_owned);
        self
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

/// The gateway's equipment registry, retained on `{prefix}/{gateway}/registry` and published
/// again on every connection, so the central map shows every piece of equipment, also the ones
/// that never raised an alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayRegistry {
    /// `seguard.registry.v1`.
    pub schema: String,
    pub gateway: String,
    pub site: SiteRecord,
    pub equipment: Vec<Equipment>,
}

pub const REGISTRY_SCHEMA: &str = "seguard.registry.v1";

/// The retained gateway status on `{prefix}/{gateway}/status`; the last will says `offline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayStatus {
    pub gateway: String,
    pub site: String,
    pub state: GatewayState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

/// Central's word that it refused one of a gateway's messages, on
/// `{prefix}/{gateway}/rejections`, sealed with the gateway's key when central knows it. An
/// MQTT 3.1.1 PUBACK cannot say no: the broker confirms a message central later refuses, so
/// this is how the gateway learns that it was not stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CentralRejection {
    /// `seguard.rejection.v1`.
    pub schema: String,
    /// The gateway the refused message's topic named.
    pub gateway: String,
    /// The topic kind: `incidents`, `fills`, `registry` or `status`.
    pub kind: String,
    /// The refused message's id, when central could read one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The counted reason (`bad_signature`, `unknown_schema`, ...).
    pub reason: String,
    pub detail: String,
    pub time: DateTime<Utc>,
}

pub const REJECTION_SCHEMA: &str = "seguard.rejection.v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayState {
    Online,
    Offline,
}

/// One cylinder fill as the scale reported it, with the gateway's verdict. Every record goes to
/// the central service (traceability, kept at least two years) and to InfluxDB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FillRecord {
    /// `seguard.fill.v1`.
    pub schema: String,
    /// Derived from gateway, station, cylinder and time: a replay carries the same id.
    pub id: Uuid,
    pub gateway: String,
    /// The filling-station equipment that reported the fill.
    pub equipment: String,
    /// This station's code, as cylinders are bound to it in the registry.
    pub station: String,
    pub cylinder_code: String,
    pub time: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mass_kg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pressure_mpa: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residual_pressure_mpa: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gun: Option<String>,
    pub accepted: bool,
    /// Why the fill was refused; empty when accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<FillRejection>,
}

pub const FILL_SCHEMA: &str = "seguard.fill.v1";

/// What the gateway sends the central service, in one ordered, durable outbox lane: incidents
/// on `{prefix}/{gateway}/incidents`, fill records on `{prefix}/{gateway}/fills`.
/// Untagged, so a lane written before fills travelled (incidents only) still reads back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToCentral {
    Incident(Box<Incident>),
    Fill(Box<FillRecord>),
}

/// Why a fill is refused (TSG 23-2021 and local rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillRejection {
    Unregistered,
    Scrapped,
    PastDesignLife,
    InspectionExpired,
    WrongMedium,
    NotOwned,
    NoResidualPressure,
    Overfill,
}

impl FillRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unregistered => "unregistered",
            Self::Scrapped => "scrapped",
            Self::PastDesignLife => "past_design_life",
            Self::InspectionExpired => "inspection_expired",
            Self::WrongMedium => "wrong_medium",
            Self::NotOwned => "not_owned",
            Self::NoResidualPressure => "no_residual_pressure",
            Self::Overfill => "overfill",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Self::WrongMedium | Self::Overfill => Severity::Critical,
            Self::Scrapped | Self::PastDesignLife | Self::InspectionExpired => Severity::High,
            Self::Unregistered | Self::NoResidualPressure => Severity::High,
            Self::NotOwned => Severity::Medium,
        }
    }
}

/// The type a metric's values have: what a mapped field must hold, and what an expression
/// over the metric may do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    Number,
    Bool,
    Text,
}

/// The alarm lifecycle's counts (`rules::Engine::stats`), as `/metrics` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AlarmStats {
    /// Raises announced within the flood window.
    pub announced_in_window: usize,
    pub flood: bool,
    pub chattering: usize,
    pub shelved: usize,
    pub suppressed: usize,
    pub out_of_service: usize,
    pub unacknowledged: usize,
    pub active: usize,
}
