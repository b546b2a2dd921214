//! The Modbus path through the whole gateway on real servers: pymodbus (Modbus TCP) in,
//! `Gateway::start` in-process with a `[modbus]` section and a profile file, InfluxDB 1.x (v1
//! API) out. Every data type and byte/word order arrives in InfluxDB exactly; an exception is a
//! bad-quality point (`seguard_quality`) and a counted error; a device that stops answering
//! raises the device-offline alarm, which clears when it answers again, with no restart.

mod common;
#[path = "common/modbus.rs"]
mod harness;

use std::path::Path;
use std::time::Duration;

use common::{eventually, Influx1};
use harness::{all_types, PyModbus, SMALL_PROFILE};
use seguard::gateway::Gateway;
use seguard::model::Value;
use serde_json::json;

const DB: &str = "modbus";

/// A site with one pressure vessel `eq-1` read over Modbus TCP with profile `p`, a
/// device-offline rule and an InfluxDB v1 uplink. The config and the profile are written into
/// `dir` and the config is parsed from there, so the relative `profiles` path resolves as it
/// does for a config file on disk.
fn start_config(
    dir: &Path,
    profile: &str,
    modbus_port: u16,
    device: &str,
    influx: &Influx1,
) -> seguard::config::Config {
    std::fs::create_dir_all(dir.join("profiles")).expect("profiles dir");
    std::fs::write(dir.join("profiles/p.toml"), profile).expect("write profile");
    let text = format!(
        r#"
[site]
id = "s1"
name = "Modbus test site"
address = "1 Test Road"

[gateway]
id = "gw1"
http_listen = "127.0.0.1:0"
shutdown_flush_s = 5

[[equipment]]
id = "eq-1"
kind = "pressure_vessel"
registration_code = "21103101002018000031"
using_unit = "Boiler House Co."
address = "1 Test Road, boiler house"
nameplate = {{ working_pressure_mpa = 1.6, set_pressure_mpa = 1.76, design_pressure_mpa = 1.8 }}

[modbus]
profiles = "profiles"
request_timeout_ms = 1000
backoff_max_ms = 500

[[modbus.device]]
equipment = "eq-1"
profile = "p"
transport = "tcp"
host = "127.0.0.1"
port = {modbus_port}
unit_id = 1
{device}

[[rules.threshold]]
id = "device-offline"
equipment = ["eq-1"]
metric = "device_online"
low = {{ limit = 0.5 }}

[[uplink.influx]]
name = "influx1"
api = "v1"
url = "{url}"
database = "{DB}"
flush_interval_ms = 100
retry_min_ms = 50
retry_max_ms = 500
"#,
        url = influx.url()
    );
    let path = dir.join("site.toml");
    std::fs::write(&path, &text).expect("write site config");
    seguard::config::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"))
}

async fn get_text(gateway: &Gateway, path: &str) -> String {
    reqwest::get(format!("http://{}{path}", gateway.http_addr))
        .await
        .expect("gateway HTTP")
        .text()
        .await
        .expect("body")
}

/// The value of the /metrics sample of `name` whose labels include every one of `labels`
/// (e.g. `device="eq-1"`), whatever their order; `None` when there is no such sample.
async fn metric(gateway: &Gateway, name: &str, labels: &[&str]) -> Option<f64> {
    let text = get_text(gateway, "/metrics").await;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        let set: Vec<&str> = set.split(',').collect();
        labels
            .iter()
            .all(|l| set.contains(l))
            .then(|| value.trim().parse().ok())?
    })
}

/// `seguard_modbus_device_online` of `eq-1`: 1 while it answers.
async fn device_online(gateway: &Gateway) -> Option<f64> {
    metric(
        gateway,
        "seguard_modbus_device_online",
        &["device=\"eq-1\""],
    )
    .await
}

/// Whether /api/v1/alarms holds the device-offline alarm of `eq-1` with its condition present
/// now. An alarm that returned to normal may stay listed until acknowledged; it is not active.
async fn offline_alarm_active(gateway: &Gateway) -> bool {
    let alarms: serde_json::Value =
        serde_json::from_str(&get_text(gateway, "/api/v1/alarms").await).expect("alarms JSON");
    alarms.as_array().into_iter().flatten().any(|a| {
        a["equipment"] == "eq-1"
            && a["rule"] == "device-offline.low"
            && a.get("condition").is_none_or(|c| c == true)
    })
}

