//! Pure mapping from an MQTT message (topic and JSON payload) to readings. No I/O, no clock:
//! the arrival time is passed in.
//!
//! Size: about 650 lines, 290 of them the table tests of payloads, topics and times.

use std::collections::HashSet;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value as Json;

use super::config::{FieldMapping, MqttMapping, TimeFormat, TopicSegment};
use super::payload::{tokens, Payload, Tokens};
use crate::ingest::codes::{Lookup, UnknownCode};
use crate::model::ValueType;
use crate::model::{Quality, Reading, Source, Value};

/// Why a message was not turned into readings. Each reason is a label of
/// `seguard_messages_rejected_total`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("payload of {size} bytes is above the limit of {limit} bytes")]
    Oversized { size: usize, limit: usize },
    #[error("payload is not JSON: {0}")]
    Malformed(String),
    #[error("topic matches no mapping")]
    NoMapping,
    #[error("equipment `{0}` is not in the registry")]
    UnknownEquipment(String),
    #[error("field `{pointer}` for metric `{metric}` should be {expected}, found {found}")]
    WrongType {
        pointer: String,
        metric: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("metric `{metric}` is not a finite number after scaling")]
    NonFinite { metric: String },
    #[error("time field `{pointer}` is not a valid {format:?} time")]
    BadTime { pointer: String, format: TimeFormat },
    #[error("payload has none of the mapped fields")]
    NoFields,
    #[error("field `{pointer}` for metric `{metric}` sent code {code}, which its code table does not list")]
    UnknownCode {
        pointer: String,
        metric: String,
        code: String,
    },
}

impl Rejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Oversized { .. } => "oversized",
            Rejection::Malformed(_) => "malformed",
            Rejection::NoMapping => "no_mapping",
            Rejection::UnknownEquipment(_) => "unknown_equipment",
            Rejection::WrongType { .. } => "wrong_type",
            Rejection::NonFinite { .. } => "non_finite",
            Rejection::BadTime { .. } => "bad_time",
            Rejection::NoFields => "no_fields",
            Rejection::UnknownCode { .. } => "unknown_code",
        }
    }

    pub const ALL_REASONS: [&'static str; 9] = [
        "oversized",
        "malformed",
        "no_mapping",
        "unknown_equipment",
        "wrong_type",
        "non_finite",
        "bad_time",
        "no_fields",
        "unknown_code",
    ];
}

/// What one message became.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub readings: Vec<Reading>,
    /// Text values that held control characters (NUL included), replaced by U+FFFD so they
    /// cannot reach a store or an incident; one entry per reading, by metric.
    pub cleaned: Vec<String>,
    /// Codes missing from a code table that became a bad-quality reading (`unknown = "bad"`)
    /// or the table's unknown value: (metric, code).
    pub unknown_codes: Vec<(String, String)>,
}

pub struct Mapper {
    mappings: Vec<MqttMapping>,
    /// The pointers of each mapping, split into tokens once.
    pointers: Vec<Pointers>,
    known_equipment: HashSet<String>,
    max_payload_bytes: usize,
}

/// A mapping's time pointer and field pointers (in the order of its fields), as tokens.
struct Pointers {
    time: Option<Tokens>,
    fields: Vec<Tokens>,
}

impl Mapper {
    pub fn new(
        mappings: Vec<MqttMapping>,
        known_equipment: HashSet<String>,
        max_payload_bytes: usize,
    ) -> Self {
        let pointers = mappings
            .iter()
            .map(|m| Pointers {
                time: m.time.as_ref().map(|(pointer, _)| tokens(pointer)),
                fields: m.fields.iter().map(|f| tokens(&f.pointer)).collect(),
            })
            .collect();
        Mapper {
            mappings,
            pointers,
            known_equipment,
            max_payload_bytes,
        }
    }

    /// The topic filters to subscribe to, one per mapping, without repeats.
    pub fn filters(&self) -> Vec<String> {
        let mut filters: Vec<String> = self.mappings.iter().map(MqttMapping::filter).collect();
        filters.sort();
        filters.dedup();
        filters
    }

