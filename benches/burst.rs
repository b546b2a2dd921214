//! The burst of issue "Bursts without loss": seguard beside a stock Node-RED 4 flow doing the
//! same job, and beside mosquitto's raw relay, in one run.
//!
//! `cargo bench --bench burst` (release; `benches/run-all.sh burst`). In each round (three;
//! `SEGUARD_BENCH_ROUNDS`), each contender gets a fresh mosquitto (configured like
//! `deploy/mosquitto-site.conf`: a queue and an in-flight window sized for the burst) and a fresh
//! database in one InfluxDB 1.6, and the same publisher sends `SEGUARD_BENCH_MESSAGES` (default
//! 400,000) QoS1 messages as fast as mosquitto acknowledges them (up to 1,000 in flight),
//! round-robin over 1,000 vessels (`benches/support/burst.rs`: nanosecond `ts`, ten numbers and
//! a sequence number, about 250 bytes):
//! 1. *raw relay*: a rumqttc subscriber at QoS1, timed until it has every message;
//! 2. *Node-RED* (`benches/nodered/`, installed by this bench with `npm ci`): the flow this
//!    bench writes, `mqtt in` (QoS1, JSON) → `function` (the point, and a hysteresis alarm at
//!    1.6 / 1.5 MPa per vessel, out over `mqtt out`) → `join` (5,000 messages or 0.2 s) →
//!    `influxdb batch` to InfluxDB 1.x;
//! 3. *seguard, disk outbox* (`fsync = "batch"`) and 4. *seguard, in-memory lanes*: the release
//!    binary as a process, the same mapping and alarm (threshold with a 0.1 MPa deadband; incidents
//!    out over MQTT with `[uplink.central]`), InfluxDB 1.x over `/write`.
//!
//! Each is timed from the first publish until InfluxDB holds every point (or until the count
//! stops growing for 15 s: the rest is lost), and reports msgs/s, points lost, peak RSS (VmHWM)
//! and CPU (cores, user + system over the run).
//!
//! Under `cargo test --all-targets` it runs 2,000 messages, one round, without Node-RED (which
//! then need not be installed). `SEGUARD_BENCH_NODERED=false` leaves Node-RED out of a bench run
//! too; `SEGUARD_BENCH_WRAP` runs seguard under a profiler (`benches/support/mod.rs`);
//! `SEGUARD_BENCH_MEMORY_POINTS` sets the disk outbox's `memory_points`.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Influx1, Process};
use support::burst;
use support::{cpu_seconds, median, setting, smoke_test, Seguard};

/// mosquitto for one contender, sized for the burst like `deploy/mosquitto-site.conf`.
struct Broker {
    port: u16,
    _dir: tempfile::TempDir,
    _process: Process,
}

impl Broker {
    fn start() -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n\
                 max_queued_messages 1000000\nmax_queued_bytes 536870912\nmax_inflight_messages 1000\n\
                 set_tcp_nodelay true\nlog_dest stderr\nlog_type error\nlog_type warning\n"
            ),
        )
        .expect("writing mosquitto.conf");
        let process = Process::spawn(
            "mosquitto",
            "mosquitto",
            &["-c", conf.to_str().expect("utf-8 path")],
            dir.path().join("mosquitto.log"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker {
            port,
            _dir: dir,
            _process: process,
        }
    }
}

/// What one contender did.
#[derive(Clone, Copy)]
struct Outcome {
    msg_s: f64,
    lost: usize,
    peak_mib: f64,
    cores: f64,
    /// Cores busy on the whole machine over the run (every process: broker, publisher,
    /// InfluxDB, and whatever else runs), out of all of them: how much was left to spend.
    machine: f64,
}

/// (busy, all) jiffies of every core since boot, from `/proc/stat`.
fn machine_jiffies() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    let all: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).unwrap_or(&0.0) + ticks.get(4).unwrap_or(&0.0);
    (all - idle, all)
}

