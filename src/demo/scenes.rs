//! The demo's other kinds of special equipment, played over MQTT beside the elevator fleet, so
//! every page has something to show within two minutes of start:
//! - a steam boiler whose pressure climbs past its nameplate limits (high at about 60 s,
//!   high-high at about 65 s) and stays there;
//! - an autoclave whose quick-opening door is unlocked at 45 s while the chamber is still under
//!   pressure (critical, until the pressure is released at 100 s);
//! - an LPG filling station filling a cylinder every 20 s, among them one whose inspection
//!   expired (refused) and one with no registered label (refused, and counted against the
//!   labelling rate).
//!
//! [`messages`] is pure (elapsed seconds in, messages out); [`run`] publishes them.

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The site's topic for process values and fills (`{equipment}` replaced).
pub const TOPIC: &str = "site/demo-district/{equipment}/process";
pub const BOILER: &str = "boiler-1";
pub const AUTOCLAVE: &str = "autoclave-1";
pub const STATION: &str = "station-1";
/// The station code the cylinders are bound to.
pub const STATION_CODE: &str = "DEMO-LPG-01";
/// Registered cylinders: (code, next inspection). The last one's inspection expired.
pub const CYLINDERS: &[(&str, &str)] = &[
    ("LPG-0001", "2028-06-30"),
    ("LPG-0002", "2028-06-30"),
    ("LPG-0003", "2027-09-30"),
    ("LPG-0004", "2028-03-31"),
    ("LPG-0005", "2025-01-31"),
];
/// The order the station fills in, one every [`FILL_EVERY_S`], then again from the start.
/// `LPG-0005`'s inspection expired; `LPG-9999` carries no registered label.
const FILLS: &[&str] = &[
    "LPG-0001", "LPG-0002", "LPG-0005", "LPG-0003", "LPG-9999", "LPG-0004",
];
pub const FILL_EVERY_S: u64 = 20;

/// The boiler's pressure (MPa) `t` seconds after start: steady, then climbing 0.005 MPa/s from
/// 20 s to a 1.09 MPa plateau, above the 1.1 MPa set pressure's alarm limits.
fn boiler_pressure(t: u64) -> f64 {
    let climbed = 0.85 + 0.005 * t.saturating_sub(20) as f64;
    (climbed.min(1.09) * 1000.0).round() / 1000.0
}

/// The autoclave's (pressure MPa, door closed and locked) `t` seconds after start.
fn autoclave(t: u64) -> (f64, bool) {
    match t {
        0..45 => (0.8, true),
        45..100 => (0.6, false),
        _ => (0.01, false),
    }
}

/// What the site publishes at second `t` after start: (equipment, JSON payload).
pub fn messages(t: u64, ts_ms: i64) -> Vec<(&'static str, Value)> {
    let (pressure, locked) = autoclave(t);
    let mut out = vec![
        (
            BOILER,
            json!({ "ts": ts_ms, "pressure": boiler_pressure(t) }),
        ),
        (
            AUTOCLAVE,
            json!({ "ts": ts_ms, "pressure": pressure, "door_closed_locked": locked }),
        ),
    ];
    if t > 0 && t.is_multiple_of(FILL_EVERY_S) {
        let n = (t / FILL_EVERY_S - 1) as usize;
        out.push((
            STATION,
            json!({ "ts": ts_ms, "cylinder_code": FILLS[n % FILLS.len()], "medium": "LPG",
                    "fill_mass_kg": 14.2, "operator": "op-07" }),
        ));
    }
    out
}

/// Publishes [`messages`] once a second until `stop` fires.
pub async fn run(broker: SocketAddr, stop: CancellationToken) {
    let mut options = MqttOptions::new(
        "seguard-demo-scenes",
        broker.ip().to_string(),
        broker.port(),
    );
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut event_loop) = AsyncClient::new(options, 1000);
    let driver_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = event_loop.poll() => if let Err(e) = event {
                    tracing::warn!(error = %e, "demo scenes: broker connection failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                },
                _ = driver_stop.cancelled() => break,
            }
        }
    });
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for t in 0u64.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        let ts = chrono::Utc::now().timestamp_millis();
        for (equipment, payload) in messages(t, ts) {
            let topic = TOPIC.replace("{equipment}", equipment);
            if client
                .try_publish(topic, QoS::AtLeastOnce, false, payload.to_string())
                .is_err()
            {
                tracing::warn!("demo scenes: publish queue full; a message was skipped");
            }
        }
    }
    let _ = client.try_disconnect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boiler_passes_its_limits_within_two_minutes_and_stays_above() {
        // The vessel rule's limits for a 1.1 MPa set pressure: 95 % and set minus 3 %.
        let (high, high_high) = (1.1 * 0.95, 1.1 * 0.97);
        let first = |limit: f64| (0..600).find(|t| boiler_pressure(*t) >= limit).unwrap();
        assert!(first(high) < first(high_high) && first(high_high) < 90);
        assert!((120..3600).all(|t| boiler_pressure(t) > high_high));
    }

    #[test]
    fn the_autoclave_door_opens_under_pressure_then_the_pressure_is_released() {
        assert_eq!(autoclave(44), (0.8, true));
        let (p, locked) = autoclave(45);
        assert!(!locked && p > 0.02);
        assert!(autoclave(100).0 <= 0.02);
    }

    #[test]
    fn the_station_fills_an_expired_and_an_unlabelled_cylinder_within_two_minutes() {
        let filled: Vec<String> = (0..=120)
            .flat_map(|t| messages(t, 0))
            .filter(|(e, _)| *e == STATION)
            .map(|(_, m)| m["cylinder_code"].as_str().unwrap().to_owned())
            .collect();
        assert!(filled.iter().any(|c| c == "LPG-0005"), "{filled:?}");
        assert!(filled.iter().any(|c| c == "LPG-9999"), "{filled:?}");
        let expired = CYLINDERS.iter().find(|(c, _)| *c == "LPG-0005").unwrap().1;
        assert!(expired < "2026-01-01");
    }
}
