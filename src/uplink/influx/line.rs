//! InfluxDB line protocol: one encoder for the v1 and v2 write APIs.
//!
//! Measurement = equipment kind; tags = site, gateway, equipment; fields = metrics; timestamps in
//! nanoseconds. A point (one equipment at one instant, `point.rs`) is one line. Readings
//! that are not of good quality carry no value; they go to the `seguard_quality` measurement as
//! `bad=1i` or `stale=1i` with the metric as a tag, so a gap in a series can be explained.
//!
//! Names (site, gateway, equipment, metric) are what the config check lets through
//! (`config::is_valid_id`, `config::is_valid_metric_name`); the builder escapes their commas,
//! equals signs and spaces. Text values can hold anything a device sends. Line protocol has no
//! escape for a newline or a carriage return, and a raw one splits the line for line-oriented
//! readers, so text values carry them as the two characters `\n` and `\r`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::RwLock;

use influxdb_line_protocol::builder::{AfterField, LineProtocolBuilder};

use super::Point;
use crate::model::{EquipmentKind, Quality, Reading, Value};

pub struct Encoder {
    site: String,
    gateway: String,
    /// equipment → kind, the measurement; replaced when a config reload changes the registry.
    kinds: RwLock<HashMap<String, EquipmentKind>>,
}

impl Encoder {
    pub fn new(site: &str, gateway: &str, kinds: HashMap<String, EquipmentKind>) -> Self {
        Encoder {
            site: site.to_owned(),
            gateway: gateway.to_owned(),
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
        let mut builder = LineProtocolBuilder::new_with(Vec::with_capacity(fields * 32 + 96));
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
                let tagged = builder
                    .measurement(measurement)
                    .tag("site", &self.site)
                    .tag("gateway", &self.gateway)
                    .tag("equipment", &first.equipment);
                let mut fields = add_field(tagged, head);
                for r in good {
                    fields = add_more(fields, r);
                }
                builder = fields.timestamp(time).close_line();
            }
            for r in point.readings.iter().filter(|r| r.quality != Quality::Good) {
                let flag = if r.quality == Quality::Stale {
                    "stale"
                } else {
                    "bad"
                };
                builder = builder
                    .measurement("seguard_quality")
                    .tag("site", &self.site)
                    .tag("gateway", &self.gateway)
                    .tag("equipment", &r.equipment)
                    .tag("metric", &r.metric)
                    .field(flag, 1i64)
                    .timestamp(time)
                    .close_line();
            }
        }
        builder.build()
    }
}

type Tagged = LineProtocolBuilder<Vec<u8>, influxdb_line_protocol::builder::AfterMeasurement>;
type Fielded = LineProtocolBuilder<Vec<u8>, AfterField>;

fn add_field(b: Tagged, r: &Reading) -> Fielded {
    match &r.value {
        Value::Number(n) => b.field(&r.metric, *n),
        Value::Bool(v) => b.field(&r.metric, *v),
        Value::Text(t) => b.field(&r.metric, one_line(t).as_ref()),
    }
}

fn add_more(b: Fielded, r: &Reading) -> Fielded {
    match &r.value {
        Value::Number(n) => b.field(&r.metric, *n),
        Value::Bool(v) => b.field(&r.metric, *v),
        Value::Text(t) => b.field(&r.metric, one_line(t).as_ref()),
    }
}

/// `text` with newlines and carriage returns written as `\n` and `\r`.
fn one_line(text: &str) -> Cow<'_, str> {
    if text.contains(['\n', '\r']) {
        Cow::Owned(text.replace('\n', "\\n").replace('\r', "\\r"))
    } else {
        Cow::Borrowed(text)
    }
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
}
