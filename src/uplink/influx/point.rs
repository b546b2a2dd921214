//! The unit of a telemetry lane: a point in InfluxDB's sense, one equipment at one time with all
//! its fields (the readings of one message or one poll). A lane delivers or drops a point
//! whole, so a stored point never lacks some of its fields.
//!
//! On disk a point is JSON with its equipment and time once, the time in nanoseconds since the
//! epoch (`{"e":"pv-1","t":1790000000000000000,"f":[{"m":"p","v":1.45,"q":"good","s":"mqtt"}]}`,
//! `"u"` for a unit): formatting an RFC 3339 time per reading was the largest cost of a durable
//! push. A point whose time does not fit in i64 nanoseconds is written as an array of readings;
//! an entry written before points existed is a single reading, read as a point of one, so an
//! upgrade replays the old backlog.
//!
//! A point's readings are shared (`Arc`), never copied: a lane that keeps the newest points
//! decoded hands the same readings to the uplink, and the pipeline pushes one point into
//! several lanes, without a copy of its strings each time.

use std::borrow::Borrow;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{Quality, Reading, Source, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Of one equipment and one time; at least one.
    pub readings: Arc<[Reading]>,
}

impl Point {
    pub fn new(readings: Vec<Reading>) -> Point {
        Point {
            readings: readings.into(),
        }
    }

    /// Splits readings into points: each run of consecutive readings of one equipment at one
    /// time is one point.
    pub fn group(readings: Vec<Reading>) -> Vec<Point> {
        let mut points = Vec::new();
        let mut run: Vec<Reading> = Vec::new();
        for reading in readings {
            let same = run
                .first()
                .is_some_and(|r| r.equipment == reading.equipment && r.time == reading.time);
            if !same && !run.is_empty() {
                let fields = run.len();
                points.push(Point::new(std::mem::replace(
                    &mut run,
                    Vec::with_capacity(fields),
                )));
            }
            run.push(reading);
        }
        if !run.is_empty() {
            points.push(Point::new(run));
        }
        points
    }
}

/// A point as stored: equipment and time once.
#[derive(Serialize)]
struct CompactRef<'a> {
    e: &'a str,
    t: i64,
    f: Vec<FieldRef<'a>>,
}

#[derive(Serialize)]
struct FieldRef<'a> {
    m: &'a str,
    v: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    u: Option<&'a str>,
    q: Quality,
    s: Source,
}

#[derive(Deserialize)]
struct Compact {
    e: String,
    t: i64,
    f: Vec<Field>,
}

#[derive(Deserialize)]
struct Field {
    m: String,
    v: Value,
    #[serde(default)]
    u: Option<String>,
    q: Quality,
    s: Source,
}

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Run(&self.readings).serialize(serializer)
    }
}

/// Readings of one equipment at one time, stored as a point.
struct Run<'a, R>(&'a [R]);

impl<R: Borrow<Reading>> Serialize for Run<'_, R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let first = self.0.first().map(Borrow::borrow);
        let nanos = first.and_then(|r| r.time.timestamp_nanos_opt());
        match (first, nanos) {
            (Some(first), Some(t))
                if self
                    .0
                    .iter()
                    .map(Borrow::borrow)
                    .all(|r| r.equipment == first.equipment && r.time == first.time) =>
            {
                CompactRef {
                    e: &first.equipment,
                    t,
                    f: self
                        .0
                        .iter()
                        .map(Borrow::borrow)
                        .map(|r| FieldRef {
                            m: &r.metric,
                            v: &r.value,
                            u: r.unit.as_deref(),
                            q: r.quality,
                            s: r.source,
                        })
                        .collect(),
                }
                .serialize(serializer)
            }
            _ => serializer.collect_seq(self.0.iter().map(Borrow::borrow)),
        }
    }
}

/// `readings` as a JSON array of stored points, one per run of one equipment at one time, in
/// order: what `Vec<Point>` reads back (the rule journal's record, `gateway/checkpoint.rs`).
pub fn points_json<R: Borrow<Reading>>(readings: &[R]) -> Vec<u8> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=readings.len() {
        let ends = readings.get(i).is_none_or(|r| {
            let (a, b) = (readings[start].borrow(), r.borrow());
            a.equipment != b.equipment || a.time != b.time
        });
        if ends {
            runs.push(Run(&readings[start..i]));
            start = i;
        }
    }
    serde_json::to_vec(&runs).expect("readings serialize")
}

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Compact(Compact),
            Point(Vec<Reading>),
            /// Written by a version whose lane unit was one reading.
            Reading(Box<Reading>),
        }
        Ok(match Stored::deserialize(deserializer)? {
            Stored::Compact(c) => {
                let time = Utc.timestamp_nanos(c.t);
                Point {
                    readings: c
                        .f
                        .into_iter()
                        .map(|f| Reading {
                            equipment: c.e.clone(),
                            metric: f.m,
                            value: f.v,
                            unit: f.u,
                            time,
                            quality: f.q,
                            source: f.s,
                        })
                        .collect(),
                }
            }
            Stored::Point(readings) => Point::new(readings),
            Stored::Reading(reading) => Point::new(vec![*reading]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Quality, Source, Value};
    use chrono::{TimeZone, Utc};

    fn reading(equipment: &str, metric: &str, ns: i64) -> Reading {
        Reading {
            equipment: equipment.into(),
            metric: metric.into(),
            value: Value::Number(1.0),
            unit: None,
            time: Utc.timestamp_nanos(ns),
            quality: Quality::Good,
            source: Source::Mqtt,
        }
    }

    #[test]
    fn groups_runs_of_one_equipment_and_time() {
        let points = Point::group(vec![
            reading("a", "x", 1),
            reading("a", "y", 1),
            reading("a", "x", 2),
            reading("b", "x", 2),
            reading("b", "y", 2),
        ]);
        let sizes: Vec<usize> = points.iter().map(|p| p.readings.len()).collect();
        assert_eq!(sizes, vec![2, 1, 2]);
    }

    #[test]
    fn reads_a_point_and_an_old_single_reading_entry() {
        let point = Point::new(vec![reading("a", "x", 1), reading("a", "y", 1)]);
        let json = serde_json::to_vec(&point).unwrap();
        assert_eq!(
            String::from_utf8(json.clone()).unwrap(),
            r#"{"e":"a","t":1,"f":[{"m":"x","v":1.0,"q":"good","s":"mqtt"},{"m":"y","v":1.0,"q":"good","s":"mqtt"}]}"#
        );
        assert_eq!(serde_json::from_slice::<Point>(&json).unwrap(), point);
        let mut readings = point.readings.to_vec();
        readings[1].unit = Some("MPa".into());
        readings[1].quality = Quality::Bad;
        readings[0].value = Value::Text("B2".into());
        let varied = Point::new(readings);
        let json = serde_json::to_vec(&varied).unwrap();
        assert_eq!(serde_json::from_slice::<Point>(&json).unwrap(), varied);
        // Earlier forms: an array of readings, and one reading.
        let array = serde_json::to_vec(&point.readings).unwrap();
        assert_eq!(serde_json::from_slice::<Point>(&array).unwrap(), point);
        let old = serde_json::to_vec(&reading("a", "x", 1)).unwrap();
        assert_eq!(
            serde_json::from_slice::<Point>(&old).unwrap().readings[..],
            [reading("a", "x", 1)]
        );
    }
}
