//! Central service configuration: the TOML as written (`Raw*` structs with
//! `deny_unknown_fields`), then one validation step into [`CentralConfig`] that reports every
//! problem at once with file, line and column. The commented example is
//! `firmware-configs/central-example.toml`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{toml_message, ConfigError, Located, Problem, SecretString};
use crate::http_limits::{HttpLimits, RawHttpLimits};
use secrecy::ExposeSecret;

/// Who a token belongs to; decides what its holder may see and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees everything, acknowledges alarms.
    Regulator,
    /// Sees and updates only the dispatches sent to its unit.
    RescueTeam,
    /// Sees only the equipment of its using unit.
    EquipmentUnit,
    /// Posts incidents for one gateway.
    Gateway,
    /// An inspection agency: posts inspection reports and verifies the corrections of the
    /// hazards it found (`central/hazards.rs`).
    InspectionAgency,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Regulator => "regulator",
            Role::RescueTeam => "rescue_team",
            Role::EquipmentUnit => "equipment_unit",
            Role::Gateway => "gateway",
            Role::InspectionAgency => "inspection_agency",
        }
    }
}

/// Which coordinate system the basemap tiles are drawn in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum TileCrs {
    #[serde(rename = "WGS-84")]
    Wgs84,
    #[serde(rename = "GCJ-02")]
    Gcj02,
}

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

#[derive(Debug, Clone)]
pub struct CentralMqtt {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    /// Redacted in Debug output, like every secret of the config.
    pub password: Option<SecretString>,
    /// TLS towards the broker; plain TCP when absent.
    pub tls: Option<crate::tls::MqttTls>,
    pub keep_alive: Duration,
    /// Topic prefix the gateways publish under (`seguard/v1`).
    pub prefix: String,
    /// The shared-subscription group all central instances join.
    pub share_group: String,
}

#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// An alarm whose rule id contains this text is a trapped-passenger incident.
    pub trapped_rule_contains: String,
    /// Escalate when the notified unit has not responded within this time (default 3 min).
    pub respond_within: Duration,
    /// Escalate when the unit has not reached the site within this time (default 30 min).
    pub arrive_within: Duration,
    /// The unit called when the maintenance unit does not respond or arrive in time.
    pub backup_unit: Option<String>,
    /// The last level of escalation.
    pub fire_service: Option<String>,
    /// How often each instance looks for due dispatch timers and pending notifications.
    pub poll_interval: Duration,
    /// How long a claimed notification stays with the instance that claimed it.
    pub lease: Duration,
}