    pub fn map(
        &self,
        topic: &str,
        payload: &[u8],
        arrival: DateTime<Utc>,
    ) -> Result<Mapped, Rejection> {
        if payload.len() > self.max_payload_bytes {
            return Err(Rejection::Oversized {
                size: payload.len(),
                limit: self.max_payload_bytes,
            });
        }
        let (mapping, pointers, equipment) = self
            .mappings
            .iter()
            .zip(&self.pointers)
            .find_map(|(m, p)| match_topic(m, topic).map(|e| (m, p, e)))
            .ok_or(Rejection::NoMapping)?;
        if !self.known_equipment.contains(equipment) {
            return Err(Rejection::UnknownEquipment(equipment.to_owned()));
        }
        let json = Payload::parse(payload).map_err(malformed)?;
        let time = match (&mapping.time, &pointers.time) {
            (Some((pointer, format)), Some(tokens)) => {
                match json.find(tokens).map_err(malformed)? {
                    None | Some(Json::Null) => arrival,
                    Some(t) => parse_time(&t, *format).ok_or_else(|| Rejection::BadTime {
                        pointer: pointer.clone(),
                        format: *format,
                    })?,
                }
            }
            _ => arrival,
        };
        let mut mapped = Mapped {
            readings: Vec::with_capacity(mapping.fields.len()),
            cleaned: Vec::new(),
            unknown_codes: Vec::new(),
        };
        for (field, tokens) in mapping.fields.iter().zip(&pointers.fields) {
            let Some(raw) = json
                .find(tokens)
                .map_err(malformed)?
                .filter(|v| !v.is_null())
            else {
                continue;
            };
            let (value, quality) = match decode(field, &raw)? {
                Decoded::Value(value) => (value, Quality::Good),
                Decoded::UnknownAsValue(value, code) => {
                    mapped.unknown_codes.push((field.metric.clone(), code));
                    (value, Quality::Good)
                }
                Decoded::UnknownAsBad(code) => {
                    let reason = format!("code {code} is not in the code table");
                    mapped.unknown_codes.push((field.metric.clone(), code));
                    (Value::Text(reason), Quality::Bad)
                }
            };
            let value = match value {
                Value::Text(text) if text.chars().any(char::is_control) => {
                    mapped.cleaned.push(field.metric.clone());
                    Value::Text(clean_text(&text))
                }
                other => other,
            };
            mapped.readings.push(Reading {
                equipment: equipment.to_owned(),
                metric: field.metric.clone(),
                value,
                unit: field.unit.clone(),
                time,
                quality,
                source: Source::Mqtt,
            });
        }
        if mapped.readings.is_empty() {
            return Err(Rejection::NoFields);
        }
        Ok(mapped)
    }
}

fn malformed(e: serde_json::Error) -> Rejection {
    Rejection::Malformed(e.to_string())
}

