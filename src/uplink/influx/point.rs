//! The unit of a telemetry lane: a point in InfluxDB's sense, one equipment at one time with all
//! its fields (the readings of one message or one poll). A lane delivers or drops a point
//! whole, so a stored point never lacks some of its fields.
//!
//! On disk a point is a JSON array of readings. An entry written before points existed is a
//! single reading; it is read as a point of one, so an upgrade replays the old backlog.

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::Reading;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Point {
    /// Of one equipment and one time; at least one.
    pub readings: Vec<Reading>,
}

impl Point {
    /// Splits readings into points: each run of consecutive readings of one equipment at one
    /// time is one point.
    pub fn group(readings: Vec<Reading>) -> Vec<Point> {
        let mut points: Vec<Point> = Vec::new();
        for reading in readings {
            match points.last_mut() {
                Some(p) if p.same_point(&reading) => p.readings.push(reading),
                _ => points.push(Point {
                    readings: vec![reading],
                }),
            }
        }
        points
    }

    fn same_point(&self, reading: &Reading) -> bool {
        self.readings
            .first()
            .is_some_and(|r| r.equipment == reading.equipment && r.time == reading.time)
    }
}

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Point(Vec<Reading>),
            /// Written by a version whose lane unit was one reading.
            Reading(Box<Reading>),
        }
        Ok(match Stored::deserialize(deserializer)? {
            Stored::Point(readings) => Point { readings },
            Stored::Reading(reading) => Point {
                readings: vec![*reading],
            },
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
        let point = Point {
            readings: vec![reading("a", "x", 1), reading("a", "y", 1)],
        };
        let json = serde_json::to_vec(&point).unwrap();
        assert_eq!(serde_json::from_slice::<Point>(&json).unwrap(), point);
        let old = serde_json::to_vec(&reading("a", "x", 1)).unwrap();
        assert_eq!(
            serde_json::from_slice::<Point>(&old).unwrap().readings,
            vec![reading("a", "x", 1)]
        );
    }
}
