//! Issue 5's gateway-level fault tests on the real servers, each with a durable outbox
//! (`[outbox] dir = <tempdir>`):
//!
//! 1. InfluxDB stopped for `SEGUARD_OUTAGE_S` seconds (default 120) under ~2,000 msg/s QoS1:
//!    every point arrives once (count, checksums, distinct values, every time present).
//! 2. The gateway binary killed with SIGKILL at 10 seeded random moments during a QoS1 stream
//!    and restarted on the same outbox dir and client id: every message the broker acknowledged
//!    to the publisher reaches InfluxDB.
//! 3. The central broker (a second mosquitto) stopped while incidents are produced through the
//!    site broker: all of them arrive at a central subscriber once it is back.
//! 4. A 1 MB telemetry quota with InfluxDB down: the oldest telemetry is dropped and counted,
//!    incidents still flow, and `gateway.data_loss` is raised with the lost count.
//! 5. A catch-up under a drain rate: while the backlog drains in order, the newest points are
//!    already in InfluxDB (dashboards stay current), and in the end every point is there once.
//!
//! The tests take a lock so they run one at a time: they measure throughput-sensitive paths on
//! a 2-core machine. Numbers are printed (`--nocapture` shows them).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mqtt::TestClient;
use common::{eventually, free_port, Influx1, Mosquitto};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use seguard::gateway::Gateway;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One test at a time: each one pushes the machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The gateway's logs on the test output when `RUST_LOG` is set.
fn logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Message `i` is stamped `T0_MS + i` milliseconds, so every message has its own time.
const T0_MS: i64 = 1_790_000_000_000;
const TOPIC: &str = "plant/pv-1";

/// The pressure of bulk message `i`: below the 1.6 MPa limit and its deadband, exact in binary.
fn pressure(i: usize) -> f64 {
    (i % 300) as f64 / 256.0
}
fn temperature(i: usize) -> f64 {
    i as f64
}
fn level(i: usize) -> f64 {
    (i % 1000) as f64 + 0.5
}

fn payload(i: usize, p: f64) -> Vec<u8> {
    json!({"ts": T0_MS + i as i64, "p": p, "t": temperature(i), "l": level(i)})
        .to_string()
        .into_bytes()
}

/// A site with one pressure vessel (three metrics a message, a threshold on pressure at
/// 1.6 MPa), a durable outbox in `outbox_dir`, and `uplinks` appended.
fn site_text(
    gateway: &str,
    http: &str,
    site_port: u16,
    outbox_dir: &Path,
    outbox_extra: &str,
    uplinks: &str,
) -> String {
    format!(
        r#"
[site]
id = "s1"
name = "Fault site"
address = "1 Test Road"

[gateway]
id = "{gateway}"
http_listen = "{http}"
shutdown_flush_s = 5

[mqtt]
host = "127.0.0.1"
port = {site_port}
reconnect_min_ms = 50
reconnect_max_ms = 500

[outbox]
dir = "{dir}"
{outbox_extra}

[[equipment]]
id = "pv-1"
kind = "pressure_vessel"
registration_code = "21103101002018000031"
using_unit = "Boiler House Co."
address = "1 Test Road, boiler house"
nameplate = {{ working_pressure_mpa = 1.6, set_pressure_mpa = 1.76, design_pressure_mpa = 1.8 }}

[[ingest.mqtt]]
topic = "{TOPIC}"
equipment = "pv-1"
time_pointer = "/ts"
fields = [
  {{ pointer = "/p", metric = "pressure", unit = "MPa" }},
  {{ pointer = "/t", metric = "temperature" }},
  {{ pointer = "/l", metric = "level" }},
]

# These tests are about delivery: a chattering alarm must not be held back.
[rules.lifecycle]
chatter_count = 1000

[[rules.threshold]]
id = "vessel-pressure"
equipment = ["pv-1"]
metric = "pressure"
high = {{ limit = 1.6 }}
deadband = 0.05

{uplinks}
"#,
        dir = outbox_dir.display()
    )
}

