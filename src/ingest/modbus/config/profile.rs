//! Device profiles (`firmware-configs/profiles/<name>.toml`, one per device model) as written,
//! and their validation into a [`Profile`]: registers, types, orders, groups and overlaps.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::*;
use crate::diag::{toml_message, Located, Problem};

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

pub(super) fn is_valid_name(s: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

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
}
