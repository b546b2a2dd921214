//! Central service configuration: the TOML as written (`Raw*` structs with
//! `deny_unknown_fields`), then one validation step into [`CentralConfig`] that reports every
//! problem at once with file, line and column. The commented example is
//! `firmware-configs/central-example.toml`. This file holds `[central]`, `[store]` and the
//! composition; each other table has its raw form, its settings and its checks in `config/`.

mod access;
mod dispatch;
mod intake;
mod map;
mod mqtt;
mod smtp;

pub use access::{GatewayEntry, Role, TokenEntry};
pub use dispatch::{DispatchSettings, RescueUnit};
pub use intake::IntakeLimits;
pub use map::{MapSettings, TileCrs};
pub use mqtt::CentralMqtt;
pub use smtp::Smtp;

use access::{RawGatewayEntry, RawToken};
use dispatch::{RawDispatch, RawRescueUnit};
use intake::RawIntake;
use map::RawMap;
use mqtt::RawMqtt;
use smtp::RawSmtp;

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{toml_message, ConfigError, Located, Problem, SecretString};
use crate::http_limits::{HttpLimits, RawHttpLimits};
use secrecy::ExposeSecret;

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
    pub smtp: Option<Smtp>,
    pub map: MapSettings,
    /// What intake accepts beyond the schema: sizes, counts, time window.
    pub intake: IntakeLimits,
    pub gateways: Vec<GatewayEntry>,
    pub rescue_units: Vec<RescueUnit>,
    pub tokens: Vec<TokenEntry>,
    /// The IANA zone the pages show times in (`[central] time_zone`, default `Asia/Shanghai`).
    pub time_zone: String,
}