/// mosquitto's relay alone: publisher → broker → a rumqttc subscriber at QoS1.
async fn raw_relay(n: usize) -> Outcome {
    let broker = Broker::start();
    let subscriber = support::relay::subscriber(broker.port, "site/+/+/telemetry", n as u64).await;
    let started = Instant::now();
    burst::publish(broker.port, n).await;
    subscriber.await.unwrap();
    Outcome {
        msg_s: n as f64 / started.elapsed().as_secs_f64(),
        lost: 0,
        peak_mib: f64::NAN,
        cores: f64::NAN,
        machine: f64::NAN,
    }
}

/// Points stored in `db` (every message is one point with a `seq` field).
async fn stored(influx: &Influx1, db: &str) -> usize {
    let rows = influx
        .query(db, "SELECT count(seq) FROM pressure_vessel")
        .await;
    rows.first()
        .and_then(|r| r.get(1))
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0) as usize
}

/// A process under test: its peak RSS and CPU time from /proc.
trait Measured {
    fn pid(&self) -> u32;
    fn peak_mib(&self) -> f64 {
        let text =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }
    fn cpu(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.pid()))
    }
}

impl Measured for Seguard {
    fn pid(&self) -> u32 {
        Seguard::pid(self)
    }
}

struct NodeRed(Child);

impl Measured for NodeRed {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for NodeRed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Publishes the burst and waits until InfluxDB holds it all, or its count stood still for
/// 15 s; measures `process` meanwhile.
async fn run_burst(
    n: usize,
    broker: u16,
    influx: &Influx1,
    db: &str,
    process: &dyn Measured,
) -> Outcome {
    let cpu_0 = process.cpu();
    let machine_0 = machine_jiffies();
    let started = Instant::now();
    burst::publish(broker, n).await;
    let (mut last, mut last_change) = (0, Instant::now());
    let done = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let count = stored(influx, db).await;
        if count >= n {
            break started.elapsed();
        }
        if count != last {
            (last, last_change) = (count, Instant::now());
        } else if last_change.elapsed() > Duration::from_secs(15) {
            break last_change.duration_since(started);
        }
    };
    let count = stored(influx, db).await;
    let machine_1 = machine_jiffies();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    Outcome {
        msg_s: count.min(n) as f64 / done.as_secs_f64(),
        lost: n.saturating_sub(count),
        peak_mib: process.peak_mib(),
        cores: (process.cpu() - cpu_0) / done.as_secs_f64(),
        machine: cores * (machine_1.0 - machine_0.0) / (machine_1.1 - machine_0.1).max(1.0),
    }
}

/// seguard as a process of the release binary: disk outbox in `outbox`, or in-memory lanes.
async fn seguard(n: usize, influx: &Influx1, db: &str, outbox: Option<&Path>) -> Outcome {
    let broker = Broker::start();
    influx.create_database(db).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let http = format!("127.0.0.1:{}", free_port());
    let outbox = match outbox {
        Some(dir) => {
            // The lane's decoded points (default 8192), to measure what a smaller one costs.
            let memory = match setting("SEGUARD_BENCH_MEMORY_POINTS", 0usize) {
                0 => String::new(),
                n => format!("memory_points = {n}\n"),
            };
            format!(
                "[outbox]\ndir = \"{}\"\nfsync = \"batch\"\n{memory}",
                dir.display()
            )
        }
        None => "[outbox]\nkind = \"memory\"\n".to_owned(),
    };
    let extra = format!(
        "{outbox}[[uplink.influx]]\nname = \"influx\"\napi = \"v1\"\nurl = \"{}\"\ndatabase = \"{db}\"\n\
         flush_interval_ms = 200\n[uplink.central]\n",
        influx.url()
    );
    let config = dir.path().join("site.toml");
    std::fs::write(&config, burst::site_toml(&http, broker.port, &extra)).expect("site.toml");
    let mut gateway = Seguard::spawn("gateway", &config, &http, dir.path().join("gateway.log"));
    gateway.wait_ready(Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outcome = run_burst(n, broker.port, influx, db, &gateway).await;
    gateway.stop();
    outcome
}

/// `benches/nodered/`, installed with `npm ci` when its modules are missing.
fn nodered_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/nodered");
    if !dir.join("node_modules/node-red/red.js").exists() {
        println!("installing Node-RED: npm ci in {}", dir.display());
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    }
    dir
}

