//! Turns the raw config into the typed one, collecting every problem instead of stopping at the
//! first.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::raw::*;
use super::*;
use crate::diag::Check;
use crate::http_limits::HttpLimits;
use crate::model::{Crs, EquipmentKind, GeoPoint, MaintenanceUnit, Nameplate};

/// Lines (InfluxDB points) a write carries at most: what InfluxDB's docs advise (5,000); it
/// suits InfluxDB 1.x, 2.x and VictoriaMetrics alike (BENCHMARKS.md, "Batch size").
const DEFAULT_BATCH_MAX_LINES: usize = 5000;
/// Points an in-memory lane holds (about 2 KB each with ten fields): a burst beyond it waits at
/// the broker. The disk outbox is bounded by its quota instead.
const DEFAULT_QUEUE_MAX_POINTS: usize = 20_000;

const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9180";

/// The typed config and the warnings about it, or every problem found.
pub fn validate(
    raw: RawConfig,
    config_dir: &std::path::Path,
) -> Result<(Config, Vec<Problem>), Vec<Problem>> {
    let mut v = Check {
        config_dir: config_dir.to_owned(),
        ..Check::default()
    };
    let site_id = raw.site.id.get_ref().clone();
    v.check_id(&raw.site.id, "site id");
    v.check_id(&raw.gateway.id, "gateway id");
    let gateway_id = raw.gateway.id.get_ref().clone();

    let http_listen = match &raw.gateway.http_listen {
        None => DEFAULT_HTTP_LISTEN.parse().expect("default address parses"),
        Some(s) => s.get_ref().parse::<SocketAddr>().unwrap_or_else(|_| {
            v.push(
                Problem::new(
                    s.span(),
                    format!("http_listen `{}` is not an address", s.get_ref()),
                )
                .hint("write host:port, for example \"127.0.0.1:9180\""),
            );
            DEFAULT_HTTP_LISTEN.parse().expect("default address parses")
        }),
    };

    let mut api_tokens = Vec::new();
    for t in &raw.gateway.api_token {
        if !crate::auth::is_sha256_hex(t.sha256.get_ref()) {
            v.push(
                Problem::new(t.sha256.span(), "sha256 must be 64 hex digits").hint(
                    "store the token's hash, never the token: `seguard hash-token < token.txt`",
                ),
            );
        }
        api_tokens.push(ApiToken {
            name: t.name.get_ref().clone(),
            sha256: t.sha256.get_ref().to_ascii_lowercase(),
        });
    }
    if api_tokens.is_empty() && !http_listen.ip().is_loopback() {
        let span = raw.gateway.http_listen.as_ref().map(|s| s.span());
        v.push(
            Problem::new(
                span.unwrap_or_default(),
                format!(
                    "the HTTP API listens on {http_listen}, beyond this machine, and has no api_token"
                ),
            )
            .hint("add [[gateway.api_token]] with name and sha256 (`seguard hash-token < token.txt`), or listen on 127.0.0.1"),
        );
    }

    let equipment: Vec<Equipment> = raw
        .equipment
        .iter()
        .filter_map(|e| v.equipment(e))
        .collect();
    let mut seen = HashSet::new();
    for e in &raw.equipment {
        let id = &e.get_ref().id;
        if !seen.insert(id.get_ref().clone()) {
            v.push(Problem::new(
                id.span(),
                format!("equipment id `{}` is used twice", id.get_ref()),
            ));
        }
    }
    let known: HashSet<&str> = equipment.iter().map(|e| e.id.as_str()).collect();
    // Durable by default: without `[outbox]`, or without its `dir`, the lanes live in the
    // state directory; in memory only with `kind = "memory"`.
    let default_outbox = state_directory(config_dir).join("outbox");
    let outbox = match raw.outbox.as_ref() {
        None => crate::outbox::RawOutboxConfig::default()
            .validate(&default_outbox)
            .ok()
            .flatten(),
        Some(o) => o
            .get_ref()
            .validate(&default_outbox)
            .map(|outbox| {
                outbox.map(|mut outbox| {
                    // A relative directory is relative to the config file, like every other path.
                    outbox.dir = config_dir.join(&outbox.dir);
                    outbox
                })
            })
            .map_err(|problems| {
                for p in problems {
                    v.push(
                        Problem::new(o.span(), format!("[outbox] {}: {}", p.field, p.message))
                            .hint(p.hint),
                    );
                }
            })
            .ok()
            .flatten(),
    };
    let modbus_devices = match &raw.modbus {
        Some(m) => {
            let known_ids: HashSet<String> = known.iter().map(|id| (*id).to_owned()).collect();
            crate::ingest::modbus::validate(m, config_dir, &known_ids)
                .map(|devices| devices.into_iter().map(std::sync::Arc::new).collect())
                .unwrap_or_else(|problems| {
                    v.problems.extend(problems);
                    Vec::new()
                })
        }
        None => Vec::new(),
    };

    let mqtt = raw
        .mqtt
        .as_ref()
        .map(|b| v.broker(b, &format!("seguard-{gateway_id}")));
    if mqtt.is_none() && !raw.ingest.mqtt.is_empty() {
        v.push(
            Problem::new(raw.ingest.mqtt[0].span(), "MQTT mappings need a broker")
                .hint("add a [mqtt] table with host and port"),
        );
    }
    let mqtt_profiles = config_dir.join(raw.ingest.profiles.as_deref().unwrap_or("profiles"));
    let placed_mappings: Vec<(MqttMapping, Range<usize>)> = raw
        .ingest
        .mqtt
        .iter()
        .filter_map(|m| {
            Some((
                v.mqtt_mapping(m, &site_id, &known, &mqtt_profiles)?,
                m.span(),
            ))
        })
        .collect();
    let mqtt_mappings: Vec<MqttMapping> = placed_mappings.iter().map(|(m, _)| m.clone()).collect();

    let mut rule_ids = HashSet::new();
    let thresholds = raw
        .rules
        .threshold
        .iter()
        .filter_map(|t| {
            let id = &t.get_ref().id;
            if !rule_ids.insert(id.get_ref().clone()) {
                v.push(Problem::new(
                    id.span(),
                    format!("rule id `{}` is used twice", id.get_ref()),
                ));
            }
            v.threshold(t, &equipment)
        })
        .collect();
    let metric_types = mapped_metric_types(&mqtt_mappings);
    let rules = v.rule_set(&raw.rules, &equipment, &metric_types, &mut rule_ids);
    let placed_elevator_rules: Vec<(ElevatorRule, Range<usize>)> = rules
        .elevator
        .iter()
        .cloned()
        .zip(raw.rules.elevator.iter().map(|r| r.span()))
        .collect();
    v.check_elevator_inputs(&placed_elevator_rules, &placed_mappings, &modbus_devices);

    let mut uplink_names = HashSet::new();
    let influx = raw
        .uplink
        .influx
        .iter()
        .enumerate()
        .filter_map(|(i, u)| {
            let uplink = v.influx(u, i)?;
            if !uplink_names.insert(uplink.name.clone()) {
                v.push(
                    Problem::new(
                        u.span(),
                        format!("influx uplink name `{}` is used twice", uplink.name),
                    )
                    .hint("give each [[uplink.influx]] its own name"),
                );
            }
            Some(uplink)
        })
        .collect();

    let line_files = raw
        .uplink
        .linefile
        .iter()
        .enumerate()
        .map(|(i, f)| v.line_file(f, i, config_dir))
        .collect();

    let central = raw.uplink.central.as_ref().map(|c| {
        let raw_central = c.get_ref();
        let client_id = format!("seguard-{gateway_id}-uplink");
        // Sharing the site broker takes its validated settings (and their problems) once.
        let broker = match (&raw_central.broker, &mqtt) {
            (Some(b), _) => v.broker(b, &client_id),
            (None, Some(site_broker)) => Broker {
                client_id,
                ..site_broker.clone()
            },
            (None, None) => {
                v.push(
                    Problem::new(c.span(), "the central uplink has no broker")
                        .hint("add [uplink.central.broker] with host and port, or a [mqtt] table to share"),
                );
                v.broker_defaults(&client_id)
            }
        };
        CentralUplink {
            broker,
            topic_prefix: raw_central
                .topic_prefix
                .clone()
                .unwrap_or_else(|| "seguard/v1".to_owned()),
            queue_max_events: raw_central.queue_max_events.unwrap_or(100_000),
            confirm_timeout: Duration::from_millis(raw_central.confirm_timeout_ms.unwrap_or(10_000)),
            signing_key: v.signing_key(raw_central),
        }
    });

    let http_limits = raw
        .gateway
        .http_limits
        .unwrap_or_default()
        .validate(64 * 1024)
        .unwrap_or_else(|problems| {
            v.problems.extend(problems);
            HttpLimits::with_max_body(64 * 1024)
        });

    if !v.problems.is_empty() {
        return Err(v.problems);
    }
    let warnings = std::mem::take(&mut v.warnings);
    let config = Config {
        site: Site {
            id: site_id,
            name: raw.site.name,
            address: raw.site.address,
        },
        gateway: GatewaySettings {
            id: gateway_id,
            http_listen,
            shutdown_flush: Duration::from_secs(raw.gateway.shutdown_flush_s.unwrap_or(10)),
            http_limits,
            api_tokens,
        },
        mqtt,
        equipment,
        mqtt_mappings,
        outbox,
        modbus_devices,
        thresholds,
        rules,
        influx,
        line_files,
        central,
        warnings: Vec::new(),
    };
    Ok((config, warnings))
}

