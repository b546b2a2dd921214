//! InfluxDB line protocol: one encoder for the v1 and v2 write APIs.
//!
//! Measurement = equipment kind; tags = site, gateway, equipment; fields = metrics; timestamps in
//! nanoseconds. A point (one equipment at one instant, `point.rs`) is one line. Readings
//! that are not of good quality carry no value; they go to the `seguard_quality` measurement as
//! `bad=1i` or `stale=1i` with the metric as a tag, so a gap in a series can be explained.
//!
//! Names (site, gateway, equipment, metric) are what the config check lets through
//! (`config::is_valid_id`, `config::is_valid_metric_name`); the encoder escapes their commas,
//! equals signs and spaces. Text values can hold anything a device sends. Line protocol has no
//! escape for a newline or a carriage return, and a raw one splits the line for line-oriented
//! readers, so text values carry them as the two characters `\n` and `\r`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::RwLock;

use super::Point;
use crate::model::{EquipmentKind, Quality, Reading, Value};

/// What a measurement escapes (a backslash too, always).
const MEASUREMENT: &[u8] = b", ";
/// What a tag key or value and a field key escape.
const NAME: &[u8] = b",= ";
/// What a string field value escapes.
const STRING: &[u8] = b"\"";

pub struct Encoder {
    /// `,site=…,gateway=…`, escaped once.
    tags: String,
    /// equipment → kind, the measurement; replaced when a config reload changes the registry.
    kinds: RwLock<HashMap<String, EquipmentKind>>,
}

impl Encoder {
    pub fn new(site: &str, gateway: &str, kinds: HashMap<String, EquipmentKind>) -> Self {
        let mut tags = Vec::new();
        tags.extend_from_slice(b",site=");
        escape(&mut tags, site, NAME);
        tags.extend_from_slice(b",gateway=");
        escape(&mut tags, gateway, NAME);
        Encoder {
            tags: String::from_utf8(tags).expect("escaping keeps UTF-8"),
            kinds: RwLock::new(kinds),
        }
    }

    pub fn set_kinds(&self, kinds: HashMap<String, EquipmentKind>) {
        *self.kinds.write().expect("kinds lock") = kinds;
    }

    /// Line protocol for `points`: one line per point (its fields of good quality), and one
    /// `seguard_quality` line per reading of other quality.
    pub fn encode(&self, points: &[Point]) -> Vec<u8> {
        let fields: usize = points.iter().map(|p| p.readings.len()).sum();
        let mut out = Vec::with_capacity(fields * 24 + points.len() * 96);
        let kinds = self.kinds.read().expect("kinds lock");
        for point in points {
            let Some(first) = point.readings.first() else {
                continue;
            };
            let time = first.time.timestamp_nanos_opt().unwrap_or_default();
            let mut good = point.readings.iter().filter(|r| r.quality == Quality::Good);
            if let Some(head) = good.next() {
                let measurement = kinds
                    .get(&first.equipment)
                    .map_or("equipment", |k| k.as_str());
                self.series(&mut out, measurement, &first.equipment);
                out.push(b' ');
                field(&mut out, head);
                for r in good {
                    out.push(b',');
                    field(&mut out, r);
                }
                end_line(&mut out, time);
            }
            for r in point.readings.iter().filter(|r| r.quality != Quality::Good) {
                let flag = if r.quality == Quality::Stale {
                    "stale"
                } else {
                    "bad"
                };
                self.series(&mut out, "seguard_quality", &r.equipment);
                out.extend_from_slice(b",metric=");
                escape(&mut out, &r.metric, NAME);
                out.push(b' ');
                out.extend_from_slice(flag.as_bytes());
                out.extend_from_slice(b"=1i");
                end_line(&mut out, time);
            }
        }
        out
    }

    /// `measurement,site=…,gateway=…,equipment=…`
    fn series(&self, out: &mut Vec<u8>, measurement: &str, equipment: &str) {
        escape(out, measurement, MEASUREMENT);
        out.extend_from_slice(self.tags.as_bytes());
        out.extend_from_slice(b",equipment=");
        escape(out, equipment, NAME);
    }
}

/// `key=value`: a float as Rust prints it, a bool as `true`/`false`, text quoted.
fn field(out: &mut Vec<u8>, r: &Reading) {
    escape(out, &r.metric, NAME);
    out.push(b'=');
    match &r.value {
        Value::Number(n) => number(out, *n),
        Value::Bool(v) => out.extend_from_slice(if *v { b"true" } else { b"false" }),
        Value::Text(t) => {
            out.push(b'"');
            one_line(out, t);
            out.push(b'"');
        }
    }
}

/// `n` as Rust's `{}` prints it (never an exponent; `1` for 1.0, `-0` for -0.0: shortest
/// digits that read back as the same f64), but without `core::fmt` in the usual case: `ryu`
/// writes shortest round-trip digits too, and differs only by its `.0` on whole numbers, its
/// exponent form for very large and very small values (those go through `{}`), and, where two
/// shortest forms both read back exactly, sometimes in the last digit.
fn number(out: &mut Vec<u8>, n: f64) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format(n);
    if text.contains('e') {
        let _ = write!(out, "{n}");
    } else {
        out.extend_from_slice(text.strip_suffix(".0").unwrap_or(text).as_bytes());
    }
}

fn end_line(out: &mut Vec<u8>, time: i64) {
    let _ = writeln!(out, " {time}");
}

