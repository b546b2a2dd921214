//! The site config's `[modbus]` table as written (buses, devices, transports, defaults), and its
//! validation: devices bound to their profiles, buses checked, read requests planned.
//!
//! Size: about 880 lines with its table tests: `validate` is one pass over the table, since
//! every device check needs the buses, profiles and defaults the pass has built.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::profile::{is_valid_name, load_profile};
use super::*;
use crate::diag::Problem;
use crate::ingest::modbus::plan::plan_requests;

// ---------------------------------------------------------------------------------------------
// Raw structs: the TOML as written.

/// The `[modbus]` table of the site config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModbus {
    /// Directory of device profiles, relative to the config file's directory.
    pub profiles: Option<Spanned<String>>,
    pub request_timeout_ms: Option<Spanned<u64>>,
    pub retries: Option<Spanned<u32>>,
    pub max_gap: Option<Spanned<u16>>,
    pub max_count: Option<Spanned<u16>>,
    pub offline_after_cycles: Option<Spanned<u32>>,
    pub backoff_max_ms: Option<Spanned<u64>>,
    pub merge_retry_s: Option<Spanned<u64>>,
    #[serde(default)]
    pub bus: Vec<Spanned<RawBus>>,
    #[serde(default)]
    pub device: Vec<Spanned<RawDevice>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBus {
    pub name: Spanned<String>,
    pub port: Spanned<String>,
    pub baud: Option<Spanned<u32>>,
    pub parity: Option<Parity>,
    pub data_bits: Option<Spanned<u8>>,
    pub stop_bits: Option<Spanned<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    Tcp,
    Rtu,
    RtuOverTcp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    pub name: Option<Spanned<String>>,
    pub equipment: Spanned<String>,
    pub profile: Spanned<String>,
    pub transport: Spanned<TransportKind>,
    pub host: Option<Spanned<String>>,
    pub port: Option<Spanned<u16>>,
    pub bus: Option<Spanned<String>>,
    pub unit_id: Option<Spanned<i64>>,
    pub interval_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub group_interval_ms: BTreeMap<String, Spanned<u64>>,
    pub timeout_ms: Option<Spanned<u64>>,
    pub retries: Option<Spanned<u32>>,
    pub max_gap: Option<Spanned<u16>>,
    pub max_count: Option<Spanned<u16>>,
    pub offline_after_cycles: Option<Spanned<u32>>,
}

/// The shared part of a [`PollGroup`]: its points and their planned requests.
type PlannedGroup = (Arc<[Point]>, Arc<[ReadRequest]>);