/// One mapped field as written, in a site config or a terminal profile.
pub(crate) fn field_mapping(f: &Spanned<RawField>, problems: &mut Vec<Problem>) -> FieldMapping {
    let f_ref = f.get_ref();
    check_pointer(&f_ref.pointer, problems);
    let metric = f_ref.metric.get_ref();
    if !is_valid_metric_name(metric) {
        problems.push(
            Problem::new(
                f_ref.metric.span(),
                format!("metric name `{}` is not valid", metric.escape_debug()),
            )
            .hint("use snake_case names such as car_status or pressure, without spaces, quotes, backslashes or control characters"),
        );
    }
    let scale = f_ref.scale.as_ref().map_or(1.0, |s| {
        if !s.get_ref().is_finite() || *s.get_ref() == 0.0 {
            problems.push(Problem::new(
                s.span(),
                "scale must be a finite, non-zero number",
            ));
        }
        *s.get_ref()
    });
    let value_type = f_ref.value_type.unwrap_or(ValueType::Number);
    let codes = match (&f_ref.values, &f_ref.unknown) {
        (Some(values), unknown) => {
            if f_ref.scale.is_some() || f_ref.offset.is_some() {
                problems.push(
                    Problem::new(
                        values.span(),
                        "a field with `values` takes no scale or offset",
                    )
                    .hint("put the value each code stands for in the table"),
                );
            }
            Some(crate::ingest::codes::CodeTable::from_toml(
                values.get_ref(),
                unknown.as_ref().map(|u| u.get_ref()),
                value_type,
                values.span(),
                unknown.as_ref().map(|u| u.span()),
                problems,
            ))
        }
        (None, Some(unknown)) => {
            problems.push(
                Problem::new(unknown.span(), "`unknown` without `values`")
                    .hint("`unknown` says what a code missing from `values` becomes"),
            );
            None
        }
        (None, None) => None,
    };
    FieldMapping {
        pointer: f_ref.pointer.get_ref().clone(),
        metric: metric.clone(),
        value_type,
        unit: f_ref.unit.clone(),
        scale,
        offset: f_ref.offset.unwrap_or(0.0),
        codes,
    }
}

