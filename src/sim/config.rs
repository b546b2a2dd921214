//! The fleet file of `seguard sim`: which equipment to simulate, where to publish, and the
//! scenarios to play.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::elevator::Situation;
use crate::config::{toml_message, Located, Problem};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// The same seed gives the same rides, calls and fills.
    #[serde(default)]
    pub seed: u64,
    pub site: String,
    pub mqtt: SimBroker,
    /// Topic of elevator status; `{site}` and `{equipment}` are filled in.
    #[serde(default = "default_topic")]
    pub elevator_topic: String,
    #[serde(default = "default_interval_ms")]
    pub publish_interval_ms: u64,
    /// Where scenarios can be injected: POST /api/v1/scenarios.
    pub http_listen: Option<String>,
    #[serde(default)]
    pub elevators: Vec<ElevatorGroup>,
    #[serde(default)]
    pub scenario: Vec<Scenario>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimBroker {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_client_id")]
    pub client_id: String,
}

/// `count` elevators named `{id_prefix}{n}`, n from 1.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElevatorGroup {
    pub id_prefix: String,
    pub count: u32,
    #[serde(default = "default_floors")]
    pub floors: i32,
    #[serde(default)]
    pub basements: i32,
    #[serde(default = "default_speed")]
    pub rated_speed_m_s: f64,
    /// Chance of a call per second while parked.
    #[serde(default = "default_call_rate")]
    pub call_rate_per_s: f64,
}

/// A situation injected at `at_s` seconds after start, lasting `duration_s` (forever if absent).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub at_s: f64,
    pub equipment: String,
    pub situation: Situation,
    pub duration_s: Option<f64>,
}

impl Scenario {
    pub fn at(&self) -> Duration {
        Duration::from_secs_f64(self.at_s.max(0.0))
    }
}

fn default_topic() -> String {
    "site/{site}/{equipment}/telemetry".to_owned()
}
fn default_interval_ms() -> u64 {
    1000
}
fn default_host() -> String {
    "127.0.0.1".to_owned()
}
fn default_port() -> u16 {
    1883
}
fn default_client_id() -> String {
    "seguard-sim".to_owned()
}
fn default_floors() -> i32 {
    20
}
fn default_speed() -> f64 {
    1.75
}
fn default_call_rate() -> f64 {
    0.1
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("cannot read fleet file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Located),
}

impl FleetConfig {
    pub fn load(path: &Path) -> Result<FleetConfig, FleetError> {
        let text = std::fs::read_to_string(path).map_err(|source| FleetError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<FleetConfig, FleetError> {
        let locate = |span, message: String, hint: Option<&str>| {
            let problem = Problem::new(span, message);
            let problem = match hint {
                Some(h) => problem.hint(h),
                None => problem,
            };
            FleetError::Invalid(Located::new(path, text, problem))
        };
        let fleet: FleetConfig =
            toml::from_str(text).map_err(|e| locate(e.span(), toml_message(&e), None))?;
        let ids: Vec<String> = fleet.elevator_ids();
        if let Some(s) = fleet.scenario.iter().find(|s| !ids.contains(&s.equipment)) {
            return Err(locate(
                None,
                format!(
                    "scenario names `{}`, which is not in the fleet",
                    s.equipment
                ),
                Some(
                    "scenarios name simulated equipment, such as the first elevator `{id_prefix}1`",
                ),
            ));
        }
        Ok(fleet)
    }

    pub fn elevator_ids(&self) -> Vec<String> {
        self.elevators
            .iter()
            .flat_map(|g| (1..=g.count).map(move |n| format!("{}{n}", g.id_prefix)))
            .collect()
    }
}
