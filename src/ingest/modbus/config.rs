//! Modbus config: device profiles (one TOML file per device model) and the site config's
//! `[modbus]` table that binds devices to profiles and transports. Raw serde structs mirror the
//! TOML and reject unknown fields; [`validate`] turns them into [`ModbusDevice`]s, reporting every
//! problem at once.
//!
//! A profile, `firmware-configs/profiles/<name>.toml`:
//! ```toml
//! description = "pressure transmitter, 4-20 mA to Modbus RTU"
//! one_based = false        # addresses as the device manual writes them (default 0-based)
//! order = "ABCD"           # default byte/word order of the registers below
//! [groups.slow]            # optional poll groups, with a default interval
//! interval_ms = 10000
//! [[register]]
//! metric = "pressure"
//! unit = "MPa"
//! table = "holding"        # coil | discrete_input | holding | input
//! address = 0
//! type = "f32"             # bool | bit (+ bit = n) | u16 | i16 | u32 | i32 | u64 | i64 | f32 | f64 | string (+ registers = n)
//! order = "CDAB"           # optional, overrides the profile's order
//! scale = 1.0              # value = raw * scale + offset
//! offset = 0.0
//! group = "slow"           # optional
//! ```
//!
//! The site config:
//! ```toml
//! [modbus]
//! profiles = "profiles"          # directory, relative to this config file
//! request_timeout_ms = 1000      # defaults below apply to every device; a device may override
//! retries = 1                    # re-sends after a transport or protocol error (not after a timeout)
//! max_gap = 8                    # unused registers a merged request may read across
//! max_count = 100                # registers (or bits) per request, at most 125
//! merge_retry_s = 3600           # a device that refused merged reads (they were split) tries them again after this
//! offline_after_cycles = 3
//! backoff_max_ms = 30000
//!
//! [[modbus.bus]]                 # a serial line shared by its slaves
//! name = "rs485-1"
//! port = "/dev/ttyUSB0"
//! baud = 9600                    # parity = "none" | "even" | "odd"; data_bits 5..8; stop_bits 1 | 2
//!
//! [[modbus.device]]
//! name = "ac-01-plc"             # default: the equipment id
//! equipment = "ac-01"
//! profile = "autoclave-controller"
//! transport = "tcp"              # tcp {host, port} | rtu {bus} | rtu_over_tcp {host, port}
//! host = "10.0.0.21"
//! port = 502
//! unit_id = 1
//! interval_ms = 1000
//! group_interval_ms = { slow = 5000 }
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::decode::{DataType, Order, Scaling};
use super::plan::{plan_requests, ReadRequest};
use crate::diag::{toml_message, Located, Problem};

/// Registers per read request allowed by the protocol (function codes 3 and 4).
pub const MAX_REGISTERS_PER_REQUEST: u16 = 125;
/// Bits per read request allowed by the protocol (function codes 1 and 2).
pub const MAX_BITS_PER_REQUEST: u16 = 2000;

const DEFAULT_PROFILES_DIR: &str = "profiles";
const DEFAULT_TIMEOUT_MS: u64 = 1000;
const DEFAULT_RETRIES: u32 = 1;
const DEFAULT_MAX_GAP: u16 = 8;
const DEFAULT_MAX_COUNT: u16 = 100;
const DEFAULT_OFFLINE_AFTER: u32 = 3;
const DEFAULT_BACKOFF_MAX_MS: u64 = 30_000;
const DEFAULT_MERGE_RETRY_S: u64 = 3600;
const DEFAULT_INTERVAL_MS: u64 = 1000;
const MIN_INTERVAL_MS: u64 = 10;

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

/// One device profile file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub description: Option<String>,
    #[serde(default)]
    pub one_based: bool,
    pub order: Option<Order>,
    #[serde(default)]
    pub groups: BTreeMap<String, Spanned<RawGroup>>,
    #[serde(rename = "register", default)]
    pub registers: Vec<Spanned<RawRegister>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub interval_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawType {
    Bool,
    Bit,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegister {
    pub metric: Spanned<String>,
    pub unit: Option<String>,
    pub table: Table,
    pub address: Spanned<i64>,
    #[serde(rename = "type")]
    pub data_type: Spanned<RawType>,
    /// For `type = "bit"`: which bit of the register, 0 = least significant.
    pub bit: Option<Spanned<i64>>,
    /// For `type = "string"`: how many registers (two characters each).
    pub registers: Option<Spanned<i64>>,
    pub order: Option<Spanned<Order>>,
    pub scale: Option<Spanned<f64>>,
    pub offset: Option<Spanned<f64>>,
    pub group: Option<Spanned<String>>,
    /// Labels for integer codes and bools, e.g. `values = { "0" = "none", "1" = "up" }`.
    pub values: Option<Spanned<BTreeMap<String, String>>>,
}

// ---------------------------------------------------------------------------------------------
// Typed config.

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Coil,
    DiscreteInput,
    Holding,
    Input,
}

