//! The trapped-passenger rule end to end on the real broker: elevator telemetry over MQTT stops
//! a car between floors with a passenger; exactly one trapped incident reaches the central
//! topic after the configured delay, stamped to the exact instant, then an operator
//! acknowledges it over HTTP, and it clears when the car re-levels and opens its doors.

mod common;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::mqtt::TestClient;
use common::Mosquitto;
use seguard::gateway::Gateway;
use serde_json::{json, Value};

fn config(broker_port: u16) -> seguard::config::Config {
    let text = format!(
        r#"
[site]
id = "s1"
name = "Test site"

[outbox]
kind = "memory"

[gateway]
id = "gw1"
http_listen = "127.0.0.1:0"
shutdown_flush_s = 5

{mqtt}
{lift}
[[ingest.mqtt]]
topic = "site/{{site}}/{{equipment}}/telemetry"
time_pointer = "/ts"
fields = [
  {{ pointer = "/car_status", metric = "car_status", type = "text" }},
  {{ pointer = "/door_zone", metric = "door_zone", type = "bool" }},
  {{ pointer = "/floor", metric = "floor", type = "text" }},
  {{ pointer = "/door_closed_locked", metric = "door_closed_locked", type = "bool" }},
  {{ pointer = "/occupied", metric = "occupied", type = "bool" }},
  {{ pointer = "/service_mode", metric = "service_mode", type = "text" }},
  {{ pointer = "/fault_code", metric = "fault_code" }},
]

[[rules.elevator]]
id = "lift"
trapped_delay_outside_zone_s = 3

[uplink.central]
confirm_timeout_ms = 2000
"#,
        mqtt = common::site::mqtt(broker_port),
        lift = common::site::LIFT_1,
    );
    seguard::config::parse(&text, Path::new("rules-e2e.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn telemetry(ts: DateTime<Utc>, fields: Value) -> (String, Vec<u8>) {
    let mut payload = fields;
    payload["ts"] = json!(ts.timestamp_millis());
    (
        "site/s1/lift-1/telemetry".to_owned(),
        payload.to_string().into_bytes(),
    )
}

/// Collects incidents until `done` says so, or panics after `timeout`.
async fn incidents_until(
    central: &mut TestClient,
    timeout: Duration,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match central.next_json(left).await {
            Some((_, incident)) => seen.push(incident),
            None => panic!("timed out; incidents so far: {seen:#?}"),
        }
    }
    seen
}

fn event_time(incident: &Value) -> DateTime<Utc> {
    incident["event"]["time"]
        .as_str()
        .expect("event time")
        .parse()
        .expect("RFC 3339 time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passenger_trapped_between_floors_yields_one_incident_after_the_delay_and_its_clear() {
    let broker = Mosquitto::start();
    let mut central = TestClient::connect(broker.port, "central-test").await;
    central.subscribe("seguard/v1/gw1/incidents").await;
    let gateway = Gateway::start(config(broker.port))
        .await
        .expect("gateway starts");
    let mut device = TestClient::connect(broker.port, "lift-terminal").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Whole milliseconds, as the payload carries them.
    let t0 = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let stopped_at = t0 + chrono::Duration::milliseconds(400);
    device
        .publish_all([
            telemetry(
                t0,
                json!({ "car_status": "running", "door_zone": false, "floor": "12",
                        "door_closed_locked": true, "occupied": true, "service_mode": "normal", "fault_code": 0 }),
            ),
            telemetry(
                stopped_at,
                json!({ "car_status": "stopped", "door_zone": false, "floor": "12",
                        "door_closed_locked": true, "occupied": true, "service_mode": "normal" }),
            ),
        ])
        .await;
    // Keep reporting the same state, as terminals do, while the delay runs.
    for i in 1..=4 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        device
            .publish_all([telemetry(
                stopped_at + chrono::Duration::seconds(i),
                json!({ "car_status": "stopped", "door_zone": false, "floor": "12",
                        "door_closed_locked": true, "occupied": true, "service_mode": "normal" }),
            )])
            .await;
    }

    let raised = incidents_until(&mut central, Duration::from_secs(10), |seen| {
        !seen.is_empty()
    })
    .await;
    let incident = &raised[0];
    assert_eq!(incident["schema"], "seguard.incident.v1");
    assert_eq!(incident["equipment"]["id"], "lift-1");
    assert_eq!(incident["equipment"]["rescue_code"], "02417");
    let event = &incident["event"];
    assert_eq!(event["rule"], "lift.trapped");
    assert_eq!(event["transition"], "raise");
    assert_eq!(event["severity"], "critical");
    assert_eq!(event["details"]["floor"], "12");
    assert_eq!(event["details"]["door_zone"], false);
    assert_eq!(event["details"]["trigger"], "delay");
    assert_eq!(event["details"]["stopped_s"].as_f64(), Some(3.0));
    // Exactly the configured delay after the car stopped, whatever the tick period.
    assert_eq!(
        event_time(incident),
        stopped_at + chrono::Duration::seconds(3)
    );

    // An operator acknowledges it over HTTP.
    let http = reqwest::Client::new();
    let url = format!(
        "http://{}/api/v1/alarms/lift-1/lift.trapped/ack",
        gateway.http_addr
    );
    let response = http
        .post(&url)
        .json(&json!({ "user": "dispatcher-wang", "comment": "rescue team notified" }))
        .send()
        .await
        .expect("ack request");
    assert_eq!(response.status().as_u16(), 200);
    let again = http
        .post(&url)
        .json(&json!({ "user": "dispatcher-wang" }))
        .send()
        .await
        .expect("second ack request");
    assert_eq!(
        again.status().as_u16(),
        409,
        "a second ack has nothing to acknowledge"
    );
    let alarms: Value = http
        .get(format!("http://{}/api/v1/alarms", gateway.http_addr))
        .send()
        .await
        .expect("alarms")
        .json()
        .await
        .expect("JSON");
    assert_eq!(alarms[0]["state"], "active_acknowledged");
    assert_eq!(alarms[0]["acknowledged_by"], "dispatcher-wang");

    // Re-levelled at floor 12 and the doors open: the passenger is out.
    let released_at = stopped_at + chrono::Duration::seconds(20);
    device
        .publish_all([
            telemetry(
                released_at - chrono::Duration::seconds(1),
                json!({ "car_status": "stopped", "door_zone": true, "door_closed_locked": true }),
            ),
            telemetry(released_at, json!({ "door_closed_locked": false })),
        ])
        .await;
    let rest = incidents_until(&mut central, Duration::from_secs(10), |seen| {
        seen.iter().any(|i| i["event"]["transition"] == "clear")
    })
    .await;
    let transitions: Vec<&str> = rest
        .iter()
        .map(|i| i["event"]["transition"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(transitions, ["acknowledge", "clear"], "{rest:#?}");
    assert_eq!(rest[0]["event"]["actor"], "dispatcher-wang");
    assert_eq!(rest[0]["event"]["comment"], "rescue team notified");
    assert_eq!(rest[1]["event"]["rule"], "lift.trapped");
    assert_eq!(event_time(&rest[1]), released_at);

    // Nothing else: one trapped incident, one clear.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        central
            .next_json(Duration::from_millis(500))
            .await
            .is_none(),
        "no further incidents expected"
    );
    let (_, metrics) = {
        let r = http
            .get(format!("http://{}/metrics", gateway.http_addr))
            .send()
            .await
            .expect("metrics");
        (r.status(), r.text().await.expect("body"))
    };
    assert!(
        metrics.contains("seguard_alarm_transitions_total{transition=\"raise\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("seguard_alarm_flood 0"), "{metrics}");
    gateway.stop().await;
}
