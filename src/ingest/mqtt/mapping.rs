//! Pure mapping from an MQTT message (topic and JSON payload) to readings. No I/O, no clock:
//! the arrival time is passed in.

use std::collections::HashSet;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value as Json;

use crate::config::{FieldMapping, MqttMapping, TimeFormat, TopicSegment, ValueType};
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
        }
    }

    pub const ALL_REASONS: [&'static str; 8] = [
        "oversized",
        "malformed",
        "no_mapping",
        "unknown_equipment",
        "wrong_type",
        "non_finite",
        "bad_time",
        "no_fields",
    ];
}

pub struct Mapper {
    mappings: Vec<MqttMapping>,
    known_equipment: HashSet<String>,
    max_payload_bytes: usize,
}

impl Mapper {
    pub fn new(
        mappings: Vec<MqttMapping>,
        known_equipment: HashSet<String>,
        max_payload_bytes: usize,
    ) -> Self {
        Mapper {
            mappings,
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
    ) -> Result<Vec<Reading>, Rejection> {
        if payload.len() > self.max_payload_bytes {
            return Err(Rejection::Oversized {
                size: payload.len(),
                limit: self.max_payload_bytes,
            });
        }
        let (mapping, equipment) = self
            .mappings
            .iter()
            .find_map(|m| match_topic(m, topic).map(|e| (m, e)))
            .ok_or(Rejection::NoMapping)?;
        if !self.known_equipment.contains(equipment) {
            return Err(Rejection::UnknownEquipment(equipment.to_owned()));
        }
        let json: Json =
            serde_json::from_slice(payload).map_err(|e| Rejection::Malformed(e.to_string()))?;
        let time = match &mapping.time {
            Some((pointer, format)) => match json.pointer(pointer) {
                None | Some(Json::Null) => arrival,
                Some(t) => parse_time(t, *format).ok_or_else(|| Rejection::BadTime {
                    pointer: pointer.clone(),
                    format: *format,
                })?,
            },
            None => arrival,
        };
        let mut readings = Vec::with_capacity(mapping.fields.len());
        for field in &mapping.fields {
            let Some(raw) = json.pointer(&field.pointer).filter(|v| !v.is_null()) else {
                continue;
            };
            readings.push(Reading {
                equipment: equipment.to_owned(),
                metric: field.metric.clone(),
                value: convert(field, raw)?,
                unit: field.unit.clone(),
                time,
                quality: Quality::Good,
                source: Source::Mqtt,
            });
        }
        if readings.is_empty() {
            return Err(Rejection::NoFields);
        }
        Ok(readings)
    }
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
            .unwrap();
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
            .unwrap();
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

    #[test]
    fn subscription_filter_replaces_placeholders() {
        assert_eq!(mapper().filters(), vec!["site/s1/+/telemetry".to_owned()]);
    }
}
