//! Test harness shared by the integration tests: starts the real servers (mosquitto,
//! InfluxDB 1.x, VictoriaMetrics) on free loopback ports in temp dirs, and small helpers to
//! publish and query. Each server dies with its guard, and also when the test process dies.

#![allow(dead_code)]

pub mod browser;
pub mod city;
pub mod postgres;
pub mod site;
pub mod smtp;
pub mod tls;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a free loopback port")
        .port()
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Polls `check` every 100 ms until it returns `Some`, and returns that value; panics after
/// `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// SQLite's plan of a query central builds (`EXPLAIN QUERY PLAN` with its bound values), its
/// steps joined by `; `, to check which index a list query reads.
pub async fn sqlite_plan(
    pool: &sqlx::AnyPool,
    sql: &str,
    binds: Vec<seguard::central::store::Bind>,
) -> String {
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let steps: Vec<String> = seguard::central::store::bound(&explain, binds)
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| sqlx::Row::get::<String, _>(r, 3))
        .collect();
    steps.join("; ")
}

/// Waits until `url` answers 200 (a service's `/readyz` or `/healthz`).
pub async fn wait_http_ok(what: &str, url: &str) {
    eventually(what, Duration::from_secs(15), || async {
        let ok = reqwest::get(url).await.is_ok_and(|r| r.status() == 200);
        ok.then_some(())
    })
    .await;
}

/// One series of a Prometheus `/metrics` page served at `http` (host:port), as written with
/// its labels; 0 when absent.
pub async fn metric(http: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("http://{http}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// A server process run through `sh`, which kills it when our end of its stdin closes: when
/// the guard drops, and also when the test process dies for any reason.
pub struct Process {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, program: &str, args: &[&str], log: PathBuf) -> Process {
        let script = r#"log="$1"; shift; "$@" </dev/null >>"$log" 2>&1 & pid=$!; read _; kill $pid 2>/dev/null; wait $pid"#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&log)
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program}: {e}; is it installed? run tests/run")
            });
        let mut process = Process {
            name: name.to_owned(),
            child,
            stdin: None,
            log,
        };
        process.stdin = process.child.stdin.take();
        process
    }

    /// Stops the server (SIGTERM, so it saves its state) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_for_port(name: &str, port: u16, process: &Process) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!(
        "{name} did not listen on {port}; its log:\n{}",
        process.log_text()
    );
}

/// mosquitto with persistence in its own temp dir.
pub struct Mosquitto {
    pub port: u16,
    pub dir: tempfile::TempDir,
    process: Option<Process>,
    /// The access lines of the conf: anonymous by default.
    access: String,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Self::start_with_access("allow_anonymous true\n".to_owned())
    }

    /// A broker that admits only the users of `password_file`, each limited by `acl_file`.
    pub fn start_secured(password_file: &Path, acl_file: &Path) -> Mosquitto {
        Self::start_with_access(format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\n",
            password_file.display(),
            acl_file.display()
        ))
    }

    fn start_with_access(access: String) -> Mosquitto {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut broker = Mosquitto {
            port: free_port(),
            dir,
            process: None,
            access,
        };
        broker.restart();
        broker
    }

    fn conf(&self) -> PathBuf {
        let conf = self.dir.path().join("mosquitto.conf");
        let text = format!(
            "listener {port} 127.0.0.1\n{access}persistence true\npersistence_location {dir}/\n\
             user root\nmax_queued_messages 0\nmax_inflight_messages 100\nmessage_size_limit 0\n\
             log_dest stderr\nlog_type error\nlog_type warning\n",
            port = self.port,
            access = self.access,
            dir = self.dir.path().display()
        );
        std::fs::write(&conf, text).expect("writing mosquitto.conf");
        conf
    }

    /// Stops the broker; it saves its persistent sessions.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Starts (again) on the same port with the same persistence directory.
    pub fn restart(&mut self) {
        self.stop();
        let conf = self.conf();
        let process = Process::spawn(
            "mosquitto",
            "mosquitto",
            &["-c", conf.to_str().expect("utf-8 path")],
            self.dir.path().join("mosquitto.log"),
        );
        wait_for_port("mosquitto", self.port, &process);
        self.process = Some(process);
    }
}

/// InfluxDB 1.x (v1 `/write` and InfluxQL `/query`).
pub struct Influx1 {
    pub port: u16,
    pub dir: tempfile::TempDir,
    process: Option<Process>,
}

