//! The config file as written: serde structs that mirror the TOML and reject unknown fields.
//! `validate.rs` turns these into the typed config in `mod.rs`.

use serde::Deserialize;
use toml::Spanned;

pub use crate::broker::RawBroker;
pub use crate::ingest::mqtt::config::RawIngest;
pub use crate::rules::config::RawRules;
pub use crate::uplink::central::config::RawCentral;
pub use crate::uplink::influx::config::RawInflux;
pub use crate::uplink::linefile::config::RawLineFile;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub site: RawSite,
    pub gateway: RawGateway,
    pub mqtt: Option<Spanned<RawBroker>>,
    pub modbus: Option<Spanned<crate::ingest::modbus::RawModbus>>,
    pub outbox: Option<Spanned<crate::outbox::RawOutboxConfig>>,
    #[serde(default)]
    pub equipment: Vec<Spanned<RawEquipment>>,
    #[serde(default)]
    pub ingest: RawIngest,
    #[serde(default)]
    pub rules: RawRules,
    #[serde(default)]
    pub uplink: RawUplinks,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub id: Spanned<String>,
    pub name: String,
    #[serde(default)]
    pub address: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    pub id: Spanned<String>,
    pub http_listen: Option<Spanned<String>>,
    /// Upper bound on the time a graceful shutdown spends flushing queues.
    pub shutdown_flush_s: Option<u64>,
    /// Body limit, timeout and rate limit of the HTTP API.
    pub http_limits: Option<crate::http_limits::RawHttpLimits>,
    /// Tokens that may change things through the HTTP API (alarm actions, reload).
    #[serde(default)]
    pub api_token: Vec<RawApiToken>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiToken {
    pub name: Spanned<String>,
    pub sha256: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEquipment {
    pub id: Spanned<String>,
    pub kind: RawKind,
    pub name: Option<String>,
    pub registration_code: Spanned<String>,
    pub use_certificate: Option<String>,
    pub rescue_code: Option<Spanned<String>>,
    #[serde(default)]
    pub using_unit: String,
    pub using_unit_phone: Option<String>,
    pub maintenance_unit: Option<RawMaintenanceUnit>,
    pub building_phone: Option<String>,
    #[serde(default)]
    pub address: String,
    pub location: Option<Spanned<RawLocation>>,
    pub nameplate: Option<Spanned<RawNameplate>>,
    pub next_inspection: Option<Spanned<toml::value::Datetime>>,
    pub insured: Option<bool>,
    pub in_service: Option<Spanned<toml::value::Datetime>>,
}

/// The kinds a site may configure: every [`crate::model::EquipmentKind`] but `Gateway`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawKind {
    Elevator,
    Escalator,
    PressureVessel,
    Autoclave,
    GasCylinder,
    FillingStation,
}

impl From<RawKind> for crate::model::EquipmentKind {
    fn from(kind: RawKind) -> Self {
        match kind {
            RawKind::Elevator => Self::Elevator,
            RawKind::Escalator => Self::Escalator,
            RawKind::PressureVessel => Self::PressureVessel,
            RawKind::Autoclave => Self::Autoclave,
            RawKind::GasCylinder => Self::GasCylinder,
            RawKind::FillingStation => Self::FillingStation,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaintenanceUnit {
    pub name: String,
    pub phone: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNameplate {
    pub rated_speed_m_s: Option<f64>,
    pub rated_load_kg: Option<f64>,
    pub floors: Option<u32>,
    pub working_pressure_mpa: Option<f64>,
    pub set_pressure_mpa: Option<f64>,
    pub design_pressure_mpa: Option<f64>,
    pub safe_residual_mpa: Option<f64>,
    pub medium: Option<String>,
    pub volume_l: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUplinks {
    #[serde(default)]
    pub influx: Vec<Spanned<RawInflux>>,
    #[serde(default)]
    pub linefile: Vec<Spanned<RawLineFile>>,
    pub central: Option<Spanned<RawCentral>>,
}