impl CentralConfig {
    pub fn rescue_unit(&self, name: &str) -> Option<&RescueUnit> {
        self.rescue_units.iter().find(|u| u.name == name)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    central: RawCentral,
    #[serde(default)]
    store: RawStore,
    mqtt: Option<RawMqtt>,
    #[serde(default)]
    dispatch: RawDispatch,
    smtp: Option<RawSmtp>,
    #[serde(default)]
    map: RawMap,
    #[serde(default)]
    intake: RawIntake,
    #[serde(default)]
    gateway: Vec<RawGatewayEntry>,
    #[serde(default)]
    rescue_unit: Vec<RawRescueUnit>,
    #[serde(default)]
    token: Vec<Spanned<RawToken>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCentral {
    instance: Spanned<String>,
    http_listen: Option<Spanned<String>>,
    public_url: Option<Spanned<String>>,
    max_body_bytes: Option<usize>,
    https: Option<crate::tls::RawHttps>,
    http_limits: Option<RawHttpLimits>,
    time_zone: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    url_file: Option<Spanned<String>>,
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
    let mut problems = Vec::new();
    let instance = raw.central.instance.get_ref().clone();
    if instance.is_empty()
        || !instance
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        problems.push(
            Problem::new(
                raw.central.instance.span(),
                format!("instance `{instance}` is not an id"),
            )
            .hint("use letters, digits, `-` and `_`; each instance needs its own"),
        );
    }
    let default_listen: SocketAddr = "127.0.0.1:9280".parse().expect("default address");
    let http_listen = match &raw.central.http_listen {
        None => default_listen,
        Some(s) => s.get_ref().parse().unwrap_or_else(|_| {
            problems.push(
                Problem::new(
                    s.span(),
                    format!("http_listen `{}` is not an address", s.get_ref()),
                )
                .hint("write host:port, for example \"127.0.0.1:9280\""),
            );
            default_listen
        }),
    };
    let https = raw.central.https.as_ref().and_then(|h| {
        crate::tls::validate_https(h, base)
            .map_err(|problem| problems.push(problem))
            .ok()
    });
    let max_body_bytes = raw.central.max_body_bytes.unwrap_or(64 * 1024);
    let http_limits = raw
        .central
        .http_limits
        .unwrap_or_default()
        .validate(max_body_bytes)
        .unwrap_or_else(|mut found| {
            problems.append(&mut found);
            HttpLimits::with_max_body(max_body_bytes)
        });
    let scheme = if raw.central.https.is_some() {
        "https"
    } else {
        "http"
    };
    let public_url = match &raw.central.public_url {
        None => format!("{scheme}://{http_listen}"),
        Some(s) => {
            if url::Url::parse(s.get_ref()).is_err() {
                problems.push(Problem::new(
                    s.span(),
                    format!("public_url `{}` is not a URL", s.get_ref()),
                ));
            }
            s.get_ref().trim_end_matches('/').to_owned()
        }
    };
    let secret = |problems: &mut Vec<Problem>, what: &str, inline, env, file| {
        crate::tls::secret(what, inline, env, file, base).unwrap_or_else(|problem| {
            problems.push(problem);
            None
        })
    };
    // A PostgreSQL URL may hold a password: it is a secret like the others.
    let inline_url = raw.store.url.as_ref().map(|s| s.get_ref().clone());
    let url_span = [&raw.store.url, &raw.store.url_env, &raw.store.url_file]
        .into_iter()
        .find_map(|key| key.as_ref().map(Spanned::span));
    let store_url = secret(
        &mut problems,
        "url",
        &inline_url,
        &raw.store.url_env,
        &raw.store.url_file,
    )
    .unwrap_or_else(|| SecretString::from("sqlite://seguard-central.db".to_owned()));
    let url = store_url.expose_secret();
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        problems.push(
            Problem::new(
                url_span,
                format!(
                    "store url `{}` is neither SQLite nor PostgreSQL",
                    without_password(url)
                ),
            )
            .hint("write sqlite://central.db or postgres://user@host:5432/db"),
        );
    }
    let mqtt_password = raw.mqtt.as_ref().and_then(|m| {
        secret(
            &mut problems,
            "password",
            &m.password,
            &m.password_env,
            &m.password_file,
        )
    });
    let smtp_password = raw.smtp.as_ref().and_then(|s| {
        secret(
            &mut problems,
            "password",
            &s.password,
            &s.password_env,
            &s.password_file,
        )
    });
    let mqtt = raw
        .mqtt
        .map(|m| mqtt::validate(m, mqtt_password, &instance, base, &mut problems));
    let units = dispatch::UnitNames::new(&raw.rescue_unit);
    let dispatch = dispatch::validate(raw.dispatch, &units, &mut problems);
    let smtp = raw
        .smtp
        .map(|s| smtp::validate(s, smtp_password, &mut problems));
    let time_zone = raw
        .central
        .time_zone
        .as_ref()
        .map_or_else(|| DEFAULT_TIME_ZONE.to_owned(), |z| z.get_ref().clone());
    if let Some(z) = &raw.central.time_zone {
        if !is_time_zone(z.get_ref(), Path::new(ZONEINFO)) {
            problems.push(
                Problem::new(
                    z.span(),
                    format!("time_zone `{}` is not an IANA time zone", z.get_ref()),
                )
                .hint("write a zone of the tz database, for example \"Asia/Shanghai\""),
            );
        }
    }
    let map = map::validate(raw.map, base, &mut problems);
    let gateways = access::validate_gateways(raw.gateway, base, &mut problems);
    let intake = intake::validate(raw.intake);
    let rescue_units = dispatch::validate_rescue_units(raw.rescue_unit, &units, &mut problems);
    let tokens = access::validate_tokens(raw.token, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(CentralConfig {
        instance,
        http_listen,
        https,
        http_limits,
        public_url,
        max_body_bytes,
        store_url,
        mqtt,
        dispatch,
        smtp,
        map,
        intake,
        gateways,
        rescue_units,
        tokens,
        time_zone,
    })
}

const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";
const ZONEINFO: &str = "/usr/share/zoneinfo";

/// Whether `zone` is shaped like an IANA zone name (`UTC`, `Asia/Shanghai`) and, where the
/// machine has a tz database under `zoneinfo`, is one of its zones. The pages format times
/// with it in the browser, which knows the same names.
fn is_time_zone(zone: &str, zoneinfo: &Path) -> bool {
    let shaped = !zone.is_empty()
        && zone.split('/').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
        });
    shaped && (!zoneinfo.is_dir() || zoneinfo.join(zone).is_file())
}

/// The URL with its password, if any, replaced: for messages.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    fn time_zones_are_names_of_the_tz_database() {
        let none = Path::new("/nonexistent-zoneinfo");
        for (zone, shaped) in [
            ("Asia/Shanghai", true),
            ("UTC", true),
            ("America/Argentina/Buenos_Aires", true),
            ("Etc/GMT+8", true),
            ("", false),
            ("Asia/", false),
            ("../etc/passwd", false),
            ("Asia/Shang hai", false),
        ] {
            assert_eq!(is_time_zone(zone, none), shaped, "{zone}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("Asia")).unwrap();
        std::fs::write(dir.path().join("Asia/Shanghai"), b"TZif").unwrap();
        assert!(is_time_zone("Asia/Shanghai", dir.path()));
        assert!(!is_time_zone("Asia/Atlantis", dir.path()));
        assert!(!is_time_zone("Asia", dir.path()), "a directory is no zone");
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
            ("[central]\ninstance = \"a\"\nport = 1\n", vec!["3:1: unknown field `port`, expected one of `instance`, `http_listen`, `public_url`, `max_body_bytes`, `https`, `http_limits`, `time_zone`"]),
            (
                "[central]\ninstance = \"a\"\ntime_zone = \"../etc/passwd\"\n",
                vec!["3:13: time_zone `../etc/passwd` is not an IANA time zone"],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(problems(text), expected, "for:\n{text}");
        }
    }
}