pub(crate) fn check_pointer(pointer: &Spanned<String>, problems: &mut Vec<Problem>) {
    let p = pointer.get_ref();
    if !p.is_empty() && !p.starts_with('/') {
        problems.push(
            Problem::new(pointer.span(), format!("`{p}` is not a JSON pointer")).hint(format!(
                "JSON pointers start with '/', for example \"/{p}\""
            )),
        );
    }
}

impl Check {
    /// The central uplink's signing key, at least [`crate::signing::MIN_KEY_BYTES`] long.
    fn signing_key(&mut self, c: &crate::config::raw::RawCentral) -> Option<SecretString> {
        let inline = c.signing_key.as_ref().map(|k| k.get_ref().clone());
        let key = self.secret(
            "signing_key",
            &inline,
            &c.signing_key_env,
            &c.signing_key_file,
        )?;
        if secrecy::ExposeSecret::expose_secret(&key).len() < crate::signing::MIN_KEY_BYTES {
            let span = (c.signing_key.as_ref())
                .or(c.signing_key_env.as_ref())
                .or(c.signing_key_file.as_ref());
            self.push(
                Problem::new(
                    span.map(Spanned::span),
                    format!(
                        "signing_key is shorter than {} bytes",
                        crate::signing::MIN_KEY_BYTES
                    ),
                )
                .hint("make one with: openssl rand -hex 32, and give central the same"),
            );
        }
        Some(key)
    }

