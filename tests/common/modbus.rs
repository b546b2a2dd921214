//! Test harness for the Modbus integration tests: a pymodbus server (an independent Modbus
//! implementation, `tests/support/pymodbus_server.py`) on a loopback port or a pseudo-terminal,
//! and a socat pty pair that stands in for an RS-485 line.
//!
//! Every process is started as `sh -c 'CMD & echo pid $!; read _; kill $!'` with a piped stdin:
//! when the test process ends for any reason its stdin closes and the shell kills the server.
//! Dropping a guard closes stdin, waits a bounded time, and kills the recorded pid if needed.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use seguard::model::Value;
use serde_json::json;

/// The Debian pymodbus works only with the system interpreter.
const PYTHON: &str = "/usr/bin/python3";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/pymodbus_server.py")
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A process tied to the test: it dies when the guard drops or the test process exits.
struct Guarded {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    pid: Option<u32>,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
}

impl Guarded {
    fn start(name: &str, command: &str, log: PathBuf) -> Guarded {
        let wrapped = format!("{command} & echo pid $!; read _; kill $! 2>/dev/null; wait");
        let log_file = std::fs::File::create(&log).expect("create log file");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(wrapped)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut guarded = Guarded {
            name: name.to_owned(),
            child,
            stdin,
            pid: None,
            lines,
            log,
        };
        let first = guarded.wait_line(|l| l.starts_with("pid "), Duration::from_secs(5));
        guarded.pid = first.and_then(|l| l[4..].trim().parse().ok());
        guarded
    }

