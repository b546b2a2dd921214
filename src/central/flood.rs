//! Alarm floods at the regional level (ISA-18.2 counts a flood per operator: more than 10 alarms
//! in 10 minutes, ending below 5; here the "operator" is an area). A district power cut stops
//! hundreds of elevators within seconds; central groups their alarms into one situation
//! (`situations` in the store, shown on the dispatch board), orders its dispatches by who is
//! inside and how long, and tells each rescue unit its new dispatches in one message per
//! `[flood] batch` instead of one message per lift. Every dispatch keeps its own row, steps,
//! timer and notification rows: only the delivery is grouped.
//!
//! Pure functions over config and rows; `store/situations.rs` applies them in the ingest
//! transaction and `notify.rs` sends the grouped messages.
//!
//! **Delivery is at least once, with idempotency keys.** A message can be sent and the
//! instance killed before it records the send; another instance then sends it again after the
//! lease. Exactly once would need the receiver to take part in our transaction, which a
//! webhook, an MQTT subscriber or a mail server cannot. So every message names the
//! notification rows it carries (`notification_id` per dispatch, an `Idempotency-Key` header
//! on webhooks, the `Message-ID` of e-mails), and a receiver drops what it has seen.

use super::config::FloodSettings;
use crate::auth::token_hash;

pub const BATCH_SCHEMA: &str = "seguard.dispatch_batch.v1";

/// Great-circle distance in km between two WGS-84 points.
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// The box (lat_min, lat_max, lon_min, lon_max) around `p` that holds every point within
/// `radius_km` of it: a cheap index filter before [`distance_km`].
pub fn bounding_box(p: (f64, f64), radius_km: f64) -> (f64, f64, f64, f64) {
    let dlat = radius_km / 111.2;
    let dlon = radius_km / (111.2 * p.0.to_radians().cos().abs().max(0.01));
    (p.0 - dlat, p.0 + dlat, p.1 - dlon, p.1 + dlon)
}

/// Whether `raised` alarms within the window make a flood.
pub fn is_flood(flood: &FloodSettings, raised: i64) -> bool {
    raised > flood.count
}

/// When a notification of a dispatch in a situation is sent: at the end of the batch period
/// it was created in, so every dispatch of one period becomes due at the same moment and goes
/// out in one message per unit. Without batching, at once.
pub fn batch_due(flood: &FloodSettings, now_ms: i64) -> i64 {
    let b = flood.batch.as_millis() as i64;
    if b == 0 {
        return now_ms;
    }
    (now_ms / b + 1) * b
}

/// One dispatch's message inside a batch.
pub struct Item<'a> {
    pub notification_id: &'a str,
    pub subject: &'a str,
    pub payload: &'a str,
}

/// The idempotency key of a message carrying these notification rows: the same rows give the
/// same key, on any instance.
pub fn idempotency_key(ids: &[&str]) -> String {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    token_hash(&ids.join(","))
}

/// A JSON message (webhook, MQTT) for one notification row: its payload with its id.
pub fn single_json(notification_id: &str, payload: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(mut v) if v.is_object() => {
            v["notification_id"] = notification_id.into();
            v.to_string()
        }
        _ => payload.to_owned(),
    }
}