impl Table {
    /// Coils and discrete inputs are read as bits, holding and input registers as words.
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::DiscreteInput)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::DiscreteInput => "discrete_input",
            Table::Holding => "holding",
            Table::Input => "input",
        }
    }

    pub fn max_per_request(self) -> u16 {
        if self.is_bits() {
            MAX_BITS_PER_REQUEST
        } else {
            MAX_REGISTERS_PER_REQUEST
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// One value a profile defines: where it is and how to decode it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub metric: String,
    pub unit: Option<String>,
    pub table: Table,
    /// 0-based protocol address (a 1-based profile is converted when loaded).
    pub address: u16,
    pub data_type: DataType,
    pub order: Order,
    pub scaling: Scaling,
    pub group: Option<String>,
    /// Code → text labels, sorted by code; empty when the value is used as it is.
    pub labels: Vec<(i64, String)>,
}

impl Point {
    /// Registers (or bits) the point occupies, end exclusive, as `u32` so 65535 + 4 cannot wrap.
    pub fn span(&self) -> Range<u32> {
        let start = u32::from(self.address);
        start..start + u32::from(self.data_type.register_count())
    }
}

/// A device model, loaded from `<profiles>/<name>.toml`.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub points: Vec<Point>,
    /// Declared poll groups and their default interval, if the profile gives one.
    pub groups: BTreeMap<String, Option<Duration>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SerialLine {
    /// The bus name from the config, used in logs and metrics.
    pub name: String,
    pub path: String,
    pub baud: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Modbus TCP (MBAP framing), one connection per device.
    Tcp { host: String, port: u16 },
    /// RTU framing on a serial line shared by its slaves.
    Rtu(SerialLine),
    /// RTU framing through a serial-to-Ethernet converter; the slaves behind one host:port share
    /// its serial line.
    RtuOverTcp { host: String, port: u16 },
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Tcp { host, port } => write!(f, "tcp {host}:{port}"),
            Transport::Rtu(line) => write!(f, "rtu {} ({})", line.name, line.path),
            Transport::RtuOverTcp { host, port } => write!(f, "rtu over tcp {host}:{port}"),
        }
    }
}

/// Points polled together at one interval, with the merged read requests that fetch them.
#[derive(Debug, Clone, PartialEq)]
pub struct PollGroup {
    /// `None` for the device's default group.
    pub name: Option<String>,
    pub interval: Duration,
    /// Shared by every device of the profile with the same merge limits, so thousands of
    /// devices of one model hold one copy.
    pub points: Arc<[Point]>,
    /// Planned once at startup by [`plan_requests`]; the poller sends exactly these. Shared
    /// like `points`.
    pub requests: Arc<[ReadRequest]>,
}

/// A validated device: everything the poller needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusDevice {
    /// Unique among devices; the label of its metrics and logs.
    pub name: String,
    pub equipment: String,
    pub profile: String,
    pub transport: Transport,
    pub unit_id: u8,
    pub groups: Vec<PollGroup>,
    pub timeout: Duration,
    /// Re-sends of a request after a transport or protocol error. A timeout is not retried
    /// in the same cycle, so a dead device costs at most one timeout per cycle.
    pub retries: u32,
    pub offline_after_cycles: u32,
    /// Upper bound of the wait between polls of a device that stopped answering.
    pub backoff_max: Duration,
    /// How long a device whose merged requests had to be split keeps its own plan before it
    /// tries the merged one again (a firmware update may have filled its holes).
    pub merge_retry: Duration,
    /// The metric of the `Value::Bool` reading that says whether the device answers:
    /// `device_online`, or `device_online_<name>` when the equipment has several devices.
    pub online_metric: String,
}

