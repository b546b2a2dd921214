//! Shared by the benches that run the gateway and central: the bench site and central configs,
//! the telemetry payload, `seguard` processes with their CPU and memory, and medians.

#![allow(dead_code)]

pub mod burst;
pub mod relay;

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const READINGS_PER_MESSAGE: usize = 10;
/// The threshold rule's limit on `m0`: a payload value above it raises an alarm.
pub const M0_LIMIT: f64 = 2000.0;
pub const GATEWAY_ID: &str = "gw-bench";
pub const GATEWAY_TOKEN: &str = "bench-gateway";
/// The key the bench gateway signs its messages to central with; central holds the same.
pub const BENCH_SIGNING_KEY: &str = "bench-signing-key-of-at-least-32-bytes";

/// One message of `READINGS_PER_MESSAGE` readings `m0..m9` = `value.f`, at `ts_ms`.
pub fn payload(ts_ms: u64, value: u64) -> Vec<u8> {
    let mut s = format!("{{\"ts\":{ts_ms}");
    for f in 0..READINGS_PER_MESSAGE {
        let _ = write!(s, ",\"m{f}\":{value}.{f}");
    }
    s.push('}');
    s.into_bytes()
}

fn since_epoch() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
}

pub fn now_ms() -> u64 {
    since_epoch().as_millis() as u64
}

pub fn now_micros() -> u64 {
    since_epoch().as_micros() as u64
}

/// Where the gateway sends what it receives.
pub struct SiteOptions<'a> {
    pub broker: u16,
    pub http_listen: &'a str,
    pub victoria_url: &'a str,
    /// Equipment `pv-0` .. `pv-{n-1}`, each on `bench/pv-{i}/telemetry`.
    pub equipment: u64,
    /// The durable disk outbox in this directory (fsync before each push returns); none:
    /// the lanes are in memory.
    pub outbox: Option<&'a Path>,
}

/// The bench site: pressure vessels with ten readings a message, one threshold rule on `m0`,
/// VictoriaMetrics as the time-series uplink, and incidents to central over the site broker.
/// The chatter limit is out of reach, because the alarm bench raises and clears one vessel
/// many times a second and wants every raise announced.
pub fn site_toml(o: &SiteOptions) -> String {
    let mut text = format!(
        "[site]\nid = \"bench\"\nname = \"bench\"\n[gateway]\nid = \"{GATEWAY_ID}\"\nhttp_listen = \"{}\"\n\
         [mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"bench-gateway\"\n",
        o.http_listen, o.broker
    );
    for t in 0..o.equipment {
        let _ = write!(
            text,
            "[[equipment]]\nid = \"pv-{t}\"\nkind = \"pressure_vessel\"\nregistration_code = \"R{t}\"\n\
             nameplate = {{ working_pressure_mpa = 1.0, set_pressure_mpa = 1.1, design_pressure_mpa = 1.2 }}\n"
        );
    }
    text.push_str("[[ingest.mqtt]]\ntopic = \"bench/{equipment}/telemetry\"\ntime_pointer = \"/ts\"\nfields = [\n");
    for f in 0..READINGS_PER_MESSAGE {
        let _ = writeln!(text, "  {{ pointer = \"/m{f}\", metric = \"m{f}\" }},");
    }
    text.push_str("]\n");
    let _ = write!(
        text,
        "[rules.lifecycle]\nchatter_count = 1000000\n[[rules.threshold]]\nid = \"m0-high\"\nkind = \"pressure_vessel\"\nmetric = \"m0\"\nhigh = {{ limit = {M0_LIMIT:?} }}\n\
         [[uplink.influx]]\nname = \"vm\"\napi = \"v2\"\nurl = \"{}\"\norg = \"o\"\nbucket = \"b\"\ntoken = \"t\"\n\
         batch_max_lines = 5000\nflush_interval_ms = 200\n\
         [uplink.central]\nsigning_key = \"{BENCH_SIGNING_KEY}\"\n",
        o.victoria_url
    );
    match o.outbox {
        Some(dir) => {
            let _ = write!(
                text,
                "[outbox]\ndir = \"{}\"\nfsync = \"batch\"\n",
                dir.display()
            );
        }
        None => text.push_str("[outbox]\nkind = \"memory\"\n"),
    }
    text
}