/// Validates the `[modbus]` table: loads the profiles it names from the profile directory
/// (relative to `config_dir`), checks every device and bus, and plans the read requests.
/// A problem inside a profile file is reported at the device's `profile` key, with the profile
/// file's own file:line:column in the message.
pub fn validate(
    raw: &Spanned<RawModbus>,
    config_dir: &Path,
    known_equipment: &HashSet<String>,
) -> Result<Vec<ModbusDevice>, Vec<Problem>> {
    let m = raw.get_ref();
    let mut problems = Vec::new();

    let profiles_dir: PathBuf = config_dir.join(
        m.profiles
            .as_ref()
            .map_or(DEFAULT_PROFILES_DIR, |p| p.get_ref().as_str()),
    );
    let profiles_span = m.profiles.as_ref().map_or(raw.span(), |p| p.span());
    if !m.device.is_empty() && !profiles_dir.is_dir() {
        problems.push(
            Problem::new(
                profiles_span.clone(),
                format!("profile directory {} does not exist", profiles_dir.display()),
            )
            .hint("set profiles = \"DIR\", relative to this config file; the shipped profiles are in firmware-configs/profiles"),
        );
    }

    let positive =
        |problems: &mut Vec<Problem>, v: &Option<Spanned<u64>>, what: &str, default: u64| match v {
            Some(ms) if *ms.get_ref() == 0 => {
                problems.push(Problem::new(ms.span(), format!("{what} must be above 0")));
                default
            }
            Some(ms) => *ms.get_ref(),
            None => default,
        };
    let timeout_ms = positive(
        &mut problems,
        &m.request_timeout_ms,
        "request_timeout_ms",
        DEFAULT_TIMEOUT_MS,
    );
    let backoff_max_ms = positive(
        &mut problems,
        &m.backoff_max_ms,
        "backoff_max_ms",
        DEFAULT_BACKOFF_MAX_MS,
    );
    let merge_retry_s = positive(
        &mut problems,
        &m.merge_retry_s,
        "merge_retry_s",
        DEFAULT_MERGE_RETRY_S,
    );
    let retries = m.retries.as_ref().map_or(DEFAULT_RETRIES, |r| *r.get_ref());
    let (max_gap, max_count) = merge_limits(
        &mut problems,
        &m.max_gap,
        &m.max_count,
        DEFAULT_MAX_GAP,
        DEFAULT_MAX_COUNT,
    );
    let default_offline_after = offline_after(
        &mut problems,
        &m.offline_after_cycles,
        DEFAULT_OFFLINE_AFTER,
    );

    // Buses.
    let mut buses: HashMap<String, SerialLine> = HashMap::new();
    let mut bus_paths = HashSet::new();
    for b in &m.bus {
        let b = b.get_ref();
        let name = b.name.get_ref();
        if !is_valid_name(name) {
            problems.push(
                Problem::new(b.name.span(), format!("bus name `{name}` is not valid"))
                    .hint("use letters, digits, '-', '_' and '.'"),
            );
        }
        if b.port.get_ref().trim().is_empty() {
            problems.push(
                Problem::new(b.port.span(), "bus port is empty")
                    .hint("name the serial device, for example \"/dev/ttyUSB0\""),
            );
        } else if !bus_paths.insert(b.port.get_ref().clone()) {
            problems.push(
                Problem::new(
                    b.port.span(),
                    format!("serial port {} is used by two buses", b.port.get_ref()),
                )
                .hint("one [[modbus.bus]] per port; put every slave on that line under it"),
            );
        }
        let baud = b.baud.as_ref().map_or(9600, |v| *v.get_ref());
        if let Some(v) = b.baud.as_ref().filter(|v| *v.get_ref() == 0) {
            problems.push(Problem::new(v.span(), "baud must be above 0"));
        }
        let data_bits = b.data_bits.as_ref().map_or(8, |v| *v.get_ref());
        if let Some(v) = b
            .data_bits
            .as_ref()
            .filter(|v| !(5..=8).contains(v.get_ref()))
        {
            problems.push(Problem::new(
                v.span(),
                format!("data_bits {} is not 5, 6, 7 or 8", v.get_ref()),
            ));
        }
        let stop_bits = b.stop_bits.as_ref().map_or(1, |v| *v.get_ref());
        if let Some(v) = b
            .stop_bits
            .as_ref()
            .filter(|v| !(1..=2).contains(v.get_ref()))
        {
            problems.push(Problem::new(
                v.span(),
                format!("stop_bits {} is not 1 or 2", v.get_ref()),
            ));
        }
        let line = SerialLine {
            name: name.clone(),
            path: b.port.get_ref().clone(),
            baud,
            parity: b.parity.unwrap_or(Parity::None),
            data_bits,
            stop_bits,
        };
        if buses.insert(name.clone(), line).is_some() {
            problems.push(Problem::new(
                b.name.span(),
                format!("bus name `{name}` is used twice"),
            ));
        }
    }

    // Profiles, each loaded once.
    let mut profiles: HashMap<String, Option<Profile>> = HashMap::new();
    let mut devices_per_equipment: HashMap<&str, usize> = HashMap::new();
    for d in &m.device {
        *devices_per_equipment
            .entry(d.get_ref().equipment.get_ref().as_str())
            .or_default() += 1;
        let name = d.get_ref().profile.get_ref();
        if profiles.contains_key(name) || !profiles_dir.is_dir() {
            continue;
        }
        let loaded = if !is_valid_name(name) {
            problems.push(
                Problem::new(
                    d.get_ref().profile.span(),
                    format!("profile name `{name}` is not valid"),
                )
                .hint("a profile is named by its file name without .toml"),
            );
            None
        } else if !profiles_dir.join(format!("{name}.toml")).is_file() {
            problems.push(
                Problem::new(
                    d.get_ref().profile.span(),
                    format!("unknown profile `{name}`"),
                )
                .hint(format!(
                    "profiles in {}: {}",
                    profiles_dir.display(),
                    available_profiles(&profiles_dir)
                )),
            );
            None
        } else {
            match load_profile(&profiles_dir, name) {
                Ok(p) => Some(p),
                Err(errors) => {
                    for l in errors.problems {
                        let mut p = Problem::new(
                            d.get_ref().profile.span(),
                            format!(
                                "in profile {}:{}:{}: {}",
                                l.path.display(),
                                l.line,
                                l.column,
                                l.message
                            ),
                        );
                        p.hint = l.hint;
                        problems.push(p);
                    }
                    None
                }
            }
        };
        profiles.insert(name.clone(), loaded);
    }

    // Devices.
    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    let mut equipment_metrics = HashSet::new();
    let mut devices = Vec::with_capacity(m.device.len());
    // Points and planned requests per (profile, group, max_gap, max_count), shared by devices.
    let mut planned: HashMap<(String, Option<String>, u16, u16), PlannedGroup> = HashMap::new();
    for raw_device in &m.device {
        let d = raw_device.get_ref();
        let n_problems = problems.len();
        let equipment = d.equipment.get_ref();
        if !known_equipment.contains(equipment) {
            problems.push(
                Problem::new(
                    d.equipment.span(),
                    format!("unknown equipment `{equipment}`"),
                )
                .hint("declare it in an [[equipment]] table first"),
            );
        }
        let name = d.name.as_ref().map_or(equipment, |n| n.get_ref());
        let name_span = d.name.as_ref().map_or(d.equipment.span(), |n| n.span());
        if !is_valid_name(name) {
            problems.push(
                Problem::new(
                    name_span.clone(),
                    format!("device name `{name}` is not valid"),
                )
                .hint("use letters, digits, '-', '_' and '.'"),
            );
        }
        if !names.insert(name.clone()) {
            problems.push(
                Problem::new(name_span, format!("device name `{name}` is used twice"))
                    .hint("give each device of one equipment its own name = \"...\""),
            );
        }

        let transport_span = d.transport.span();
        let kind = *d.transport.get_ref();
        let not_for = |problems: &mut Vec<Problem>, span: Range<usize>, field: &str, what: &str| {
            problems.push(
                Problem::new(
                    span,
                    format!("`{field}` does not apply to transport {what}"),
                )
                .hint(match what {
                    "rtu" => "an rtu device names its serial line with bus = \"...\"",
                    _ => "a tcp or rtu_over_tcp device has host and port",
                }),
            );
        };
        let transport = match kind {
            TransportKind::Tcp | TransportKind::RtuOverTcp => {
                let what = if kind == TransportKind::Tcp {
                    "tcp"
                } else {
                    "rtu_over_tcp"
                };
                if let Some(b) = &d.bus {
                    not_for(&mut problems, b.span(), "bus", what);
                }
                let host = match &d.host {
                    Some(h) if !h.get_ref().trim().is_empty() => h.get_ref().clone(),
                    _ => {
                        problems.push(
                            Problem::new(
                                transport_span.clone(),
                                format!("transport {what} needs a host"),
                            )
                            .hint("add host = \"ADDRESS\" and port = N (502 by default)"),
                        );
                        String::new()
                    }
                };
                let port = d.port.as_ref().map_or(502, |p| *p.get_ref());
                if kind == TransportKind::Tcp {
                    Transport::Tcp { host, port }
                } else {
                    Transport::RtuOverTcp { host, port }
                }
            }
            TransportKind::Rtu => {
                for (field, span) in [
                    ("host", d.host.as_ref().map(|h| h.span())),
                    ("port", d.port.as_ref().map(|p| p.span())),
                ] {
                    if let Some(span) = span {
                        not_for(&mut problems, span, field, "rtu");
                    }
                }
                match &d.bus {
                    Some(b) => {
                        match buses.get(b.get_ref()) {
                            Some(line) => Transport::Rtu(line.clone()),
                            None => {
                                let known: Vec<&str> = buses.keys().map(String::as_str).collect();
                                problems.push(Problem::new(b.span(), format!("unknown bus `{}`", b.get_ref()))
                                .hint(if known.is_empty() {
                                    "declare it in a [[modbus.bus]] table with name and port".to_owned()
                                } else {
                                    format!("declared buses: {}", known.join(", "))
                                }));
                                Transport::Tcp {
                                    host: String::new(),
                                    port: 0,
                                }
                            }
                        }
                    }
                    None => {
                        problems.push(
                            Problem::new(transport_span.clone(), "transport rtu needs a bus")
                                .hint("add bus = \"NAME\" of a [[modbus.bus]] table"),
                        );
                        Transport::Tcp {
                            host: String::new(),
                            port: 0,
                        }
                    }
                }
            }
        };

        let unit_range = if kind == TransportKind::Tcp {
            0..=255
        } else {
            1..=247
        };
        let unit_id = match &d.unit_id {
            Some(u) if unit_range.contains(u.get_ref()) => *u.get_ref() as u8,
            Some(u) => {
                problems.push(
                    Problem::new(u.span(), format!("unit_id {} is out of range", u.get_ref()))
                        .hint(if kind == TransportKind::Tcp {
                            "a Modbus TCP unit id is 0 to 255"
                        } else {
                            "a slave on a serial line has an address from 1 to 247"
                        }),
                );
                0
            }
            None if kind == TransportKind::Tcp => 1,
            None => {
                problems.push(
                    Problem::new(transport_span.clone(), "this device needs a unit_id")
                        .hint("add unit_id = N, the slave address set on the device (1 to 247)"),
                );
                0
            }
        };
        if problems.len() == n_problems {
            let line_key = match &transport {
                Transport::Tcp { host, port } | Transport::RtuOverTcp { host, port } => {
                    format!("{host}:{port}")
                }
                Transport::Rtu(line) => line.path.clone(),
            };
            if !addresses.insert((line_key.clone(), unit_id)) {
                problems.push(
                    Problem::new(
                        raw_device.span(),
                        format!("two devices have unit_id {unit_id} on {line_key}"),
                    )
                    .hint("each slave on one line needs its own address"),
                );
            }
        }

        let interval_ms = match &d.interval_ms {
            Some(ms) if *ms.get_ref() < MIN_INTERVAL_MS => {
                problems.push(
                    Problem::new(
                        ms.span(),
                        format!("interval_ms {} is too short", ms.get_ref()),
                    )
                    .hint(format!("poll at most every {MIN_INTERVAL_MS} ms")),
                );
                DEFAULT_INTERVAL_MS
            }
            Some(ms) => *ms.get_ref(),
            None => DEFAULT_INTERVAL_MS,
        };
        let device_timeout_ms = positive(&mut problems, &d.timeout_ms, "timeout_ms", timeout_ms);
        let (device_gap, device_count) = if d.max_gap.is_some() || d.max_count.is_some() {
            merge_limits(&mut problems, &d.max_gap, &d.max_count, max_gap, max_count)
        } else {
            (max_gap, max_count)
        };
        let device_offline_after = offline_after(
            &mut problems,
            &d.offline_after_cycles,
            default_offline_after,
        );

        let Some(Some(profile)) = profiles.get(d.profile.get_ref()) else {
            continue;
        };
        for (group, ms) in &d.group_interval_ms {
            if !profile.groups.contains_key(group) {
                let declared: Vec<&str> = profile.groups.keys().map(String::as_str).collect();
                problems.push(
                    Problem::new(
                        ms.span(),
                        format!("profile `{}` has no group `{group}`", profile.name),
                    )
                    .hint(if declared.is_empty() {
                        "this profile polls everything at interval_ms".to_owned()
                    } else {
                        format!("its groups: {}", declared.join(", "))
                    }),
                );
            } else if *ms.get_ref() < MIN_INTERVAL_MS {
                problems.push(
                    Problem::new(
                        ms.span(),
                        format!(
                            "interval {} ms of group `{group}` is too short",
                            ms.get_ref()
                        ),
                    )
                    .hint(format!("poll at most every {MIN_INTERVAL_MS} ms")),
                );
            }
        }
        for p in &profile.points {
            let limit = device_count.min(p.table.max_per_request());
            if p.data_type.register_count() > limit {
                problems.push(Problem::new(
                    d.max_count.as_ref().map_or(d.profile.span(), |c| c.span()),
                    format!(
                        "`{}` of profile `{}` has {} registers, more than max_count {limit} allows in one request",
                        p.metric, profile.name, p.data_type.register_count()
                    ),
                ).hint("raise max_count (at most 125) or shorten the string"));
            }
            if !equipment_metrics.insert((equipment.clone(), p.metric.clone())) {
                problems.push(
                    Problem::new(
                        d.profile.span(),
                        format!(
                            "equipment `{equipment}` gets metric `{}` from two devices",
                            p.metric
                        ),
                    )
                    .hint("bind each metric of one equipment to one device only"),
                );
            }
        }
        if problems.len() > n_problems {
            continue;
        }

        let interval = Duration::from_millis(interval_ms);
        let mut by_group: BTreeMap<Option<&str>, Vec<&Point>> = BTreeMap::new();
        for p in &profile.points {
            by_group.entry(p.group.as_deref()).or_default().push(p);
        }
        let groups = by_group
            .into_iter()
            .map(|(group, points)| {
                let (points, requests) = planned
                    .entry((
                        profile.name.clone(),
                        group.map(str::to_owned),
                        device_gap,
                        device_count,
                    ))
                    .or_insert_with(|| {
                        let points: Vec<Point> = points.into_iter().cloned().collect();
                        let requests = plan_requests(&points, device_gap, device_count);
                        (points.into(), requests.into())
                    })
                    .clone();
                let interval = match group {
                    None => interval,
                    Some(g) => d
                        .group_interval_ms
                        .get(g)
                        .map(|ms| Duration::from_millis(*ms.get_ref()))
                        .or_else(|| profile.groups.get(g).copied().flatten())
                        .unwrap_or(interval),
                };
                PollGroup {
                    name: group.map(str::to_owned),
                    interval,
                    points,
                    requests,
                }
            })
            .collect();
        let online_metric = if devices_per_equipment
            .get(equipment.as_str())
            .copied()
            .unwrap_or(0)
            > 1
        {
            format!("device_online_{name}")
        } else {
            "device_online".to_owned()
        };
        devices.push(ModbusDevice {
            name: name.clone(),
            equipment: equipment.clone(),
            profile: profile.name.clone(),
            transport,
            unit_id,
            groups,
            timeout: Duration::from_millis(device_timeout_ms),
            retries: d.retries.as_ref().map_or(retries, |r| *r.get_ref()),
            offline_after_cycles: device_offline_after,
            backoff_max: Duration::from_millis(backoff_max_ms),
            merge_retry: Duration::from_secs(merge_retry_s),
            online_metric,
        });
    }

    if problems.is_empty() {
        Ok(devices)
    } else {
        Err(problems)
    }
}