/// Appends `text` with a backslash before each of `special` and before each backslash; a name
/// that needs no escape (the usual case) is copied in one piece.
fn escape(out: &mut Vec<u8>, text: &str, special: &[u8]) {
    let bytes = text.as_bytes();
    let mut from = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\\' || special.contains(b) {
            out.extend_from_slice(&bytes[from..i]);
            out.push(b'\\');
            from = i;
        }
    }
    out.extend_from_slice(&bytes[from..]);
}

/// A text value, escaped, with newlines and carriage returns written as `\n` and `\r`.
fn one_line(out: &mut Vec<u8>, text: &str) {
    if !text.contains(['\n', '\r']) {
        return escape(out, text, STRING);
    }
    escape(out, &text.replace('\n', "\\n").replace('\r', "\\r"), STRING);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Source;
    use chrono::{TimeZone, Utc};

    fn reading(equipment: &str, metric: &str, value: Value, ns: i64, quality: Quality) -> Reading {
        Reading {
            equipment: equipment.into(),
            metric: metric.into(),
            value,
            unit: None,
            time: Utc.timestamp_nanos(ns),
            quality,
            source: Source::Mqtt,
        }
    }

    /// Fuzz finding (fuzz/README.md): a text value with a newline (a terminal sending "B2\r\n")
    /// was written raw, which splits the line for line-oriented readers.
    #[test]
    fn newlines_in_text_values_stay_on_one_line() {
        let encoder = Encoder::new("s1", "gw1", HashMap::new());
        let readings = [reading(
            "lift-1",
            "floor",
            Value::Text("B2\r\n".into()),
            5,
            Quality::Good,
        )];
        let text = String::from_utf8(encoder.encode(&Point::group(readings.to_vec()))).unwrap();
        assert_eq!(
            text,
            "equipment,site=s1,gateway=gw1,equipment=lift-1 floor=\"B2\\\\r\\\\n\" 5\n"
        );
        let line = influxdb_line_protocol::parse_lines(&text)
            .next()
            .unwrap()
            .unwrap();
        match line.field_value("floor") {
            Some(influxdb_line_protocol::FieldValue::String(s)) => {
                assert_eq!(s.as_str(), "B2\\r\\n")
            }
            other => panic!("floor is {other:?}"),
        }
    }

    #[test]
    fn groups_fields_and_escapes_names() {
        let kinds = HashMap::from([
            ("lift 1".to_owned(), EquipmentKind::Elevator),
            ("pv=1".to_owned(), EquipmentKind::PressureVessel),
        ]);
        let encoder = Encoder::new("site,a", "gw", kinds);
        let readings = [
            reading(
                "lift 1",
                "floor",
                Value::Text("B\"2".into()),
                5,
                Quality::Good,
            ),
            reading("lift 1", "occupied", Value::Bool(true), 5, Quality::Good),
            reading("lift 1", "speed", Value::Number(1.5), 5, Quality::Good),
            reading("pv=1", "pressure", Value::Number(1.25), 7, Quality::Good),
            reading("pv=1", "temperature", Value::Number(0.0), 7, Quality::Bad),
        ];
        let text = String::from_utf8(encoder.encode(&Point::group(readings.to_vec()))).unwrap();
        assert_eq!(
            text,
            "elevator,site=site\\,a,gateway=gw,equipment=lift\\ 1 floor=\"B\\\"2\",occupied=true,speed=1.5 5\n\
             pressure_vessel,site=site\\,a,gateway=gw,equipment=pv\\=1 pressure=1.25 7\n\
             seguard_quality,site=site\\,a,gateway=gw,equipment=pv\\=1,metric=temperature bad=1i 7\n"
        );
    }

    #[test]
    fn numbers_read_back_exactly_and_never_with_an_exponent() {
        let written = |n: f64| {
            let mut out = Vec::new();
            number(&mut out, n);
            String::from_utf8(out).unwrap()
        };
        let special = [
            0.0,
            -0.0,
            1.0,
            -1.5,
            0.1,
            1.6,
            1e15,
            1e16,
            1e20,
            1.5e300,
            1e-5,
            1e-7,
            123456.789e-12,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            9007199254740993.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        // What a server reads: the same f64 (bit for bit), from plain decimal digits, as short
        // as `{}`'s.
        let same = |n: f64| {
            let text = written(n);
            let shown = format!("{n}");
            assert!(!text.contains(['e', 'E']), "{text}");
            assert_eq!(text.len(), shown.len(), "{text} / {shown}");
            if n.is_nan() {
                assert_eq!(text, "NaN");
            } else {
                assert_eq!(
                    text.parse::<f64>().unwrap().to_bits(),
                    n.to_bits(),
                    "{text}"
                );
            }
        };
        for n in special {
            same(n);
            assert_eq!(written(n), format!("{n}"), "{n:e}");
        }
        assert_eq!(written(1e20), "100000000000000000000");
        assert_eq!(written(-0.0), "-0");
        assert_eq!(written(2.0), "2");
        // Any bit pattern (xorshift); and decimals with a few digits, as sensors send them,
        // exactly as `{}` writes them.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            same(f64::from_bits(x));
            let d = (x % 10_000_000) as f64 / 10f64.powi((i % 8) as i32);
            assert_eq!(written(d), format!("{d}"), "{d:e}");
        }
    }
}