    fn wait_line(&self, wanted: impl Fn(&str) -> bool, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(pid) = self.pid {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A pymodbus server. Its registers come from a JSON spec (see the script's doc); the control
/// file makes slaves go silent or answer exceptions while it runs.
pub struct PyModbus {
    process: Guarded,
    control: PathBuf,
    _dir: tempfile::TempDir,
    /// The loopback port, for the TCP variants.
    pub port: Option<u16>,
}

impl PyModbus {
    /// Modbus TCP on a free loopback port.
    pub fn tcp(spec: &serde_json::Value) -> PyModbus {
        Self::tcp_on(free_port(), spec, false)
    }

    /// RTU framing over TCP (a serial-to-Ethernet converter) on a free loopback port.
    pub fn rtu_over_tcp(spec: &serde_json::Value) -> PyModbus {
        Self::tcp_on(free_port(), spec, true)
    }

    pub fn tcp_on(port: u16, spec: &serde_json::Value, rtu_framer: bool) -> PyModbus {
        let framer = if rtu_framer { " --rtu-framer" } else { "" };
        Self::start(spec, &format!("--tcp {port}{framer}"), Some(port))
    }

    /// RTU on a serial device (one end of a [`SocatPair`]).
    pub fn serial(path: &Path, spec: &serde_json::Value) -> PyModbus {
        Self::start(spec, &format!("--serial '{}'", path.display()), None)
    }

    fn start(spec: &serde_json::Value, transport_args: &str, port: Option<u16>) -> PyModbus {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec_path = dir.path().join("spec.json");
        let control = dir.path().join("control.json");
        std::fs::write(&spec_path, spec.to_string()).expect("write spec");
        std::fs::write(&control, "{}").expect("write control");
        let command = format!(
            "exec {PYTHON} '{}' --spec '{}' --control '{}' {transport_args}",
            script().display(),
            spec_path.display(),
            control.display(),
        );
        let process = Guarded::start("pymodbus", &command, dir.path().join("server.log"));
        if process
            .wait_line(|l| l == "ready", Duration::from_secs(15))
            .is_none()
        {
            panic!("pymodbus did not start:\n{}", process.log_text());
        }
        PyModbus {
            process,
            control,
            _dir: dir,
            port,
        }
    }

    /// Replaces the control file atomically, e.g. `{"dead": [2]}` or
    /// `{"exceptions": {"1": {"holding": [10]}}}`.
    pub fn set_control(&self, control: &serde_json::Value) {
        let tmp = self.control.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).expect("create control");
        f.write_all(control.to_string().as_bytes())
            .expect("write control");
        f.sync_all().expect("sync control");
        std::fs::rename(&tmp, &self.control).expect("rename control");
    }

    /// Stops the server now (the device "goes away").
    pub fn stop(mut self) {
        self.process.stop();
    }

    pub fn log(&self) -> String {
        self.process.log_text()
    }
}

/// Two connected pseudo-terminals: what one end writes, the other reads.
pub struct SocatPair {
    _process: Guarded,
    pub a: PathBuf,
    pub b: PathBuf,
    _dir: tempfile::TempDir,
}

impl SocatPair {
    pub fn start() -> SocatPair {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("ttyA");
        let b = dir.path().join("ttyB");
        let command = format!(
            "exec socat pty,raw,echo=0,link='{}' pty,raw,echo=0,link='{}'",
            a.display(),
            b.display()
        );
        let process = Guarded::start("socat", &command, dir.path().join("socat.log"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(a.exists() && b.exists()) {
            assert!(
                Instant::now() < deadline,
                "socat did not create the pty pair:\n{}",
                process.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        SocatPair {
            _process: process,
            a,
            b,
            _dir: dir,
        }
    }
}

/// Register words of a value given as its big-endian bytes, in one of the four orders, written
/// independently of the decoder: ABCD as is, DCBA all bytes reversed, BADC bytes swapped within
/// each pair, CDAB pairs reversed.
pub fn words(be_bytes: &[u8], order: &str) -> Vec<u16> {
    let mut bytes = be_bytes.to_vec();
    match order {
        "ABCD" => {}
        "DCBA" => bytes.reverse(),
        "BADC" => bytes.chunks_mut(2).for_each(|pair| pair.swap(0, 1)),
        "CDAB" => {
            let pairs: Vec<[u8; 2]> = bytes.chunks(2).rev().map(|p| [p[0], p[1]]).collect();
            bytes = pairs.concat();
        }
        other => panic!("unknown order {other}"),
    }
    bytes
        .chunks(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect()
}

/// Validated devices from a `[modbus]` site snippet and profiles written to a temp directory
/// (the default `profiles` directory beside the config). `equipment` lists the known ids.
pub fn devices(
    site: &str,
    profiles: &[(&str, &str)],
    equipment: &[&str],
) -> (
    tempfile::TempDir,
    Vec<seguard::ingest::modbus::ModbusDevice>,
) {
    #[derive(serde::Deserialize)]
    struct Site {
        modbus: toml::Spanned<seguard::ingest::modbus::RawModbus>,
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let profile_dir = dir.path().join("profiles");
    std::fs::create_dir(&profile_dir).expect("profile dir");
    for (name, text) in profiles {
        std::fs::write(profile_dir.join(format!("{name}.toml")), text).expect("write profile");
    }
    let site: Site = toml::from_str(site).unwrap_or_else(|e| panic!("site toml: {e}"));
    let known = equipment.iter().map(|e| e.to_string()).collect();
    let devices = seguard::ingest::modbus::validate(&site.modbus, dir.path(), &known)
        .unwrap_or_else(|problems| panic!("invalid modbus config: {problems:#?}"));
    (dir, devices)
}

/// A running poller whose batches the test reads.
pub struct Poller {
    pub batches: tokio::sync::mpsc::Receiver<seguard::gateway::Batch>,
    pub counters: std::sync::Arc<seguard::ingest::modbus::PollCounters>,
    stop: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Poller {
    pub fn start(devices: Vec<seguard::ingest::modbus::ModbusDevice>) -> Poller {
        let counters = std::sync::Arc::new(seguard::ingest::modbus::PollCounters::default());
        let (tx, batches) = tokio::sync::mpsc::channel(1024);
        let stop = tokio_util::sync::CancellationToken::new();
        let ingest = seguard::ingest::modbus::ModbusIngest {
            devices: devices.into_iter().map(std::sync::Arc::new).collect(),
            observer: counters.clone(),
            clock: seguard::ingest::modbus::system_clock(),
        };
        let task = tokio::spawn(ingest.run(tx, stop.clone()));
        Poller {
            batches,
            counters,
            stop,
            task: Some(task),
        }
    }

    /// The next batch within `within`, or `None`.
    pub async fn next(&mut self, within: Duration) -> Option<seguard::gateway::Batch> {
        tokio::time::timeout(within, self.batches.recv())
            .await
            .ok()
            .flatten()
    }

    /// Readings until a batch holds one that matches `wanted`, at most `within`; returns every
    /// reading seen up to the end of that batch, or `None` when it never came.
    pub async fn until(
        &mut self,
        within: Duration,
        wanted: impl Fn(&seguard::model::Reading) -> bool,
    ) -> Option<Vec<seguard::model::Reading>> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.checked_duration_since(tokio::time::Instant::now())?;
            let batch = self.next(left).await?;
            let hit = batch.readings.iter().any(&wanted);
            seen.extend(batch.readings);
            if hit {
                return Some(seen);
            }
        }
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Whether `r` is the `device_online` reading with this value.
pub fn is_online(r: &seguard::model::Reading, equipment: &str, online: bool) -> bool {
    r.equipment == equipment
        && r.metric.starts_with("device_online")
        && r.value == seguard::model::Value::Bool(online)
}

pub const ORDERS: [&str; 4] = ["ABCD", "CDAB", "BADC", "DCBA"];

/// A profile with one register per type and order (every number type in all four orders, bits,
/// scale and offset, text with both paddings, labels, coils, discrete inputs), the pymodbus spec
/// that fills them, and the value each metric must arrive as. Shared by the poller tests and the
/// whole-pipeline test.
pub struct AllTypes {
    /// Profile text: one register entry per metric.
    pub profile: String,
    /// The pymodbus spec (unit 1) that fills those registers.
    pub spec: serde_json::Value,
    /// The value each metric must arrive as.
    pub expected: BTreeMap<String, Value>,
}

pub fn all_types() -> AllTypes {
    let mut profile = String::from("description = \"every type and order\"\n");
    let mut holding: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    let mut input: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    let mut expected = BTreeMap::new();
    let register = |profile: &mut String,
                    metric: &str,
                    table: &str,
                    address: u16,
                    ty: &str,
                    extra: &str| {
        let _ = write!(
            profile,
            "\n[[register]]\nmetric = \"{metric}\"\ntable = \"{table}\"\naddress = {address}\ntype = \"{ty}\"\n{extra}"
        );
    };

    let numbers: Vec<(&str, Vec<u8>, f64)> = vec![
        ("u16", 51234u16.to_be_bytes().to_vec(), 51234.0),
        ("i16", (-1234i16).to_be_bytes().to_vec(), -1234.0),
        (
            "u32",
            3_000_000_000u32.to_be_bytes().to_vec(),
            3_000_000_000.0,
        ),
        ("i32", (-123_456i32).to_be_bytes().to_vec(), -123_456.0),
        (
            "u64",
            0x0123_4567_89AB_CDEFu64.to_be_bytes().to_vec(),
            0x0123_4567_89AB_CDEFu64 as f64,
        ),
        (
            "i64",
            (-9_876_543_210i64).to_be_bytes().to_vec(),
            -9_876_543_210.0,
        ),
        (
            "f32",
            123.456f32.to_be_bytes().to_vec(),
            f64::from(123.456f32),
        ),
        (
            "f64",
            (-1234.5678e-9f64).to_be_bytes().to_vec(),
            -1234.5678e-9,
        ),
    ];
    let mut address = 0u16;
    for order in ORDERS {
        for (ty, be, value) in &numbers {
            let metric = format!("{ty}_{order}");
            register(
                &mut profile,
                &metric,
                "holding",
                address,
                ty,
                &format!("order = \"{order}\"\n"),
            );
            let w = words(be, order);
            holding.insert(address.to_string(), w.clone());
            address += w.len() as u16;
            expected.insert(metric, Value::Number(*value));
        }
    }

    // Bits of one register: 0xA005 has bits 0, 2, 13 and 15 set.
    holding.insert("200".into(), vec![0xA005]);
    holding.insert("201".into(), vec![0xA005]);
    for (metric, address, bit, order, value) in [
        ("bit0", 200, 0, "ABCD", true),
        ("bit1", 200, 1, "ABCD", false),
        ("bit15", 200, 15, "ABCD", true),
        // Byte-swapped, the wire word 0xA005 is the value 0x05A0.
        ("bit0_swapped", 201, 0, "BADC", false),
        ("bit8_swapped", 201, 8, "BADC", true),
    ] {
        register(
            &mut profile,
            metric,
            "holding",
            address,
            "bit",
            &format!("bit = {bit}\norder = \"{order}\"\n"),
        );
        expected.insert(metric.to_owned(), Value::Bool(value));
    }

    // Scale and offset: -400 * 0.1 + 2 = -38.
    input.insert("0".into(), words(&(-400i16).to_be_bytes(), "ABCD"));
    register(
        &mut profile,
        "scaled",
        "input",
        0,
        "i16",
        "scale = 0.1\noffset = 2.0\nunit = \"°C\"\n",
    );
    expected.insert("scaled".into(), Value::Number(-400.0 * 0.1 + 2.0));

    // Text: NUL padding, high byte first; space padding, low byte first.
    let mut code = b"CY-2024-000123".to_vec();
    code.resize(20, 0);
    input.insert("10".into(), words(&code, "ABCD"));
    register(
        &mut profile,
        "cylinder_code",
        "input",
        10,
        "string",
        "registers = 10\n",
    );
    expected.insert("cylinder_code".into(), Value::Text("CY-2024-000123".into()));
    input.insert("20".into(), words(b"B2  ", "BADC"));
    register(
        &mut profile,
        "floor",
        "input",
        20,
        "string",
        "registers = 2\norder = \"BADC\"\n",
    );
    expected.insert("floor".into(), Value::Text("B2".into()));

    // A code with labels.
    input.insert("30".into(), vec![2]);
    register(
        &mut profile,
        "direction",
        "input",
        30,
        "u16",
        "values = { \"0\" = \"none\", \"1\" = \"up\", \"2\" = \"down\" }\n",
    );
    expected.insert("direction".into(), Value::Text("down".into()));

    // Coils and discrete inputs.
    for (metric, table, address, value) in [
        ("coil0", "coil", 0, true),
        ("coil1", "coil", 1, false),
        ("coil5", "coil", 5, true),
        ("di3", "discrete_input", 3, true),
    ] {
        register(&mut profile, metric, table, address, "bool", "");
        expected.insert(metric.to_owned(), Value::Bool(value));
    }
    let spec = json!({"slaves": {"1": {
        "holding": holding,
        "input": input,
        "coil": {"0": [true, false, false, false, false, true]},
        "discrete_input": {"3": [true]},
    }}});
    AllTypes {
        profile,
        spec,
        expected,
    }
}

/// A `[modbus]` site with one device `eq-1` (profile `p`, unit 1, every 200 ms) on a loopback
/// port; `transport` is `tcp` or `rtu_over_tcp`, `extra` more device keys.
pub fn tcp_site(transport: &str, port: u16, extra: &str) -> String {
    format!(
        r#"
[modbus]
request_timeout_ms = 1000
[[modbus.device]]
equipment = "eq-1"
profile = "p"
transport = "{transport}"
host = "127.0.0.1"
port = {port}
unit_id = 1
interval_ms = 200
{extra}
"#
    )
}

/// Registers for [`SMALL_PROFILE`]: holding 0 and 1 hold 11 and 12, input 0 holds 13.
pub fn small_spec() -> serde_json::Value {
    json!({"slaves": {"1": {"holding": {"0": [11, 12]}, "input": {"0": [13]}}}})
}

/// Three u16 registers: `a` and `b` in holding 0 and 1, `c` in input 0.
pub const SMALL_PROFILE: &str = r#"
[[register]]
metric = "a"
table = "holding"
address = 0
type = "u16"
[[register]]
metric = "b"
table = "holding"
address = 1
type = "u16"
[[register]]
metric = "c"
table = "input"
address = 0
type = "u16"
"#;