/// One message for several dispatches of a situation sent to one target: (subject, payload).
/// JSON channels get `seguard.dispatch_batch.v1` with each dispatch's own message (and its
/// `notification_id`) under `dispatches`; e-mail gets the texts one after another.
pub fn batch(channel: &str, situation: &str, items: &[Item<'_>]) -> (String, String) {
    let ids: Vec<&str> = items.iter().map(|i| i.notification_id).collect();
    let key = idempotency_key(&ids);
    let first = items.first().map_or("", |i| i.subject);
    let subject = format!(
        "[区域困人 {n} 单 {n} trapped-passenger dispatches，态势 situation {short}] {first}{more}",
        n = items.len(),
        short = &situation[..situation.len().min(8)],
        more = if items.len() > 1 {
            format!(" 等 {} 单 and {} more", items.len(), items.len() - 1)
        } else {
            String::new()
        },
    );
    let payload = if channel == "email" {
        let mut text = format!(
            "区域态势 {situation}：本消息含贵单位 {n} 张救援派单，每单有自己的单号和链接，请逐单报告进展。\n\
             Area situation {situation}: {n} rescue dispatches for your unit in this message.\n\
             Each has its own order number and link; report each one on its own page.\n\
             消息键 Message key：{key}\n",
            n = items.len()
        );
        for (n, item) in items.iter().enumerate() {
            text.push_str(&format!(
                "\n----- {} of {} (notification {}) -----\n{}\n",
                n + 1,
                items.len(),
                item.notification_id,
                item.payload
            ));
        }
        text
    } else {
        let dispatches: Vec<serde_json::Value> = items
            .iter()
            .map(|i| {
                serde_json::from_str(&single_json(i.notification_id, i.payload))
                    .unwrap_or_else(|_| serde_json::Value::String(i.payload.to_owned()))
            })
            .collect();
        serde_json::json!({
            "schema": BATCH_SCHEMA,
            "situation": situation,
            "idempotency_key": key,
            "count": items.len(),
            "dispatches": dispatches,
        })
        .to_string()
    };
    (subject, payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(batch_s: u64) -> FloodSettings {
        FloodSettings {
            count: 10,
            end_count: 5,
            window: Duration::from_secs(600),
            radius_km: 3.0,
            batch: Duration::from_secs(batch_s),
        }
    }

    #[test]
    fn distances_and_boxes_agree() {
        let tower = (31.2352, 121.5058);
        let km_north = (31.2352 + 1.0 / 111.2, 121.5058);
        assert!((distance_km(tower, km_north) - 1.0).abs() < 0.01);
        let (a, b, c, d) = bounding_box(tower, 3.0);
        for bearing in 0..36 {
            let r = f64::from(bearing) * 10f64.to_radians();
            // A point 2.99 km away in any direction lies in the box.
            let p = (
                tower.0 + 2.99 / 111.2 * r.cos(),
                tower.1 + 2.99 / (111.2 * tower.0.to_radians().cos()) * r.sin(),
            );
            assert!(distance_km(tower, p) < 3.0);
            assert!(a <= p.0 && p.0 <= b && c <= p.1 && p.1 <= d, "{p:?}");
        }
    }

    #[test]
    fn a_flood_is_more_than_count_alarms() {
        let s = settings(5);
        assert!(!is_flood(&s, 10));
        assert!(is_flood(&s, 11));
    }

    #[test]
    fn notifications_of_one_period_fall_due_together() {
        let s = settings(5);
        assert_eq!(batch_due(&s, 10_000), 15_000);
        assert_eq!(batch_due(&s, 14_999), 15_000);
        assert_eq!(batch_due(&s, 15_000), 20_000);
        assert_eq!(batch_due(&settings(0), 14_999), 14_999);
    }

    #[test]
    fn a_batch_carries_each_dispatch_with_its_key() {
        let items = [
            Item {
                notification_id: "n2",
                subject: "[R1] trapped passenger: Lift 1",
                payload: r#"{"id":"d1","order_no":"R1"}"#,
            },
            Item {
                notification_id: "n1",
                subject: "[R2] trapped passenger: Lift 2",
                payload: r#"{"id":"d2","order_no":"R2"}"#,
            },
        ];
        let (subject, json) = batch("webhook", "0123456789abcdef", &items);
        assert_eq!(
            subject,
            "[区域困人 2 单 2 trapped-passenger dispatches，态势 situation 01234567] [R1] trapped passenger: Lift 1 等 2 单 and 1 more"
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["schema"], BATCH_SCHEMA);
        assert_eq!(v["count"], 2);
        assert_eq!(v["dispatches"][0]["order_no"], "R1");
        assert_eq!(v["dispatches"][0]["notification_id"], "n2");
        assert_eq!(v["dispatches"][1]["notification_id"], "n1");
        // The key does not depend on the order the rows were claimed in.
        assert_eq!(v["idempotency_key"], idempotency_key(&["n1", "n2"]));
        let (_, text) = batch("email", "0123456789abcdef", &items);
        assert!(text.contains("2 rescue dispatches") && text.contains("notification n1"));
    }
}
