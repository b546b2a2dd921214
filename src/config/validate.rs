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
        .map(|b| v.broker(b.get_ref(), &format!("seguard-{gateway_id}")));
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

    let central = raw
        .uplink
        .central
        .as_ref()
        .map(|c| v.central_uplink(c, &format!("seguard-{gateway_id}-uplink"), mqtt.as_ref()));

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

impl Check {
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
            using_unit_phone: e.using_unit_phone.clone(),
            maintenance_unit: e.maintenance_unit.as_ref().map(|m| MaintenanceUnit {
                name: m.name.clone(),
                phone: m.phone.clone(),
            }),
            building_phone: e.building_phone.clone(),
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
