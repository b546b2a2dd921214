//! A numeric GB/T 24476-style elevator terminal over the real broker, mapped through the shipped
//! profile `gbt-coded-terminal`, against the fail-safe trapped rule (issue 14). Six elevators,
//! one situation each; payloads carry their own times, so every incident is asserted at its
//! exact instant:
//! - lift-1, trapped between floors, reported every 10 s: raised 30 s after it stopped (and its
//!   floor, sent with a NUL, arrives cleaned);
//! - lift-2, trapped at a landing: raised after 60 s;
//! - lift-3, alarm button (message code 90) in an occupied, stopped car: raised at once;
//! - lift-4, inspection (code 2) for minutes: no trapped incident;
//! - lift-5, a quiet terminal that reports only on change: one message, and the trapped
//!   incident still comes 30 s later, from the gateway's clock tick;
//! - lift-6, a service mode code outside the table (9): `lift.trapped_rule_blind` at once, and
//!   the trapped incident still raised after 30 s, saying the mode was unknown.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::mqtt::TestClient;
use common::Mosquitto;
use seguard::gateway::Gateway;
use serde_json::{json, Value};

fn config(broker_port: u16) -> seguard::config::Config {
    let mut lifts = String::new();
    for i in 1..=6 {
        lifts.push_str(&format!(
            "[[equipment]]\nid = \"lift-{i}\"\nkind = \"elevator\"\nregistration_code = \"3110310100201601000{i}\"\n\n"
        ));
    }
    let text = format!(
        r#"
[site]
id = "s1"
name = "Test site"

[gateway]
id = "gw1"
http_listen = "127.0.0.1:0"
shutdown_flush_s = 5

[mqtt]
host = "127.0.0.1"
port = {broker_port}
reconnect_min_ms = 50
reconnect_max_ms = 500

{lifts}
[[ingest.mqtt]]
profile = "gbt-coded-terminal"

[[rules.elevator]]
id = "lift"
fault_numbering = "gbt24476"

[uplink.central]
confirm_timeout_ms = 2000

[outbox]
kind = "memory"
"#
    );
    // Parsed as if it lay beside the examples, so the shipped profiles are found.
    let path = common::firmware_configs().join("terminal-profiles-test.toml");
    seguard::config::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"))
}

fn status(lift: &str, ts: DateTime<Utc>, fields: Value) -> (String, Vec<u8>) {
    let mut payload = fields;
    payload["timestamp"] = json!(ts.timestamp_millis());
    (
        format!("elevator/{lift}/status"),
        payload.to_string().into_bytes(),
    )
}

/// Stopped, doors closed, occupied, normal service: the codes of a car with a passenger.
fn stopped(door_zone: u8, floor: &str) -> Value {
    json!({ "car_status": 0, "car_direction": 0, "door_zone": door_zone, "car_position": floor,
            "door_status": 1, "passenger_status": 1, "service_mode": 1, "message_code": 0 })
}

fn event_time(incident: &Value) -> DateTime<Utc> {
    incident["event"]["time"]
        .as_str()
        .expect("event time")
        .parse()
        .expect("RFC 3339 time")
}

