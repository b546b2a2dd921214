//! Gateway configuration: parse the TOML (`raw.rs`), then validate it into the typed structs
//! below (`validate.rs`), reporting every problem at once with file, line, column and a hint.

mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use secrecy::SecretString;
use serde::Deserialize;

pub use crate::diag::{
    is_valid_id, is_valid_metric_name, line_column, toml_message, Located, Problem,
};
pub(crate) use raw::RawField;
pub(crate) use validate::{check_pointer, field_mapping};

pub use crate::broker::Broker;
use crate::model::Equipment;
pub use crate::model::ValueType;
pub use crate::rules::config::{
    Cylinder, ElevatorMetrics, ElevatorRule, ExprRule, FaultNumbering, FillMetrics, FillRule,
    Level, LevelKind, LifecycleSettings, RateRule, RuleSet, StaleRule, ThresholdRule, VesselRule,
    VesselTarget,
};
pub use crate::tls::same_secret;

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

impl<'a> From<&'a Config> for crate::rules::config::EngineSettings<'a> {
    fn from(config: &'a Config) -> Self {
        crate::rules::config::EngineSettings {
            gateway_id: &config.gateway.id,
            equipment: &config.equipment,
            thresholds: &config.thresholds,
            rules: &config.rules,
        }
    }
}

impl<'a> From<&'a std::sync::Arc<Config>> for crate::rules::config::EngineSettings<'a> {
    fn from(config: &'a std::sync::Arc<Config>) -> Self {
        config.as_ref().into()
    }
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