/// The function node: the point for `influxdb batch`, and the alarm with hysteresis.
const FUNCTION: &str = r#"const p = msg.payload;
const parts = msg.topic.split("/");
const equipment = parts[2];
const fields = {};
for (const k of Object.keys(p)) { if (k !== "ts") fields[k] = p[k]; }
const point = { measurement: "pressure_vessel", tags: { site: parts[1], gateway: "nodered", equipment: equipment }, fields: fields, timestamp: p.ts };
const key = "alarm_" + equipment;
const on = context.get(key) || false;
let alarm = null;
if (!on && p.p > 1.6) {
  context.set(key, true);
  alarm = { topic: "alarms/" + equipment, payload: { equipment: equipment, rule: "pressure", transition: "raise", value: p.p, ts: p.ts } };
} else if (on && p.p < 1.5) {
  context.set(key, false);
  alarm = { topic: "alarms/" + equipment, payload: { equipment: equipment, rule: "pressure", transition: "clear", value: p.p, ts: p.ts } };
}
return [{ payload: point }, alarm];"#;

/// The flow: mqtt in → function → join (5,000 or 0.2 s) → influxdb batch; alarms → mqtt out.
fn nodered_flow(broker: u16, influx_port: u16, db: &str) -> serde_json::Value {
    serde_json::json!([
        { "id": "f1a0000000000001", "type": "tab", "label": "burst" },
        { "id": "c1a0000000000002", "type": "mqtt-broker", "name": "site", "broker": "127.0.0.1",
          "port": broker.to_string(), "clientid": "nodered-bench", "autoConnect": true,
          "usetls": false, "protocolVersion": "4", "keepalive": "60", "cleansession": true },
        { "id": "c1a0000000000003", "type": "influxdb", "hostname": "127.0.0.1", "port": influx_port,
          "protocol": "http", "database": db, "name": "influx", "usetls": false,
          "influxdbVersion": "1.x" },
        { "id": "n1a0000000000004", "type": "mqtt in", "z": "f1a0000000000001", "name": "telemetry",
          "topic": "site/+/+/telemetry", "qos": "1", "datatype": "json", "broker": "c1a0000000000002",
          "nl": false, "rap": true, "rh": 0, "inputs": 0, "wires": [["n1a0000000000005"]] },
        { "id": "n1a0000000000005", "type": "function", "z": "f1a0000000000001", "name": "point and alarm",
          "func": FUNCTION, "outputs": 2, "wires": [["n1a0000000000006"], ["n1a0000000000008"]] },
        { "id": "n1a0000000000006", "type": "join", "z": "f1a0000000000001", "name": "batch", "mode": "custom",
          "build": "array", "property": "payload", "propertyType": "msg", "key": "topic",
          "joiner": "\\n", "joinerType": "str", "accumulate": false, "timeout": "0.2",
          "count": "5000", "reduceRight": false, "wires": [["n1a0000000000007"]] },
        { "id": "n1a0000000000007", "type": "influxdb batch", "z": "f1a0000000000001", "influxdb": "c1a0000000000003",
          "precision": "n", "retentionPolicy": "", "name": "write", "database": "",
          "wires": [] },
        { "id": "n1a0000000000008", "type": "mqtt out", "z": "f1a0000000000001", "name": "alarms", "topic": "",
          "qos": "1", "retain": "false", "broker": "c1a0000000000002", "wires": [] }
    ])
}

