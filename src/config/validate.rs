//! Turns the raw config into the typed one, collecting every problem instead of stopping at the
//! first.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use super::elevator_inputs::mapped_metric_types;
use super::raw::*;
use super::*;
use crate::diag::Check;
use crate::http_limits::HttpLimits;

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