// ---------------------------------------------------------------------------------------------
// Profiles.

/// Problems of one profile file, placed in that file.
#[derive(Debug)]
pub struct ProfileErrors {
    pub problems: Vec<Located>,
}

/// Reads and validates the profile `name` from `dir`.
pub fn load_profile(dir: &Path, name: &str) -> Result<Profile, ProfileErrors> {
    let path = dir.join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).map_err(|e| ProfileErrors {
        problems: vec![Located {
            path: path.clone(),
            line: 1,
            column: 1,
            message: format!("cannot read profile: {e}"),
            hint: None,
        }],
    })?;
    parse_profile(name, &text, &path)
}

/// Parses and validates profile text; `path` only names the file in messages.
pub fn parse_profile(name: &str, text: &str, path: &Path) -> Result<Profile, ProfileErrors> {
    let locate = |problems: Vec<Problem>| ProfileErrors {
        problems: problems
            .into_iter()
            .map(|p| Located::new(path, text, p))
            .collect(),
    };
    let raw: RawProfile = toml::from_str(text).map_err(|e| {
        locate(vec![Problem::new(e.span(), toml_message(&e))
            .hint("the profile format is described in src/ingest/modbus/config.rs and the shipped profiles")])
    })?;
    let mut problems = Vec::new();
    let profile = profile(name, &raw, &mut problems);
    if problems.is_empty() {
        Ok(profile)
    } else {
        Err(locate(problems))
    }
}

fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn profile(name: &str, raw: &RawProfile, problems: &mut Vec<Problem>) -> Profile {
    let default_order = raw.order.unwrap_or(Order::Abcd);
    let mut groups = BTreeMap::new();
    for (group, g) in &raw.groups {
        if !is_valid_name(group) {
            problems.push(
                Problem::new(g.span(), format!("group name `{group}` is not valid"))
                    .hint("use letters, digits, '-', '_' and '.'"),
            );
        }
        let interval = g.get_ref().interval_ms.as_ref().map(|ms| {
            if *ms.get_ref() < MIN_INTERVAL_MS {
                problems.push(
                    Problem::new(
                        ms.span(),
                        format!("interval_ms {} is too short", ms.get_ref()),
                    )
                    .hint(format!("poll at most every {MIN_INTERVAL_MS} ms")),
                );
            }
            Duration::from_millis(*ms.get_ref())
        });
        groups.insert(group.clone(), interval);
    }
    if raw.registers.is_empty() {
        problems.push(
            Problem::new(None, "this profile has no registers")
                .hint("add [[register]] tables with metric, table, address and type"),
        );
    }
    let mut metrics = HashSet::new();
    let mut points = Vec::with_capacity(raw.registers.len());
    for r in &raw.registers {
        if let Some(p) = register(r, raw.one_based, default_order, &groups, problems) {
            if !metrics.insert(p.metric.clone()) {
                problems.push(Problem::new(
                    r.get_ref().metric.span(),
                    format!("metric `{}` is defined twice", p.metric),
                ));
            }
            points.push((p, r.span()));
        }
    }
    check_overlaps(&points, problems);
    Profile {
        name: name.to_owned(),
        description: raw.description.clone().unwrap_or_default(),
        points: points.into_iter().map(|(p, _)| p).collect(),
        groups,
    }
}

