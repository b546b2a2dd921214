//! The rules' state survives `kill -9` of the gateway process (src/rules/checkpoint.rs): a
//! passenger trapped between floors is reported at the instant it would have been without the
//! crash, with the true stopped time, once.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::mqtt::TestClient;
use common::{free_port, metric, wait_http_ok, Mosquitto};
use serde_json::{json, Value};

/// The gateway binary, killed with SIGKILL when dropped.
struct GatewayProcess(Child);

impl GatewayProcess {
    fn spawn(config: &Path, log: &Path) -> GatewayProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_seguard"))
            .args(["gateway", "-c"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting seguard gateway");
        GatewayProcess(child)
    }

    /// SIGKILL: no shutdown, no flush, no last checkpoint.
    fn kill9(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn site(broker_port: u16, http: &str, outbox: &Path) -> String {
    format!(
        r#"
[site]
id = "s1"
name = "Restart site"
[gateway]
id = "gw-restart"
http_listen = "{http}"
[mqtt]
host = "127.0.0.1"
port = {broker_port}
client_id = "gw-restart"
reconnect_min_ms = 50
reconnect_max_ms = 500
[outbox]
dir = "{outbox}"
[[equipment]]
id = "lift-1"
kind = "elevator"
registration_code = "31103101002016010001"
[[ingest.mqtt]]
topic = "site/{{site}}/{{equipment}}/status"
time_pointer = "/ts"
fields = [
  {{ pointer = "/car_status", metric = "car_status", type = "text" }},
  {{ pointer = "/door_zone", metric = "door_zone", type = "bool" }},
  {{ pointer = "/floor", metric = "floor", type = "text" }},
  {{ pointer = "/door_closed_locked", metric = "door_closed_locked", type = "bool" }},
  {{ pointer = "/occupied", metric = "occupied", type = "bool" }},
  {{ pointer = "/service_mode", metric = "service_mode", type = "text" }},
]
[[rules.elevator]]
id = "lift"
[uplink.central]
confirm_timeout_ms = 2000
"#,
        outbox = outbox.display()
    )
}

/// The car as its terminal reports it every 2 s: stopped between floors, doors closed and
/// locked, a passenger inside.
fn stuck(ts: DateTime<Utc>) -> (String, Vec<u8>) {
    let payload = json!({
        "ts": ts.timestamp_millis(), "car_status": "stopped", "door_zone": false, "floor": "5",
        "door_closed_locked": true, "occupied": true, "service_mode": "normal",
    });
    (
        "site/s1/lift-1/status".to_owned(),
        payload.to_string().into_bytes(),
    )
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .with_timezone(&Utc)
}

/// One gateway process on its own broker and directory, with an observer of its incidents.
struct Run {
    broker: Mosquitto,
    _dir: tempfile::TempDir,
    http: String,
    config: std::path::PathBuf,
    log: std::path::PathBuf,
    central: TestClient,
    gateway: Option<GatewayProcess>,
}

impl Run {
    /// Starts the gateway on a durable outbox and waits until it is ready.
    async fn start() -> Run {
        let broker = Mosquitto::start();
        let dir = tempfile::tempdir().unwrap();
        let http = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("site.toml");
        let outbox = dir.path().join("outbox");
        std::fs::write(&config, site(broker.port, &http, &outbox)).unwrap();
        let log = dir.path().join("gateway.log");
        let central = TestClient::connect(broker.port, "central-observer").await;
        central.subscribe("seguard/v1/gw-restart/incidents").await;
        let gateway = GatewayProcess::spawn(&config, &log);
        wait_http_ok("gateway ready", &format!("http://{http}/readyz")).await;
        Run {
            broker,
            _dir: dir,
            http,
            config,
            log,
            central,
            gateway: Some(gateway),
        }
    }

    /// `kill -9`, then a new process at once, waited for until ready.
    async fn kill9_and_restart(&mut self) {
        self.gateway.take().expect("a gateway").kill9();
        self.gateway = Some(GatewayProcess::spawn(&self.config, &self.log));
        wait_http_ok(
            "gateway ready again",
            &format!("http://{}/readyz", self.http),
        )
        .await;
    }

    /// The trapped raises central receives until `started + 36 s`, each with when it arrived.
    async fn trapped_raises(&mut self, started: Instant) -> Vec<(Value, Duration)> {
        let mut raises = Vec::new();
        while let Some(left) = Duration::from_secs(36).checked_sub(started.elapsed()) {
            let Some((_, incident)) = self.central.next_json(left).await else {
                break;
            };
            let event = &incident["event"];
            if event["rule"] == json!("lift.trapped") && event["transition"] == json!("raise") {
                raises.push((event.clone(), started.elapsed()));
            }
        }
        raises
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_a_trapped_episode_keeps_the_instant_and_the_stopped_time() {
    let mut run = Run::start().await;

    // t0: the car stops. The terminal goes on reporting every 2 s, through the crash: the
    // broker keeps what arrives while the gateway is down in its persistent session.
    let t0 = Utc::now();
    let started = Instant::now();
    let mut terminal = TestClient::connect(run.broker.port, "lift-1-terminal").await;
    terminal.publish_all([stuck(t0)]).await;
    let reporter = tokio::spawn(async move {
        let mut n = 1;
        loop {
            tokio::time::sleep_until((started + Duration::from_secs(2 * n)).into()).await;
            terminal.publish_all([stuck(Utc::now())]).await;
            n += 1;
        }
    });

    tokio::time::sleep_until((started + Duration::from_secs(10)).into()).await;
    run.kill9_and_restart().await;
    let restarted = started.elapsed();
    assert_eq!(
        metric(
            &run.http,
            "seguard_rule_checkpoints_total{outcome=\"restored\"}"
        )
        .await,
        1.0,
        "log:\n{}",
        run.log_text()
    );

    // Everything central gets until t0 + 36 s.
    let raises = run.trapped_raises(started).await;
    reporter.abort();
    let log_text = run.log_text();
    assert!(!raises.is_empty(), "no trapped incident; log:\n{log_text}");
    let ids: std::collections::BTreeSet<String> =
        raises.iter().map(|(e, _)| e["id"].to_string()).collect();
    assert_eq!(
        ids.len(),
        1,
        "raised once (redeliveries keep the id): {raises:?}"
    );

    let (event, arrived) = &raises[0];
    let at = time(&event["time"]);
    let expected = t0 + chrono::Duration::seconds(30);
    eprintln!(
        "restarted after {:.2} s; trapped at t0 + {:.3} s (event time), arrived at t0 + {:.2} s",
        restarted.as_secs_f64(),
        (at - t0).num_milliseconds() as f64 / 1000.0,
        arrived.as_secs_f64()
    );
    assert!(
        (at - expected).num_milliseconds().abs() <= 1000,
        "trapped at {at}, expected {expected}"
    );
    assert!(
        *arrived < Duration::from_secs(32),
        "reported {arrived:?} after t0"
    );
    let details = &event["details"];
    // The reading's own millisecond timestamp: the true stopped time.
    assert_eq!(
        time(&details["stopped_since"]).timestamp_millis(),
        t0.timestamp_millis(),
        "{event}"
    );
    assert_eq!(details["stopped_s"], json!(30.0), "{event}");
    let message = event["message"].as_str().unwrap();
    assert!(
        message.contains("outside the door zone") && message.contains("for 30 s"),
        "{message}"
    );
}

/// A terminal that reports only on change: one message when the car stops, and the gateway is
/// killed 0.2 s after it evaluated it, most likely before a checkpoint was due. The readings journal
/// carries the stop over the crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_right_after_a_quiet_terminal_reports_the_stop() {
    let mut run = Run::start().await;

    let t0 = Utc::now();
    let started = Instant::now();
    let mut terminal = TestClient::connect(run.broker.port, "lift-1-terminal").await;
    terminal.publish_all([stuck(t0)]).await;
    common::eventually("the stop evaluated", Duration::from_secs(10), || async {
        (metric(
            &run.http,
            "seguard_readings_received_total{source=\"mqtt\"}",
        )
        .await
            >= 6.0)
            .then_some(())
    })
    .await;
    // Time for the acknowledgement to reach the broker (it is not sent again), well within the
    // checkpoint's 1 s throttle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed = started.elapsed();
    run.kill9_and_restart().await;

    let raises: Vec<Value> = run
        .trapped_raises(started)
        .await
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    let log_text = run.log_text();
    eprintln!(
        "killed {:.3} s after the stop was published",
        killed.as_secs_f64()
    );
    let ids: std::collections::BTreeSet<String> =
        raises.iter().map(|e| e["id"].to_string()).collect();
    assert_eq!(
        ids.len(),
        1,
        "one trapped incident: {raises:?}\nlog:\n{log_text}"
    );
    let at = time(&raises[0]["time"]);
    assert!(
        (at - (t0 + chrono::Duration::seconds(30)))
            .num_milliseconds()
            .abs()
            <= 1000,
        "trapped at {at}, t0 {t0}"
    );
    assert_eq!(
        time(&raises[0]["details"]["stopped_since"]).timestamp_millis(),
        t0.timestamp_millis()
    );
}
