//! Hot reload of `seguard gateway` (SIGHUP and `seguard reload`) on real mosquitto and
//! InfluxDB 1.x, `Gateway::reload` moving Modbus polling to another pymodbus server, and SIGHUP
//! to `seguard central`.

mod common;
#[path = "common/modbus.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::mqtt::TestClient;
use common::{eventually, free_port, metric, wait_http_ok, Influx1, Mosquitto};
use serde_json::{json, Value};

/// A `seguard` process of this test, killed when the guard drops (a failed test included).
struct Seguard {
    child: Child,
    log: PathBuf,
}

impl Seguard {
    fn spawn(args: &[&str], config: &Path, log: PathBuf) -> Seguard {
        let child = Command::new(env!("CARGO_BIN_EXE_seguard"))
            .args(args)
            .arg("-c")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting seguard");
        Seguard { child, log }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([name, &pid]).status().unwrap();
        assert!(sent.success(), "kill {name} {pid}");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM, and the exit code.
    async fn stop(mut self) -> Option<i32> {
        self.signal("-TERM");
        let mut child = std::mem::replace(
            &mut self.child,
            Command::new("true").spawn().expect("a placeholder child"),
        );
        tokio::task::spawn_blocking(move || child.wait().unwrap().code())
            .await
            .unwrap()
    }
}

impl Drop for Seguard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A site with pressure vessels `pv-1` and `pv-2` on MQTT (`plant/{equipment}`, payload
/// `{"ts": ms, "p": value}`) and InfluxDB 1.x; `extra` is appended (rules, more equipment).
fn site(
    http: &str,
    broker: u16,
    influx: &str,
    db: &str,
    equipment: &[&str],
    extra: &str,
) -> String {
    let mut text = format!(
        r#"
[site]
id = "s1"
name = "Reload site"
[gateway]
id = "gw-reload"
http_listen = "{http}"
[mqtt]
host = "127.0.0.1"
port = {broker}
client_id = "gw-reload"
[[ingest.mqtt]]
topic = "plant/{{equipment}}"
time_pointer = "/ts"
fields = [{{ pointer = "/p", metric = "pressure", unit = "MPa" }}]
[[uplink.influx]]
api = "v1"
url = "{influx}"
database = "{db}"
batch_max_lines = 5000
flush_interval_ms = 100
"#
    );
    for id in equipment {
        text.push_str(&format!(
            r#"
[[equipment]]
id = "{id}"
kind = "pressure_vessel"
registration_code = "21103101002018000031"
nameplate = {{ working_pressure_mpa = 1.0, set_pressure_mpa = 1.1, design_pressure_mpa = 1.2 }}
"#
        ));
    }
    text.push_str(extra);
    text
}

/// A high threshold on `pressure` of every pressure vessel.
fn threshold(id: &str, limit: f64) -> String {
    format!(
        r#"
[[rules.threshold]]
id = "{id}"
kind = "pressure_vessel"
metric = "pressure"
high = {{ limit = {limit} }}
"#
    )
}

/// Runs a short `seguard` command (check, reload) to its end.
fn seguard_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_seguard"))
        .args(args)
        .output()
        .expect("running seguard")
}

async fn get_json(http: &str, path: &str) -> Value {
    reqwest::get(format!("http://{http}{path}"))
        .await
        .expect("gateway API")
        .json()
        .await
        .expect("JSON")
}

const RECEIVED: &str = "seguard_readings_received_total{source=\"mqtt\"}";
const APPLIED: &str = "seguard_config_reloads_total{outcome=\"applied\"}";
const REFUSED: &str = "seguard_config_reloads_total{outcome=\"refused\"}";

async fn start_gateway(dir: &Path, http: &str, config: &str) -> (Seguard, PathBuf) {
    let path = dir.join("site.toml");
    std::fs::write(&path, config).unwrap();
    let gateway = Seguard::spawn(&["gateway"], &path, dir.join("gateway.log"));
    wait_http_ok("gateway ready", &format!("http://{http}/readyz")).await;
    (gateway, path)
}

fn reading(equipment: &str, ts_ms: i64, p: f64) -> (String, Vec<u8>) {
    let body = json!({"ts": ts_ms, "p": p});
    (format!("plant/{equipment}"), body.to_string().into_bytes())
}

/// The events of one equipment in the gateway's alarm history, oldest first, as
/// (rule, transition, message).
async fn history(http: &str, equipment: &str) -> Vec<(String, String, String)> {
    let events = get_json(
        http,
        &format!("/api/v1/alarms/history?equipment={equipment}"),
    )
    .await;
    let mut events: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (text("rule"), text("transition"), text("message"))
        })
        .collect();
    events.reverse();
    events
}