    fn equipment(&mut self, raw: &Spanned<RawEquipment>) -> Option<Equipment> {
        let e = raw.get_ref();
        let kind = EquipmentKind::from(e.kind);
        self.check_id(&e.id, "equipment id");
        let id = e.id.get_ref();
        if e.registration_code.get_ref().trim().is_empty() {
            self.push(
                Problem::new(
                    e.registration_code.span(),
                    format!("equipment `{id}` has an empty registration_code"),
                )
                .hint("the registration code (注册代码) is on the use certificate"),
            );
        }
        if let Some(code) = &e.rescue_code {
            let c = code.get_ref();
            if !(c.len() == 5 || c.len() == 6) || !c.chars().all(|ch| ch.is_ascii_digit()) {
                self.push(
                    Problem::new(
                        code.span(),
                        format!("rescue_code `{c}` is not 5 or 6 digits"),
                    )
                    .hint("write the 96333 code as a quoted string, for example \"01234\""),
                );
            }
            if kind != EquipmentKind::Elevator && kind != EquipmentKind::Escalator {
                self.push(Problem::new(
                    code.span(),
                    "rescue_code applies to elevators and escalators only",
                ));
            }
        }
        let location = e.location.as_ref().map(|loc| {
            let l = loc.get_ref();
            if !(-90.0..=90.0).contains(&l.lat) || !(-180.0..=180.0).contains(&l.lon) {
                self.push(
                    Problem::new(
                        loc.span(),
                        format!("location {}, {} is outside the globe", l.lat, l.lon),
                    )
                    .hint("lat is -90..90 and lon is -180..180, in WGS-84 degrees"),
                );
            }
            GeoPoint {
                lat: l.lat,
                lon: l.lon,
                crs: Crs::Wgs84,
            }
        });
        let next_inspection = e.next_inspection.as_ref().and_then(|d| self.date(d));
        let in_service = e.in_service.as_ref().and_then(|d| self.date(d));
        let nameplate = match &e.nameplate {
            Some(n) => self.nameplate(n, kind, id),
            None => Nameplate::default(),
        };
        Some(Equipment {
            id: id.clone(),
            kind,
            name: e.name.clone().unwrap_or_else(|| id.clone()),
            registration_code: e.registration_code.get_ref().clone(),
            use_certificate: e.use_certificate.clone(),
            rescue_code: e.rescue_code.as_ref().map(|c| c.get_ref().clone()),
            using_unit: e.using_unit.clone(),
            maintenance_unit: e.maintenance_unit.as_ref().map(|m| MaintenanceUnit {
                name: m.name.clone(),
                phone: m.phone.clone(),
            }),
            address: e.address.clone(),
            location,
            nameplate,
            next_inspection,
            insured: e.insured,
            in_service,
        })
    }

    fn nameplate(
        &mut self,
        raw: &Spanned<RawNameplate>,
        kind: EquipmentKind,
        id: &str,
    ) -> Nameplate {
        let n = raw.get_ref();
        let span = raw.span();
        let lift = [
            ("rated_speed_m_s", n.rated_speed_m_s.is_some()),
            ("rated_load_kg", n.rated_load_kg.is_some()),
            ("floors", n.floors.is_some()),
        ];
        let vessel = [
            ("working_pressure_mpa", n.working_pressure_mpa.is_some()),
            ("set_pressure_mpa", n.set_pressure_mpa.is_some()),
            ("design_pressure_mpa", n.design_pressure_mpa.is_some()),
        ];
        let is_lift = matches!(kind, EquipmentKind::Elevator | EquipmentKind::Escalator);
        let applies = |field: &str| -> bool {
            match field {
                "rated_speed_m_s" | "rated_load_kg" | "floors" => is_lift,
                "working_pressure_mpa" | "set_pressure_mpa" | "design_pressure_mpa" => {
                    kind.is_pressure_vessel() || kind == EquipmentKind::GasCylinder
                }
                _ => true,
            }
        };
        for (field, present) in lift.iter().chain(vessel.iter()) {
            if *present && !applies(field) {
                self.push(Problem::new(
                    span.clone(),
                    format!("nameplate field `{field}` does not apply to {kind} `{id}`"),
                ));
            }
        }
        if n.safe_residual_mpa.is_some() && kind != EquipmentKind::Autoclave {
            self.push(Problem::new(
                span.clone(),
                format!("nameplate field `safe_residual_mpa` applies to autoclaves only, not to {kind} `{id}`"),
            ));
        }
        if kind.is_pressure_vessel() {
            self.pressure_ladder(n, span, id);
        }
        Nameplate {
            rated_speed_m_s: n.rated_speed_m_s,
            rated_load_kg: n.rated_load_kg,
            floors: n.floors,
            working_pressure_mpa: n.working_pressure_mpa,
            set_pressure_mpa: n.set_pressure_mpa,
            design_pressure_mpa: n.design_pressure_mpa,
            safe_residual_mpa: n.safe_residual_mpa,
            medium: n.medium.clone(),
            volume_l: n.volume_l,
        }
    }