fn parse(text: &str) -> seguard::config::Config {
    seguard::config::parse(text, Path::new("outbox-faults.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn influx_uplink(server: &Influx1, db: &str) -> String {
    format!(
        "[[uplink.influx]]\nname = \"influx1\"\napi = \"v1\"\nurl = \"{}\"\ndatabase = \"{db}\"\n\
         flush_interval_ms = 100\nretry_min_ms = 50\nretry_max_ms = 1000\n",
        server.url()
    )
}

/// The sum of every sample of `name` in /metrics (all label sets).
async fn metric(http: &str, name: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("http://{http}/metrics")).await else {
        return f64::NAN;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let base = series.split('{').next()?;
            (base == name).then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

async fn readyz(http: &str) -> Option<Value> {
    let response = reqwest::get(format!("http://{http}/readyz")).await.ok()?;
    response.json().await.ok()
}

/// The first row of an InfluxQL aggregate, without its time column.
async fn aggregate(influx: &Influx1, db: &str, q: &str) -> Vec<f64> {
    influx
        .query(db, q)
        .await
        .first()
        .map(|row| {
            row.iter()
                .skip(1)
                .map(|v| v.as_f64().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default()
}

async fn point_count(influx: &Influx1, db: &str) -> usize {
    aggregate(influx, db, "SELECT count(temperature) FROM pressure_vessel")
        .await
        .first()
        .map_or(0, |&c| c as usize)
}

/// Every (time in ms, t) stored, read in windows of 20 s so no row limit can cut the answer.
async fn all_points(influx: &Influx1, db: &str, messages: usize) -> Vec<(i64, f64)> {
    let mut points = Vec::new();
    let window = 20_000i64;
    let mut from = T0_MS;
    while from < T0_MS + messages as i64 + 1 {
        let q = format!(
            "SELECT temperature FROM pressure_vessel WHERE time >= {} AND time < {}",
            from * 1_000_000,
            (from + window) * 1_000_000
        );
        for row in influx.query(db, &q).await {
            let ns = row[0].as_i64().expect("time in ns");
            points.push((
                ns / 1_000_000,
                row[1].as_f64().expect("temperature is a number"),
            ));
        }
        from += window;
    }
    points
}

/// A QoS1 publisher that knows which of its messages the broker acknowledged: rumqttc reports
/// the packet id of each publish in the order they were queued (`Outgoing::Publish`), and again
/// for a retransmission; a PUBACK then marks that message.
struct Publisher {
    client: AsyncClient,
    state: Arc<Mutex<PublishState>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct PublishState {
    queued: VecDeque<usize>,
    by_pkid: HashMap<u16, usize>,
    acked: Vec<bool>,
    n_acked: usize,
}

impl Publisher {
    async fn connect(port: u16, id: &str) -> Publisher {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_inflight(1000);
        let (client, mut event_loop) = AsyncClient::new(options, 20_000);
        let state = Arc::new(Mutex::new(PublishState::default()));
        let (conn_tx, mut conn_rx) = mpsc::unbounded_channel();
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = conn_tx.send(());
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        let mut s = shared.lock().unwrap();
                        if !s.by_pkid.contains_key(&pkid) {
                            if let Some(i) = s.queued.pop_front() {
                                s.by_pkid.insert(pkid, i);
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        let mut s = shared.lock().unwrap();
                        if let Some(i) = s.by_pkid.remove(&ack.pkid) {
                            if !s.acked[i] {
                                s.acked[i] = true;
                                s.n_acked += 1;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), conn_rx.recv())
            .await
            .expect("publisher connects to the broker");
        Publisher {
            client,
            state,
            task,
        }
    }

    /// Publishes message `i` (its index must be the next one: 0, 1, 2, ...).
    async fn publish(&self, i: usize, body: Vec<u8>) {
        {
            let mut s = self.state.lock().unwrap();
            assert_eq!(s.acked.len(), i, "messages are numbered in order");
            s.acked.push(false);
            s.queued.push_back(i);
        }
        self.client
            .publish(TOPIC, QoS::AtLeastOnce, false, body)
            .await
            .expect("publish queued");
    }

    fn sent(&self) -> usize {
        self.state.lock().unwrap().acked.len()
    }

    fn acked(&self) -> usize {
        self.state.lock().unwrap().n_acked
    }

    fn acked_indices(&self) -> Vec<usize> {
        let s = self.state.lock().unwrap();
        (0..s.acked.len()).filter(|&i| s.acked[i]).collect()
    }

    /// Bulk messages at `rate` per second until `stop` fires, `max` passes or `limit` were
    /// published; `special` may replace the pressure of a message. Returns how many were
    /// published.
    async fn stream(
        &self,
        rate: f64,
        limit: usize,
        max: Duration,
        stop: &CancellationToken,
        special: impl Fn(usize) -> Option<f64>,
    ) -> usize {
        let start = Instant::now();
        let first = self.sent();
        let mut sent = 0;
        while !stop.is_cancelled() && start.elapsed() < max && sent < limit {
            let due = ((start.elapsed().as_secs_f64() * rate) as usize).min(limit);
            while sent < due {
                let i = first + sent;
                self.publish(i, payload(i, special(i).unwrap_or_else(|| pressure(i))))
                    .await;
                sent += 1;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sent
    }

    async fn wait_all_acked(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.acked() < self.sent() {
            assert!(
                Instant::now() < deadline,
                "the broker acknowledged {} of {} publishes within {timeout:?}",
                self.acked(),
                self.sent()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks that InfluxDB holds exactly the messages `expected` (indices), each once, with the
/// values they were sent with.
async fn check_points(influx: &Influx1, db: &str, expected: &[usize], total_sent: usize) {
    let n = expected.len();
    let sums = aggregate(
        influx,
        db,
        "SELECT count(temperature), sum(temperature), sum(pressure), sum(level) FROM pressure_vessel",
    )
    .await;
    let want = [
        n as f64,
        expected.iter().map(|&i| temperature(i)).sum::<f64>(),
        expected.iter().map(|&i| pressure(i)).sum::<f64>(),
        expected.iter().map(|&i| level(i)).sum::<f64>(),
    ];
    assert_eq!(sums, want, "count, sum(t), sum(p), sum(l)");
    let distinct = aggregate(
        influx,
        db,
        "SELECT count(distinct(temperature)) FROM pressure_vessel",
    )
    .await;
    assert_eq!(
        distinct,
        vec![n as f64],
        "count(distinct(temperature)) = count(t)"
    );
    let points = all_points(influx, db, total_sent).await;
    assert_eq!(points.len(), n, "rows read back by time windows");
    let times: HashSet<i64> = points.iter().map(|p| p.0).collect();
    assert_eq!(times.len(), n, "each time appears once");
    for (ms, t) in &points {
        assert_eq!(*t, (ms - T0_MS) as f64, "the value of the point at {ms} ms");
    }
    for &i in expected {
        assert!(
            times.contains(&(T0_MS + i as i64)),
            "message {i} is missing"
        );
    }
}

/// 1. InfluxDB is down for `SEGUARD_OUTAGE_S` (default 120) seconds under ~2,000 msg/s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influxdb_outage_loses_nothing() {
    let _serial = SERIAL.lock().await;
    logs();
    let outage_s: u64 = std::env::var("SEGUARD_OUTAGE_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let rate = 2000.0;
    let warm = Duration::from_secs(5);
    let broker = Mosquitto::start();
    let mut influx = Influx1::start();
    influx.create_database("outage").await;
    let outbox = tempfile::tempdir().unwrap();
    let text = site_text(
        "gw-outage",
        "127.0.0.1:0",
        broker.port,
        outbox.path(),
        "drain_rate_points_per_s = 60000",
        &influx_uplink(&influx, "outage"),
    );
    let gateway = Gateway::start(parse(&text)).await.unwrap();
    let http = gateway.http_addr.to_string();
    eventually("gateway connected", Duration::from_secs(10), || async {
        (metric(&http, "seguard_broker_connected").await >= 1.0).then_some(())
    })
    .await;

    let publisher = Arc::new(Publisher::connect(broker.port, "outage-publisher").await);
    let stop = CancellationToken::new();
    let streaming = tokio::spawn({
        let (publisher, stop) = (publisher.clone(), stop.clone());
        let max = warm * 2 + Duration::from_secs(outage_s);
        async move {
            publisher
                .stream(rate, usize::MAX, max, &stop, |_| None)
                .await
        }
    });
    tokio::time::sleep(warm).await;
    let before = point_count(&influx, "outage").await;
    tokio::task::block_in_place(|| influx.stop());
    let stopped_at = Instant::now();
    let sent_at_stop = publisher.sent();
    tokio::time::sleep(Duration::from_secs(outage_s)).await;
    let backlog = metric(&http, "seguard_queue_depth").await;
    let failures = metric(&http, "seguard_uplink_failures_total").await;
    let sent_during = publisher.sent() - sent_at_stop;
    tokio::task::block_in_place(|| influx.restart());
    let outage = stopped_at.elapsed();
    let restarted_at = Instant::now();
    let sent = streaming.await.unwrap();
    publisher.wait_all_acked(Duration::from_secs(30)).await;
    let acked = publisher.acked();
    let published_for = warm * 2 + Duration::from_secs(outage_s);

    let drain_timeout = Duration::from_secs(180);
    let deadline = Instant::now() + drain_timeout;
    let mut stored = 0;
    while Instant::now() < deadline {
        stored = point_count(&influx, "outage").await;
        if stored >= sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let caught_up_in = restarted_at.elapsed();
    println!(
        "influxdb_outage: outage {:.1} s; published {sent} msgs ({} readings) over ~{:?} at ~{rate}/s, \
         {sent_during} during the outage; broker acked {acked}; {before} points before the stop; \
         lane backlog at the end of the outage {backlog} entries, {failures} failed writes; \
         stored {stored} points; caught up {:.1} s after the restart",
        outage.as_secs_f64(),
        sent * 3,
        published_for,
        caught_up_in.as_secs_f64()
    );
    assert_eq!(acked, sent, "the broker acknowledged every publish");
    assert!(
        sent_during > 0 && backlog > 0.0,
        "the outage built a backlog"
    );
    assert_eq!(
        metric(&http, "seguard_outbox_dropped_total").await,
        0.0,
        "nothing dropped"
    );
    assert_eq!(stored, sent, "every point arrived after the outage");
    let all: Vec<usize> = (0..sent).collect();
    check_points(&influx, "outage", &all, sent).await;
    gateway.stop().await;
}

/// A `seguard gateway` child process; SIGKILLed (and reaped) when dropped.
struct GatewayProcess {
    child: Child,
}

impl GatewayProcess {
    fn spawn(config: &Path, log: &Path) -> GatewayProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_seguard"))
            .args(["gateway", "-c"])
            .env("RUST_LOG", "info")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting seguard gateway");
        GatewayProcess { child }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    /// SIGTERM and wait up to `timeout`; SIGKILL after that. The exit code, if it exited.
    fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        None
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The seed of the kill moments: the same 10 moments in every run.
const KILL_SEED: u64 = 0x5e6_0a2d_0005;
const KILLS: usize = 10;

/// 2. SIGKILL at 10 seeded random moments during a QoS1 stream of 1,000 msg/s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing() {
    let _serial = SERIAL.lock().await;
    logs();
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_database("kill").await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let http = format!("127.0.0.1:{}", free_port());
    let text = site_text(
        "gw-kill",
        &http,
        broker.port,
        &outbox,
        "",
        &influx_uplink(&influx, "kill"),
    );
    parse(&text);
    let config = dir.path().join("site.toml");
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("gateway.log");

    let mut gateway = GatewayProcess::spawn(&config, &log);
    eventually("gateway connected", Duration::from_secs(20), || async {
        (metric(&http, "seguard_broker_connected").await >= 1.0).then_some(())
    })
    .await;
    let publisher = Arc::new(Publisher::connect(broker.port, "kill-publisher").await);
    let stop = CancellationToken::new();
    let streaming = tokio::spawn({
        let (publisher, stop) = (publisher.clone(), stop.clone());
        async move {
            publisher
                .stream(1000.0, usize::MAX, Duration::from_secs(120), &stop, |_| {
                    None
                })
                .await
        }
    });

    let mut rng = StdRng::seed_from_u64(KILL_SEED);
    let mut kills = Vec::new();
    for _ in 0..KILLS {
        // Measured from the (re)start of the process: some kills land in recovery or before
        // the broker connection, most while messages flow.
        let after_ms: u64 = rng.random_range(150..3000);
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        gateway.kill9();
        let sent = publisher.sent();
        let stored = point_count(&influx, "kill").await;
        kills.push((after_ms, sent, stored));
        gateway = GatewayProcess::spawn(&config, &log);
    }
    // Let the last one run a while with the stream on, then end the stream.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let sent = streaming.await.unwrap();
    publisher.wait_all_acked(Duration::from_secs(30)).await;
    let acked = publisher.acked_indices();

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stored = 0;
    while Instant::now() < deadline {
        stored = point_count(&influx, "kill").await;
        if stored >= acked.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let recoveries: Vec<&str> = log_text
        .lines()
        .filter(|l| l.contains("outbox lane opened"))
        .collect();
    println!(
        "sigkill: seed {KILL_SEED:#x}; kills (ms after start, msgs sent, points stored): {kills:?}; \
         published {sent}, broker acked {}, stored {stored}",
        acked.len()
    );
    for line in &recoveries {
        println!("  {line}");
    }
    assert_eq!(
        recoveries.len(),
        KILLS + 1,
        "every start opened the outbox lane; log:\n{}",
        tail(&log_text, 60)
    );
    assert_eq!(acked.len(), sent, "the broker acknowledged every publish");
    assert_eq!(
        stored,
        acked.len(),
        "every acknowledged message reached InfluxDB; log:\n{}",
        tail(&log_text, 60)
    );
    check_points(&influx, "kill", &acked, sent).await;
    let code = tokio::task::block_in_place(|| gateway.terminate(Duration::from_secs(15)));
    assert_eq!(code, Some(0), "the last gateway stops cleanly on SIGTERM");
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A subscriber with a persistent session (fixed id, clean_session = false), so the broker
/// keeps its subscription and queues for it across a broker restart.
struct Subscriber {
    received: mpsc::UnboundedReceiver<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    async fn connect(port: u16, id: &str, filter: &str) -> Subscriber {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_clean_session(false)
            .set_max_packet_size(4 << 20, 4 << 20);
        let (client, mut event_loop) = AsyncClient::new(options, 100);
        let (tx, received) = mpsc::unbounded_channel();
        let (sub_tx, mut sub_rx) = mpsc::unbounded_channel();
        let filter = filter.to_owned();
        let task = tokio::spawn(async move {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        if !ack.session_present {
                            let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = sub_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(p.payload.to_vec());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), sub_rx.recv())
            .await
            .expect("subscriber has its subscription");
        Subscriber { received, task }
    }

    /// Incidents received until `done` holds for all of them, or `timeout`.
    async fn collect(&mut self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut all = Vec::new();
        while !done(&all) {
            match tokio::time::timeout_at(deadline, self.received.recv()).await {
                Ok(Some(payload)) => {
                    all.push(serde_json::from_slice(&payload).expect("incident is JSON"))
                }
                _ => break,
            }
        }
        all
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// (rule, transition, event time) of an incident.
fn incident_key(incident: &Value) -> (String, String, String) {
    let e = &incident["event"];
    (
        e["rule"].as_str().unwrap_or_default().to_owned(),
        e["transition"].as_str().unwrap_or_default().to_owned(),
        e["time"].as_str().unwrap_or_default().to_owned(),
    )
}

fn unique_ids(incidents: &[Value]) -> HashSet<String> {
    incidents
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect()
}

/// 3. Incidents produced while the central broker is down are delivered once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_pending_survive_a_broker_restart() {
    let _serial = SERIAL.lock().await;
    logs();
    let site = Mosquitto::start();
    let mut central = Mosquitto::start();
    let outbox = tempfile::tempdir().unwrap();
    let uplinks = format!(
        "[uplink.central]\nconfirm_timeout_ms = 1000\n\
         [uplink.central.broker]\nhost = \"127.0.0.1\"\nport = {}\nreconnect_min_ms = 50\nreconnect_max_ms = 500\n",
        central.port
    );
    let text = site_text(
        "gw-central",
        "127.0.0.1:0",
        site.port,
        outbox.path(),
        "",
        &uplinks,
    );
    let gateway = Gateway::start(parse(&text)).await.unwrap();
    let http = gateway.http_addr.to_string();
    let topic = "seguard/v1/gw-central/incidents";
    let mut subscriber = Subscriber::connect(central.port, "central-intake", topic).await;
    eventually("gateway ready", Duration::from_secs(10), || async {
        readyz(&http)
            .await
            .filter(|r| r["ready"] == true)
            .map(|_| ())
    })
    .await;
    let mut device = TestClient::connect(site.port, "transmitter").await;
    // Message k at T0 + k s: odd k over the limit (raise), even k under it (clear).
    let crossing = |k: usize| {
        let p = if k % 2 == 1 { 1.75 } else { 1.25 };
        (TOPIC.to_owned(), payload(k * 1000, p))
    };
    let expected = |ks: std::ops::Range<usize>| -> Vec<(String, String, String)> {
        ks.filter(|k| *k > 0)
            .map(|k| {
                let time = chrono::DateTime::from_timestamp_millis(T0_MS + k as i64 * 1000)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
                let transition = if k % 2 == 1 { "raise" } else { "clear" };
                (
                    "vessel-pressure.high".to_owned(),
                    transition.to_owned(),
                    time,
                )
            })
            .collect()
    };
    // One crossing while everything is up: the path works.
    device
        .publish_all((0..3).map(crossing).collect::<Vec<_>>())
        .await;
    let warm = subscriber
        .collect(Duration::from_secs(10), |got| unique_ids(got).len() >= 2)
        .await;
    assert_eq!(unique_ids(&warm).len(), 2, "warm-up incidents: {warm:?}");

    tokio::task::block_in_place(|| central.stop());
    let stopped_at = Instant::now();
    let crossings = 20;
    let ks = 3..3 + 2 * crossings;
    device
        .publish_all(ks.clone().map(crossing).collect::<Vec<_>>())
        .await;
    let mut pending = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let ready = readyz(&http).await.unwrap_or_default();
        pending = ready["outbox"]["incidents"]["backlog"]
            .as_u64()
            .unwrap_or(0) as usize;
        if pending >= 2 * crossings {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let raised = metric(&http, "seguard_alarms_raised_total").await;
    assert_eq!(
        pending,
        2 * crossings,
        "incidents pending in the outbox while central is down ({raised} raised in all)"
    );
    let ready = readyz(&http).await.unwrap();
    assert_eq!(ready["checks"]["central_broker"], false, "{ready}");
    // Down long enough for the publisher to time out and retry a few times.
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| central.restart());
    let down_for = stopped_at.elapsed();

    let want: HashSet<_> = expected(ks.clone()).into_iter().collect();
    let got = subscriber
        .collect(Duration::from_secs(30), |got| {
            want.iter()
                .all(|w| got.iter().any(|i| &incident_key(i) == w))
        })
        .await;
    let keys: Vec<_> = got.iter().map(incident_key).collect();
    let ids = unique_ids(&got);
    println!(
        "broker restart: central down {:.1} s, {pending} incidents pending, received {} messages \
         ({} distinct ids) after the restart",
        down_for.as_secs_f64(),
        got.len(),
        ids.len()
    );
    for w in &want {
        assert!(
            keys.contains(w),
            "incident {w:?} was not delivered; got {keys:?}"
        );
    }
    assert_eq!(ids.len(), want.len(), "one id per incident");
    let mut by_id: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    for i in &got {
        let id = i["id"].as_str().unwrap().to_owned();
        let key = incident_key(i);
        if let Some(previous) = by_id.insert(id, key.clone()) {
            assert_eq!(previous, key, "a duplicate id carries the same event");
        }
    }
    eventually("incident lane empty", Duration::from_secs(10), || async {
        let backlog = readyz(&http).await?["outbox"]["incidents"]["backlog"].as_u64()?;
        (backlog == 0).then_some(())
    })
    .await;
    gateway.stop().await;
}

/// 4. A 1 MB telemetry quota with InfluxDB down: drop the oldest, count it, raise data loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_full_drops_oldest_counts_it_and_raises_data_loss() {
    let _serial = SERIAL.lock().await;
    logs();
    let broker = Mosquitto::start();
    let mut influx = Influx1::start();
    influx.create_database("quota").await;
    tokio::task::block_in_place(|| influx.stop());
    let outbox = tempfile::tempdir().unwrap();
    let uplinks = format!(
        "{}[uplink.central]\nconfirm_timeout_ms = 2000\n",
        influx_uplink(&influx, "quota")
    );
    let text = site_text(
        "gw-quota",
        "127.0.0.1:0",
        broker.port,
        outbox.path(),
        // InfluxDB is down from the start: after 1 s without a confirm the lane is in an
        // outage and drops for its quota (before that, intake waits).
        "telemetry_quota_mb = 1\noutage_after_s = 1",
        &uplinks,
    );
    let gateway = Gateway::start(parse(&text)).await.unwrap();
    let http = gateway.http_addr.to_string();
    let mut central = TestClient::connect(broker.port, "central-quota").await;
    central.subscribe("seguard/v1/gw-quota/incidents").await;
    eventually("gateway connected", Duration::from_secs(10), || async {
        (metric(&http, "seguard_broker_connected").await >= 2.0).then_some(())
    })
    .await;

    // 20,000 messages (60,000 readings, several MB of outbox records) with a threshold
    // crossing every 2,500 messages: over the limit at i, back under it at i + 1.
    let messages = 20_000;
    let publisher = Publisher::connect(broker.port, "quota-publisher").await;
    let over = |i: usize| (i % 2500 == 1000).then_some(1.75);
    let crossings: Vec<usize> = (0..messages).filter(|&i| over(i).is_some()).collect();
    let sent = publisher
        .stream(
            4000.0,
            messages,
            Duration::from_secs(60),
            &CancellationToken::new(),
            over,
        )
        .await;
    publisher.wait_all_acked(Duration::from_secs(30)).await;
    assert_eq!(sent, messages);

    // Every message is read and held (or dropped for room) before anything is checked.
    eventually("all readings received", Duration::from_secs(60), || async {
        (metric(&http, "seguard_readings_received_total").await >= (3 * messages) as f64)
            .then_some(())
    })
    .await;
    let dropped = eventually("entries dropped", Duration::from_secs(20), || async {
        let d = metric(&http, "seguard_outbox_dropped_total").await;
        (d > 0.0).then_some(d)
    })
    .await;

    // Incidents: every threshold raise and clear, and data-loss raises whose values add up to
    // what was dropped (each loss is raised and cleared at once).
    let expected_threshold = 2 * crossings.len();
    let lost_sum = |got: &[Value]| -> f64 {
        got.iter()
            .filter(|i| {
                i["event"]["rule"] == "gateway.data_loss" && i["event"]["transition"] == "raise"
            })
            .map(|i| i["event"]["value"].as_f64().unwrap_or(0.0))
            .sum()
    };
    let mut incidents = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        while let Some((_, incident)) = central.next_json(Duration::from_millis(200)).await {
            incidents.push(incident);
        }
        let dropped_now = metric(&http, "seguard_outbox_dropped_total").await
            + metric(&http, "seguard_outbox_skipped_records_total").await;
        let threshold = incidents
            .iter()
            .filter(|i| i["event"]["rule"] == "vessel-pressure.high")
            .count();
        if (threshold >= expected_threshold && lost_sum(&incidents) >= dropped_now)
            || Instant::now() > deadline
        {
            break;
        }
    }
    let dropped_total = metric(&http, "seguard_outbox_dropped_total").await;
    let skipped = metric(&http, "seguard_outbox_skipped_records_total").await;
    let loss_events: Vec<&Value> = incidents
        .iter()
        .filter(|i| i["event"]["rule"] == "gateway.data_loss")
        .collect();
    let threshold: Vec<_> = incidents
        .iter()
        .filter(|i| i["event"]["rule"] == "vessel-pressure.high")
        .map(incident_key)
        .collect();
    let ready = readyz(&http).await.unwrap_or_default();
    println!(
        "quota: sent {sent} msgs ({} readings), dropped {dropped_total} entries (first seen \
         {dropped}), skipped {skipped}; {} data-loss events (raise values add to {}), {} \
         threshold incidents of {expected_threshold}; outbox {}",
        3 * sent,
        loss_events.len(),
        lost_sum(&incidents),
        threshold.len(),
        ready["outbox"]
    );
    let telemetry_bytes = ready["outbox"]["telemetry:influx1"]["disk_bytes"]
        .as_u64()
        .unwrap_or(u64::MAX);
    assert!(
        telemetry_bytes <= 3 << 20,
        "the telemetry lane stays near its 1 MB quota: {telemetry_bytes} bytes"
    );
    assert!(dropped_total > 0.0);
    for k in &crossings {
        for (transition, at) in [("raise", *k), ("clear", k + 1)] {
            let time = chrono::DateTime::from_timestamp_millis(T0_MS + at as i64)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            let key = (
                "vessel-pressure.high".to_owned(),
                transition.to_owned(),
                time,
            );
            assert!(
                threshold.contains(&key),
                "incident {key:?} missing: {threshold:?}"
            );
        }
    }
    let raise = loss_events
        .iter()
        .find(|i| i["event"]["transition"] == "raise")
        .expect("a gateway.data_loss raise");
    assert_eq!(raise["equipment"]["id"], "gw-quota");
    assert!(raise["event"]["value"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(
        lost_sum(&incidents),
        dropped_total + skipped,
        "the data-loss alarms carry every lost entry"
    );
    for transition in ["raise", "clear"] {
        assert_eq!(
            loss_events
                .iter()
                .filter(|i| i["event"]["transition"] == transition)
                .count()
                * 2,
            loss_events.len(),
            "each loss is raised and cleared"
        );
    }

    // The outbox accounts for every point (one a message): what it holds plus what it dropped
    // is everything. (Read together until they agree: a push may still be on its way.)
    let want = sent as u64;
    let (backlog, lost) = eventually("held + dropped = sent", Duration::from_secs(10), || async {
        let backlog = readyz(&http).await?["outbox"]["telemetry:influx1"]["backlog"].as_u64()?;
        let lost = metric(&http, "seguard_outbox_dropped_total").await
            + metric(&http, "seguard_outbox_skipped_records_total").await;
        (backlog + lost as u64 == want).then_some((backlog, lost as u64))
    })
    .await;
    println!("quota: the outbox holds {backlog} points and dropped {lost}, of {want}");

    // Once InfluxDB is back the backlog drains, and it stores exactly what was not dropped.
    // During the catch-up the newest points are also written ahead as live copies; a drop
    // discards the copies made before it, and every drop here happened before InfluxDB came
    // back, so no copy of a dropped reading is written.
    tokio::task::block_in_place(|| influx.restart());
    eventually(
        "telemetry lane drained",
        Duration::from_secs(60),
        || async {
            let ready = readyz(&http).await?;
            (ready["outbox"]["telemetry:influx1"]["backlog"].as_u64()? == 0).then_some(())
        },
    )
    .await;
    let counts = aggregate(
        &influx,
        "quota",
        "SELECT count(pressure), count(temperature), count(level) FROM pressure_vessel",
    )
    .await;
    let stored = counts.first().copied().unwrap_or_default() as u64;
    let mut uplink = String::new();
    for name in [
        "seguard_uplink_writes_total",
        "seguard_uplink_points_total",
        "seguard_uplink_live_points_total",
        "seguard_uplink_failures_total",
        "seguard_uplink_rejected_points_total",
        "seguard_queue_depth",
    ] {
        uplink += &format!(" {name}={}", metric(&http, name).await);
    }
    println!(
        "quota: after InfluxDB came back it holds {counts:?} (pressure, temperature, level) of {} points not dropped of {want};{uplink}",
        want - lost
    );
    assert_eq!(
        stored,
        want - lost,
        "InfluxDB stores every point not counted as dropped, and no other"
    );
    assert!(
        counts.iter().all(|&c| c as u64 == stored),
        "points are dropped whole: every field has the same count {counts:?}"
    );
    gateway.stop().await;
}

/// The time (ms since the epoch) of the newest point stored.
async fn newest_point_ms(influx: &Influx1, db: &str) -> Option<i64> {
    let rows = influx
        .query(db, "SELECT last(temperature) FROM pressure_vessel")
        .await;
    let t = rows.first()?.get(1)?.as_f64()?;
    Some(T0_MS + t as i64)
}

/// 5. A backlog drains at its rate while live points go ahead of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_keeps_the_newest_points_current() {
    let _serial = SERIAL.lock().await;
    logs();
    let rate = 300.0; // messages/s, 300 points (lines) of 3 fields/s
    let broker = Mosquitto::start();
    let mut influx = Influx1::start();
    influx.create_database("catchup").await;
    let outbox = tempfile::tempdir().unwrap();
    let uplink = influx_uplink(&influx, "catchup") + "batch_max_lines = 200\n";
    let text = site_text(
        "gw-catchup",
        "127.0.0.1:0",
        broker.port,
        outbox.path(),
        // 500 points/s drains a 3,000-point backlog against 300 live points/s in ~15 s; the
        // 10 s outage leaves a backlog older than live_after_s, so live copies go ahead.
        "drain_rate_points_per_s = 500\nlive_after_s = 5",
        &uplink,
    );
    let gateway = Gateway::start(parse(&text)).await.unwrap();
    let http = gateway.http_addr.to_string();
    eventually("gateway connected", Duration::from_secs(10), || async {
        (metric(&http, "seguard_broker_connected").await >= 1.0).then_some(())
    })
    .await;
    let publisher = Arc::new(Publisher::connect(broker.port, "catchup-publisher").await);
    let stop = CancellationToken::new();
    let streaming = tokio::spawn({
        let (publisher, stop) = (publisher.clone(), stop.clone());
        async move {
            publisher
                .stream(rate, usize::MAX, Duration::from_secs(60), &stop, |_| None)
                .await
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| influx.stop());
    tokio::time::sleep(Duration::from_secs(10)).await;
    tokio::task::block_in_place(|| influx.restart());
    let restarted = Instant::now();

    // Within a few seconds of the restart the newest point stored is about the newest sent,
    // while the backlog is still far from drained.
    let (lag_ms, stored, sent) = eventually("live points arrive", Duration::from_secs(10), || {
        let (influx, publisher) = (&influx, &publisher);
        async move {
            let newest = newest_point_ms(influx, "catchup").await?;
            let sent = publisher.sent();
            let lag = T0_MS + sent as i64 - newest;
            (lag < 2_000).then_some((lag, point_count(influx, "catchup").await, sent))
        }
    })
    .await;
    let live = metric(&http, "seguard_uplink_live_points_total").await;
    println!(
        "catch-up: {:.1} s after the restart the newest stored point is {lag_ms} ms behind the \
         newest sent; stored {stored} of {sent} messages; {live} live points written",
        restarted.elapsed().as_secs_f64()
    );
    assert!(
        stored + 1_000 < sent,
        "the backlog is still draining: stored {stored} of {sent}"
    );
    assert!(live > 0.0, "live points were written ahead of the backlog");

    stop.cancel();
    let sent = streaming.await.unwrap();
    publisher.wait_all_acked(Duration::from_secs(30)).await;
    let drained = eventually("the backlog drains", Duration::from_secs(90), || {
        let influx = &influx;
        async move { (point_count(influx, "catchup").await >= sent).then_some(()) }
    });
    drained.await;
    check_points(&influx, "catchup", &(0..sent).collect::<Vec<_>>(), sent).await;
    gateway.stop().await;
}
