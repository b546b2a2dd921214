//! The `seguard gateway` binary as an operator runs it: JSON logs, and SIGTERM flushes what is
//! queued before the process exits 0.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::mqtt::TestClient;
use common::{eventually, free_port, metric, wait_http_ok, Influx1, Mosquitto};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_queued_points_and_logs_are_json() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_database("flush").await;
    let dir = tempfile::tempdir().unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    // A flush interval far longer than the test: points only leave on shutdown.
    let config = format!(
        r#"
[site]
id = "s1"
name = "Flush site"
[gateway]
id = "gw-flush"
http_listen = "{http}"
[mqtt]
host = "127.0.0.1"
port = {port}
[[equipment]]
id = "pv-1"
kind = "pressure_vessel"
registration_code = "21103101002018000031"
nameplate = {{ working_pressure_mpa = 1.0, set_pressure_mpa = 1.1, design_pressure_mpa = 1.2 }}
[[ingest.mqtt]]
topic = "plant/{{equipment}}"
time_pointer = "/ts"
fields = [{{ pointer = "/p", metric = "pressure", unit = "MPa" }}]
[[uplink.influx]]
api = "v1"
url = "{influx}"
database = "flush"
batch_max_lines = 100000
queue_max_points = 100000
flush_interval_ms = 600000
"#,
        port = broker.port,
        influx = influx.url()
    );
    let config_path = dir.path().join("site.toml");
    std::fs::write(&config_path, config).unwrap();
    let log_path = dir.path().join("gateway.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_seguard"))
        .args(["--log-format", "json", "gateway", "-c"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("starting seguard gateway");

    wait_http_ok("gateway ready", &format!("http://{http}/readyz")).await;
    let mut device = TestClient::connect(broker.port, "flush-device").await;
    let messages = (0..50).map(|i: i64| {
        let body = json!({"ts": 1_790_000_000_000i64 + i, "p": 0.5 + i as f64 / 100.0});
        ("plant/pv-1".to_owned(), body.to_string().into_bytes())
    });
    device.publish_all(messages.collect::<Vec<_>>()).await;
    eventually("50 readings received", Duration::from_secs(10), || async {
        (metric(&http, "seguard_readings_received_total{source=\"mqtt\"}").await == 50.0)
            .then_some(())
    })
    .await;
    assert!(
        influx
            .query("flush", "SELECT pressure FROM pressure_vessel")
            .await
            .is_empty(),
        "nothing is written before the flush interval"
    );

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0), "graceful exit");

    let rows = influx
        .query("flush", "SELECT pressure FROM pressure_vessel")
        .await;
    assert_eq!(rows.len(), 50, "every queued point was flushed on SIGTERM");

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.lines().count() >= 3, "log:\n{log}");
    for line in log.lines() {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            entry["level"].is_string() && entry["fields"].is_object(),
            "{line}"
        );
    }
    assert!(log.contains("\"message\":\"stopped\""), "log:\n{log}");
}