    /// Working pressure <= safety-valve set pressure <= design pressure.
    fn pressure_ladder(&mut self, n: &RawNameplate, span: Range<usize>, id: &str) {
        let (Some(work), Some(set), Some(design)) = (
            n.working_pressure_mpa,
            n.set_pressure_mpa,
            n.design_pressure_mpa,
        ) else {
            self.push(
                Problem::new(span, format!("pressure vessel `{id}` needs working, set and design pressure"))
                    .hint("add working_pressure_mpa, set_pressure_mpa and design_pressure_mpa from the nameplate"),
            );
            return;
        };
        if set > design {
            self.push(
                Problem::new(span.clone(), format!(
                    "safety-valve set pressure {set} MPa of `{id}` is above its design pressure {design} MPa"
                ))
                .hint("the valve must open at or below design pressure; check the nameplate"),
            );
        }
        if work > set {
            self.push(
                Problem::new(span, format!(
                    "working pressure {work} MPa of `{id}` is above its safety-valve set pressure {set} MPa"
                ))
                .hint("set pressure is commonly 1.05 to 1.10 times working pressure"),
            );
        }
    }

    fn mqtt_mapping(
        &mut self,
        raw: &Spanned<RawMqttMapping>,
        site_id: &str,
        known: &HashSet<&str>,
        profiles_dir: &std::path::Path,
    ) -> Option<MqttMapping> {
        let m = raw.get_ref();
        let profile = m.profile.as_ref().and_then(|name| {
            crate::ingest::mqtt::profile::load(profiles_dir, name.get_ref())
                .map_err(|problems| {
                    for l in problems {
                        self.push(
                            Problem::new(
                                name.span(),
                                format!(
                                    "in terminal profile {}:{}:{}: {}",
                                    l.path.display(),
                                    l.line,
                                    l.column,
                                    l.message
                                ),
                            )
                            .hint(l.hint.unwrap_or_else(|| {
                                "the shipped terminal profiles in firmware-configs/profiles/ show the format".to_owned()
                            })),
                        );
                    }
                })
                .ok()
        });
        if m.profile.is_some() && profile.is_none() {
            return None;
        }
        let (topic_span, template) = match (&m.topic, &profile) {
            (Some(t), _) => (t.span(), t.get_ref().clone()),
            (None, Some(p)) => (
                m.profile.as_ref().map(|n| n.span()).unwrap_or_default(),
                p.topic.clone(),
            ),
            (None, None) => {
                self.push(Problem::new(raw.span(), "this mapping has no topic").hint(
                    "add topic = \"...\", or profile = \"NAME\" to take a terminal profile's topic",
                ));
                return None;
            }
        };
        let topic = template.replace("{site}", site_id);
        let mut segments = Vec::new();
        for part in topic.split('/') {
            segments.push(match part {
                "{equipment}" => TopicSegment::Equipment,
                "+" => TopicSegment::Any,
                "#" => {
                    self.push(
                        Problem::new(topic_span.clone(), "`#` is not allowed in a mapping topic")
                            .hint("use `+` for one segment; every segment must be bound so payloads map to one equipment"),
                    );
                    return None;
                }
                p if p.contains('{') || p.contains('}') || p.contains('+') => {
                    self.push(
                        Problem::new(topic_span.clone(), format!("topic segment `{p}` is not understood"))
                            .hint("placeholders are {site} and {equipment}, each a whole segment"),
                    );
                    return None;
                }
                p => TopicSegment::Literal(p.to_owned()),
            });
        }
        let n_equipment = segments
            .iter()
            .filter(|s| **s == TopicSegment::Equipment)
            .count();
        let equipment = m.equipment.as_ref().map(|e| e.get_ref().clone());
        match (n_equipment, &m.equipment) {
            (0, None) => self.push(
                Problem::new(
                    topic_span.clone(),
                    "this mapping does not say which equipment it is for",
                )
                .hint("put {equipment} in the topic, or add equipment = \"ID\""),
            ),
            (1, Some(e)) => self.push(
                Problem::new(
                    e.span(),
                    "equipment is given both in the topic and as a field",
                )
                .hint("remove one of them"),
            ),
            (n, _) if n > 1 => self.push(Problem::new(
                topic_span.clone(),
                "{equipment} appears more than once",
            )),
            _ => {}
        }
        if let Some(e) = &m.equipment {
            if !known.contains(e.get_ref().as_str()) {
                self.push(
                    Problem::new(e.span(), format!("unknown equipment `{}`", e.get_ref()))
                        .hint("declare it in an [[equipment]] table first"),
                );
            }
        }
        let time = match (&m.time_pointer, &profile) {
            (Some(p), _) => {
                check_pointer(p, &mut self.problems);
                Some((
                    p.get_ref().clone(),
                    m.time_format.unwrap_or(TimeFormat::UnixMs),
                ))
            }
            (None, Some(p)) => p.time.clone(),
            (None, None) => None,
        };
        let mut fields = profile.map(|p| p.fields).unwrap_or_default();
        if fields.is_empty() && m.fields.is_empty() {
            self.push(
                Problem::new(raw.span(), "this mapping has no fields")
                    .hint("add [[ingest.mqtt.fields]] with pointer and metric"),
            );
        }
        for f in &m.fields {
            let field = field_mapping(f, &mut self.problems);
            if fields.iter().any(|p| p.metric == field.metric) {
                self.push(
                    Problem::new(
                        f.get_ref().metric.span(),
                        format!("metric `{}` is also mapped by the profile", field.metric),
                    )
                    .hint("remove the field here, or map it under another metric name"),
                );
            }
            fields.push(field);
        }
        Some(MqttMapping {
            topic,
            segments,
            equipment,
            time,
            fields,
        })
    }

