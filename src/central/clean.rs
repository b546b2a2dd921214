//! What intake repairs instead of refusing: an incident central can attribute is stored, even
//! when its text holds characters a store cannot keep, its coordinates are off the globe or its
//! time is far from now. Each repair is a [`Note`] kept on the stored event, counted
//! (`seguard_central_intake_noted_total{note}`) and shown with the event in the API.

use chrono::{DateTime, Utc};

use crate::model::Equipment;

/// The replacement for a character a store cannot keep: U+FFFD, the Unicode replacement
/// character.
pub const REPLACEMENT: char = '\u{FFFD}';

/// One repair made at intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Note {
    /// A NUL character (which PostgreSQL text cannot hold) was replaced by U+FFFD.
    TextReplaced,
    /// A location outside WGS-84 ranges (or not finite) was dropped; the equipment has none.
    LocationDropped,
    /// The event time lies outside the accepted window around the receive time: the event is
    /// kept with its time, and its alarm is ordered by the receive time.
    TimeOutsideWindow,
}

impl Note {
    pub fn as_str(self) -> &'static str {
        match self {
            Note::TextReplaced => "text_replaced",
            Note::LocationDropped => "location_dropped",
            Note::TimeOutsideWindow => "time_outside_window",
        }
    }
}

/// The repairs made to one message, in a fixed order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notes(Vec<Note>);

impl Notes {
    pub fn add(&mut self, note: Note) {
        if !self.0.contains(&note) {
            self.0.push(note);
            self.0.sort();
        }
    }

    pub fn has(&self, note: Note) -> bool {
        self.0.contains(&note)
    }

    pub fn iter(&self) -> impl Iterator<Item = Note> + '_ {
        self.0.iter().copied()
    }

    /// The notes as stored: names joined by commas, `None` when there are none.
    pub fn stored(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

/// Replaces every NUL character in the JSON's text and keys; returns whether it replaced any.
pub fn replace_nul(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => {
            *s = s.replace('\0', &REPLACEMENT.to_string());
            true
        }
        // Every item is visited (no short circuit): each one may hold a NUL.
        serde_json::Value::Array(items) => items
            .iter_mut()
            .map(replace_nul)
            .fold(false, |found, replaced| found | replaced),
        serde_json::Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries = std::mem::take(map);
                for (k, mut v) in entries {
                    replace_nul(&mut v);
                    map.insert(k.replace('\0', &REPLACEMENT.to_string()), v);
                }
                return true;
            }
            map.values_mut()
                .map(replace_nul)
                .fold(false, |found, replaced| found | replaced)
        }
        _ => false,
    }
}

/// Whether a WGS-84 position is on the globe.
pub fn on_the_globe(lat: f64, lon: f64) -> bool {
    (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
}

/// Drops the equipment's location when it is off the globe; returns whether it did.
pub fn drop_bad_location(equipment: &mut Equipment) -> bool {
    match equipment.location {
        Some(l) if !on_the_globe(l.lat, l.lon) => {
            equipment.location = None;
            true
        }
        _ => false,
    }
}

/// Whether `time` lies within `[now - past, now + future]`.
pub fn time_in_window(
    time: DateTime<Utc>,
    now_ms: i64,
    past: std::time::Duration,
    future: std::time::Duration,
) -> bool {
    let t = time.timestamp_millis();
    t >= now_ms.saturating_sub(past.as_millis() as i64)
        && t <= now_ms.saturating_add(future.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_is_replaced_in_text_and_keys_and_nothing_else_changes() {
        let cases = [
            (
                json!({"floor": "7\u{0}x"}),
                json!({"floor": "7\u{FFFD}x"}),
                true,
            ),
            (
                json!({"f\u{0}": [1, "a\u{0}"]}),
                json!({"f\u{FFFD}": [1, "a\u{FFFD}"]}),
                true,
            ),
            (
                json!({"floor": "7", "n": 1.5}),
                json!({"floor": "7", "n": 1.5}),
                false,
            ),
        ];
        for (mut input, expected, replaced) in cases {
            assert_eq!(replace_nul(&mut input), replaced);
            assert_eq!(input, expected);
        }
    }

    #[test]
    fn coordinates_and_times_outside_their_ranges() {
        let cases = [
            ((31.2, 121.5), true),
            ((90.0, -180.0), true),
            ((1000.0, 0.0), false),
            ((0.0, -1000.0), false),
            ((f64::NAN, 0.0), false),
            ((0.0, f64::INFINITY), false),
        ];
        for ((lat, lon), ok) in cases {
            assert_eq!(on_the_globe(lat, lon), ok, "{lat} {lon}");
        }
        let now = chrono::Utc::now();
        let (past, future) = (
            std::time::Duration::from_secs(3600),
            std::time::Duration::from_secs(60),
        );
        let at = |s: i64| now + chrono::Duration::seconds(s);
        let n = now.timestamp_millis();
        assert!(time_in_window(at(-3599), n, past, future));
        assert!(!time_in_window(at(-3601), n, past, future));
        assert!(time_in_window(at(59), n, past, future));
        assert!(!time_in_window(at(61), n, past, future));
        let year_9999: DateTime<Utc> = "9999-01-01T00:00:00Z".parse().unwrap();
        assert!(!time_in_window(year_9999, n, past, future));
    }
}