const T0: i64 = 1_790_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_under_load_loses_no_reading_and_the_new_rule_raises() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_database("load").await;
    let dir = tempfile::tempdir().unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let before = site(&http, broker.port, &influx.url(), "load", &["pv-1"], "");
    let (gateway, path) = start_gateway(dir.path(), &http, &before).await;

    // 10,000 QoS1 messages over about 10 s, in bursts of 100 every 100 ms, with distinct
    // times and values 0..10,000, so the stored count and sum show any loss or duplicate.
    const N: i64 = 10_000;
    let mut device = TestClient::connect(broker.port, "load-device").await;
    let load = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for burst in 0..N / 100 {
            tick.tick().await;
            let messages =
                (burst * 100..(burst + 1) * 100).map(|i| reading("pv-1", T0 + i, i as f64));
            device.publish_all(messages.collect::<Vec<_>>()).await;
        }
        device
    });

    eventually(
        "a third of the load in",
        Duration::from_secs(20),
        || async { (metric(&http, RECEIVED).await >= (N / 3) as f64).then_some(()) },
    )
    .await;
    let after = before.clone() + &threshold("p-limit", 100_000.0);
    std::fs::write(&path, after).unwrap();
    gateway.signal("-HUP");
    eventually("reload applied", Duration::from_secs(15), || async {
        (metric(&http, APPLIED).await == 1.0).then_some(())
    })
    .await;
    assert!(
        metric(&http, RECEIVED).await < N as f64,
        "the reload happened while the load was still coming in"
    );
    let mut device = load.await.unwrap();

    // After the reload, a value beyond the new rule's limit raises its alarm.
    device
        .publish_all([reading("pv-1", T0 + N, 200_000.0)])
        .await;
    let alarms = eventually("the new rule raises", Duration::from_secs(10), || async {
        let alarms = get_json(&http, "/api/v1/alarms").await;
        let raised = alarms
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["equipment"] == "pv-1" && a["rule"] == "p-limit.high");
        raised.then_some(alarms)
    })
    .await;
    assert_eq!(alarms[0]["value"], 200_000.0, "{alarms}");

    let total = N + 1;
    let expected_sum = (0..N).sum::<i64>() as f64 + 200_000.0;
    let rows = eventually("every reading stored", Duration::from_secs(30), || async {
        let rows = influx
            .query(
                "load",
                "SELECT count(pressure), sum(pressure) FROM pressure_vessel",
            )
            .await;
        let count = rows.first().and_then(|r| r[1].as_i64()).unwrap_or(0);
        (count >= total).then_some(rows)
    })
    .await;
    assert_eq!(rows[0][1].as_i64(), Some(total), "stored points: {rows:?}");
    assert_eq!(
        rows[0][2].as_f64(),
        Some(expected_sum),
        "checksum: {rows:?}"
    );
    // Each message was taken once: none redelivered and counted twice across the reload.
    assert_eq!(metric(&http, RECEIVED).await, total as f64);
    assert_eq!(metric(&http, REFUSED).await, 0.0);
    let log = gateway.log_text();
    assert!(log.contains("config reloaded"), "log:\n{log}");
    assert_eq!(gateway.stop().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_is_refused_and_the_old_one_keeps_running() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_database("invalid").await;
    let dir = tempfile::tempdir().unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let good = site(&http, broker.port, &influx.url(), "invalid", &["pv-1"], "");
    let (mut gateway, path) = start_gateway(dir.path(), &http, &good).await;

    // A rule on equipment the site does not have, with its limits out of order.
    let bad = good.clone()
        + r#"
[[rules.threshold]]
id = "p-limit"
equipment = ["pv-9"]
metric = "pressure"
high = { limit = 1.0 }
high_high = { limit = 0.5 }
"#;
    std::fs::write(&path, &bad).unwrap();
    let check = seguard_cli(&["check", path.to_str().unwrap()]);
    assert!(!check.status.success());
    let check_problems = String::from_utf8_lossy(&check.stderr).into_owned();
    let problems: Vec<&str> = check_problems
        .lines()
        .filter(|l| {
            l.split_once("site.toml:")
                .is_some_and(|(_, at)| at.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    assert!(problems.len() >= 2, "{check_problems}");

    let reload = seguard_cli(&[
        "reload",
        "--api",
        &format!("http://{http}"),
        "--user",
        "test",
    ]);
    let printed = String::from_utf8_lossy(&reload.stderr).into_owned();
    assert_eq!(reload.status.code(), Some(1), "refused: {printed}");
    for problem in &problems {
        assert!(printed.contains(problem), "{printed}\nexpected: {problem}");
    }
    assert!(printed.contains("the running config stays"), "{printed}");
    let first_problem = problems[0];
    let log = gateway.log_text();
    assert!(log.contains(first_problem), "log:\n{log}");
    assert!(
        log.contains("reload refused, the running config stays"),
        "log:\n{log}"
    );

    // A change that only a restart can apply is refused as well, on SIGHUP too.
    let moved = good.replace(&http, "127.0.0.1:1");
    std::fs::write(&path, moved).unwrap();
    gateway.signal("-HUP");
    eventually(
        "second refusal counted",
        Duration::from_secs(10),
        || async { (metric(&http, REFUSED).await == 2.0).then_some(()) },
    )
    .await;
    let log = gateway.log_text();
    assert!(
        log.contains("[gateway] http_listen changed: only a restart applies it"),
        "log:\n{log}"
    );

    // Still running on the old config: readings flow and are stored.
    assert!(gateway.is_running());
    let mut device = TestClient::connect(broker.port, "invalid-device").await;
    device
        .publish_all(
            (0..20)
                .map(|i| reading("pv-1", T0 + i, 0.5))
                .collect::<Vec<_>>(),
        )
        .await;
    eventually("readings stored", Duration::from_secs(15), || async {
        let rows = influx
            .query("invalid", "SELECT count(pressure) FROM pressure_vessel")
            .await;
        (rows.first().and_then(|r| r[1].as_i64()) == Some(20)).then_some(())
    })
    .await;
    assert_eq!(metric(&http, APPLIED).await, 0.0);

    // Back to the running file: nothing to apply.
    std::fs::write(&path, &good).unwrap();
    let unchanged = seguard_cli(&["reload", "--api", &format!("http://{http}")]);
    assert!(unchanged.status.success());
    let printed = String::from_utf8_lossy(&unchanged.stdout).into_owned();
    assert!(printed.contains("config unchanged"), "{printed}");

    // Unreachable: exits non-zero too, saying so.
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let unreachable = seguard_cli(&["reload", "--api", &nobody]);
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach the gateway"));
    assert_eq!(gateway.stop().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alarm_carries_on_and_a_removed_equipment_alarm_clears() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_database("alarms").await;
    let dir = tempfile::tempdir().unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    // Incidents and the registry go to central over the same broker.
    let rule = threshold("p-high", 1.05) + "[uplink.central]\n";
    let mut central = TestClient::connect(broker.port, "central-watch").await;
    central.subscribe("seguard/v1/gw-reload/#").await;
    let both = site(
        &http,
        broker.port,
        &influx.url(),
        "alarms",
        &["pv-1", "pv-2"],
        &rule,
    );
    let (gateway, path) = start_gateway(dir.path(), &http, &both).await;
    let mut device = TestClient::connect(broker.port, "alarm-device").await;
    device
        .publish_all([reading("pv-1", T0, 1.2), reading("pv-2", T0, 1.2)])
        .await;
    eventually("both alarms raised", Duration::from_secs(10), || async {
        let alarms = get_json(&http, "/api/v1/alarms").await;
        (alarms.as_array().unwrap().len() == 2).then_some(())
    })
    .await;

    // pv-2 leaves the site; pv-1 and its rule stay as they were.
    let one = site(
        &http,
        broker.port,
        &influx.url(),
        "alarms",
        &["pv-1"],
        &rule,
    );
    std::fs::write(&path, one).unwrap();
    let reload = seguard_cli(&["reload", "--api", &format!("http://{http}")]);
    let printed = String::from_utf8_lossy(&reload.stdout).into_owned();
    assert!(
        reload.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    assert!(
        printed.contains("reloaded: site s1 gateway gw-reload: 1 equipment"),
        "{printed}"
    );

    let removed = eventually("pv-2 alarm cleared", Duration::from_secs(10), || async {
        let events = history(&http, "pv-2").await;
        (events.len() == 2).then_some(events)
    })
    .await;
    assert_eq!(removed[0].1, "raise");
    assert_eq!(removed[1].1, "clear");
    assert_eq!(removed[1].0, "p-high.high");
    assert!(
        removed[1]
            .2
            .contains("the equipment was removed from the config by a reload"),
        "{removed:?}"
    );

    // Central hears the clear, with pv-2's registry record, and the registry without pv-2.
    let (mut cleared, mut registry) = (None, None);
    while cleared.is_none() || registry.is_none() {
        let (topic, message) = central
            .next_json(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("central heard {cleared:?} and {registry:?}"));
        if topic.ends_with("/incidents")
            && message["event"]["equipment"] == "pv-2"
            && message["event"]["transition"] == "clear"
        {
            cleared = Some(message);
        } else if topic.ends_with("/registry")
            && message["equipment"].as_array().unwrap().len() == 1
        {
            registry = Some(message);
        }
    }
    assert_eq!(cleared.unwrap()["equipment"]["id"], "pv-2");
    assert_eq!(registry.unwrap()["equipment"][0]["id"], "pv-1");

    // pv-1 is still in alarm with the same incident: a higher value raises nothing new, and a
    // normal one clears it, which shows the rule kept its state across the reload.
    device.publish_all([reading("pv-1", T0 + 1, 1.3)]).await;
    device.publish_all([reading("pv-1", T0 + 2, 0.5)]).await;
    let kept = eventually(
        "pv-1 alarm cleared by its value",
        Duration::from_secs(10),
        || async {
            let events = history(&http, "pv-1").await;
            (events.len() >= 2).then_some(events)
        },
    )
    .await;
    let transitions: Vec<&str> = kept.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(transitions, ["raise", "clear"], "{kept:?}");
    assert!(
        !kept[1].2.contains("reload"),
        "cleared by the reading: {kept:?}"
    );
    // Never acknowledged, before or after the reload: it waits for an operator (ISA-18.2).
    let alarms = get_json(&http, "/api/v1/alarms").await;
    assert_eq!(alarms.as_array().unwrap().len(), 1, "{alarms}");
    assert_eq!(alarms[0]["state"], "returned_unacknowledged", "{alarms}");
    let equipment = get_json(&http, "/api/v1/equipment").await;
    assert_eq!(equipment.as_array().unwrap().len(), 1, "{equipment}");
    assert_eq!(gateway.stop().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_does_not_stop_central() {
    let dir = tempfile::tempdir().unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let config = format!(
        r#"
[central]
instance = "central-hup"
http_listen = "{http}"
public_url = "http://{http}"
[store]
url = "sqlite://{store}/central.db"
"#,
        store = dir.path().display()
    );
    let path = dir.path().join("central.toml");
    std::fs::write(&path, config).unwrap();
    let mut central = Seguard::spawn(&["central"], &path, dir.path().join("central.log"));
    wait_http_ok("central up", &format!("http://{http}/healthz")).await;
    central.signal("-HUP");
    eventually("SIGHUP logged", Duration::from_secs(5), || async {
        central
            .log_text()
            .contains("central does not reload its config")
            .then_some(())
    })
    .await;
    assert!(central.is_running(), "log:\n{}", central.log_text());
    let status = reqwest::get(format!("http://{http}/healthz"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert_eq!(central.stop().await, Some(0));
}

/// A site whose pressure vessel `eq-1` is polled over Modbus TCP at `port` (profile
/// `SMALL_PROFILE`: holding a, b and input c).
fn modbus_site(dir: &Path, port: u16, influx: &Influx1) -> String {
    std::fs::create_dir_all(dir.join("profiles")).unwrap();
    std::fs::write(dir.join("profiles/p.toml"), harness::SMALL_PROFILE).unwrap();
    format!(
        r#"
[site]
id = "s1"
name = "Modbus reload site"
[gateway]
id = "gw-modbus"
http_listen = "127.0.0.1:0"
[[equipment]]
id = "eq-1"
kind = "pressure_vessel"
registration_code = "21103101002018000031"
nameplate = {{ working_pressure_mpa = 1.6, set_pressure_mpa = 1.76, design_pressure_mpa = 1.8 }}
[modbus]
profiles = "profiles"
[[modbus.device]]
equipment = "eq-1"
profile = "p"
transport = "tcp"
host = "127.0.0.1"
port = {port}
unit_id = 1
interval_ms = 100
[[uplink.influx]]
api = "v1"
url = "{url}"
database = "modbus"
flush_interval_ms = 100
"#,
        url = influx.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_modbus_polling_to_the_new_device_address() {
    let registers =
        |a: u16| json!({"slaves": {"1": {"holding": {"0": [a, a + 1]}, "input": {"0": [a + 2]}}}});
    let old_device = harness::PyModbus::tcp(&registers(11));
    let new_device = harness::PyModbus::tcp(&registers(21));
    let influx = Influx1::start();
    influx.create_database("modbus").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(
        &path,
        modbus_site(dir.path(), old_device.port.unwrap(), &influx),
    )
    .unwrap();
    let config = seguard::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut gateway = seguard::gateway::Gateway::start(config).await.unwrap();
    gateway.config_path = Some(path.clone());
    let last_a = || async {
        let rows = influx
            .query("modbus", "SELECT last(a) FROM pressure_vessel")
            .await;
        rows.first().and_then(|r| r[1].as_f64())
    };
    eventually("the old device polled", Duration::from_secs(20), || async {
        (last_a().await == Some(11.0)).then_some(())
    })
    .await;

    std::fs::write(
        &path,
        modbus_site(dir.path(), new_device.port.unwrap(), &influx),
    )
    .unwrap();
    let outcome = gateway.reload().await;
    assert!(outcome.applied, "{outcome:?}");
    eventually("the new device polled", Duration::from_secs(20), || async {
        (last_a().await == Some(21.0)).then_some(())
    })
    .await;
    assert_eq!(metric(&gateway.http_addr.to_string(), APPLIED).await, 1.0);
    gateway.stop().await;
}

/// Reload compares values, not their `Debug` text: a password file or a CA file whose content
/// changed under the same name (so the config text and its redacted `Debug` output are the
/// same) is a change, applied and reported. The gateway connects only once both are right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_or_ca_file_content_is_applied_and_reported() {
    use common::tls::{MosquittoTls, TestPki};
    const RIGHT: &str = "gw-secret-right";
    let pki = TestPki::generate();
    let broker = MosquittoTls::start(
        &pki,
        "server",
        &[("gateway", RIGHT), ("device", "device-secret")],
    );
    // Wrong at first: a CA that did not sign the broker, and an old password.
    std::fs::copy(pki.path("other-ca.pem"), pki.path("trust.pem")).unwrap();
    std::fs::write(pki.path("gateway.pw"), "gw-secret-old\n").unwrap();
    let text = format!(
        r#"
[site]
id = "s1"
name = "Secrets site"
[gateway]
id = "gw-secrets"
http_listen = "127.0.0.1:0"
[mqtt]
host = "127.0.0.1"
port = {port}
username = "gateway"
password_file = "gateway.pw"
reconnect_min_ms = 100
reconnect_max_ms = 300
[mqtt.tls]
ca_file = "trust.pem"
client_cert = "client.pem"
client_key = "client.key"
[[equipment]]
id = "pv-1"
kind = "pressure_vessel"
registration_code = "21103101002018000031"
[[ingest.mqtt]]
topic = "site/{{site}}/boiler/pressure"
equipment = "pv-1"
fields = [ {{ pointer = "/pressure_mpa", metric = "pressure", unit = "MPa" }} ]
"#,
        port = broker.port
    );
    let path = pki.path("site.toml");
    std::fs::write(&path, text).unwrap();
    let mut gateway = seguard::gateway::Gateway::start(seguard::config::load(&path).unwrap())
        .await
        .unwrap();
    gateway.config_path = Some(path.clone());
    let connected = |gateway: &seguard::gateway::Gateway| {
        gateway
            .metrics
            .render()
            .contains("seguard_broker_connected{uplink=\"site\"} 1")
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !connected(&gateway),
        "the broker's certificate is not trusted"
    );

    // The right CA in the same file.
    std::fs::copy(pki.path("ca.pem"), pki.path("trust.pem")).unwrap();
    let outcome = gateway.reload().await;
    assert!(outcome.applied, "{outcome:?}");
    assert!(
        outcome.message.contains("changed: [mqtt]"),
        "{}",
        outcome.message
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!connected(&gateway), "the password is still the old one");

    // The new password in the same file.
    std::fs::write(pki.path("gateway.pw"), format!("{RIGHT}\n")).unwrap();
    let outcome = gateway.reload().await;
    assert!(outcome.applied, "{outcome:?}");
    assert!(
        outcome.message.contains("changed: [mqtt]"),
        "{}",
        outcome.message
    );
    let url = format!(
        "http://{}/api/v1/readings/latest?equipment=pv-1",
        gateway.http_addr
    );
    let mut sent = 0.0;
    eventually(
        "a reading through the reconnected ingest",
        Duration::from_secs(20),
        || {
            sent += 0.125;
            broker.publish(
                &pki,
                "device",
                "device-secret",
                "site/s1/boiler/pressure",
                &json!({ "pressure_mpa": sent }).to_string(),
            );
            let url = url.clone();
            async move {
                let body: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
                body.as_array()?
                    .iter()
                    .any(|r| r["metric"] == json!("pressure"))
                    .then_some(())
            }
        },
    )
    .await;
    assert!(connected(&gateway));

    // The same files again: nothing to apply.
    let outcome = gateway.reload().await;
    assert!(outcome.message.contains("config unchanged"), "{outcome:?}");
    gateway.stop().await;
}