fn register(
    raw: &Spanned<RawRegister>,
    one_based: bool,
    default_order: Order,
    groups: &BTreeMap<String, Option<Duration>>,
    problems: &mut Vec<Problem>,
) -> Option<Point> {
    let r = raw.get_ref();
    let n_problems = problems.len();
    let metric = r.metric.get_ref();
    if !is_valid_name(metric) {
        problems.push(
            Problem::new(
                r.metric.span(),
                format!("metric name `{metric}` is not valid"),
            )
            .hint("use letters, digits, '-', '_' and '.': metric names become InfluxDB field keys"),
        );
    }
    let type_span = r.data_type.span();
    let data_type = match *r.data_type.get_ref() {
        RawType::Bool => DataType::Bool,
        RawType::Bit => match &r.bit {
            Some(bit) if (0..=15).contains(bit.get_ref()) => DataType::Bit(*bit.get_ref() as u8),
            Some(bit) => {
                problems.push(
                    Problem::new(
                        bit.span(),
                        format!("bit {} is outside a register", bit.get_ref()),
                    )
                    .hint("bits of a register are numbered 0 (least significant) to 15"),
                );
                DataType::Bit(0)
            }
            None => {
                problems.push(
                    Problem::new(type_span.clone(), "type \"bit\" needs `bit`")
                        .hint("add bit = N, with N from 0 (least significant) to 15"),
                );
                DataType::Bit(0)
            }
        },
        RawType::U16 => DataType::U16,
        RawType::I16 => DataType::I16,
        RawType::U32 => DataType::U32,
        RawType::I32 => DataType::I32,
        RawType::U64 => DataType::U64,
        RawType::I64 => DataType::I64,
        RawType::F32 => DataType::F32,
        RawType::F64 => DataType::F64,
        RawType::String => match &r.registers {
            Some(n) if (1..=i64::from(MAX_REGISTERS_PER_REQUEST)).contains(n.get_ref()) => {
                DataType::Text(*n.get_ref() as u16)
            }
            Some(n) => {
                problems.push(
                    Problem::new(n.span(), format!("a string of {} registers cannot be read", n.get_ref()))
                        .hint(format!("a string has 1 to {MAX_REGISTERS_PER_REQUEST} registers (two characters each)")),
                );
                DataType::Text(1)
            }
            None => {
                problems.push(
                    Problem::new(type_span.clone(), "type \"string\" needs `registers`")
                        .hint("add registers = N: the number of registers the text occupies, two characters each"),
                );
                DataType::Text(1)
            }
        },
    };
    if r.bit.is_some() && !matches!(data_type, DataType::Bit(_)) {
        if let Some(bit) = &r.bit {
            problems.push(
                Problem::new(bit.span(), "`bit` applies to type \"bit\" only")
                    .hint("remove it, or set type = \"bit\""),
            );
        }
    }
    if let (Some(n), false) = (&r.registers, matches!(data_type, DataType::Text(_))) {
        problems.push(
            Problem::new(n.span(), "`registers` applies to type \"string\" only")
                .hint("the other types have a fixed size"),
        );
    }
    if r.table.is_bits() && data_type != DataType::Bool {
        problems.push(
            Problem::new(
                type_span.clone(),
                format!(
                    "a {} holds one bit; type {} does not fit",
                    r.table,
                    data_type.name()
                ),
            )
            .hint("use type = \"bool\" for coils and discrete inputs"),
        );
    }
    let order = r.order.as_ref().map_or(default_order, |o| *o.get_ref());
    if let (DataType::Text(_), Order::Cdab | Order::Dcba) = (data_type, order) {
        let span = r.order.as_ref().map_or(type_span.clone(), |o| o.span());
        problems.push(
            Problem::new(
                span,
                format!("order {order} swaps words, which text does not have"),
            )
            .hint("strings take order \"ABCD\" (high byte first) or \"BADC\" (low byte first)"),
        );
    }
    let mut scaling = Scaling::IDENTITY;
    for (field, value) in [("scale", &r.scale), ("offset", &r.offset)] {
        let Some(value) = value else { continue };
        if !data_type.is_numeric() {
            problems.push(Problem::new(
                value.span(),
                format!(
                    "`{field}` applies to numbers, not to type {}",
                    data_type.name()
                ),
            ));
        } else if !value.get_ref().is_finite() || (field == "scale" && *value.get_ref() == 0.0) {
            problems.push(
                Problem::new(
                    value.span(),
                    format!("{field} {} is not usable", value.get_ref()),
                )
                .hint("scale must be a finite number other than 0; offset a finite number"),
            );
        }
        if field == "scale" {
            scaling.scale = *value.get_ref();
        } else {
            scaling.offset = *value.get_ref();
        }
    }
    let address_raw = *r.address.get_ref();
    let address = if one_based {
        address_raw - 1
    } else {
        address_raw
    };
    let count = i64::from(data_type.register_count());
    if address < 0 || address + count > 65536 {
        let range = if one_based {
            "1 to 65536"
        } else {
            "0 to 65535"
        };
        problems.push(
            Problem::new(
                r.address.span(),
                format!("address {address_raw} with {count} registers is outside the table"),
            )
            .hint(format!(
                "addresses of this profile run {range}{}",
                if one_based {
                    " (one_based = true)"
                } else {
                    " (set one_based = true if the manual counts from 1)"
                }
            )),
        );
    }
    if let Some(group) = &r.group {
        if !groups.contains_key(group.get_ref()) {
            problems.push(
                Problem::new(
                    group.span(),
                    format!("group `{}` is not declared", group.get_ref()),
                )
                .hint(format!(
                    "declare it as [groups.{}] in this profile",
                    group.get_ref()
                )),
            );
        }
    }
    let mut labels = Vec::new();
    if let Some(values) = &r.values {
        let integer = !matches!(data_type, DataType::F32 | DataType::F64 | DataType::Text(_));
        if !integer || r.scale.is_some() || r.offset.is_some() {
            problems.push(
                Problem::new(
                    values.span(),
                    "`values` labels integer codes and bools only",
                )
                .hint("remove scale and offset, and use an integer, bool or bit type"),
            );
        }
        for (code, text) in values.get_ref() {
            match code.trim().parse::<i64>() {
                Ok(c) => labels.push((c, text.clone())),
                Err(_) => problems.push(
                    Problem::new(values.span(), format!("value code `{code}` is not an integer"))
                        .hint("write codes as quoted integers: values = { \"0\" = \"none\", \"1\" = \"up\" }"),
                ),
            }
        }
        labels.sort_by_key(|(c, _)| *c);
    }
    if problems.len() > n_problems {
        return None;
    }
    Some(Point {
        labels,
        metric: metric.clone(),
        unit: r.unit.clone(),
        table: r.table,
        address: address as u16,
        data_type,
        order,
        scaling,
        group: r.group.as_ref().map(|g| g.get_ref().clone()),
    })
}

