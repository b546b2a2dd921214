//! The gateway end to end on real servers: mosquitto in, InfluxDB 1.x (v1 API) and
//! VictoriaMetrics (v2 API, through the influxdb2 crate) out, incidents back on the broker.

mod common;

use std::path::Path;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::mqtt::TestClient;
use common::{eventually, Influx1, Mosquitto, Victoria};
use seguard::gateway::Gateway;
use serde_json::{json, Value};

/// A site with one elevator and one pressure vessel; `uplinks` is appended as TOML.
fn site_config(broker_port: u16, uplinks: &str) -> seguard::config::Config {
    let text = format!(
        r#"
[site]
id = "s1"
name = "Test site"
address = "1 Test Road"

[outbox]
kind = "memory"

[gateway]
id = "gw1"
http_listen = "127.0.0.1:0"
shutdown_flush_s = 5

{mqtt}max_payload_bytes = 4096

{lift}use_certificate = "梯11沪A0001(16)"
location = {{ lat = 31.2352, lon = 121.5058 }}
next_inspection = 2027-03-31
insured = true

[[equipment]]
id = "pv-1"
kind = "pressure_vessel"
registration_code = "21103101002018000031"
using_unit = "Boiler House Co."
address = "1 Test Road, boiler house"
nameplate = {{ working_pressure_mpa = 1.6, set_pressure_mpa = 1.76, design_pressure_mpa = 1.8 }}

[[ingest.mqtt]]
topic = "site/{{site}}/{{equipment}}/telemetry"
time_pointer = "/ts"
fields = [
  {{ pointer = "/car_status", metric = "car_status", type = "text" }},
  {{ pointer = "/floor", metric = "floor", type = "text" }},
  {{ pointer = "/occupied", metric = "occupied", type = "bool" }},
  {{ pointer = "/speed", metric = "speed", unit = "m/s" }},
  {{ pointer = "/load_t", metric = "load", unit = "kg", scale = 1000.0 }},
]

[[ingest.mqtt]]
topic = "site/{{site}}/boiler/pressure"
equipment = "pv-1"
time_pointer = "/ts"
fields = [
  {{ pointer = "/pressure_pa", metric = "pressure", unit = "MPa", scale = 1e-6 }},
  {{ pointer = "/temperature_c", metric = "temperature", unit = "°C" }},
]

[[rules.threshold]]
id = "vessel-pressure"
equipment = ["pv-1"]
metric = "pressure"
high = {{ limit = 1.6 }}
deadband = 0.05

{uplinks}
"#,
        mqtt = common::site::mqtt(broker_port),
        lift = common::site::LIFT_1,
    );
    seguard::config::parse(&text, Path::new("test-site.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn central_uplink() -> &'static str {
    "[uplink.central]\nconfirm_timeout_ms = 2000\n"
}

fn influx_v1(server: &Influx1, db: &str) -> String {
    format!(
        "[[uplink.influx]]\nname = \"influx1\"\napi = \"v1\"\nurl = \"{}\"\ndatabase = \"{db}\"\nflush_interval_ms = 100\nretry_min_ms = 50\nretry_max_ms = 500\n",
        server.url()
    )
}

fn victoria_v2(server: &Victoria) -> String {
    format!(
        "[[uplink.influx]]\nname = \"victoria\"\napi = \"v2\"\nurl = \"{}\"\norg = \"district\"\nbucket = \"equipment\"\ntoken = \"unused\"\nflush_interval_ms = 100\n",
        server.url()
    )
}

async fn get_text(gateway: &Gateway, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{}{path}", gateway.http_addr))
        .await
        .expect("gateway HTTP");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

/// The value of one sample line of /metrics, e.g. `seguard_messages_rejected_total{reason="malformed"}`.
async fn metric(gateway: &Gateway, series: &str) -> f64 {
    let (_, text) = get_text(gateway, "/metrics").await;
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

const T0_MS: i64 = 1_790_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_reaches_influxdb_and_victoriametrics_with_exact_values_and_times() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    let victoria = Victoria::start();
    influx.create_database("telemetry").await;
    let uplinks = format!(
        "{}{}",
        influx_v1(&influx, "telemetry"),
        victoria_v2(&victoria)
    );
    let gateway = Gateway::start(site_config(broker.port, &uplinks))
        .await
        .unwrap();
    eventually("gateway connected", Duration::from_secs(10), || async {
        (metric(&gateway, "seguard_broker_connected{uplink=\"site\"}").await == 1.0).then_some(())
    })
    .await;

    let mut device = TestClient::connect(broker.port, "device-1").await;
    let mut messages = Vec::new();
    for i in 0..20i64 {
        let lift = json!({"ts": T0_MS + i * 1000, "car_status": "running", "floor": format!("B{}", i % 3), "occupied": i % 2, "speed": 0.25 * i as f64});
        messages.push((
            "site/s1/lift-1/telemetry".to_owned(),
            lift.to_string().into_bytes(),
        ));
        let vessel = json!({"ts": T0_MS + i * 1000 + 500, "pressure_pa": 1_000_000 + i * 10_000, "temperature_c": 20.5 + i as f64});
        messages.push((
            "site/s1/boiler/pressure".to_owned(),
            vessel.to_string().into_bytes(),
        ));
    }
    device.publish_all(messages).await;

    // InfluxDB 1.x through the v1 API: exact values and nanosecond timestamps.
    let rows = eventually("20 elevator points in InfluxDB", Duration::from_secs(20), || async {
        let rows = influx
            .query("telemetry", "SELECT car_status, floor, occupied, speed, equipment, gateway, site FROM elevator")
            .await;
        (rows.len() == 20).then_some(rows)
    })
    .await;
    for (i, row) in rows.iter().enumerate() {
        let i = i as i64;
        let mut row = row.clone();
        let speed = row.remove(4).as_f64();
        assert_eq!(speed, Some(0.25 * i as f64), "speed of row {i}");
        let expected = vec![
            json!((T0_MS + i * 1000) * 1_000_000),
            json!("running"),
            json!(format!("B{}", i % 3)),
            json!(i % 2 == 1),
            json!("lift-1"),
            json!("gw1"),
            json!("s1"),
        ];
        assert_eq!(row, expected, "elevator row {i}");
    }
    let rows = eventually(
        "20 vessel points in InfluxDB",
        Duration::from_secs(20),
        || async {
            let rows = influx
                .query(
                    "telemetry",
                    "SELECT pressure, temperature FROM pressure_vessel",
                )
                .await;
            (rows.len() == 20).then_some(rows)
        },
    )
    .await;
    for (i, row) in rows.iter().enumerate() {
        let i = i as i64;
        assert_eq!(row[0], json!((T0_MS + i * 1000 + 500) * 1_000_000));
        assert_eq!(
            row[1].as_f64(),
            Some((100 + i) as f64 / 100.0),
            "pressure row {i}"
        );
        assert_eq!(row[2], json!(20.5 + i as f64));
    }

    // VictoriaMetrics through the influxdb2 crate's v2 write (it keeps milliseconds).
    let series = eventually(
        "vessel pressure in VictoriaMetrics",
        Duration::from_secs(20),
        || async {
            let series = victoria
                .export(r#"{__name__="pressure_vessel_pressure"}"#)
                .await;
            series
                .first()
                .is_some_and(|(_, samples)| samples.len() == 20)
                .then_some(series)
        },
    )
    .await;
    let (labels, samples) = &series[0];
    assert_eq!(labels["equipment"], "pv-1");
    assert_eq!(labels["gateway"], "gw1");
    assert_eq!(labels["site"], "s1");
    for (i, (t, v)) in samples.iter().enumerate() {
        assert_eq!(*t, T0_MS + i as i64 * 1000 + 500);
        assert_eq!(*v, (100 + i) as f64 / 100.0, "sample {i}");
    }
    let speeds = victoria.export(r#"{__name__="elevator_speed"}"#).await;
    let values: Vec<f64> = speeds[0].1.iter().map(|(_, v)| *v).collect();
    assert_eq!(values, (0..20).map(|i| 0.25 * i as f64).collect::<Vec<_>>());

    assert_eq!(
        metric(&gateway, "seguard_readings_received_total{source=\"mqtt\"}").await,
        120.0
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_crossing_yields_one_incident_with_the_registry_and_one_clear() {
    let broker = Mosquitto::start();
    let gateway = Gateway::start(site_config(broker.port, central_uplink()))
        .await
        .unwrap();
    let mut central = TestClient::connect(broker.port, "central-test").await;
    central.subscribe("seguard/v1/gw1/incidents").await;
    let mut device = TestClient::connect(broker.port, "transmitter").await;
    eventually("gateway connected", Duration::from_secs(10), || async {
        (metric(&gateway, "seguard_broker_connected{uplink=\"site\"}").await == 1.0).then_some(())
    })
    .await;

    // 1.5 → 1.65 raises (high 1.6), 1.7 stays raised, 1.56 is inside the 0.05 deadband, 1.54 clears.
    let pressures_mpa = [1.5, 1.65, 1.7, 1.56, 1.54, 1.3];
    let messages = pressures_mpa.iter().enumerate().map(|(i, p)| {
        let body = json!({"ts": T0_MS + i as i64 * 1000, "pressure_pa": (p * 1e6) as i64});
        (
            "site/s1/boiler/pressure".to_owned(),
            body.to_string().into_bytes(),
        )
    });
    device.publish_all(messages.collect::<Vec<_>>()).await;

    let (topic, raise) = central
        .next_json(Duration::from_secs(10))
        .await
        .expect("a raise incident");
    assert_eq!(topic, "seguard/v1/gw1/incidents");
    assert_eq!(raise["schema"], "seguard.incident.v1");
    assert_eq!(raise["gateway"], "gw1");
    assert_eq!(
        raise["site"],
        json!({"id": "s1", "name": "Test site", "address": "1 Test Road"})
    );
    assert_eq!(raise["equipment"]["id"], "pv-1");
    assert_eq!(
        raise["equipment"]["registration_code"],
        "21103101002018000031"
    );
    assert_eq!(raise["equipment"]["using_unit"], "Boiler House Co.");
    assert_eq!(raise["equipment"]["nameplate"]["set_pressure_mpa"], 1.76);
    let event = &raise["event"];
    assert_eq!(event["rule"], "vessel-pressure.high");
    assert_eq!(event["transition"], "raise");
    assert_eq!(event["severity"], "high");
    assert_eq!(event["value"], 1.65);
    assert_eq!(event["limit"], 1.6);
    let raised_at = Utc.timestamp_millis_opt(T0_MS + 1000).unwrap();
    assert_eq!(event["time"], json!(raised_at));
    assert_eq!(raise["id"], event["id"]);

    let (_, clear) = central
        .next_json(Duration::from_secs(10))
        .await
        .expect("a clear incident");
    assert_eq!(clear["event"]["transition"], "clear");
    assert_eq!(clear["event"]["value"], 1.54);
    assert_eq!(
        clear["event"]["time"],
        json!(Utc.timestamp_millis_opt(T0_MS + 4000).unwrap())
    );
    assert!(
        central.next_json(Duration::from_secs(2)).await.is_none(),
        "exactly one raise and one clear"
    );

    // The retained status says online, and offline after a clean stop.
    let mut watcher = TestClient::connect(broker.port, "status-watcher").await;
    watcher.subscribe("seguard/v1/gw1/status").await;
    let (_, status) = watcher
        .next_json(Duration::from_secs(5))
        .await
        .expect("retained status");
    assert_eq!(status["state"], "online");
    let mut registry_watcher = TestClient::connect(broker.port, "registry-watcher").await;
    registry_watcher.subscribe("seguard/v1/gw1/registry").await;
    let (_, registry) = registry_watcher
        .next_json(Duration::from_secs(5))
        .await
        .expect("retained registry");
    assert_eq!(registry["schema"], "seguard.registry.v1");
    let ids: Vec<&str> = registry["equipment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["lift-1", "pv-1"]);
    assert_eq!(registry["equipment"][0]["rescue_code"], "02417");
    gateway.stop().await;
    let (_, status) = watcher
        .next_json(Duration::from_secs(5))
        .await
        .expect("offline status");
    assert_eq!(status["state"], "offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_counted_by_reason_and_never_stop_the_gateway() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_database("bad").await;
    let gateway = Gateway::start(site_config(broker.port, &influx_v1(&influx, "bad")))
        .await
        .unwrap();
    let mut device = TestClient::connect(broker.port, "bad-device").await;
    eventually("gateway connected", Duration::from_secs(10), || async {
        (metric(&gateway, "seguard_broker_connected{uplink=\"site\"}").await == 1.0).then_some(())
    })
    .await;

    let lift = "site/s1/lift-1/telemetry";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (lift, b"{\"speed\": 1.0".to_vec(), "malformed"),
        (lift, b"\xff\xfe not utf-8".to_vec(), "malformed"),
        (lift, br#"{"speed": NaN}"#.to_vec(), "malformed"),
        (lift, br#"{"speed": 1e400}"#.to_vec(), "malformed"),
        (
            lift,
            format!("{{\"speed\": 1, \"pad\": \"{}\"}}", "x".repeat(5000)).into_bytes(),
            "oversized",
        ),
        // Far beyond rumqttc's default 10 KiB packet limit: must not break the connection.
        (lift, vec![b' '; 3 << 20], "oversized"),
        (lift, br#"{"speed": "fast"}"#.to_vec(), "wrong_type"),
        (lift, br#"{"occupied": "yes"}"#.to_vec(), "wrong_type"),
        (lift, br#"{"load_t": 1e306}"#.to_vec(), "non_finite"),
        (lift, br#"{"ts": "noon", "speed": 1}"#.to_vec(), "bad_time"),
        (lift, br#"{"unrelated": 1}"#.to_vec(), "no_fields"),
        (
            "site/s1/lift-9/telemetry",
            br#"{"speed": 1}"#.to_vec(),
            "unknown_equipment",
        ),
    ];
    let expected = |reason: &str| cases.iter().filter(|c| c.2 == reason).count() as f64;
    device
        .publish_all(
            cases
                .iter()
                .map(|(t, p, _)| (t.to_string(), p.clone()))
                .collect::<Vec<_>>(),
        )
        .await;
    // A good message after all of them still flows.
    device
        .publish_all([(
            lift.to_owned(),
            json!({"ts": T0_MS, "speed": 0.5}).to_string().into_bytes(),
        )])
        .await;
    eventually(
        "the good reading in InfluxDB",
        Duration::from_secs(20),
        || async {
            (influx
                .query("bad", "SELECT speed FROM elevator")
                .await
                .len()
                == 1)
                .then_some(())
        },
    )
    .await;
    for reason in [
        "malformed",
        "oversized",
        "wrong_type",
        "non_finite",
        "bad_time",
        "no_fields",
        "unknown_equipment",
    ] {
        let got = metric(
            &gateway,
            &format!("seguard_messages_rejected_total{{reason=\"{reason}\"}}"),
        )
        .await;
        assert_eq!(got, expected(reason), "rejected for {reason}");
    }
    assert_eq!(
        metric(&gateway, "seguard_readings_received_total{source=\"mqtt\"}").await,
        1.0
    );
    assert_eq!(
        metric(&gateway, "seguard_broker_connects_total{uplink=\"site\"}").await,
        1.0,
        "no bad message broke the connection"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_rides_out_a_broker_restart_without_losing_messages() {
    let mut broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_database("restart").await;
    let gateway = Gateway::start(site_config(broker.port, &influx_v1(&influx, "restart")))
        .await
        .unwrap();
    eventually("gateway connected", Duration::from_secs(10), || async {
        (metric(&gateway, "seguard_broker_connected{uplink=\"site\"}").await == 1.0).then_some(())
    })
    .await;
    let message = |i: i64| {
        (
            "site/s1/lift-1/telemetry".to_owned(),
            json!({"ts": T0_MS + i, "speed": i as f64})
                .to_string()
                .into_bytes(),
        )
    };
    {
        let mut device = TestClient::connect(broker.port, "restart-device").await;
        device
            .publish_all((0..100).map(message).collect::<Vec<_>>())
            .await;
    }
    broker.restart();
    eventually(
        "gateway reconnected by itself",
        Duration::from_secs(10),
        || async {
            (metric(&gateway, "seguard_broker_connects_total{uplink=\"site\"}").await == 2.0)
                .then_some(())
        },
    )
    .await;
    // Published while the gateway may still be reconnecting: its persistent session queues them.
    let mut device = TestClient::connect(broker.port, "restart-device-2").await;
    device
        .publish_all((100..200).map(message).collect::<Vec<_>>())
        .await;

    let rows = eventually(
        "all 200 points in InfluxDB",
        Duration::from_secs(30),
        || async {
            let rows = influx.query("restart", "SELECT speed FROM elevator").await;
            (rows.len() == 200).then_some(rows)
        },
    )
    .await;
    let speeds: Vec<f64> = rows.iter().map(|r| r[1].as_f64().unwrap()).collect();
    assert_eq!(speeds, (0..200).map(f64::from).collect::<Vec<_>>());
    assert!(
        metric(&gateway, "seguard_readings_received_total{source=\"mqtt\"}").await >= 200.0,
        "every message was read"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_serves_health_registry_alarms_and_latest_readings() {
    let broker = Mosquitto::start();
    let gateway = Gateway::start(site_config(broker.port, central_uplink()))
        .await
        .unwrap();
    let mut device = TestClient::connect(broker.port, "api-device").await;
    eventually("ready", Duration::from_secs(10), || async {
        (get_text(&gateway, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    let (status, body) = get_text(&gateway, "/readyz").await;
    assert_eq!(status, 200);
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        ready["checks"],
        json!({"site_broker": true, "central_broker": true})
    );
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["outbox"]["incidents"]["backlog"], 0);
    assert_eq!(
        get_text(&gateway, "/healthz").await,
        (200, "ok\n".to_owned())
    );

    let (_, body) = get_text(&gateway, "/api/v1/equipment").await;
    let equipment: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(equipment[0]["id"], "lift-1");
    assert_eq!(equipment[0]["rescue_code"], "02417");
    assert_eq!(
        equipment[0]["location"],
        json!({"lat": 31.2352, "lon": 121.5058, "crs": "WGS-84"})
    );
    assert_eq!(equipment[0]["next_inspection"], "2027-03-31");

    device
        .publish_all([
            (
                "site/s1/boiler/pressure".to_owned(),
                json!({"ts": T0_MS, "pressure_pa": 1_700_000, "temperature_c": 40.0})
                    .to_string()
                    .into_bytes(),
            ),
            (
                "site/s1/lift-1/telemetry".to_owned(),
                json!({"ts": T0_MS, "floor": "B2", "occupied": true})
                    .to_string()
                    .into_bytes(),
            ),
        ])
        .await;
    let alarms = eventually("one active alarm", Duration::from_secs(10), || async {
        let alarms: Value =
            serde_json::from_str(&get_text(&gateway, "/api/v1/alarms").await.1).unwrap();
        alarms
            .as_array()
            .is_some_and(|a| a.len() == 1)
            .then_some(alarms)
    })
    .await;
    assert_eq!(alarms[0]["equipment"], "pv-1");
    assert_eq!(alarms[0]["rule"], "vessel-pressure.high");
    assert_eq!(alarms[0]["value"], 1.7);

    let (_, body) = get_text(&gateway, "/api/v1/readings/latest?equipment=lift-1").await;
    let latest: Value = serde_json::from_str(&body).unwrap();
    let floor = latest
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == "floor")
        .unwrap();
    assert_eq!(floor["value"], "B2");
    assert_eq!(floor["quality"], "good");
    let (status, body) = get_text(&gateway, "/api/v1/readings/latest?equipment=nope").await;
    assert_eq!(
        (status, body.as_str()),
        (
            404,
            r#"{"error":"unknown equipment `nope`","reason":"not_found"}"#
        )
    );

    let (_, metrics) = get_text(&gateway, "/metrics").await;
    for name in [
        "seguard_readings_received_total",
        "seguard_alarms_raised_total{severity=\"high\"} 1",
        "seguard_broker_connected{uplink=\"central\"} 1",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_influxdb_shows_in_readyz_and_loses_nothing() {
    let broker = Mosquitto::start();
    let mut influx = Influx1::start();
    influx.create_database("outage").await;
    let gateway = Gateway::start(site_config(broker.port, &influx_v1(&influx, "outage")))
        .await
        .unwrap();
    let mut device = TestClient::connect(broker.port, "outage-device").await;
    eventually("ready", Duration::from_secs(10), || async {
        (get_text(&gateway, "/readyz").await.0 == 200).then_some(())
    })
    .await;

    influx.stop();
    let message = |i: i64| {
        (
            "site/s1/lift-1/telemetry".to_owned(),
            json!({"ts": T0_MS + i, "speed": i as f64})
                .to_string()
                .into_bytes(),
        )
    };
    device
        .publish_all((0..30).map(message).collect::<Vec<_>>())
        .await;
    let body = eventually(
        "readyz reports the dead uplink",
        Duration::from_secs(10),
        || async {
            let (status, body) = get_text(&gateway, "/readyz").await;
            (status == 503).then_some(body)
        },
    )
    .await;
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["checks"]["influx:influx1"], false);
    assert!(
        metric(
            &gateway,
            "seguard_uplink_failures_total{uplink=\"influx1\"}"
        )
        .await
            >= 1.0
    );

    influx.restart();
    let rows = eventually(
        "all 30 points after the outage",
        Duration::from_secs(30),
        || async {
            let rows = influx.query("outage", "SELECT speed FROM elevator").await;
            (rows.len() == 30).then_some(rows)
        },
    )
    .await;
    let speeds: Vec<f64> = rows.iter().map(|r| r[1].as_f64().unwrap()).collect();
    assert_eq!(speeds, (0..30).map(f64::from).collect::<Vec<_>>());
    eventually("ready again", Duration::from_secs(10), || async {
        (get_text(&gateway, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    gateway.stop().await;
}

/// `[rules.lifecycle] history` bounds the events `/api/v1/alarms/history` keeps: with 2, four
/// transitions leave the last two, newest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alarm_history_keeps_as_many_events_as_configured() {
    let broker = Mosquitto::start();
    let gateway = Gateway::start(site_config(broker.port, "[rules.lifecycle]\nhistory = 2\n"))
        .await
        .unwrap();
    let mut device = TestClient::connect(broker.port, "transmitter").await;
    eventually("gateway connected", Duration::from_secs(10), || async {
        (metric(&gateway, "seguard_broker_connected{uplink=\"site\"}").await == 1.0).then_some(())
    })
    .await;
    // Raise at 1.65, clear at 1.54, raise at 1.7, clear at 1.3 (high 1.6, deadband 0.05).
    let messages = [1.5, 1.65, 1.54, 1.7, 1.3]
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let body = json!({"ts": T0_MS + i as i64 * 1000, "pressure_pa": (p * 1e6) as i64});
            (
                "site/s1/boiler/pressure".to_owned(),
                body.to_string().into_bytes(),
            )
        });
    device.publish_all(messages.collect::<Vec<_>>()).await;
    eventually("two clears", Duration::from_secs(10), || async {
        (metric(&gateway, "seguard_alarms_cleared_total").await == 2.0).then_some(())
    })
    .await;

    let (status, body) = get_text(&gateway, "/api/v1/alarms/history").await;
    assert_eq!(status, 200);
    let events: Vec<Value> = serde_json::from_str(&body).unwrap();
    let kept: Vec<(String, f64)> = events
        .iter()
        .map(|e| {
            (
                e["transition"].as_str().unwrap().to_owned(),
                e["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [("clear".to_owned(), 1.3), ("raise".to_owned(), 1.7)],
        "{body}"
    );
    gateway.stop().await;
}