/// The equipment id a topic names under this mapping, or `None` when it does not match.
fn match_topic<'a>(mapping: &'a MqttMapping, topic: &'a str) -> Option<&'a str> {
    let mut equipment = mapping.equipment.as_deref();
    let mut parts = topic.split('/');
    for segment in &mapping.segments {
        let part = parts.next()?;
        match segment {
            TopicSegment::Literal(l) if l != part => return None,
            TopicSegment::Literal(_) | TopicSegment::Any => {}
            TopicSegment::Equipment => equipment = Some(part),
        }
    }
    if parts.next().is_some() {
        return None;
    }
    equipment
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "text",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// A text value with every control character (NUL, escape, a newline...) replaced by U+FFFD:
/// a terminal's text is a floor or a code, never a layout, and a NUL is refused by stores.
pub fn clean_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

enum Decoded {
    Value(Value),
    /// A code not in the table (the second), replaced by the table's unknown value.
    UnknownAsValue(Value, String),
    /// A code not in the table, kept as a bad-quality reading.
    UnknownAsBad(String),
}

/// A field's value: through its code table when it has one, else by type.
fn decode(field: &FieldMapping, raw: &Json) -> Result<Decoded, Rejection> {
    let Some(codes) = &field.codes else {
        return convert(field, raw).map(Decoded::Value);
    };
    if matches!(raw, Json::Array(_) | Json::Object(_)) {
        return Err(Rejection::WrongType {
            pointer: field.pointer.clone(),
            metric: field.metric.clone(),
            expected: "a code (number, text or bool)",
            found: json_type(raw),
        });
    }
    match codes.lookup(raw) {
        Lookup::Known(value) => Ok(Decoded::Value(value)),
        Lookup::Unknown(code) => match &codes.unknown {
            UnknownCode::Value(value) => {
                Ok(Decoded::UnknownAsValue(value.clone(), clean_text(&code)))
            }
            UnknownCode::Bad => Ok(Decoded::UnknownAsBad(clean_text(&code))),
            UnknownCode::Reject => Err(Rejection::UnknownCode {
                pointer: field.pointer.clone(),
                metric: field.metric.clone(),
                code: clean_text(&code),
            }),
        },
    }
}

fn convert(field: &FieldMapping, raw: &Json) -> Result<Value, Rejection> {
    let wrong = |expected| Rejection::WrongType {
        pointer: field.pointer.clone(),
        metric: field.metric.clone(),
        expected,
        found: json_type(raw),
    };
    match field.value_type {
        ValueType::Number => {
            let n = raw.as_f64().ok_or_else(|| wrong("a number"))?;
            let scaled = scale(n, field.scale) + field.offset;
            if !scaled.is_finite() {
                return Err(Rejection::NonFinite {
                    metric: field.metric.clone(),
                });
            }
            Ok(Value::Number(scaled))
        }
        // Terminals often send flags as 0/1; anything else is a type error.
        ValueType::Bool => match raw {
            Json::Bool(b) => Ok(Value::Bool(*b)),
            Json::Number(n) if n.as_u64() == Some(0) => Ok(Value::Bool(false)),
            Json::Number(n) if n.as_u64() == Some(1) => Ok(Value::Bool(true)),
            _ => Err(wrong("a boolean or 0/1")),
        },
        // Floors ("B2") and codes are text; integer floors are accepted and kept as text.
        ValueType::Text => match raw {
            Json::String(s) => Ok(Value::Text(s.clone())),
            Json::Number(n) if n.is_i64() || n.is_u64() => Ok(Value::Text(n.to_string())),
            _ => Err(wrong("text")),
        },
    }
}

/// `value * scale`, except that a scale like 1e-6 (Pa to MPa) divides by 1e6 instead: decimal
/// fractions are not exact in binary, and dividing by the exact power gives the correctly
/// rounded result (1560000 Pa is 1.56 MPa, not 1.5599999999999998).
fn scale(value: f64, scale: f64) -> f64 {
    let inverse = 1.0 / scale;
    if scale.abs() < 1.0 && (inverse - inverse.round()).abs() <= 1e-9 * inverse.abs() {
        value / inverse.round()
    } else {
        value * scale
    }
}

/// The time in a payload field. Only times that fit in i64 nanoseconds since 1970 (the years
/// 1677 to 2262) are valid: that is how the uplinks write them.
fn parse_time(raw: &Json, format: TimeFormat) -> Option<DateTime<Utc>> {
    let from_nanos = |ns: i128| -> Option<DateTime<Utc>> {
        let ns = i64::try_from(ns).ok()?;
        Some(Utc.timestamp_nanos(ns))
    };
    match format {
        TimeFormat::Rfc3339 => DateTime::parse_from_rfc3339(raw.as_str()?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| t.timestamp_nanos_opt().is_some()),
        TimeFormat::UnixS => from_nanos(i128::from(raw.as_i64()?) * 1_000_000_000),
        TimeFormat::UnixMs => from_nanos(i128::from(raw.as_i64()?) * 1_000_000),
        TimeFormat::UnixUs => from_nanos(i128::from(raw.as_i64()?) * 1_000),
        TimeFormat::UnixNs => from_nanos(i128::from(raw.as_i64()?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CONFIG: &str = r#"
[site]
id = "s1"
name = "test site"
[gateway]
id = "gw1"
[mqtt]
host = "127.0.0.1"
max_payload_bytes = 200
[[equipment]]
id = "lift-1"
kind = "elevator"
registration_code = "31101101002019000001"
[[ingest.mqtt]]
topic = "site/{site}/{equipment}/telemetry"
time_pointer = "/ts"
time_format = "unix_ms"
fields = [
  { pointer = "/floor", metric = "floor", type = "text" },
  { pointer = "/occupied", metric = "occupied", type = "bool" },
  { pointer = "/speed", metric = "speed", unit = "m/s" },
  { pointer = "/load", metric = "load", unit = "kg", scale = 1e300 },
]
"#;

    fn mapper() -> Mapper {
        let config =
            crate::config::parse(CONFIG, Path::new("test.toml")).expect("test config is valid");
        let known = config.equipment.iter().map(|e| e.id.clone()).collect();
        Mapper::new(config.mqtt_mappings, known, 200)
    }

    fn arrival() -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn maps_fields_with_types_units_and_payload_time() {
        let readings = mapper()
            .map(
                "site/s1/lift-1/telemetry",
                br#"{"ts": 1800000001500, "floor": "B2", "occupied": 1, "speed": 1.5}"#,
                arrival(),
            )
            .unwrap()
            .readings;
        let got: Vec<(&str, &Value, Option<&str>)> = readings
            .iter()
            .map(|r| (r.metric.as_str(), &r.value, r.unit.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("floor", &Value::Text("B2".into()), None),
                ("occupied", &Value::Bool(true), None),
                ("speed", &Value::Number(1.5), Some("m/s")),
            ]
        );
        assert_eq!(
            readings[0].time,
            Utc.timestamp_millis_opt(1_800_000_001_500).unwrap()
        );
    }

    #[test]
    fn missing_time_uses_arrival() {
        let readings = mapper()
            .map("site/s1/lift-1/telemetry", br#"{"floor": 3}"#, arrival())
            .unwrap()
            .readings;
        assert_eq!(readings[0].time, arrival());
        assert_eq!(readings[0].value, Value::Text("3".into()));
    }

    /// Each kind of bad message and the reason it is counted under.
    #[test]
    fn bad_messages_are_rejected_with_their_reason() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("site/s1/lift-1/telemetry", b"{not json", "malformed"),
            (
                "site/s1/lift-1/telemetry",
                br#"{"speed": NaN}"#,
                "malformed",
            ),
            (
                "site/s1/lift-1/telemetry",
                br#"{"speed": 1e999}"#,
                "malformed",
            ),
            ("site/s1/lift-1/telemetry", &[b' '; 201], "oversized"),
            (
                "site/s1/lift-1/telemetry",
                br#"{"speed": "fast"}"#,
                "wrong_type",
            ),
            (
                "site/s1/lift-1/telemetry",
                br#"{"occupied": 2}"#,
                "wrong_type",
            ),
            (
                "site/s1/lift-1/telemetry",
                br#"{"floor": [1]}"#,
                "wrong_type",
            ),
            (
                "site/s1/lift-1/telemetry",
                br#"{"load": 1e10}"#,
                "non_finite",
            ),
            (
                "site/s1/lift-1/telemetry",
                br#"{"ts": "yesterday", "speed": 1}"#,
                "bad_time",
            ),
            ("site/s1/lift-1/telemetry", br#"{"other": 1}"#, "no_fields"),
            (
                "site/s1/lift-9/telemetry",
                br#"{"speed": 1}"#,
                "unknown_equipment",
            ),
            ("site/s2/lift-1/telemetry", br#"{"speed": 1}"#, "no_mapping"),
            (
                "site/s1/lift-1/telemetry/extra",
                br#"{"speed": 1}"#,
                "no_mapping",
            ),
        ];
        let mapper = mapper();
        for (topic, payload, reason) in cases {
            let got = mapper.map(topic, payload, arrival());
            assert_eq!(
                got.as_ref().map_err(Rejection::reason),
                Err(*reason),
                "topic {topic} payload {:?}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    /// Fuzz finding (fuzz/README.md): an RFC 3339 time after 2262 or before 1677 was accepted,
    /// and the line-protocol encoder, which writes nanoseconds, then wrote it as 1970.
    #[test]
    fn rfc3339_times_outside_the_nanosecond_range_are_bad_times() {
        let time = |s: &str| parse_time(&Json::String(s.into()), TimeFormat::Rfc3339);
        assert!(time("2262-04-11T23:47:16Z").is_some());
        assert!(time("1677-09-21T00:12:44Z").is_some());
        assert_eq!(time("2262-04-11T23:47:17Z"), None);
        assert_eq!(time("1677-09-21T00:12:43Z"), None);
        assert_eq!(time("9999-12-31T23:59:59+08:00"), None);
    }

    #[test]
    fn decimal_scales_round_correctly() {
        assert_eq!(scale(1_560_000.0, 1e-6), 1.56);
        assert_eq!(scale(1_650_000.0, 1e-6), 1.65);
        assert_eq!(scale(15.0, 0.1), 1.5);
        assert_eq!(
            scale(3.0, 0.3),
            3.0 * 0.3,
            "a scale that is not 1/n multiplies"
        );
        assert_eq!(scale(2.0, 1000.0), 2000.0);
    }

    const CODED: &str = r#"
[site]
id = "s1"
name = "test site"
[gateway]
id = "gw1"
[mqtt]
host = "127.0.0.1"
[[equipment]]
id = "lift-1"
kind = "elevator"
registration_code = "31101101002019000001"
[[ingest.mqtt]]
topic = "t/{equipment}"
fields = [
  { pointer = "/car", metric = "car_status", type = "text", values = { 0 = "stopped", 1 = "running" }, unknown = "reject" },
  { pointer = "/zone", metric = "door_zone", type = "bool", values = { 0 = false, 1 = true }, unknown = "bad" },
  { pointer = "/mode", metric = "service_mode", type = "text", values = { 1 = "normal", 2 = "inspection" }, unknown = { value = "unknown" } },
  { pointer = "/floor", metric = "floor", type = "text" },
]
"#;

    fn coded() -> Mapper {
        let config =
            crate::config::parse(CODED, Path::new("coded.toml")).unwrap_or_else(|e| panic!("{e}"));
        Mapper::new(config.mqtt_mappings, ["lift-1".to_owned()].into(), 4096)
    }

    /// Codes become the values the rules read; an unknown code is handled as the field says.
    #[test]
    fn code_tables_map_codes_and_handle_unknown_ones() {
        let map = |payload: &str| coded().map("t/lift-1", payload.as_bytes(), arrival());
        let values = |m: &Mapped| -> Vec<(String, Value, Quality)> {
            m.readings
                .iter()
                .map(|r| (r.metric.clone(), r.value.clone(), r.quality))
                .collect()
        };
        let got = map(r#"{"car": 0, "zone": 1, "mode": "2"}"#).unwrap();
        assert_eq!(
            values(&got),
            [
                (
                    "car_status".into(),
                    Value::Text("stopped".into()),
                    Quality::Good
                ),
                ("door_zone".into(), Value::Bool(true), Quality::Good),
                (
                    "service_mode".into(),
                    Value::Text("inspection".into()),
                    Quality::Good
                ),
            ]
        );
        assert!(got.unknown_codes.is_empty());
        let got = map(r#"{"car": 1, "zone": 2, "mode": 7}"#).unwrap();
        assert_eq!(
            values(&got),
            [
                (
                    "car_status".into(),
                    Value::Text("running".into()),
                    Quality::Good
                ),
                (
                    "door_zone".into(),
                    Value::Text("code 2 is not in the code table".into()),
                    Quality::Bad
                ),
                (
                    "service_mode".into(),
                    Value::Text("unknown".into()),
                    Quality::Good
                ),
            ]
        );
        assert_eq!(
            got.unknown_codes,
            [
                ("door_zone".to_owned(), "2".to_owned()),
                ("service_mode".to_owned(), "7".to_owned())
            ]
        );
        assert_eq!(
            map(r#"{"car": 5, "zone": 1}"#).map_err(|r| r.reason()),
            Err("unknown_code")
        );
        assert_eq!(
            map(r#"{"car": [0]}"#).map_err(|r| r.reason()),
            Err("wrong_type")
        );
    }

    /// Issue 13: a NUL in a floor reached central inside a trapped incident, which refused it.
    #[test]
    fn control_characters_in_text_are_replaced_and_counted() {
        let got = coded()
            .map(
                "t/lift-1",
                br#"{"floor": "7\u0000x\u001b[2J", "car": 0}"#,
                arrival(),
            )
            .unwrap();
        assert_eq!(
            got.readings[1].value,
            Value::Text("7\u{FFFD}x\u{FFFD}[2J".into())
        );
        assert_eq!(got.cleaned, ["floor"]);
        let got = coded()
            .map("t/lift-1", br#"{"floor": "B2"}"#, arrival())
            .unwrap();
        assert_eq!(got.readings[0].value, Value::Text("B2".into()));
        assert!(got.cleaned.is_empty());
    }

    #[test]
    fn subscription_filter_replaces_placeholders() {
        assert_eq!(mapper().filters(), vec!["site/s1/+/telemetry".to_owned()]);
    }
}