    fn line_file(
        &mut self,
        raw: &Spanned<RawLineFile>,
        index: usize,
        config_dir: &std::path::Path,
    ) -> (crate::uplink::linefile::LineFileUplink, usize) {
        let f = raw.get_ref();
        if f.dir.get_ref().trim().is_empty() {
            self.push(Problem::new(f.dir.span(), "dir must name a directory"));
        }
        let rotate_mb = f.rotate_mb.as_ref().map_or(64, |r| {
            if *r.get_ref() == 0 {
                self.push(Problem::new(r.span(), "rotate_mb must be above 0"));
            }
            *r.get_ref()
        });
        let keep_files = f.keep_files.as_ref().map_or(32, |k| {
            if *k.get_ref() == 0 {
                self.push(
                    Problem::new(k.span(), "keep_files must be above 0")
                        .hint("the oldest file is deleted (and its points counted as dropped) beyond this many"),
                );
            }
            *k.get_ref()
        });
        self.renamed_batch_max_points(&f.batch_max_points);
        let uplink = crate::uplink::linefile::LineFileUplink {
            name: f.name.clone().unwrap_or_else(|| format!("linefile{index}")),
            dir: config_dir.join(f.dir.get_ref()),
            rotate_bytes: rotate_mb * 1024 * 1024,
            keep_files,
            batch_max_lines: f.batch_max_lines.unwrap_or(DEFAULT_BATCH_MAX_LINES).max(1),
            flush_interval: Duration::from_millis(f.flush_interval_ms.unwrap_or(1000).max(1)),
        };
        (
            uplink,
            f.queue_max_points
                .unwrap_or(DEFAULT_QUEUE_MAX_POINTS)
                .max(1),
        )
    }

    /// `batch_max_points` counted readings; batches are counted in InfluxDB's points (lines)
    /// now, under a new name, so an old value is refused rather than read 10x too large.
    fn renamed_batch_max_points(&mut self, old: &Option<Spanned<usize>>) {
        if let Some(old) = old {
            self.push(
                Problem::new(old.span(), "batch_max_points is now batch_max_lines, counted in InfluxDB points (lines), not readings")
                    .hint("a message with ten fields is one line: divide the old value by the fields per message, or remove it for the default of 5000 lines"),
            );
        }
    }