/// Node-RED with the flow, timed like seguard.
async fn nodered(n: usize, influx: &Influx1, db: &str) -> Outcome {
    let broker = Broker::start();
    influx.create_database(db).await;
    let install = nodered_dir();
    let user = tempfile::tempdir().expect("temp dir");
    let flows = user.path().join("flows.json");
    std::fs::write(
        &flows,
        serde_json::to_vec_pretty(&nodered_flow(broker.port, influx.port, db)).unwrap(),
    )
    .expect("flows.json");
    let log = user.path().join("node-red.log");
    let child = Command::new("node")
        .arg(install.join("node_modules/node-red/red.js"))
        .arg("--userDir")
        .arg(user.path())
        .args(["--port", &free_port().to_string()])
        .arg(&flows)
        .stdin(Stdio::null())
        .stdout(File::create(&log).expect("log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs");
    let node = NodeRed(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("Connected to broker")
    {
        assert!(
            Instant::now() < deadline,
            "Node-RED did not connect; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcome = run_burst(n, broker.port, influx, db, &node).await;
    if outcome.lost > 0 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        println!("Node-RED lost {}; the end of its log:", outcome.lost);
        for line in tail.into_iter().rev() {
            println!("  {line}");
        }
    }
    outcome
}

fn main() {
    let n = setting(
        "SEGUARD_BENCH_MESSAGES",
        if smoke_test() { 2_000 } else { 400_000 },
    );
    let rounds = setting("SEGUARD_BENCH_ROUNDS", if smoke_test() { 1 } else { 3 });
    support::runtime().block_on(async {
        let influx = Influx1::start();
        println!(
            "burst: {n} QoS1 messages over {} vessels, {} fields each, {rounds} round(s){}",
            burst::EQUIPMENT,
            burst::FIELDS.len(),
            if smoke_test() { "; Node-RED skipped (smoke test)" } else { "" }
        );
        let mut rows: Vec<[Outcome; 4]> = Vec::new();
        for round in 1..=rounds {
            let relay = raw_relay(n).await;
            let red = if smoke_test() || !setting("SEGUARD_BENCH_NODERED", true) {
                None
            } else {
                Some(nodered(n, &influx, &format!("nodered{round}")).await)
            };
            let outbox = tempfile::tempdir().expect("outbox dir");
            let disk = seguard(n, &influx, &format!("disk{round}"), Some(outbox.path())).await;
            let memory = seguard(n, &influx, &format!("memory{round}"), None).await;
            let show = |name: &str, o: &Outcome| {
                format!(
                    "{name} {:.0} msg/s, lost {}, peak {:.0} MiB, {:.2} cores (machine {:.2} busy)",
                    o.msg_s, o.lost, o.peak_mib, o.cores, o.machine
                )
            };
            println!(
                "round {round}: raw relay {:.0} msg/s | {} | {} | {}",
                relay.msg_s,
                red.map_or("Node-RED skipped".to_owned(), |o| show("Node-RED", &o)),
                show("seguard disk", &disk),
                show("seguard memory", &memory),
            );
            assert_eq!(disk.lost, 0, "the disk outbox lost points");
            assert_eq!(memory.lost, 0, "the in-memory lanes lost points");
            let nan = Outcome {
                msg_s: f64::NAN,
                lost: 0,
                peak_mib: f64::NAN,
                cores: f64::NAN,
                machine: f64::NAN,
            };
            rows.push([relay, red.unwrap_or(nan), disk, memory]);
        }
        let med = |i: usize, f: fn(&Outcome) -> f64| median(rows.iter().map(|r| f(&r[i])).collect());
        let names = ["raw relay", "Node-RED", "seguard disk", "seguard memory"];
        println!("| median of {rounds} | msgs/s | lost (max) | peak RSS (MiB) | CPU (cores) |");
        println!("|---|---|---|---|---|");
        for (i, name) in names.iter().enumerate() {
            println!(
                "| {name} | {:.0} | {} | {:.0} | {:.2} |",
                med(i, |o| o.msg_s),
                rows.iter().map(|r| r[i].lost).max().unwrap_or(0),
                med(i, |o| o.peak_mib),
                med(i, |o| o.cores)
            );
        }
        let (relay, red, disk) = (med(0, |o| o.msg_s), med(1, |o| o.msg_s), med(2, |o| o.msg_s));
        println!(
            "seguard disk / Node-RED: {:.2} msgs/s (goal >= 3, or disk / relay >= 0.8 = {:.2} where the relay is below 3x Node-RED), peak RSS {:.2} (goal <= 0.20)",
            disk / red,
            disk / relay,
            med(2, |o| o.peak_mib) / med(1, |o| o.peak_mib)
        );
    });
}
