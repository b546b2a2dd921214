//! Gateway configuration: parse the TOML (`raw.rs`), then validate it into the typed structs
//! below (`validate.rs`), reporting every problem at once with file, line, column and a hint.

mod diag;
mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use diag::{line_column, Located, Problem};

use crate::model::{Equipment, EquipmentKind, Severity};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render(.problems))]
    Invalid { problems: Vec<Located> },
}

impl ConfigError {
    /// The problems found, empty when the file could not be read.
    pub fn problems(&self) -> &[Located] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems } => problems,
        }
    }
}

fn render(problems: &[Located]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Reads and validates a gateway config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates config text; `path` only names the file in messages.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let locate = |problems: Vec<Problem>| ConfigError::Invalid {
        problems: problems
            .into_iter()
            .map(|p| Located::new(path, text, p))
            .collect(),
    };
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| locate(vec![toml_problem(&e)]))?;
    // Profiles and other relative paths are relative to the config file.
    let config_dir = path.parent().unwrap_or(Path::new("."));
    validate::validate(raw, config_dir).map_err(|mut problems| {
        problems.sort_by_key(|p| p.span.as_ref().map_or(0, |s| s.start));
        locate(problems)
    })
}

fn toml_problem(error: &toml::de::Error) -> Problem {
    // Some toml messages span lines ("invalid date-time\nvalue is out of range").
    let message = error.message().trim().replace('\n', ": ");
    let hint = if message.starts_with("unknown field") {
        Some("check the spelling against the commented example configs in firmware-configs/")
    } else if message.starts_with("missing field") {
        Some("add the field; the example configs in firmware-configs/ show every field")
    } else if message.starts_with("unknown variant") {
        Some("use one of the listed values, in lower case")
    } else if message.starts_with("invalid type: string") {
        Some("write the number or boolean without quotes")
    } else if message.starts_with("invalid type") && message.ends_with("expected a string") {
        Some("quote the value: codes like the 96333 code keep their leading zeros as text")
    } else {
        None
    };
    let problem = Problem::new(error.span(), message);
    match hint {
        Some(h) => problem.hint(h),
        None => problem,
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub site: Site,
    pub gateway: GatewaySettings,
    /// The site broker that equipment publishes to; required when MQTT mappings exist.
    pub mqtt: Option<Broker>,
    pub equipment: Vec<Equipment>,
    pub mqtt_mappings: Vec<MqttMapping>,
    /// Modbus devices bound to their profiles (`[modbus]`).
    pub modbus_devices: Vec<crate::ingest::modbus::ModbusDevice>,
    pub thresholds: Vec<ThresholdRule>,
    pub influx: Vec<InfluxUplink>,
    pub central: Option<CentralUplink>,
}

impl Config {
    pub fn equipment(&self, id: &str) -> Option<&Equipment> {
        self.equipment.iter().find(|e| e.id == id)
    }

    /// A one-line summary for `seguard check`.
    pub fn summary(&self) -> String {
        format!(
            "site {} gateway {}: {} equipment, {} mqtt mappings, {} threshold rules, {} influx uplinks, central uplink {}",
            self.site.id,
            self.gateway.id,
            self.equipment.len(),
            self.mqtt_mappings.len(),
            self.thresholds.len(),
            self.influx.len(),
            if self.central.is_some() { "on" } else { "off" },
        )
    }
}

#[derive(Debug, Clone)]
pub struct Site {
    pub id: String,
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub id: String,
    pub http_listen: SocketAddr,
    pub shutdown_flush: Duration,
}

#[derive(Debug, Clone)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    /// Fixed so that the broker keeps our session (and its in-flight messages) across reconnects.
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive: Duration,
    /// Larger payloads are rejected and counted as `oversized`.
    pub max_payload_bytes: usize,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

/// How the time of a reading is written in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    UnixS,
    UnixMs,
    UnixUs,
    UnixNs,
    Rfc3339,
}

/// The type a mapped JSON field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    Number,
    Bool,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicSegment {
    Literal(String),
    /// `{equipment}`: this segment names the equipment.
    Equipment,
    /// `+`: any single segment.
    Any,
}

#[derive(Debug, Clone)]
pub struct MqttMapping {
    /// The template as configured, with `{site}` already filled in.
    pub topic: String,
    pub segments: Vec<TopicSegment>,
    /// Fixed equipment when the topic has no `{equipment}` segment.
    pub equipment: Option<String>,
    pub time: Option<(String, TimeFormat)>,
    pub fields: Vec<FieldMapping>,
}

impl MqttMapping {
    /// The MQTT subscription filter: placeholders become `+`.
    pub fn filter(&self) -> String {
        let parts: Vec<&str> = self
            .segments
            .iter()
            .map(|s| match s {
                TopicSegment::Literal(l) => l.as_str(),
                TopicSegment::Equipment | TopicSegment::Any => "+",
            })
            .collect();
        parts.join("/")
    }
}

#[derive(Debug, Clone)]
pub struct FieldMapping {
    /// RFC 6901 JSON pointer into the payload.
    pub pointer: String,
    pub metric: String,
    pub value_type: ValueType,
    pub unit: Option<String>,
    pub scale: f64,
    pub offset: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InfluxApi {
    V1,
    V2,
}

#[derive(Debug, Clone)]
pub enum InfluxEndpoint {
    /// InfluxDB 1.x `/write`.
    V1 {
        url: url::Url,
        database: String,
        retention_policy: Option<String>,
        username: Option<String>,
        password: Option<String>,
    },
    /// InfluxDB 2.x/3.x (or compatible) `/api/v2/write`, through the influxdb2 crate.
    V2 {
        url: url::Url,
        org: String,
        bucket: String,
        token: String,
    },
}

#[derive(Debug, Clone)]
pub struct InfluxUplink {
    pub name: String,
    pub endpoint: InfluxEndpoint,
    pub batch_max_points: usize,
    pub flush_interval: Duration,
    /// Compress v1 bodies; the influxdb2 crate's line-protocol call cannot compress.
    pub gzip: bool,
    pub queue_max_points: usize,
    pub timeout: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

#[derive(Debug, Clone)]
pub struct CentralUplink {
    pub broker: Broker,
    pub topic_prefix: String,
    pub queue_max_events: usize,
    /// An incident not confirmed by a PUBACK within this time is published again.
    pub confirm_timeout: Duration,
}

impl CentralUplink {
    pub fn incidents_topic(&self, gateway: &str) -> String {
        format!("{}/{gateway}/incidents", self.topic_prefix)
    }

    pub fn status_topic(&self, gateway: &str) -> String {
        format!("{}/{gateway}/status", self.topic_prefix)
    }
}