    fn influx(&mut self, raw: &Spanned<RawInflux>, index: usize) -> Option<InfluxUplink> {
        let u = raw.get_ref();
        let name = u
            .name
            .as_ref()
            .map_or_else(|| format!("influx{index}"), |n| n.get_ref().clone());
        let url = match url::Url::parse(u.url.get_ref()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            _ => {
                self.push(
                    Problem::new(
                        u.url.span(),
                        format!("`{}` is not an http(s) URL", u.url.get_ref()),
                    )
                    .hint("for example \"http://127.0.0.1:8086\""),
                );
                return None;
            }
        };
        let missing = |this: &mut Self, what: &str| {
            this.push(
                Problem::new(
                    raw.span(),
                    format!(
                        "influx uplink `{name}` with api = \"{}\" needs `{what}`",
                        match u.api {
                            InfluxApi::V1 => "v1",
                            InfluxApi::V2 => "v2",
                        }
                    ),
                )
                .hint("see firmware-configs/site-example.toml"),
            );
        };
        let endpoint = match u.api {
            InfluxApi::V1 => {
                let Some(database) = u.database.clone() else {
                    missing(self, "database");
                    return None;
                };
                InfluxEndpoint::V1 {
                    url,
                    database,
                    retention_policy: u.retention_policy.clone(),
                    username: u.username.clone(),
                    password: self.secret(
                        "password",
                        &u.password,
                        &u.password_env,
                        &u.password_file,
                    ),
                }
            }
            InfluxApi::V2 => {
                if url.path() != "/" {
                    self.push(
                        Problem::new(u.url.span(), format!("the v2 URL `{url}` has a path"))
                            .hint("the influxdb2 client drops path prefixes: give scheme, host and port only"),
                    );
                }
                let (Some(org), Some(bucket)) = (u.org.clone(), u.bucket.clone()) else {
                    missing(self, "org and bucket");
                    return None;
                };
                InfluxEndpoint::V2 {
                    url,
                    org,
                    bucket,
                    token: self
                        .secret("token", &u.token, &u.token_env, &u.token_file)
                        .unwrap_or_else(|| SecretString::from(String::new())),
                }
            }
        };
        self.renamed_batch_max_points(&u.batch_max_points);
        let batch_max_lines = u
            .batch_max_lines
            .as_ref()
            .map_or(DEFAULT_BATCH_MAX_LINES, |b| {
                if *b.get_ref() == 0 {
                    self.push(Problem::new(b.span(), "batch_max_lines must be above 0"));
                }
                *b.get_ref()
            });
        let queue_max_points = u.queue_max_points.as_ref().map_or(
            DEFAULT_QUEUE_MAX_POINTS.max(batch_max_lines),
            |q| {
                if *q.get_ref() < batch_max_lines {
                    self.push(
                        Problem::new(q.span(), "queue_max_points is below batch_max_lines")
                            .hint("the queue must hold at least one batch"),
                    );
                }
                *q.get_ref()
            },
        );
        let retry_min = Duration::from_millis(u.retry_min_ms.unwrap_or(200).max(1));
        Some(InfluxUplink {
            name,
            endpoint,
            batch_max_lines,
            flush_interval: Duration::from_millis(u.flush_interval_ms.unwrap_or(1000).max(1)),
            gzip: u.gzip.unwrap_or(true),
            queue_max_points,
            timeout: Duration::from_millis(u.timeout_ms.unwrap_or(10_000)),
            retry_min,
            retry_max: Duration::from_millis(u.retry_max_ms.unwrap_or(30_000)).max(retry_min),
        })
    }
}

/// The type of every metric the MQTT mappings produce; a metric mapped with two types is left
/// out (expressions then infer its type from how they use it).
fn mapped_metric_types(mappings: &[MqttMapping]) -> std::collections::HashMap<String, ValueType> {
    let mut types = std::collections::HashMap::new();
    let mut conflicting = HashSet::new();
    for field in mappings.iter().flat_map(|m| &m.fields) {
        match types.insert(field.metric.clone(), field.value_type) {
            Some(t) if t != field.value_type => {
                conflicting.insert(field.metric.clone());
            }
            _ => {}
        }
    }
    for metric in conflicting {
        types.remove(&metric);
    }
    types
}