/// Central on SQLite in `dir`, taking incidents from the broker, knowing the bench gateway.
pub fn central_toml(broker: u16, http_listen: &str, dir: &Path) -> String {
    format!(
        "[central]\ninstance = \"central-bench\"\nhttp_listen = \"{http_listen}\"\n\
         [store]\nurl = \"sqlite://{db}\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {broker}\n\
         [[gateway]]\nid = \"{GATEWAY_ID}\"\ntoken_sha256 = \"{token}\"\nsigning_key = \"{BENCH_SIGNING_KEY}\"\n",
        db = dir.join("central.db").display(),
        token = seguard::auth::token_hash(GATEWAY_TOKEN),
    )
}

const GATEWAY_UNIT: &str = include_str!("../../deploy/systemd/seguard-gateway.service");
const CENTRAL_UNIT: &str = include_str!("../../deploy/systemd/seguard-central.service");

/// The `NAME=value` pairs of a systemd unit's `Environment=` lines.
fn unit_environment(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .filter_map(|line| line.strip_prefix("Environment="))
        .flat_map(str::split_whitespace)
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// A `seguard` process (the release binary this bench was built with), stopped with SIGTERM.
pub struct Seguard {
    child: Option<Child>,
    pub http: String,
    pub log: PathBuf,
    pub spawned: Instant,
}

impl Seguard {
    /// `seguard {role} -c {config}`, its log in `log`, its API on `http` (host:port), with the
    /// environment the shipped systemd unit gives the role (its allocator settings), so a
    /// bench measures it as deployed. `SEGUARD_BENCH_WRAP` runs it under a profiler, e.g.
    /// `valgrind --tool=callgrind --callgrind-out-file=/tmp/seguard.%p.out`.
    pub fn spawn(role: &str, config: &Path, http: &str, log: PathBuf) -> Seguard {
        let spawned = Instant::now();
        let binary = env!("CARGO_BIN_EXE_seguard");
        let wrap = std::env::var("SEGUARD_BENCH_WRAP").unwrap_or_default();
        let mut command = match wrap.split_whitespace().collect::<Vec<_>>().split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        match role {
            "gateway" => command.envs(unit_environment(GATEWAY_UNIT)),
            "central" => command.envs(unit_environment(CENTRAL_UNIT)),
            _ => &mut command,
        };
        let child = command
            .args([role, "-c"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("creating the log"))
            .spawn()
            .expect("starting seguard");
        Seguard {
            child: Some(child),
            http: http.to_owned(),
            log,
            spawned,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Polls `/readyz` every 2 ms until it answers 200; returns the time since spawn.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Duration {
        let client = reqwest::Client::new();
        let url = format!("http://{}/readyz", self.http);
        loop {
            if let Ok(r) = client.get(&url).send().await {
                if r.status() == 200 {
                    return self.spawned.elapsed();
                }
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || self.spawned.elapsed() > timeout {
                panic!(
                    "seguard was not ready after {:?} ({exited:?}); its log:\n{}",
                    self.spawned.elapsed(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// User plus system CPU time so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.pid()))
    }

    /// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, field: &str) -> u64 {
        let text =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        self.terminate().expect("running")
    }

    fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().ok()
    }
}

impl Drop for Seguard {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// utime + stime of a process, in seconds, from its `/proc/<pid>/stat`.
pub fn cpu_seconds(stat_path: &str) -> f64 {
    let text = std::fs::read_to_string(stat_path).unwrap_or_default();
    // After the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(utime), Some(stime)) => (utime + stime) / clock_ticks_per_second(),
        _ => f64::NAN,
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The median (the mean of the middle two for an even count); NaN for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if !n.is_multiple_of(2) => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The `q` quantile (0..=1) by nearest rank; NaN for none.
pub fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// The benches' runtime: two workers, like the 2-core machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs a bench binary without it,
/// and then it only proves that it still works, on a small load in a few seconds.
pub fn smoke_test() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// An environment setting, or its default.
pub fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