fn merge_limits(
    problems: &mut Vec<Problem>,
    gap: &Option<Spanned<u16>>,
    count: &Option<Spanned<u16>>,
    default_gap: u16,
    default_count: u16,
) -> (u16, u16) {
    let max_count = match count {
        Some(c) if !(1..=MAX_REGISTERS_PER_REQUEST).contains(c.get_ref()) => {
            problems.push(
                Problem::new(c.span(), format!("max_count {} is not usable", c.get_ref())).hint(
                    format!("a read request carries 1 to {MAX_REGISTERS_PER_REQUEST} registers"),
                ),
            );
            default_count
        }
        Some(c) => *c.get_ref(),
        None => default_count,
    };
    let max_gap = match gap {
        Some(g) if *g.get_ref() >= max_count => {
            problems.push(
                Problem::new(
                    g.span(),
                    format!("max_gap {} is not below max_count {max_count}", g.get_ref()),
                )
                .hint("max_gap is the number of unused registers one request may read across"),
            );
            default_gap.min(max_count.saturating_sub(1))
        }
        Some(g) => *g.get_ref(),
        None => default_gap.min(max_count.saturating_sub(1)),
    };
    (max_gap, max_count)
}

fn offline_after(problems: &mut Vec<Problem>, v: &Option<Spanned<u32>>, default: u32) -> u32 {
    match v {
        Some(n) if *n.get_ref() == 0 => {
            problems.push(
                Problem::new(n.span(), "offline_after_cycles must be at least 1")
                    .hint("the number of polls in a row without an answer before the device counts as offline"),
            );
            default
        }
        Some(n) => *n.get_ref(),
        None => default,
    }
}

