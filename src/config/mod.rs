//! Gateway configuration: parse the TOML (`raw.rs`), then validate it into the typed structs
//! below (`validate.rs`), reporting every problem at once with file, line, column and a hint.

mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use crate::diag::{
    is_valid_id, is_valid_metric_name, line_column, toml_message, Located, Problem,
};
pub(crate) use raw::RawField;
pub(crate) use validate::{check_pointer, field_mapping};

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
    let (mut config, warnings) = validate::validate(raw, config_dir).map_err(|mut problems| {
        problems.sort_by_key(|p| p.span.as_ref().map_or(0, |s| s.start));
        locate(problems)
    })?;
    config.warnings = warnings
        .into_iter()
        .map(|p| Located::new(path, text, p))
        .collect();
    Ok(config)
}

fn toml_problem(error: &toml::de::Error) -> Problem {
    let message = toml_message(error);
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

/// Compared by value (a reload applies only what changed): secrets by their exposed text, TLS
/// by the digest of the files read at load.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub site: Site,
    pub gateway: GatewaySettings,
    /// The site broker that equipment publishes to; required when MQTT mappings exist.
    pub mqtt: Option<Broker>,
    pub equipment: Vec<Equipment>,
    pub mqtt_mappings: Vec<MqttMapping>,
    /// The durable outbox (`[outbox]`, by default in the state directory); `None` only when the
    /// config asks for in-memory lanes (`kind = "memory"`).
    pub outbox: Option<crate::outbox::OutboxConfig>,
    /// Modbus devices bound to their profiles (`[modbus]`).
    pub modbus_devices: Vec<std::sync::Arc<crate::ingest::modbus::ModbusDevice>>,
    pub thresholds: Vec<ThresholdRule>,
    /// The domain rules (elevators, vessels, fills), the other rule kinds and the alarm lifecycle.
    pub rules: RuleSet,
    pub influx: Vec<InfluxUplink>,
    /// Local line-protocol files (`[[uplink.linefile]]`), with their queue sizes.
    pub line_files: Vec<(crate::uplink::linefile::LineFileUplink, usize)>,
    pub central: Option<CentralUplink>,
    /// What `seguard check` warns about without refusing the file (for example a mapping
    /// that cannot tell the trapped rule the service mode).
    pub warnings: Vec<Located>,
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
        ) + &match &self.outbox {
            Some(o) => format!(", outbox on disk in {}", o.dir.display()),
            None => ", outbox in memory (a crash loses what is queued)".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub id: String,
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySettings {
    pub id: String,
    pub http_listen: SocketAddr,
    pub shutdown_flush: Duration,
    pub http_limits: crate::http_limits::HttpLimits,
    /// `[[gateway.api_token]]`: when there are any, the API's POST routes (alarm actions,
    /// reload) need one of them as a bearer token.
    pub api_tokens: Vec<ApiToken>,
}

/// A token of the gateway's API, kept as its SHA-256 only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Who holds it; logged with every action taken with it.
    pub name: String,
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    /// Fixed so that the broker keeps our session (and its in-flight messages) across reconnects.
    pub client_id: String,
    pub username: Option<String>,
    /// Redacted in Debug output, like every secret of the config.
    pub password: Option<SecretString>,
    /// TLS towards the broker; plain TCP when absent.
    pub tls: Option<crate::tls::MqttTls>,
    pub keep_alive: Duration,
    /// Larger payloads are rejected and counted as `oversized`.
    pub max_payload_bytes: usize,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

/// Two secrets are the same when their texts are.
pub fn same_secret(a: &Option<SecretString>, b: &Option<SecretString>) -> bool {
    use secrecy::ExposeSecret;
    match (a, b) {
        (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
        (None, None) => true,
        _ => false,
    }
}

impl PartialEq for Broker {
    /// By value, the password included (its `Debug` text is redacted).
    fn eq(&self, other: &Self) -> bool {
        // Destructured whole, so that a new field cannot be left out of the comparison.
        let Broker {
            host,
            port,
            client_id,
            username,
            password,
            tls,
            keep_alive,
            max_payload_bytes,
            reconnect_min,
            reconnect_max,
        } = self;
        *host == other.host
            && *port == other.port
            && *client_id == other.client_id
            && *username == other.username
            && same_secret(password, &other.password)
            && *tls == other.tls
            && *keep_alive == other.keep_alive
            && *max_payload_bytes == other.max_payload_bytes
            && *reconnect_min == other.reconnect_min
            && *reconnect_max == other.reconnect_max
    }
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

#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug, Clone, PartialEq)]
pub struct FieldMapping {
    /// RFC 6901 JSON pointer into the payload.
    pub pointer: String,
    pub metric: String,
    pub value_type: ValueType,
    pub unit: Option<String>,
    pub scale: f64,
    pub offset: f64,
    /// Code → value table (`values`); without one the payload value is used as it is.
    pub codes: Option<crate::ingest::codes::CodeTable>,
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
    pub expr: crate::rules::Expr,
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
        password: Option<SecretString>,
    },
    /// InfluxDB 2.x/3.x (or compatible) `/api/v2/write`, through the influxdb2 crate.
    V2 {
        url: url::Url,
        org: String,
        bucket: String,
        token: SecretString,
    },
}

impl PartialEq for InfluxEndpoint {
    /// By value, the password or token included (their `Debug` text is redacted).
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret;
        match (self, other) {
            (
                InfluxEndpoint::V1 {
                    url,
                    database,
                    retention_policy,
                    username,
                    password,
                },
                InfluxEndpoint::V1 {
                    url: url2,
                    database: database2,
                    retention_policy: retention_policy2,
                    username: username2,
                    password: password2,
                },
            ) => {
                url == url2
                    && database == database2
                    && retention_policy == retention_policy2
                    && username == username2
                    && same_secret(password, password2)
            }
            (
                InfluxEndpoint::V2 {
                    url,
                    org,
                    bucket,
                    token,
                },
                InfluxEndpoint::V2 {
                    url: url2,
                    org: org2,
                    bucket: bucket2,
                    token: token2,
                },
            ) => {
                url == url2
                    && org == org2
                    && bucket == bucket2
                    && token.expose_secret() == token2.expose_secret()
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InfluxUplink {
    pub name: String,
    pub endpoint: InfluxEndpoint,
    /// Lines (InfluxDB points: one equipment at one time) a write carries at most.
    pub batch_max_lines: usize,
    pub flush_interval: Duration,
    /// Compress v1 bodies; the influxdb2 crate's line-protocol call cannot compress.
    pub gzip: bool,
    /// Points an in-memory lane holds (`[outbox] kind = "memory"`); beyond it intake waits.
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
    /// The key every message to central is signed with (`src/signing.rs`); central refuses
    /// unsigned messages.
    pub signing_key: Option<SecretString>,
}

impl PartialEq for CentralUplink {
    /// By value, the signing key included (its `Debug` text is redacted).
    fn eq(&self, other: &Self) -> bool {
        // Destructured whole, so that a new field cannot be left out of the comparison.
        let CentralUplink {
            broker,
            topic_prefix,
            queue_max_events,
            confirm_timeout,
            signing_key,
        } = self;
        *broker == other.broker
            && *topic_prefix == other.topic_prefix
            && *queue_max_events == other.queue_max_events
            && *confirm_timeout == other.confirm_timeout
            && same_secret(signing_key, &other.signing_key)
    }
}

impl CentralUplink {
    pub fn incidents_topic(&self, gateway: &str) -> String {
        format!("{}/{gateway}/incidents", self.topic_prefix)
    }

    pub fn fills_topic(&self, gateway: &str) -> String {
        format!("{}/{gateway}/fills", self.topic_prefix)
    }

    pub fn registry_topic(&self, gateway: &str) -> String {
        format!("{}/{gateway}/registry", self.topic_prefix)
    }

    pub fn status_topic(&self, gateway: &str) -> String {
        format!("{}/{gateway}/status", self.topic_prefix)
    }

    /// Where central says which of this gateway's messages it refused.
    pub fn rejections_topic(&self, gateway: &str) -> String {
        format!("{}/{gateway}/rejections", self.topic_prefix)
    }
}
