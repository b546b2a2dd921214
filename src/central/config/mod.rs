//! Central service configuration: the thin composer. It parses the file into [`RawConfig`]
//! (every table `deny_unknown_fields`), hands each table to the file that owns it, checks the
//! references between tables, and reports every problem at once with file, line and column.
//! The commented example is `firmware-configs/central-example.toml`.
//!
//! One file per table, each with its raw serde type, its typed settings and their validation
//! (an `impl Check` block, as the gateway's modules have): `[central]` in `service.rs`,
//! `[store]` `store.rs`, `[mqtt]` `mqtt.rs`, `[dispatch]` `dispatch.rs`, `[flood]` `flood.rs`,
//! `[smtp]` `smtp.rs`, `[map]` `map.rs`, `[intake]` `intake.rs`, `[[gateway]]` `gateways.rs`,
//! `[[rescue_unit]]` `rescue_units.rs`, `[[token]]` `tokens.rs`. The regulator's tables live
//! beside the code they configure: `[risk]` in `central/risk.rs`, `[scorecard]` in
//! `central/scorecard.rs`, `[exchange]` in `central/exchange.rs`.

mod dispatch;
mod flood;
mod gateways;
mod intake;
mod map;
mod mqtt;
mod rescue_units;
mod service;
mod smtp;
mod store;
mod tokens;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{toml_message, ConfigError, Located, Problem, SecretString};
use crate::diag::Check;
use crate::http_limits::HttpLimits;

pub use dispatch::DispatchSettings;
pub use flood::FloodSettings;
pub use gateways::GatewayEntry;
pub use intake::IntakeLimits;
pub use map::{MapSettings, TileCrs};
pub use mqtt::CentralMqtt;
pub use rescue_units::RescueUnit;
pub use smtp::Smtp;
pub use tokens::{Role, TokenEntry};

#[derive(Debug, Clone)]
pub struct CentralConfig {
    /// Unique per instance: the MQTT client id and the owner name of claimed rows derive from it.
    pub instance: String,
    pub http_listen: SocketAddr,
    /// Serve HTTPS with this certificate instead of plain HTTP.
    pub https: Option<crate::tls::Https>,
    /// Body limit, timeout and per-token rate limit of the HTTP API.
    pub http_limits: HttpLimits,
    /// Base of the links sent to rescue teams.
    pub public_url: String,
    /// Larger HTTP intake bodies and MQTT payloads are rejected as `oversized`.
    pub max_body_bytes: usize,
    /// `sqlite://path` (the default, `sqlite://seguard-central.db`) or `postgres://...`, which
    /// may hold a password.
    pub store_url: SecretString,
    pub mqtt: Option<CentralMqtt>,
    pub dispatch: DispatchSettings,
    /// When many alarms in one area become one situation (`[flood]`, `flood.rs`).
    pub flood: FloodSettings,
    pub smtp: Option<Smtp>,
    pub map: MapSettings,
    /// What intake accepts beyond the schema: sizes, counts, time window.
    pub intake: IntakeLimits,
    pub gateways: Vec<GatewayEntry>,
    pub rescue_units: Vec<RescueUnit>,
    pub tokens: Vec<TokenEntry>,
    /// The IANA zone the pages show times in (`[central] time_zone`, default `Asia/Shanghai`).
    pub time_zone: String,
    /// The risk ranking's weights (`[risk]`, `central/risk.rs`).
    pub risk: super::risk::RiskSettings,
    /// The maintenance-unit scorecards' grades (`[scorecard]`, `central/scorecard.rs`).
    pub scorecard: super::scorecard::ScorecardSettings,
    /// The upward exchange to a higher-level platform (`[exchange]`, `central/exchange.rs`).
    pub exchange: Option<super::exchange::ExchangeSettings>,
}

impl CentralConfig {
    pub fn rescue_unit(&self, name: &str) -> Option<&RescueUnit> {
        self.rescue_units.iter().find(|u| u.name == name)
    }
}