fn available_profiles(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            (path.extension()? == "toml").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Site {
        modbus: Spanned<RawModbus>,
    }

    fn site(text: &str) -> Result<Vec<ModbusDevice>, Vec<String>> {
        let site: Site = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-configs");
        let known: HashSet<String> = ["ac-01", "lift-1", "lift-2", "pv-1"]
            .map(String::from)
            .into();
        validate(&site.modbus, &dir, &known).map_err(|problems| {
            problems
                .into_iter()
                .map(|p| {
                    let (line, _) = crate::diag::line_column(text, p.span.map_or(0, |s| s.start));
                    format!("{line}: {}", p.message)
                })
                .collect()
        })
    }

    #[test]
    fn a_good_site_binds_devices_and_plans_requests() {
        let devices = site(
            r#"
[modbus]
request_timeout_ms = 300
[[modbus.bus]]
name = "rs485-1"
port = "/dev/ttyUSB0"
baud = 19200
parity = "even"
[[modbus.device]]
equipment = "ac-01"
profile = "autoclave-controller"
transport = "tcp"
host = "127.0.0.1"
group_interval_ms = { slow = 2000 }
[[modbus.device]]
equipment = "pv-1"
profile = "pressure-transmitter"
transport = "rtu"
bus = "rs485-1"
unit_id = 7
interval_ms = 500
[[modbus.device]]
equipment = "lift-1"
profile = "elevator-controller"
transport = "rtu_over_tcp"
host = "10.0.0.5"
port = 4001
unit_id = 3
"#,
        )
        .expect("valid");
        assert_eq!(devices.len(), 3);
        let ac = &devices[0];
        assert_eq!(
            ac.transport,
            Transport::Tcp {
                host: "127.0.0.1".into(),
                port: 502
            }
        );
        assert_eq!(ac.unit_id, 1);
        assert_eq!(ac.timeout, Duration::from_millis(300));
        let intervals: Vec<(Option<&str>, u64)> = ac
            .groups
            .iter()
            .map(|g| (g.name.as_deref(), g.interval.as_millis() as u64))
            .collect();
        assert_eq!(intervals, [(None, 1000), (Some("slow"), 2000)]);
        // Default group: pressure+temperature (input 0..4), three discrete inputs, two holding.
        let default = &ac.groups[0];
        let plan: Vec<(Table, u16, u16)> = default
            .requests
            .iter()
            .map(|r| (r.table, r.start, r.count))
            .collect();
        assert_eq!(
            plan,
            [
                (Table::DiscreteInput, 0, 3),
                (Table::Holding, 0, 1),
                (Table::Input, 0, 4)
            ]
        );
        match &devices[1].transport {
            Transport::Rtu(line) => {
                assert_eq!(
                    (line.baud, line.parity, line.data_bits, line.stop_bits),
                    (19200, Parity::Even, 8, 1)
                );
            }
            other => panic!("{other}"),
        }
        assert_eq!(devices[2].online_metric, "device_online");
    }

    #[test]
    fn devices_of_one_profile_share_points_and_requests() {
        let device = |equipment: &str, port: u16, extra: &str| {
            format!(
                "[[modbus.device]]\nequipment = \"{equipment}\"\nprofile = \"pressure-transmitter\"\ntransport = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\n{extra}\n"
            )
        };
        let devices = site(&format!(
            "[modbus]\n{}{}{}",
            device("pv-1", 502, ""),
            device("lift-1", 503, "interval_ms = 500"),
            device("lift-2", 504, "max_gap = 0\nmax_count = 2"),
        ))
        .expect("valid");
        let (a, b, c) = (
            &devices[0].groups[0],
            &devices[1].groups[0],
            &devices[2].groups[0],
        );
        // Another interval still shares the profile's points and plan.
        assert!(Arc::ptr_eq(&a.points, &b.points));
        assert!(Arc::ptr_eq(&a.requests, &b.requests));
        assert_ne!(a.interval, b.interval);
        // Other merge limits make another plan.
        assert!(!Arc::ptr_eq(&a.requests, &c.requests));
        assert!(c.requests.iter().all(|r| r.count <= 2));
    }

    #[test]
    fn every_site_problem_at_once() {
        let problems = site(
            r#"
[modbus]
max_gap = 200
merge_retry_s = 0
[[modbus.bus]]
name = "b"
port = "/dev/ttyS0"
data_bits = 9
[[modbus.device]]
equipment = "nope"
profile = "autoclave-controller"
transport = "tcp"
[[modbus.device]]
equipment = "pv-1"
profile = "pressure-transmiter"
transport = "rtu"
bus = "b"
unit_id = 248
[[modbus.device]]
equipment = "lift-1"
profile = "elevator-controller"
transport = "rtu"
bus = "c"
unit_id = 1
group_interval_ms = { count = 100 }
[[modbus.device]]
equipment = "lift-2"
profile = "elevator-controller"
transport = "rtu_over_tcp"
host = "h"
max_count = 5
interval_ms = 1
"#,
        )
        .expect_err("invalid");
        let expected = [
            "3: max_gap 200 is not below max_count 100",
            "4: merge_retry_s must be above 0",
            "8: data_bits 9 is not 5, 6, 7 or 8",
            "10: unknown equipment `nope`",
            "12: transport tcp needs a host",
            "15: unknown profile `pressure-transmiter`",
            "18: unit_id 248 is out of range",
            "23: unknown bus `c`",
            "25: profile `elevator-controller` has no group `count`",
            "29: this device needs a unit_id",
            "31: `registration_code` of profile `elevator-controller` has 10 registers, more than max_count 5",
            "32: interval_ms 1 is too short",
        ];
        for e in expected {
            assert!(
                problems.iter().any(|p| p.starts_with(e)),
                "expected `{e}` in {problems:#?}"
            );
        }
    }

    #[test]
    fn a_broken_profile_is_reported_with_its_own_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("broken.toml"),
            "[[register]]\nmetric = \"a\"\ntable = \"holding\"\naddress = 0\ntype = \"u17\"\n",
        )
        .expect("write");
        let text = "[modbus]\nprofiles = \".\"\n[[modbus.device]]\nequipment = \"pv-1\"\nprofile = \"broken\"\ntransport = \"tcp\"\nhost = \"h\"\n";
        let site: Site = toml::from_str(text).expect("toml");
        let known: HashSet<String> = ["pv-1".to_owned()].into();
        let problems = validate(&site.modbus, dir.path(), &known).expect_err("invalid");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .message
                .contains("broken.toml:5:8: unknown variant `u17`"),
            "{}",
            problems[0].message
        );
    }
}
