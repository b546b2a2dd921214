//! Line-protocol encoding of names and of arbitrary text, checked against an independent parser
//! (the `influxdb-line-protocol` crate's, which InfluxDB 3 uses).
//!
//! Names (site, gateway, equipment, metric) are those the config check accepts; text values
//! are anything.
//! Input: records separated by 0x1E, fields by 0x1F. The first record is `site`, `gateway`;
//! each further one is a reading: `equipment`, `kind` (e, s, p, a, c or f; anything else is an
//! equipment without a kind), `metric`, `value` (`n` and a number, `b` and 0/1, `t` and text),
//! `time` in ns, `quality` (g, b or s).
//! Properties: every line parses; a line holds what the readings said (measurement, the three
//! tags, fields, values, timestamp), in order; no line holds a raw newline or carriage return.
#![no_main]

use std::collections::HashMap;

use chrono::{TimeZone, Utc};
use influxdb_line_protocol::{parse_lines, FieldValue};
use libfuzzer_sys::fuzz_target;
use seguard::config::{is_valid_id, is_valid_metric_name};
use seguard::model::{EquipmentKind, Quality, Reading, Source, Value};
use seguard::uplink::influx::line::Encoder;
use seguard::uplink::influx::Point;

fn kind(code: &str) -> Option<EquipmentKind> {
    Some(match code {
        "e" => EquipmentKind::Elevator,
        "s" => EquipmentKind::Escalator,
        "p" => EquipmentKind::PressureVessel,
        "a" => EquipmentKind::Autoclave,
        "c" => EquipmentKind::GasCylinder,
        "f" => EquipmentKind::FillingStation,
        _ => return None,
    })
}

fn value(text: &str) -> Option<Value> {
    let (code, rest) = text.split_at(text.char_indices().nth(1).map_or(text.len(), |(i, _)| i));
    match code {
        // Readings only ever hold finite numbers: mapping and decoding refuse the others.
        "n" => rest
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Value::Number),
        "b" => Some(Value::Bool(rest == "1")),
        "t" => Some(Value::Text(rest.to_owned())),
        _ => None,
    }
}

/// What a reader of the line gets back for a text value: line protocol has no escape for a
/// newline or a carriage return, so the encoder writes them as `\n` and `\r`.
fn as_written(s: &str) -> String {
    s.replace('\n', "\\n").replace('\r', "\\r")
}

/// One line as the encoder should write it.
struct Expected {
    measurement: String,
    tags: Vec<(String, String)>,
    /// Metric and value; `None` for the `1i` flag of a `seguard_quality` line.
    fields: Vec<(String, Option<Value>)>,
    ns: i64,
}

fn same_value(parsed: &FieldValue<'_>, value: &Value) -> bool {
    match (parsed, value) {
        (FieldValue::F64(p), Value::Number(n)) => p == n,
        (FieldValue::Boolean(p), Value::Bool(b)) => p == b,
        (FieldValue::String(p), Value::Text(t)) => p.as_str() == as_written(t),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut records = text.split('\u{1e}');
    let Some(head) = records.next() else { return };
    let Some((site, gateway)) = head.split_once('\u{1f}') else {
        return;
    };
    let mut kinds = HashMap::new();
    let mut readings = Vec::new();
    for record in records {
        let fields: Vec<&str> = record.split('\u{1f}').collect();
        let [equipment, kind_code, metric, value_text, ns, quality] = fields[..] else {
            return;
        };
        let (Some(value), Ok(ns)) = (value(value_text), ns.parse::<i64>()) else {
            return;
        };
        let quality = match quality {
            "g" => Quality::Good,
            "s" => Quality::Stale,
            _ => Quality::Bad,
        };
        if let Some(k) = kind(kind_code) {
            kinds.insert(equipment.to_owned(), k);
        }
        readings.push(Reading {
            equipment: equipment.to_owned(),
            metric: metric.to_owned(),
            value,
            unit: None,
            time: Utc.timestamp_nanos(ns),
            quality,
            source: Source::Mqtt,
        });
    }
    // Names are what the config check lets through; text values are anything.
    if ![site, gateway].iter().all(|id| is_valid_id(id))
        || !readings
            .iter()
            .all(|r| is_valid_id(&r.equipment) && is_valid_metric_name(&r.metric))
    {
        return;
    }

    let encoder = Encoder::new(site, gateway, kinds.clone());
    let body = String::from_utf8(encoder.encode(&Point::group(readings.clone())))
        .expect("line protocol is UTF-8");
    assert!(
        body.is_empty() || body.ends_with('\n'),
        "every line ends with a newline"
    );
    let lines: Vec<&str> = body.lines().collect();
    for line in &lines {
        assert!(!line.contains('\r'), "raw carriage return in {line:?}");
    }

    // The lines the encoder should write: good readings of one equipment at one instant share a
    // line; every other reading has a line of its own in `seguard_quality`.
    let mut expected: Vec<Expected> = Vec::new();
    let mut rest = &readings[..];
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .take_while(|r| r.equipment == first.equipment && r.time == first.time)
            .count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        let ns = first.time.timestamp_nanos_opt().unwrap();
        let tags = |r: &Reading| {
            vec![
                ("site".to_owned(), site.to_owned()),
                ("gateway".to_owned(), gateway.to_owned()),
                ("equipment".to_owned(), r.equipment.clone()),
            ]
        };
        let good: Vec<(String, Option<Value>)> = group
            .iter()
            .filter(|r| r.quality == Quality::Good)
            .map(|r| (r.metric.clone(), Some(r.value.clone())))
            .collect();
        if !good.is_empty() {
            let measurement = kinds
                .get(&first.equipment)
                .map_or("equipment", |k| k.as_str());
            expected.push(Expected {
                measurement: measurement.to_owned(),
                tags: tags(first),
                fields: good,
                ns,
            });
        }
        for r in group.iter().filter(|r| r.quality != Quality::Good) {
            let mut t = tags(r);
            t.push(("metric".to_owned(), r.metric.clone()));
            let flag = if r.quality == Quality::Stale {
                "stale"
            } else {
                "bad"
            };
            expected.push(Expected {
                measurement: "seguard_quality".to_owned(),
                tags: t,
                fields: vec![(flag.to_owned(), None)],
                ns,
            });
        }
    }

    assert_eq!(
        body.matches('\n').count(),
        expected.len(),
        "a newline ends each line and appears nowhere else: {body:?}"
    );
    let parsed: Vec<_> = parse_lines(&body).collect();
    assert_eq!(parsed.len(), expected.len(), "line count of {body:?}");
    for (line, want) in parsed.into_iter().zip(expected) {
        let line = line.unwrap_or_else(|e| panic!("{body:?} does not parse: {e}"));
        assert_eq!(line.series.measurement.as_str(), want.measurement);
        let got_tags: Vec<(String, String)> = line
            .series
            .tag_set
            .iter()
            .flatten()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got_tags, want.tags, "tags of {body:?}");
        assert_eq!(
            line.field_set.len(),
            want.fields.len(),
            "fields of {body:?}"
        );
        for ((key, got), (metric, value)) in line.field_set.iter().zip(&want.fields) {
            assert_eq!(key.as_str(), metric, "field key in {body:?}");
            match value {
                None => assert_eq!(*got, FieldValue::I64(1), "quality flag in {body:?}"),
                Some(value) => assert!(
                    same_value(got, value),
                    "{metric}: {got:?} for {value:?} in {body:?}"
                ),
            }
        }
        assert_eq!(line.timestamp, Some(want.ns), "timestamp in {body:?}");
    }
});