/// Quotes an InfluxQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_and_order_arrives_in_influxdb_exactly() {
    let all = all_types();
    let server = PyModbus::tcp(&all.spec);
    let influx = Influx1::start();
    influx.create_database(DB).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = start_config(
        dir.path(),
        &all.profile,
        server.port.expect("port"),
        "interval_ms = 200",
        &influx,
    );
    let started = chrono::Utc::now();
    let gateway = Gateway::start(config).await.expect("gateway starts");

    let metrics: Vec<&String> = all.expected.keys().collect();
    let columns: Vec<String> = metrics.iter().map(|m| ident(m)).collect();
    let query = format!(
        "SELECT {} FROM \"pressure_vessel\" WHERE \"equipment\" = 'eq-1' LIMIT 1",
        columns.join(", ")
    );
    // The first poll is one batch, so its line holds every field at one timestamp.
    let row = eventually(
        "one polled row with every field in InfluxDB",
        Duration::from_secs(20),
        || async {
            let rows = influx.query(DB, &query).await;
            rows.into_iter()
                .next()
                .filter(|row| row.iter().all(|v| !v.is_null()))
        },
    )
    .await;
    assert_eq!(
        row.len(),
        metrics.len() + 1,
        "time and one column per metric"
    );
    let time_ns = row[0].as_i64().expect("epoch ns");
    let time = chrono::DateTime::from_timestamp_nanos(time_ns);
    assert!(
        time >= started - chrono::Duration::seconds(1)
            && time <= chrono::Utc::now() + chrono::Duration::seconds(1),
        "stamped when polled: {time}"
    );
    for (metric, got) in metrics.iter().zip(&row[1..]) {
        let want = &all.expected[*metric];
        let exact = match want {
            // Bit for bit: the line protocol and InfluxDB's JSON both keep every digit.
            Value::Number(n) => got.as_f64().map(f64::to_bits) == Some(n.to_bits()),
            Value::Bool(b) => got.as_bool() == Some(*b),
            Value::Text(t) => got.as_str() == Some(t.as_str()),
        };
        assert!(exact, "{metric}: InfluxDB has {got}, expected {want:?}");
    }

    // Numbers are float fields, bools boolean, text strings: never a number for a bool.
    let field_types = influx
        .query(DB, "SHOW FIELD KEYS FROM \"pressure_vessel\"")
        .await;
    for (metric, want) in &all.expected {
        let kind = match want {
            Value::Number(_) => "float",
            Value::Bool(_) => "boolean",
            Value::Text(_) => "string",
        };
        assert!(
            field_types.contains(&vec![json!(metric), json!(kind)]),
            "{metric} should be a {kind} field: {field_types:?}"
        );
    }
    assert!(field_types.contains(&vec![json!("device_online"), json!("boolean")]));
    // Nothing went bad on the way.
    assert_eq!(
        influx
            .query(DB, "SELECT \"bad\" FROM \"seguard_quality\"")
            .await,
        Vec::<Vec<serde_json::Value>>::new()
    );
    assert_eq!(device_online(&gateway).await, Some(1.0));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_is_a_bad_point_and_a_silent_device_raises_and_clears_the_offline_alarm() {
    let server = PyModbus::tcp(&json!({"slaves": {"1": {
        "holding": {"0": [11, 12]},
        "input": {"0": [13]},
    }}}));
    let influx = Influx1::start();
    influx.create_database(DB).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = start_config(
        dir.path(),
        SMALL_PROFILE,
        server.port.expect("port"),
        "interval_ms = 100\ntimeout_ms = 200\noffline_after_cycles = 2",
        &influx,
    );
    let gateway = Gateway::start(config).await.expect("gateway starts");
    eventually("eq-1 online", Duration::from_secs(10), || async {
        (device_online(&gateway).await == Some(1.0)).then_some(())
    })
    .await;

    // 1. Holding register 1 answers exception 0x02: the merged request of a and b is split, b
    //    goes bad, a and c stay good, and the errors are counted for the device with reason
    //    "exception"; /metrics shows the split and the two requests the device now needs.
    server.set_control(&json!({"exceptions": {"1": {"holding": [1]}}}));
    let exception_count = || {
        metric(
            &gateway,
            "seguard_modbus_errors_total",
            &["device=\"eq-1\"", "reason=\"exception\""],
        )
    };
    eventually("exceptions counted", Duration::from_secs(10), || async {
        (exception_count().await >= Some(3.0)).then_some(())
    })
    .await;
    let bad_metrics = eventually(
        "bad points of a and b in InfluxDB",
        Duration::from_secs(20),
        || async {
            let rows = influx
                .query(
                    DB,
                    "SELECT \"bad\", \"metric\" FROM \"seguard_quality\" WHERE \"equipment\" = 'eq-1'",
                )
                .await;
            let mut metrics: Vec<String> = rows
                .iter()
                .map(|r| r[2].as_str().unwrap_or_default().to_owned())
                .collect();
            metrics.sort();
            metrics.dedup();
            (!metrics.is_empty()).then_some((metrics, rows))
        },
    )
    .await;
    assert_eq!(bad_metrics.0, ["b"], "only the refused register's point");
    let splits = metric(
        &gateway,
        "seguard_modbus_request_splits_total",
        &["device=\"eq-1\""],
    )
    .await;
    assert_eq!(splits, Some(1.0));
    let requests = metric(&gateway, "seguard_modbus_requests", &["device=\"eq-1\""]).await;
    assert_eq!(requests, Some(3.0), "holding 0, holding 1 and input 0");
    for row in &bad_metrics.1 {
        assert_eq!(row[1], json!(1), "bad=1i: {row:?}");
    }
    // A bad point is never written as a value: a holds 11 in every row, never a zero.
    let a_values = influx
        .query(
            DB,
            "SELECT \"a\" FROM \"pressure_vessel\" WHERE \"equipment\" = 'eq-1'",
        )
        .await;
    assert!(!a_values.is_empty());
    assert!(
        a_values.iter().all(|r| r[1].as_f64() == Some(11.0)),
        "{a_values:?}"
    );
    // c kept arriving while b was refused.
    let last_bad_ns = bad_metrics.1.iter().filter_map(|r| r[0].as_i64()).max();
    let c_rows = influx
        .query(
            DB,
            &format!(
                "SELECT \"c\" FROM \"pressure_vessel\" WHERE \"equipment\" = 'eq-1' AND time >= {}",
                last_bad_ns.expect("a bad point time")
            ),
        )
        .await;
    assert!(
        c_rows.iter().any(|r| r[1].as_f64() == Some(13.0)),
        "c good during the exceptions: {c_rows:?}"
    );
    assert_eq!(
        device_online(&gateway).await,
        Some(1.0),
        "an exception is an answer"
    );
    assert!(!offline_alarm_active(&gateway).await);

    // 2. The device stops answering: after two silent cycles it is offline and the rule on
    //    device_online raises the alarm.
    server.set_control(&json!({"dead": [1]}));
    eventually(
        "device-offline alarm raised",
        Duration::from_secs(15),
        || async { offline_alarm_active(&gateway).await.then_some(()) },
    )
    .await;
    assert_eq!(device_online(&gateway).await, Some(0.0));
    let timeouts = metric(
        &gateway,
        "seguard_modbus_errors_total",
        &["device=\"eq-1\"", "reason=\"timeout\""],
    )
    .await;
    assert!(timeouts >= Some(2.0), "timeouts counted: {timeouts:?}");

    // 3. It answers again: same gateway, no restart; the alarm clears.
    server.set_control(&json!({}));
    eventually(
        "device-offline alarm cleared",
        Duration::from_secs(15),
        || async { (!offline_alarm_active(&gateway).await).then_some(()) },
    )
    .await;
    assert_eq!(device_online(&gateway).await, Some(1.0));
    let transitions = eventually(
        "online, offline, online in InfluxDB",
        Duration::from_secs(20),
        || async {
            let rows = influx
                .query(
                    DB,
                    "SELECT \"device_online\" FROM \"pressure_vessel\" WHERE \"equipment\" = 'eq-1'",
                )
                .await;
            (rows.len() >= 3).then_some(rows)
        },
    )
    .await;
    let values: Vec<&serde_json::Value> = transitions.iter().map(|r| &r[1]).collect();
    assert_eq!(values, [&json!(true), &json!(false), &json!(true)]);
    // The poll that found the device back brought good values with it.
    let back_ns = transitions[2][0].as_i64().expect("epoch ns");
    let b_rows = influx
        .query(
            DB,
            &format!(
                "SELECT \"b\" FROM \"pressure_vessel\" WHERE \"equipment\" = 'eq-1' AND time >= {back_ns}"
            ),
        )
        .await;
    assert_eq!(
        b_rows.first().and_then(|r| r[1].as_f64()),
        Some(12.0),
        "{b_rows:?}"
    );
    gateway.stop().await;
}