fn seconds(s: i64) -> chrono::Duration {
    chrono::Duration::seconds(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coded_terminal_through_its_profile_raises_every_trapped_case_at_its_instant() {
    let broker = Mosquitto::start();
    let mut central = TestClient::connect(broker.port, "central-test").await;
    central.subscribe("seguard/v1/gw1/incidents").await;
    let gateway = Gateway::start(config(broker.port))
        .await
        .expect("gateway starts");
    let mut terminal = TestClient::connect(broker.port, "coded-terminal").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Whole milliseconds, as the payload carries them. Cases 1-4 happened in the last two
    // minutes and arrive now; cases 5 and 6 are still running when they arrive.
    let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let t0 = now - seconds(100);
    let mut messages = vec![
        // lift-1: running, then stopped outside the door zone at t0+5, reported every 10 s.
        status(
            "lift-1",
            t0,
            json!({ "car_status": 1, "car_direction": 1, "door_zone": 0, "car_position": "7\u{0}x",
                    "door_status": 1, "passenger_status": 1, "service_mode": 1, "message_code": 0 }),
        ),
        status("lift-1", t0 + seconds(5), stopped(0, "7\u{0}x")),
    ];
    for k in 1..=4 {
        messages.push(status(
            "lift-1",
            t0 + seconds(5 + 10 * k),
            stopped(0, "7\u{0}x"),
        ));
    }
    // lift-2: stopped at a landing at t0, reported every 20 s.
    for k in 0..=4 {
        messages.push(status("lift-2", t0 + seconds(20 * k), stopped(1, "3")));
    }
    // lift-3: at a landing, then the passenger presses the alarm button at t0+12.
    messages.push(status("lift-3", t0 + seconds(10), stopped(1, "B2")));
    messages.push(status(
        "lift-3",
        t0 + seconds(12),
        json!({ "message_code": 90 }),
    ));
    // lift-4: inspection (staff in the car), stopped and closed for 100 s.
    let mut inspection = stopped(0, "12");
    inspection["service_mode"] = json!(2);
    for k in 0..=5 {
        messages.push(status("lift-4", t0 + seconds(20 * k), inspection.clone()));
    }
    // lift-5: a quiet terminal; one message 28 s ago, nothing after.
    let quiet_stop = now - seconds(28);
    messages.push(status("lift-5", quiet_stop, stopped(0, "5")));
    // lift-6: a mode code the table does not list, 20 s ago.
    let unknown_stop = now - seconds(20);
    let mut unknown = stopped(0, "9");
    unknown["service_mode"] = json!(9);
    messages.push(status("lift-6", unknown_stop, unknown));
    terminal.publish_all(messages).await;

    // Six incidents: five trapped raises and the blind alarm (lift-4 none). The last two
    // come only from the clock, 2 and 10 s from now.
    let mut raised: BTreeMap<(String, String), Value> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    while raised.len() < 6 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some((_, incident)) = central.next_json(left).await else {
            panic!("timed out; incidents so far: {raised:#?}");
        };
        let event = &incident["event"];
        assert_eq!(event["transition"], "raise", "{incident:#}");
        let key = (
            incident["equipment"]["id"].as_str().unwrap().to_owned(),
            event["rule"].as_str().unwrap().to_owned(),
        );
        assert!(
            raised.insert(key.clone(), incident).is_none(),
            "{key:?} twice"
        );
    }
    let get = |lift: &str, rule: &str| -> &Value {
        raised
            .get(&(lift.to_owned(), rule.to_owned()))
            .unwrap_or_else(|| panic!("no {rule} for {lift}: {raised:#?}"))
    };

    // Between floors: 30 s after the stop, critical, with the floor cleaned of its NUL.
    let lift1 = get("lift-1", "lift.trapped");
    assert_eq!(event_time(lift1), t0 + seconds(35));
    assert_eq!(lift1["event"]["severity"], "critical");
    assert_eq!(lift1["event"]["details"]["door_zone"], false);
    assert_eq!(lift1["event"]["details"]["floor"], "7\u{FFFD}x");
    assert_eq!(lift1["event"]["details"]["stopped_s"].as_f64(), Some(30.0));
    assert_eq!(lift1["event"]["details"]["service_mode"], "normal");

    // At a landing: 60 s, high.
    let lift2 = get("lift-2", "lift.trapped");
    assert_eq!(event_time(lift2), t0 + seconds(60));
    assert_eq!(lift2["event"]["severity"], "high");
    assert_eq!(lift2["event"]["details"]["door_zone"], true);

    // The alarm button: at the instant it was pressed.
    let lift3 = get("lift-3", "lift.trapped");
    assert_eq!(event_time(lift3), t0 + seconds(12));
    assert_eq!(lift3["event"]["details"]["trigger"], "alarm_button");
    assert_eq!(lift3["event"]["details"]["floor"], "B2");

    // The quiet terminal: 30 s after its only message, raised by the clock.
    let lift5 = get("lift-5", "lift.trapped");
    assert_eq!(event_time(lift5), quiet_stop + seconds(30));
    assert_eq!(lift5["event"]["details"]["trigger"], "delay");

    // Unknown mode: blind at once, and still trapped after 30 s, saying the mode was unknown.
    let blind = get("lift-6", "lift.trapped_rule_blind");
    assert_eq!(event_time(blind), unknown_stop);
    let lift6 = get("lift-6", "lift.trapped");
    assert_eq!(event_time(lift6), unknown_stop + seconds(30));
    assert_eq!(lift6["event"]["details"]["service_mode_known"], false);
    assert!(
        lift6["event"]["message"]
            .as_str()
            .unwrap()
            .contains("service mode unknown"),
        "{lift6:#}"
    );

    // Inspection: nothing, then or later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let Some((_, extra)) = central.next_json(Duration::from_millis(500)).await {
        panic!("no further incident expected, got {extra:#}");
    }

    let metrics = reqwest::get(format!("http://{}/metrics", gateway.http_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    for line in [
        "seguard_trapped_rule_blind_total 1",
        "seguard_readings_adjusted_total{reason=\"unknown_code\"} 1",
        "seguard_readings_adjusted_total{reason=\"text_cleaned\"} 6",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    gateway.stop().await;
}
