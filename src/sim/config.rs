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
    /// District power cuts: many elevators lose mains power within seconds.
    #[serde(default)]
    pub power_cut: Vec<PowerCut>,
}

/// Every elevator whose id starts with `elevators` loses mains power at a moment drawn evenly
/// from `at_s` to `at_s + within_s`; a share `with_passengers` of them has people inside.
/// Power returns `duration_s` after each cut (never if absent).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerCut {
    pub elevators: String,
    #[serde(default)]
    pub at_s: f64,
    #[serde(default = "default_within_s")]
    pub within_s: f64,
    #[serde(default = "default_with_passengers")]
    pub with_passengers: f64,
    pub duration_s: Option<f64>,
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
fn default_within_s() -> f64 {
    10.0
}
fn default_with_passengers() -> f64 {
    0.1
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
        if let Some(cut) = fleet.power_cut.iter().find(|c| {
            !(0.0..=1.0).contains(&c.with_passengers)
                || c.within_s < 0.0
                || !ids.iter().any(|id| id.starts_with(&c.elevators))
        }) {
            return Err(locate(
                None,
                format!(
                    "power_cut of `{}`: it must name the start of simulated elevator ids, with \
                     with_passengers from 0 to 1 and within_s not negative",
                    cut.elevators
                ),
                Some("elevators = \"lift-a\" cuts lift-a1, lift-a2..."),
            ));
        }
        Ok(fleet)
    }

    /// The scenarios to play, in time order: the listed ones and one per elevator of each power
    /// cut, drawn from the fleet's seed (the same seed cuts the same cars at the same moments).
    pub fn scenarios(&self) -> Vec<Scenario> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ 0x0070_6f77_6572);
        let mut out = self.scenario.clone();
        let ids = self.elevator_ids();
        for cut in &self.power_cut {
            for id in ids.iter().filter(|id| id.starts_with(&cut.elevators)) {
                let situation = if rng.random_bool(cut.with_passengers) {
                    Situation::PowerCutWithPassengers
                } else {
                    Situation::PowerCut
                };
                out.push(Scenario {
                    at_s: cut.at_s + rng.random_range(0.0..=cut.within_s),
                    equipment: id.clone(),
                    situation,
                    duration_s: cut.duration_s,
                });
            }
        }
        out.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        out
    }

    pub fn elevator_ids(&self) -> Vec<String> {
        self.elevators
            .iter()
            .flat_map(|g| (1..=g.count).map(move |n| format!("{}{n}", g.id_prefix)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISTRICT: &str = r#"
seed = 7
site = "district-7"
[mqtt]
[[elevators]]
id_prefix = "d7-"
count = 2000
[[elevators]]
id_prefix = "far-"
count = 50
[[power_cut]]
elevators = "d7-"
at_s = 5
within_s = 10
with_passengers = 0.15
duration_s = 600
"#;

    #[test]
    fn a_district_power_cut_cuts_every_lift_of_the_district_within_its_window() {
        let fleet = FleetConfig::parse(DISTRICT, Path::new("fleet.toml")).unwrap();
        let plays = fleet.scenarios();
        assert_eq!(plays.len(), 2000);
        assert!(plays.iter().all(|s| s.equipment.starts_with("d7-")
            && (5.0..=15.0).contains(&s.at_s)
            && s.duration_s == Some(600.0)));
        assert!(plays.windows(2).all(|w| w[0].at_s <= w[1].at_s));
        let occupied = plays
            .iter()
            .filter(|s| s.situation == Situation::PowerCutWithPassengers)
            .count();
        assert!(
            (200..400).contains(&occupied),
            "{occupied} of 2000 with passengers"
        );
        let mut lifts: Vec<&str> = plays.iter().map(|s| s.equipment.as_str()).collect();
        lifts.sort();
        lifts.dedup();
        assert_eq!(lifts.len(), 2000, "each lift is cut once");
        // Deterministic under the seed.
        assert_eq!(plays, fleet.scenarios());
    }

    #[test]
    fn a_power_cut_that_names_no_lift_is_refused() {
        let text = DISTRICT.replace("elevators = \"d7-\"", "elevators = \"d8-\"");
        let e = FleetConfig::parse(&text, Path::new("fleet.toml")).unwrap_err();
        assert!(e.to_string().contains("power_cut of `d8-`"), "{e}");
    }
}