impl Influx1 {
    pub fn start() -> Influx1 {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Influx1 {
            port: free_port(),
            dir,
            process: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        let d = self.dir.path().display();
        let rpc_port = free_port();
        let conf = self.dir.path().join("influxdb.conf");
        let text = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc_port}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n  logging-enabled = false\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [continuous_queries]\n  enabled = false\n",
            port = self.port
        );
        std::fs::write(&conf, text).expect("writing influxdb.conf");
        let process = Process::spawn(
            "influxd",
            "influxd",
            &["-config", conf.to_str().expect("utf-8 path")],
            self.dir.path().join("influxd.log"),
        );
        wait_for_port("influxd", self.port, &process);
        self.process = Some(process);
        let url = format!("{}/ping", self.url());
        wait_until("influxd /ping", Duration::from_secs(20), || {
            http_get_status(&url) == Some(204)
        });
    }

    pub async fn create_database(&self, db: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/query", self.url()))
            .form(&[("q", format!("CREATE DATABASE \"{db}\""))])
            .send()
            .await
            .expect("CREATE DATABASE");
        assert!(
            response.status().is_success(),
            "CREATE DATABASE {db}: {}",
            response.status()
        );
    }

    /// Runs an InfluxQL query (epoch=ns) and returns the rows of the first series.
    pub async fn query(&self, db: &str, q: &str) -> Vec<Vec<serde_json::Value>> {
        let body: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/query", self.url()))
            .query(&[("db", db), ("q", q), ("epoch", "ns")])
            .send()
            .await
            .expect("InfluxQL query")
            .json()
            .await
            .expect("InfluxQL answer is JSON");
        let series = &body["results"][0]["series"][0];
        series["values"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| r.as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// VictoriaMetrics: takes line protocol on `/write` and `/api/v2/write`.
pub struct Victoria {
    pub port: u16,
    pub dir: tempfile::TempDir,
    process: Process,
}

impl Victoria {
    pub fn start() -> Victoria {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let data = dir.path().join("data");
        let listen = format!("127.0.0.1:{port}");
        let process = Process::spawn(
            "victoria-metrics",
            "victoria-metrics",
            &[
                &format!("-storageDataPath={}", data.display()),
                &format!("-httpListenAddr={listen}"),
                "-retentionPeriod=100y",
                "-search.disableCache",
                "-loggerLevel=ERROR",
            ],
            dir.path().join("victoria.log"),
        );
        wait_for_port("victoria-metrics", port, &process);
        Victoria { port, dir, process }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every sample of the series matching `selector`: (labels, [(ms, value)]).
    pub async fn export(&self, selector: &str) -> Vec<(serde_json::Value, Vec<(i64, f64)>)> {
        let text = reqwest::Client::new()
            .get(format!("{}/api/v1/export", self.url()))
            .query(&[("match[]", selector)])
            .send()
            .await
            .expect("VictoriaMetrics export")
            .text()
            .await
            .expect("export body");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).expect("export line is JSON");
                let samples = v["timestamps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .zip(v["values"].as_array().into_iter().flatten())
                    .map(|(t, x)| {
                        (
                            t.as_i64().unwrap_or_default(),
                            x.as_f64().unwrap_or(f64::NAN),
                        )
                    })
                    .collect();
                (v["metric"].clone(), samples)
            })
            .collect()
    }
}

/// Status of a GET over a plain TCP socket, so sync code needs no runtime.
pub fn http_get_status(url: &str) -> Option<u16> {
    use std::io::Read;
    let url = url::Url::parse(url).ok()?;
    let mut stream = TcpStream::connect((url.host_str()?, url.port()?)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {} HTTP/1.0\r\nHost: x\r\n\r\n", url.path()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// An MQTT client for tests: publishes with QoS1 and waits for the PUBACKs, or collects what
/// arrives on a filter.
pub mod mqtt {
    use std::time::Duration;

    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    use tokio::sync::mpsc;

    pub struct TestClient {
        pub client: AsyncClient,
        pub received: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
        acks: mpsc::UnboundedReceiver<u16>,
        task: tokio::task::JoinHandle<()>,
    }

    impl TestClient {
        pub async fn connect(port: u16, id: &str) -> TestClient {
            let mut options = MqttOptions::new(id, "127.0.0.1", port);
            options.set_max_packet_size(4 << 20, 4 << 20);
            options.set_keep_alive(Duration::from_secs(30));
            let (client, mut event_loop) = AsyncClient::new(options, 10_000);
            let (tx, received) = mpsc::unbounded_channel();
            let (ack_tx, acks) = mpsc::unbounded_channel();
            let (conn_tx, mut conn_rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(async move {
                loop {
                    match event_loop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            let _ = conn_tx.send(());
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                        }
                        Ok(Event::Incoming(Packet::PubAck(a))) => {
                            let _ = ack_tx.send(a.pkid);
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            });
            tokio::time::timeout(Duration::from_secs(10), conn_rx.recv())
                .await
                .expect("test client connects to the broker");
            TestClient {
                client,
                received,
                acks,
                task,
            }
        }

        /// Subscribes and waits until the broker has the subscription.
        pub async fn subscribe(&self, filter: &str) {
            self.client
                .subscribe(filter, QoS::AtLeastOnce)
                .await
                .expect("subscribe");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        /// Publishes at QoS1 and waits until the broker acknowledged every message.
        pub async fn publish_all(&mut self, messages: impl IntoIterator<Item = (String, Vec<u8>)>) {
            let mut n = 0;
            for (topic, payload) in messages {
                self.client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .expect("publish");
                n += 1;
            }
            for _ in 0..n {
                tokio::time::timeout(Duration::from_secs(20), self.acks.recv())
                    .await
                    .expect("broker acknowledges the publish")
                    .expect("ack channel open");
            }
        }

        /// The next message on a subscribed filter, as JSON.
        pub async fn next_json(
            &mut self,
            timeout: Duration,
        ) -> Option<(String, serde_json::Value)> {
            let (topic, payload) = tokio::time::timeout(timeout, self.received.recv())
                .await
                .ok()??;
            Some((
                topic,
                serde_json::from_slice(&payload).expect("message is JSON"),
            ))
        }
    }

    impl Drop for TestClient {
        fn drop(&mut self) {
            self.task.abort();
        }
    }
}

/// Where the example configs are.
pub fn firmware_configs() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/firmware-configs"))
}