/// The cross-references of the elevator rules and what feeds them.
impl Check {
    /// Compares what the mappings and Modbus profiles can produce for each elevator with what
    /// its rule reads: a value the rule cannot read is a problem, a metric or a service mode
    /// that can never arrive is a warning (the rule would run blind and say so at run time).
    fn check_elevator_inputs(
        &mut self,
        rules: &[(ElevatorRule, Range<usize>)],
        mappings: &[(MqttMapping, Range<usize>)],
        modbus: &[std::sync::Arc<crate::ingest::modbus::ModbusDevice>],
    ) {
        use crate::model::Value;
        for (rule, rule_span) in rules {
            let m = &rule.metrics;
            for (mapping, span) in mappings {
                if mapping
                    .equipment
                    .as_ref()
                    .is_some_and(|e| !rule.equipment.contains(e))
                {
                    continue;
                }
                for f in &mapping.fields {
                    let expected: Option<(&str, &[&str])> = if f.metric == m.car_status {
                        Some(("text", &["stopped", "running"]))
                    } else if f.metric == m.service_mode {
                        Some(("text", &crate::rules::SERVICE_MODES))
                    } else if [
                        &m.door_zone,
                        &m.door_closed_locked,
                        &m.occupied,
                        &m.alarm_button,
                    ]
                    .contains(&&f.metric)
                    {
                        Some(("bool", &[]))
                    } else {
                        None
                    };
                    let Some((kind, words)) = expected else {
                        continue;
                    };
                    let wrong_type = match kind {
                        "text" => f.value_type != ValueType::Text,
                        _ => f.value_type == ValueType::Text,
                    };
                    if wrong_type {
                        self.push(
                            Problem::new(
                                span.clone(),
                                format!(
                                    "field `{}` gives metric `{}` a type rule `{}` cannot read",
                                    f.pointer, f.metric, rule.id
                                ),
                            )
                            .hint(format!(
                                "map it as type = \"{kind}\"; a terminal that sends codes needs values = {{ ... }} with unknown = ..."
                            )),
                        );
                        continue;
                    }
                    for value in f.codes.iter().flat_map(|c| c.values()) {
                        if let Value::Text(word) = value {
                            if !words.contains(&word.as_str()) {
                                self.push(
                                    Problem::new(
                                        span.clone(),
                                        format!(
                                            "field `{}` can give `{}` the value \"{word}\", which rule `{}` does not know",
                                            f.pointer, f.metric, rule.id
                                        ),
                                    )
                                    .hint(format!("use one of: {}", words.join(", "))),
                                );
                            }
                        }
                    }
                }
            }
            for equipment in &rule.equipment {
                // Everything that may reach this elevator: (metric, texts it can take, or None
                // when any text can come).
                let mut produced: Vec<(&str, Option<Vec<String>>)> = Vec::new();
                for (mapping, _) in mappings {
                    if mapping.equipment.as_ref().is_some_and(|e| e != equipment) {
                        continue;
                    }
                    for f in &mapping.fields {
                        let texts = f.codes.as_ref().map(|c| {
                            c.values()
                                .filter_map(|v| match v {
                                    Value::Text(t) => Some(t.clone()),
                                    _ => None,
                                })
                                .collect()
                        });
                        produced.push((f.metric.as_str(), texts));
                    }
                }
                for device in modbus.iter().filter(|d| &d.equipment == equipment) {
                    for point in device.groups.iter().flat_map(|g| g.points.iter()) {
                        let texts = (!point.labels.is_empty())
                            .then(|| point.labels.iter().map(|(_, t)| t.clone()).collect());
                        produced.push((point.metric.as_str(), texts));
                    }
                }
                let has = |metric: &str| produced.iter().any(|(p, _)| *p == metric);
                let mut missing: Vec<&str> = Vec::new();
                if !has(&m.car_status) && !has(&m.speed) {
                    missing.push(&m.car_status);
                }
                for metric in [&m.door_closed_locked, &m.occupied, &m.service_mode] {
                    if !has(metric) {
                        missing.push(metric);
                    }
                }
                if !missing.is_empty() {
                    self.warnings.push(
                        Problem::new(
                            rule_span.clone(),
                            format!(
                                "nothing maps {} for `{equipment}`: rule `{}` cannot decide on a trapped passenger without {} and will raise {}.trapped_rule_blind",
                                missing.join(", "),
                                rule.id,
                                if missing.len() == 1 { "it" } else { "them" },
                                rule.id
                            ),
                        )
                        .hint("map these metrics in an [[ingest.mqtt]] mapping or a Modbus profile"),
                    );
                    continue;
                }
                let modes: Option<Vec<&String>> = produced
                    .iter()
                    .filter(|(p, _)| *p == m.service_mode)
                    .map(|(_, texts)| texts.as_ref())
                    .collect::<Option<Vec<_>>>()
                    .map(|lists| lists.into_iter().flatten().collect());
                if let Some(modes) = modes {
                    if !rule.staff_in_car_modes.iter().any(|s| modes.contains(&s)) {
                        self.warnings.push(
                            Problem::new(
                                rule_span.clone(),
                                format!(
                                    "the code tables for `{equipment}` never give {} the modes {}: rule `{}` cannot tell staff in the car from a trapped passenger",
                                    m.service_mode,
                                    rule.staff_in_car_modes.join(", "),
                                    rule.id
                                ),
                            )
                            .hint("map the terminal's inspection and out-of-service codes to \"inspection\" and \"out_of_service\""),
                        );
                    }
                }
            }
        }
    }
}

/// The gateway's state directory, which holds the default outbox: `$STATE_DIRECTORY` (set by
/// systemd from `StateDirectory=`, `/var/lib/seguard` in the .deb; the first entry when it
/// lists several), else `seguard-state` beside the config file.
pub fn state_directory(config_dir: &Path) -> PathBuf {
    match std::env::var_os("STATE_DIRECTORY") {
        Some(dirs) if !dirs.is_empty() => {
            let dirs = dirs.to_string_lossy().into_owned();
            PathBuf::from(dirs.split(':').next().unwrap_or(&dirs))
        }
        _ => config_dir.join("seguard-state"),
    }
}