/// Two points may share registers only when both are single bits of one register.
fn check_overlaps(points: &[(Point, Range<usize>)], problems: &mut Vec<Problem>) {
    let mut sorted: Vec<&(Point, Range<usize>)> = points.iter().collect();
    sorted.sort_by_key(|(p, _)| (p.table, p.address));
    for (i, (a, _)) in sorted.iter().enumerate() {
        for (b, b_span) in sorted[i + 1..].iter().copied() {
            if b.table != a.table || b.span().start >= a.span().end {
                break;
            }
            let bits_of_one_register = match (a.data_type, b.data_type) {
                (DataType::Bit(x), DataType::Bit(y)) => x != y,
                _ => false,
            };
            if !bits_of_one_register {
                problems.push(
                    Problem::new(
                        b_span.clone(),
                        format!(
                            "`{}` ({} {}..{}) overlaps `{}` ({} {}..{})",
                            b.metric,
                            b.table,
                            b.span().start,
                            b.span().end,
                            a.metric,
                            a.table,
                            a.span().start,
                            a.span().end
                        ),
                    )
                    .hint("only different bits (type \"bit\") may share a register; check address and type"),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Site config.

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

    fn shipped_profiles() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-configs/profiles")
    }

    #[test]
    fn every_shipped_profile_loads() {
        let mut names: Vec<String> = std::fs::read_dir(shipped_profiles())
            .expect("profiles directory")
            .filter_map(|e| {
                let path = e.ok()?.path();
                (path.extension()? == "toml")
                    .then(|| path.file_stem()?.to_str().map(str::to_owned))?
            })
            // MQTT terminal profiles share the directory (src/ingest/mqtt/profile.rs).
            .filter(|name| !name.ends_with("-terminal"))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "autoclave-controller",
                "cylinder-filling-scale",
                "elevator-controller",
                "pressure-transmitter"
            ]
        );
        for name in &names {
            let profile = load_profile(&shipped_profiles(), name)
                .unwrap_or_else(|e| panic!("{name}: {:?}", e.problems));
            assert!(!profile.points.is_empty(), "{name}");
        }
        let metrics = |name: &str| -> Vec<String> {
            load_profile(&shipped_profiles(), name)
                .map(|p| p.points.into_iter().map(|p| p.metric).collect())
                .unwrap_or_default()
        };
        for m in [
            "pressure",
            "temperature",
            "door_closed_locked",
            "interlock_engaged",
        ] {
            assert!(
                metrics("autoclave-controller").contains(&m.to_owned()),
                "{m}"
            );
        }
        for m in [
            "car_status",
            "direction",
            "door_zone",
            "floor",
            "door_closed_locked",
            "occupied",
            "service_mode",
            "fault_code",
            "alarm_button",
        ] {
            assert!(
                metrics("elevator-controller").contains(&m.to_owned()),
                "{m}"
            );
        }
        for m in [
            "cylinder_code",
            "gross_mass",
            "tare_mass",
            "net_mass",
            "fill_state",
        ] {
            assert!(
                metrics("cylinder-filling-scale").contains(&m.to_owned()),
                "{m}"
            );
        }
        // One-based documentation is converted to protocol addresses.
        let autoclave = load_profile(&shipped_profiles(), "autoclave-controller").ok();
        let pressure = autoclave
            .as_ref()
            .and_then(|p| p.points.iter().find(|p| p.metric == "pressure"));
        assert_eq!(pressure.map(|p| p.address), Some(0));
    }

    fn profile_problems(text: &str) -> Vec<String> {
        match parse_profile("p", text, Path::new("p.toml")) {
            Ok(_) => vec![],
            Err(e) => e
                .problems
                .iter()
                .map(|l| format!("{}:{} {}", l.line, l.column, l.message))
                .collect(),
        }
    }

    #[test]
    fn one_fixture_per_kind_of_profile_mistake() {
        let cases: [(&str, &str, &str); 11] = [
            ("unknown field", "[[register]]\nmetric = \"a\"\ntable = \"holding\"\naddress = 0\ntype = \"u16\"\nscael = 2.0\n", "unknown field `scael`"),
            ("overlap", "[[register]]\nmetric = \"a\"\ntable = \"holding\"\naddress = 0\ntype = \"f32\"\n[[register]]\nmetric = \"b\"\ntable = \"holding\"\naddress = 1\ntype = \"u16\"\n", "6:1 `b` (holding 1..2) overlaps `a` (holding 0..2)"),
            ("same bit twice", "[[register]]\nmetric = \"a\"\ntable = \"holding\"\naddress = 0\ntype = \"bit\"\nbit = 1\n[[register]]\nmetric = \"b\"\ntable = \"holding\"\naddress = 0\ntype = \"bit\"\nbit = 1\n", "overlaps `a`"),
            ("bit out of range", "[[register]]\nmetric = \"a\"\ntable = \"holding\"\naddress = 0\ntype = \"bit\"\nbit = 16\n", "6:7 bit 16 is outside a register"),
            ("string without length", "[[register]]\nmetric = \"a\"\ntable = \"holding\"\naddress = 0\ntype = \"string\"\n", "type \"string\" needs `registers`"),
            ("oversized string", "[[register]]\nmetric = \"a\"\ntable = \"holding\"\naddress = 0\ntype = \"string\"\nregisters = 200\n", "a string of 200 registers cannot be read"),
            ("type on a coil", "[[register]]\nmetric = \"a\"\ntable = \"coil\"\naddress = 0\ntype = \"f32\"\n", "a coil holds one bit; type f32 does not fit"),
            ("past the end", "[[register]]\nmetric = \"a\"\ntable = \"input\"\naddress = 65535\ntype = \"u32\"\n", "address 65535 with 2 registers is outside the table"),
            ("one-based zero", "one_based = true\n[[register]]\nmetric = \"a\"\ntable = \"input\"\naddress = 0\ntype = \"u16\"\n", "address 0 with 1 registers is outside the table"),
            ("undeclared group", "[[register]]\nmetric = \"a\"\ntable = \"input\"\naddress = 0\ntype = \"u16\"\ngroup = \"fats\"\n", "group `fats` is not declared"),
            ("word-swapped text", "[[register]]\nmetric = \"a\"\ntable = \"input\"\naddress = 0\ntype = \"string\"\nregisters = 2\norder = \"CDAB\"\n", "order CDAB swaps words"),
        ];
        for (name, text, expected) in cases {
            let problems = profile_problems(text);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{name}: expected `{expected}` in {problems:?}"
            );
        }
        assert!(profile_problems("[[register]]\nmetric = \"a\"\ntable = \"holding\"\naddress = 0\ntype = \"bit\"\nbit = 1\n[[register]]\nmetric = \"b\"\ntable = \"holding\"\naddress = 0\ntype = \"bit\"\nbit = 2\n").is_empty());
    }

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