/// The file as written: one field per table, each the raw type of the file that owns it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    central: service::RawService,
    #[serde(default)]
    store: store::RawStore,
    mqtt: Option<mqtt::RawMqtt>,
    #[serde(default)]
    dispatch: dispatch::RawDispatch,
    #[serde(default)]
    flood: flood::RawFlood,
    smtp: Option<smtp::RawSmtp>,
    #[serde(default)]
    map: map::RawMap,
    #[serde(default)]
    intake: intake::RawIntake,
    #[serde(default)]
    gateway: Vec<gateways::RawGatewayEntry>,
    #[serde(default)]
    rescue_unit: Vec<rescue_units::RawRescueUnit>,
    #[serde(default)]
    token: Vec<Spanned<tokens::RawToken>>,
    #[serde(default)]
    risk: super::risk::RawRisk,
    #[serde(default)]
    scorecard: super::scorecard::RawScorecard,
    exchange: Option<super::exchange::RawExchange>,
}

/// Reads and validates a central config file.
pub fn load(path: &Path) -> Result<CentralConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates config text; `path` names the file in messages and anchors relative
/// paths.
pub fn parse(text: &str, path: &Path) -> Result<CentralConfig, ConfigError> {
    let locate = |problems: Vec<Problem>| ConfigError::Invalid {
        problems: problems
            .into_iter()
            .map(|p| Located::new(path, text, p))
            .collect(),
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let message = toml_message(&e);
        locate(vec![Problem::new(e.span(), message)
            .hint("compare with firmware-configs/central-example.toml")])
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    validate(raw, base).map_err(|mut problems| {
        problems.sort_by_key(|p| p.span.as_ref().map_or(0, |s| s.start));
        locate(problems)
    })
}

fn validate(raw: RawConfig, base: &Path) -> Result<CentralConfig, Vec<Problem>> {
    let mut check = Check::new(base);
    check_references(&raw, &mut check);
    let service = check.central_service(raw.central);
    let store_url = check.store_url(raw.store);
    let mqtt = raw
        .mqtt
        .map(|m| check.central_mqtt(m, &service.instance, service.max_body_bytes));
    let dispatch = check.dispatch_settings(raw.dispatch);
    let flood = check.flood_settings(raw.flood);
    let smtp = raw.smtp.map(|s| check.smtp(s));
    let map = check.map_settings(raw.map);
    let gateways = check.gateway_entries(raw.gateway);
    let intake = raw.intake.limits();
    let rescue_units = raw
        .rescue_unit
        .into_iter()
        .map(|u| check.rescue_unit(u))
        .collect();
    let tokens = raw
        .token
        .into_iter()
        .map(|t| check.central_token(t))
        .collect();
    let risk = raw.risk.validate(&mut check.problems);
    let scorecard = raw.scorecard.validate(&mut check.problems);
    let exchange = raw.exchange.map(|e| e.validate(&mut check.problems));
    if !check.problems.is_empty() {
        return Err(check.problems);
    }
    Ok(CentralConfig {
        instance: service.instance,
        http_listen: service.http_listen,
        https: service.https,
        http_limits: service.http_limits,
        public_url: service.public_url,
        max_body_bytes: service.max_body_bytes,
        store_url,
        mqtt,
        dispatch,
        flood,
        smtp,
        map,
        intake,
        gateways,
        rescue_units,
        tokens,
        time_zone: service.time_zone,
        risk,
        scorecard,
        exchange,
    })
}

/// The references between tables: every unit `[dispatch]` escalates to, and every unit's
/// backup, is a `[[rescue_unit]]`.
fn check_references(raw: &RawConfig, check: &mut Check) {
    let unit_names: HashSet<&String> = raw.rescue_unit.iter().map(|u| u.name.get_ref()).collect();
    let d = &raw.dispatch;
    let named = [&d.backup_unit, &d.fire_service]
        .into_iter()
        .chain(raw.rescue_unit.iter().map(|u| &u.backup))
        .flatten();
    for unit in named {
        if !unit_names.contains(unit.get_ref()) {
            check.push(
                Problem::new(
                    unit.span(),
                    format!("no [[rescue_unit]] named `{}`", unit.get_ref()),
                )
                .hint("add a [[rescue_unit]] with its phone and webhook, e-mail or MQTT topic"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("c.toml")) {
            Ok(_) => vec![],
            Err(e) => e
                .problems()
                .iter()
                .map(|p| format!("{}:{}: {}", p.line, p.column, p.message))
                .collect(),
        }
    }

    #[test]
    fn example_config_is_valid() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/firmware-configs/central-example.toml"
        ));
        let config = load(path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.dispatch.respond_within, Duration::from_secs(180));
        assert_eq!(config.dispatch.arrive_within, Duration::from_secs(1800));
    }

    #[test]
    fn each_mistake_is_placed() {
        let cases = [
            ("[central]\ninstance = \"a b\"\n", vec!["2:12: instance `a b` is not an id"]),
            (
                "[central]\ninstance = \"a\"\n[[gateway]]\nid = \"gw1\"\ntoken_sha256 = \"abc\"\n",
                vec!["5:16: token_sha256 must be 64 hex digits"],
            ),
            (
                "[central]\ninstance = \"a\"\n[dispatch]\nbackup_unit = \"Nobody\"\n",
                vec!["4:15: no [[rescue_unit]] named `Nobody`"],
            ),
            ("[central]\ninstance = \"a\"\n[store]\nurl = \"mysql://x\"\n", vec!["4:7: store url `mysql://x` is neither SQLite nor PostgreSQL"]),
            (
                "[central]\ninstance = \"a\"\n[[gateway]]\nid = \"gw1\"\ntoken_sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nsigning_key = \"short\"\n",
                vec!["6:15: signing_key of gateway `gw1` is shorter than 32 bytes"],
            ),
            (
                "[central]\ninstance = \"a\"\n[store]\nurl = \"mysql://u:pw@x/db\"\n",
                vec!["4:7: store url `mysql://u:REDACTED@x/db` is neither SQLite nor PostgreSQL"],
            ),
            ("[central]\ninstance = \"a\"\nport = 1\n", vec!["3:1: unknown field `port`, expected one of `instance`, `instance_env`, `http_listen`, `public_url`, `max_body_bytes`, `https`, `http_limits`, `time_zone`"]),
            (
                "[central]\ninstance = \"a\"\ntime_zone = \"../etc/passwd\"\n",
                vec!["3:13: time_zone `../etc/passwd` is not an IANA time zone"],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(problems(text), expected, "for:\n{text}");
        }
    }

    /// `[mqtt]` is a broker's table plus central's two keys: unknown keys are placed at the key,
    /// the broker's checks hold, and central's own keys are read wherever they stand.
    #[test]
    fn mqtt_is_a_broker_with_central_keys() {
        let head = "[central]\ninstance = \"a\"\n[mqtt]\n";
        assert_eq!(
            problems(&format!("{head}prefix = \"p\"\nhots = \"x\"\n")),
            ["5:1: unknown field `hots`, expected one of `host`, `port`, `client_id`, `username`, `password`, `password_env`, `password_file`, `tls`, `keep_alive_s`, `max_payload_bytes`, `reconnect_min_ms`, `reconnect_max_ms`"]
        );
        assert_eq!(
            problems(&format!("{head}port = \"x\"\n")),
            ["4:8: invalid type: string \"x\", expected u16"]
        );
        assert_eq!(
            problems(&format!("{head}client_id = \"\"\nmax_payload_bytes = 10\n")),
            [
                "4:13: client_id must have 1 to 64 characters",
                "5:21: central takes max_payload_bytes from [central]"
            ]
        );
        let config = parse(
            &format!("{head}share_group = \"g\"\nhost = \"broker\"\nprefix = \"p/v1\"\nkeep_alive_s = 7\nreconnect_max_ms = 2000\n"),
            Path::new("c.toml"),
        )
        .unwrap();
        let m = config.mqtt.unwrap();
        assert_eq!((m.prefix.as_str(), m.share_group.as_str()), ("p/v1", "g"));
        assert_eq!((m.broker.host.as_str(), m.broker.port), ("broker", 1883));
        assert_eq!(m.broker.client_id, "seguard-central-a");
        assert_eq!(m.broker.keep_alive, Duration::from_secs(7));
        assert_eq!(m.broker.max_payload_bytes, config.max_body_bytes);
        assert_eq!(m.broker.reconnect_min, Duration::from_millis(100));
        assert_eq!(m.broker.reconnect_max, Duration::from_secs(2));
    }

    /// One mistake in every table at once: each message and its place, in file order, so that
    /// moving a table's validation into its own file cannot change what `seguard check` says.
    #[test]
    fn every_table_places_its_mistakes() {
        let text = r#"[central]
instance = "a"
http_listen = "nowhere"
public_url = "not a url"
[store]
url_env = "SEGUARD_TEST_UNSET_STORE_URL"
[mqtt]
password = "pw"
password_env = "X"
prefix = "seguard/#"
share_group = "a/b"
[dispatch]
trapped_rule_contains = ""
fire_service = "Nobody"
[flood]
count = 0
radius_km = -1
[smtp]
host = "mail"
from = "not a mailbox"
[map]
preset = "tianditu"
tile_url = "x"
center = [91.0, 0.0]
[[gateway]]
id = "gw1"
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
[[gateway]]
id = "gw1"
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
signing_key_env = "SEGUARD_TEST_UNSET_KEY"
[[rescue_unit]]
name = "A"
phone = "1"
webhook = "no url"
backup = "B"
[[token]]
role = "rescue_team"
name = "t"
sha256 = "xyz"
[[token]]
role = "gateway"
name = "g"
unit = "u"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
"#;
        let found = match parse(text, Path::new("c.toml")) {
            Ok(_) => panic!("the file is full of mistakes"),
            Err(e) => e.to_string(),
        };
        let expected = [
            r#"c.toml:3:15: http_listen `nowhere` is not an address"#,
            r#"  hint: write host:port, for example "127.0.0.1:9280""#,
            r#"c.toml:4:14: public_url `not a url` is not a URL"#,
            r#"c.toml:6:11: environment variable `SEGUARD_TEST_UNSET_STORE_URL` is not set"#,
            r#"  hint: export it before starting seguard, or remove the *_env key"#,
            r#"c.toml:9:16: give password only once: inline, as `password_env` or as `password_file`"#,
            r#"  hint: keep `password_env` or `password_file` and remove the others"#,
            r#"c.toml:10:10: prefix must be a plain topic without wildcards or a trailing `/`"#,
            r#"c.toml:11:15: share_group must be one topic level"#,
            r#"c.toml:13:25: trapped_rule_contains must not be empty"#,
            r#"c.toml:14:16: no [[rescue_unit]] named `Nobody`"#,
            r#"  hint: add a [[rescue_unit]] with its phone and webhook, e-mail or MQTT topic"#,
            r#"c.toml:16:9: flood count must be at least 1"#,
            r#"c.toml:17:13: radius_km must be above 0"#,
            r#"c.toml:20:8: from `not a mailbox` is not a mailbox"#,
            r#"  hint: write "seguard central <central@example.org>""#,
            r#"c.toml:22:10: a preset sets tile_url and tile_crs itself: remove them, or the preset"#,
            r#"  hint: preset = "tianditu" with tile_key = "…", or preset = "amap""#,
            r#"c.toml:24:10: center must be [lat, lon] in degrees"#,
            r#"c.toml:29:6: gateway `gw1` is listed twice"#,
            r#"c.toml:31:19: environment variable `SEGUARD_TEST_UNSET_KEY` is not set"#,
            r#"  hint: export it before starting seguard, or remove the *_env key"#,
            r#"c.toml:35:11: webhook `no url` is not a URL"#,
            r#"c.toml:36:10: no [[rescue_unit]] named `B`"#,
            r#"  hint: add a [[rescue_unit]] with its phone and webhook, e-mail or MQTT topic"#,
            r#"c.toml:37:1: a rescue_team token needs `unit`"#,
            r#"  hint: name the rescue unit or using unit the token is scoped to"#,
            r#"c.toml:40:10: sha256 must be 64 hex digits"#,
            r#"  hint: store only the hash: printf %s TOKEN | sha256sum"#,
            r#"c.toml:41:1: gateway tokens belong in [[gateway]] entries"#,
            r#"  hint: write [[gateway]] id = "gw1" token_sha256 = "...""#,
        ];
        assert_eq!(found.lines().collect::<Vec<_>>(), expected);
    }
}