/// ISA-18.2's alarm flood at the regional level: more than `count` alarms raised within
/// `radius_km` of one another in `window` open a situation; it ends when fewer than `end_count`
/// joined it in the last `window`. Within a situation each rescue unit is told its new
/// dispatches in one message every `batch` (zero: one message per dispatch, as outside one).
#[derive(Debug, Clone)]
pub struct FloodSettings {
    pub count: i64,
    pub end_count: i64,
    pub window: Duration,
    pub radius_km: f64,
    pub batch: Duration,
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<SecretString>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MapSettings {
    /// Leaflet tile URL template; empty means the plain offline base.
    pub tile_url: String,
    /// Values of `{s}` in the tile URLs (Leaflet's default `abc` when empty).
    pub tile_subdomains: Vec<String>,
    /// A label layer drawn over the tiles (a preset's), or empty.
    pub label_url: String,
    pub tile_crs: TileCrs,
    pub tile_attribution: String,
    /// WGS-84 centre used before any equipment is known.
    pub center: [f64; 2],
    pub zoom: u8,
    /// A district outline (GeoJSON, WGS-84) drawn on the map.
    #[serde(skip)]
    pub district_geojson: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct GatewayEntry {
    pub id: String,
    /// SHA-256 (hex) of the gateway's intake token.
    pub token_sha256: String,
    /// The key the gateway signs its MQTT messages with (`src/signing.rs`). Without it, every
    /// MQTT message naming this gateway is refused: a broker alone proves no origin.
    pub signing_key: Option<SecretString>,
}

/// Limits of MQTT and HTTP intake (`[intake]`); each refusal is counted with its reason.
#[derive(Debug, Clone)]
pub struct IntakeLimits {
    /// A larger retained registry is refused and the previous one kept.
    pub registry_max_bytes: usize,
    /// A registry listing more equipment is refused and the previous one kept.
    pub registry_max_equipment: usize,
    /// A larger status message is refused.
    pub status_max_bytes: usize,
    /// An event time further in the past than this (a gateway's outbox may hold a long outage)
    /// is stored flagged, ordered by its receive time.
    pub event_time_past: Duration,
    /// An event time further in the future than this is stored flagged, like a past one.
    pub event_time_future: Duration,
    /// How many refused messages the store keeps for `/api/v1/intake/rejected`.
    pub rejected_keep: i64,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        IntakeLimits {
            registry_max_bytes: 1 << 20,
            registry_max_equipment: 5_000,
            status_max_bytes: 4096,
            event_time_past: Duration::from_secs(30 * 24 * 3600),
            event_time_future: Duration::from_secs(300),
            rejected_keep: 1000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RescueUnit {
    pub name: String,
    pub phone: String,
    pub webhook: Option<String>,
    pub email: Option<String>,
    pub mqtt_topic: Option<String>,
    /// Overrides `dispatch.backup_unit` for incidents of this unit.
    pub backup: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TokenEntry {
    pub role: Role,
    /// Who the token is: recorded with every acknowledgement and dispatch step.
    pub name: String,
    /// The rescue unit (rescue_team), using unit (equipment_unit) or agency
    /// (inspection_agency) the token is scoped to.
    pub unit: Option<String>,
    pub sha256: String,
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
    #[serde(default)]
    flood: RawFlood,
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
    #[serde(default)]
    risk: super::risk::RawRisk,
    #[serde(default)]
    scorecard: super::scorecard::RawScorecard,
    exchange: Option<super::exchange::RawExchange>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCentral {
    instance: Spanned<String>,
    /// An environment variable that, when set, names the instance instead (the container's
    /// `HOSTNAME`), so several instances share one config file.
    instance_env: Option<Spanned<String>>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    host: Option<String>,
    port: Option<u16>,
    client_id: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    tls: Option<crate::tls::RawMqttTls>,
    keep_alive_s: Option<u64>,
    prefix: Option<Spanned<String>>,
    share_group: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDispatch {
    trapped_rule_contains: Option<Spanned<String>>,
    respond_within_s: Option<f64>,
    arrive_within_s: Option<f64>,
    backup_unit: Option<Spanned<String>>,
    fire_service: Option<Spanned<String>>,
    poll_interval_ms: Option<u64>,
    lease_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlood {
    count: Option<Spanned<i64>>,
    end_count: Option<i64>,
    window_s: Option<f64>,
    radius_km: Option<Spanned<f64>>,
    batch_s: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: Option<u16>,
    from: Spanned<String>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    /// `tianditu` or `amap` (web/tiles.rs), instead of `tile_url`.
    preset: Option<Spanned<String>>,
    tile_key: Option<String>,
    tile_url: Option<String>,
    tile_crs: Option<TileCrs>,
    tile_attribution: Option<String>,
    center: Option<Spanned<[f64; 2]>>,
    zoom: Option<u8>,
    district_geojson: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGatewayEntry {
    id: Spanned<String>,
    token_sha256: Spanned<String>,
    signing_key: Option<Spanned<String>>,
    signing_key_env: Option<Spanned<String>>,
    signing_key_file: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntake {
    registry_max_bytes: Option<usize>,
    registry_max_equipment: Option<usize>,
    status_max_bytes: Option<usize>,
    event_time_past_s: Option<u64>,
    event_time_future_s: Option<u64>,
    rejected_keep: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRescueUnit {
    name: Spanned<String>,
    phone: String,
    webhook: Option<Spanned<String>>,
    email: Option<String>,
    mqtt_topic: Option<String>,
    backup: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    role: Role,
    name: String,
    unit: Option<String>,
    sha256: Spanned<String>,
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
    let instance = raw
        .central
        .instance_env
        .as_ref()
        .and_then(|v| std::env::var(v.get_ref()).ok())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| raw.central.instance.get_ref().clone());
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
    let mqtt = raw.mqtt.map(|m| {
        let tls = m.tls.as_ref().and_then(|t| {
            crate::tls::validate_mqtt_tls(t, base)
                .map_err(|mut found| problems.append(&mut found))
                .ok()
        });
        let prefix = m.prefix.map_or_else(
            || "seguard/v1".to_owned(),
            |p| {
                if p.get_ref().contains(['+', '#']) || p.get_ref().ends_with('/') {
                    problems.push(Problem::new(
                        p.span(),
                        "prefix must be a plain topic without wildcards or a trailing `/`",
                    ));
                }
                p.into_inner()
            },
        );
        let share_group = m.share_group.map_or_else(
            || "seguard-central".to_owned(),
            |g| {
                if g.get_ref().is_empty() || g.get_ref().contains(['/', '+', '#']) {
                    problems.push(Problem::new(
                        g.span(),
                        "share_group must be one topic level",
                    ));
                }
                g.into_inner()
            },
        );
        CentralMqtt {
            host: m.host.unwrap_or_else(|| "127.0.0.1".into()),
            port: m.port.unwrap_or(1883),
            client_id: m
                .client_id
                .unwrap_or_else(|| format!("seguard-central-{instance}")),
            username: m.username,
            password: mqtt_password,
            tls,
            keep_alive: Duration::from_secs(m.keep_alive_s.unwrap_or(30)),
            prefix,
            share_group,
        }
    });
    let unit_names: HashSet<String> = raw
        .rescue_unit
        .iter()
        .map(|u| u.name.get_ref().clone())
        .collect();
    let check_unit = |s: &Spanned<String>, problems: &mut Vec<Problem>| {
        if !unit_names.contains(s.get_ref()) {
            problems.push(
                Problem::new(
                    s.span(),
                    format!("no [[rescue_unit]] named `{}`", s.get_ref()),
                )
                .hint("add a [[rescue_unit]] with its phone and webhook, e-mail or MQTT topic"),
            );
        }
    };
    let d = raw.dispatch;
    for s in [&d.backup_unit, &d.fire_service].into_iter().flatten() {
        check_unit(s, &mut problems);
    }
    let secs = |v: Option<f64>, default: f64| {
        Duration::from_secs_f64(v.filter(|s| *s > 0.0).unwrap_or(default))
    };
    let dispatch = DispatchSettings {
        trapped_rule_contains: d.trapped_rule_contains.map_or_else(
            || "trapped".into(),
            |s| {
                if s.get_ref().is_empty() {
                    problems.push(Problem::new(
                        s.span(),
                        "trapped_rule_contains must not be empty",
                    ));
                }
                s.into_inner()
            },
        ),
        respond_within: secs(d.respond_within_s, 180.0),
        arrive_within: secs(d.arrive_within_s, 1800.0),
        backup_unit: d.backup_unit.map(Spanned::into_inner),
        fire_service: d.fire_service.map(Spanned::into_inner),
        poll_interval: Duration::from_millis(d.poll_interval_ms.unwrap_or(500).max(10)),
        lease: Duration::from_secs(d.lease_s.unwrap_or(30).max(1)),
    };
    let f = raw.flood;
    let flood = FloodSettings {
        count: f.count.map_or(10, |c| {
            if *c.get_ref() < 1 {
                problems.push(Problem::new(c.span(), "flood count must be at least 1"));
            }
            c.into_inner()
        }),
        end_count: f.end_count.unwrap_or(5).max(1),
        window: secs(f.window_s, 600.0),
        radius_km: f.radius_km.map_or(3.0, |r| {
            if !(r.get_ref().is_finite() && *r.get_ref() > 0.0) {
                problems.push(Problem::new(r.span(), "radius_km must be above 0"));
            }
            r.into_inner()
        }),
        batch: Duration::from_secs_f64(f.batch_s.filter(|s| *s >= 0.0).unwrap_or(5.0)),
    };
    let smtp = raw.smtp.map(|s| {
        if s.from
            .get_ref()
            .parse::<lettre::message::Mailbox>()
            .is_err()
        {
            problems.push(
                Problem::new(
                    s.from.span(),
                    format!("from `{}` is not a mailbox", s.from.get_ref()),
                )
                .hint("write \"seguard central <central@example.org>\""),
            );
        }
        Smtp {
            host: s.host,
            port: s.port.unwrap_or(25),
            from: s.from.into_inner(),
            username: s.username,
            password: smtp_password,
        }
    });
    let center = raw.map.center.map_or([31.2304, 121.4737], |c| {
        let [lat, lon] = *c.get_ref();
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            problems.push(Problem::new(
                c.span(),
                "center must be [lat, lon] in degrees",
            ));
        }
        [lat, lon]
    });
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
    let preset = raw.map.preset.as_ref().and_then(|p| {
        let chosen = super::web::tiles::preset(p.get_ref(), raw.map.tile_key.as_deref());
        let conflict = (raw.map.tile_url.is_some() || raw.map.tile_crs.is_some()).then(|| {
            "a preset sets tile_url and tile_crs itself: remove them, or the preset".to_owned()
        });
        match conflict.map_or(chosen, Err) {
            Ok(preset) => Some(preset),
            Err(why) => {
                problems.push(
                    Problem::new(p.span(), why)
                        .hint("preset = \"tianditu\" with tile_key = \"…\", or preset = \"amap\""),
                );
                None
            }
        }
    });
    let map = MapSettings {
        tile_url: preset.as_ref().map_or_else(
            || raw.map.tile_url.clone().unwrap_or_default(),
            |p| p.tile_url.clone(),
        ),
        tile_subdomains: preset
            .as_ref()
            .map(|p| p.subdomains.clone())
            .unwrap_or_default(),
        label_url: preset
            .as_ref()
            .map(|p| p.label_url.clone())
            .unwrap_or_default(),
        tile_crs: preset
            .as_ref()
            .map_or(raw.map.tile_crs.unwrap_or(TileCrs::Wgs84), |p| p.crs),
        tile_attribution: preset.as_ref().map_or_else(
            || raw.map.tile_attribution.clone().unwrap_or_default(),
            |p| p.attribution.clone(),
        ),
        center,
        zoom: raw.map.zoom.unwrap_or(12),
        district_geojson: raw.map.district_geojson.map(|p| base.join(p)),
    };
    let mut seen = HashSet::new();
    let gateways = raw
        .gateway
        .into_iter()
        .map(|g| {
            if !seen.insert(g.id.get_ref().clone()) {
                problems.push(Problem::new(
                    g.id.span(),
                    format!("gateway `{}` is listed twice", g.id.get_ref()),
                ));
            }
            if !crate::auth::is_sha256_hex(g.token_sha256.get_ref()) {
                problems.push(
                    Problem::new(g.token_sha256.span(), "token_sha256 must be 64 hex digits")
                        .hint("store only the hash: printf %s TOKEN | sha256sum"),
                );
            }
            let inline_key = g.signing_key.as_ref().map(|k| k.get_ref().clone());
            let key_span = [&g.signing_key, &g.signing_key_env, &g.signing_key_file]
                .into_iter()
                .find_map(|key| key.as_ref().map(Spanned::span));
            let signing_key = crate::tls::secret(
                "signing_key",
                &inline_key,
                &g.signing_key_env,
                &g.signing_key_file,
                base,
            )
            .unwrap_or_else(|problem| {
                problems.push(problem);
                None
            });
            if let Some(key) = &signing_key {
                if key.expose_secret().len() < crate::signing::MIN_KEY_BYTES {
                    problems.push(
                        Problem::new(
                            key_span,
                            format!(
                                "signing_key of gateway `{}` is shorter than {} bytes",
                                g.id.get_ref(),
                                crate::signing::MIN_KEY_BYTES
                            ),
                        )
                        .hint("make one with: openssl rand -hex 32"),
                    );
                }
            }
            GatewayEntry {
                id: g.id.into_inner(),
                token_sha256: g.token_sha256.into_inner().to_ascii_lowercase(),
                signing_key,
            }
        })
        .collect();
    let defaults = IntakeLimits::default();
    let i = raw.intake;
    let intake = IntakeLimits {
        registry_max_bytes: i.registry_max_bytes.unwrap_or(defaults.registry_max_bytes),
        registry_max_equipment: i
            .registry_max_equipment
            .unwrap_or(defaults.registry_max_equipment),
        status_max_bytes: i.status_max_bytes.unwrap_or(defaults.status_max_bytes),
        event_time_past: i
            .event_time_past_s
            .map_or(defaults.event_time_past, Duration::from_secs),
        event_time_future: i
            .event_time_future_s
            .map_or(defaults.event_time_future, Duration::from_secs),
        rejected_keep: i.rejected_keep.map_or(defaults.rejected_keep, i64::from),
    };
    let rescue_units = raw
        .rescue_unit
        .into_iter()
        .map(|u| {
            if let Some(b) = &u.backup {
                check_unit(b, &mut problems);
            }
            if let Some(w) = &u.webhook {
                if url::Url::parse(w.get_ref()).is_err() {
                    problems.push(Problem::new(
                        w.span(),
                        format!("webhook `{}` is not a URL", w.get_ref()),
                    ));
                }
            }
            RescueUnit {
                name: u.name.into_inner(),
                phone: u.phone,
                webhook: u.webhook.map(Spanned::into_inner),
                email: u.email,
                mqtt_topic: u.mqtt_topic,
                backup: u.backup.map(Spanned::into_inner),
            }
        })
        .collect();
    let tokens = raw
        .token
        .into_iter()
        .map(|t| {
            let span = t.span();
            let t = t.into_inner();
            if !crate::auth::is_sha256_hex(t.sha256.get_ref()) {
                problems.push(
                    Problem::new(t.sha256.span(), "sha256 must be 64 hex digits")
                        .hint("store only the hash: printf %s TOKEN | sha256sum"),
                );
            }
            let needs_unit = matches!(
                t.role,
                Role::RescueTeam | Role::EquipmentUnit | Role::InspectionAgency
            );
            if needs_unit && t.unit.is_none() {
                problems.push(
                    Problem::new(
                        span.clone(),
                        format!("a {} token needs `unit`", t.role.as_str()),
                    )
                    .hint("name the rescue unit or using unit the token is scoped to"),
                );
            }
            if t.role == Role::Gateway {
                problems.push(
                    Problem::new(span, "gateway tokens belong in [[gateway]] entries")
                        .hint("write [[gateway]] id = \"gw1\" token_sha256 = \"...\""),
                );
            }
            TokenEntry {
                role: t.role,
                name: t.name,
                unit: t.unit,
                sha256: t.sha256.into_inner().to_ascii_lowercase(),
            }
        })
        .collect();
    let risk = raw.risk.validate(&mut problems);
    let scorecard = raw.scorecard.validate(&mut problems);
    let exchange = raw.exchange.map(|e| e.validate(&mut problems));
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
        flood,
        smtp,
        map,
        intake,
        gateways,
        rescue_units,
        tokens,
        time_zone,
        risk,
        scorecard,
        exchange,
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
