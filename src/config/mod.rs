//! Gateway configuration: parse the TOML (`raw.rs`), then validate it into the typed structs
//! below (`validate.rs`), reporting every problem at once with file, line, column and a hint.

mod elevator_inputs;
mod equipment;
mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use secrecy::SecretString;

pub use crate::diag::{
    is_valid_id, is_valid_metric_name, line_column, toml_message, Located, Problem,
};

pub use crate::broker::Broker;
pub use crate::ingest::mqtt::config::{FieldMapping, MqttMapping, TimeFormat, TopicSegment};
use crate::model::Equipment;
pub use crate::model::ValueType;
pub use crate::rules::config::{
    Cylinder, ElevatorMetrics, ElevatorRule, ExprRule, FaultNumbering, FillMetrics, FillRule,
    Level, LevelKind, LifecycleSettings, RateRule, RuleSet, StaleRule, ThresholdRule, VesselRule,
    VesselTarget,
};
pub use crate::tls::same_secret;
pub use crate::uplink::central::config::CentralUplink;
pub use crate::uplink::influx::config::{InfluxApi, InfluxEndpoint, InfluxUplink};

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
