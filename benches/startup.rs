//! Start to ready: from spawning the `seguard` release binary until its `/readyz` answers 200,
//! for the gateway and for central, each started `SEGUARD_BENCH_STARTS` times (default 7).
//!
//! `cargo bench --bench startup` (release). Starts mosquitto and VictoriaMetrics on loopback
//! ports first, so readiness waits only for seguard: the gateway is ready once it is connected
//! to the site broker and to central's broker and its InfluxDB uplink answered, with the bench
//! site of `benches/alarm.rs` (101 vessels, a threshold rule, the durable disk outbox); central
//! once its SQLite store answers and it is connected to the broker. Each start after the first
//! finds the previous run's store and outbox. `/readyz` is polled every 2 ms.
//!
//! The limit, in the same run: spawning `seguard --version` until it exited, which is what
//! starting the process costs before any of seguard's own work.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Mosquitto, Victoria};
use support::{median, setting, smoke_test, Seguard, SiteOptions};

fn version_exit() -> Duration {
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_seguard"))
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .expect("seguard --version");
    assert!(status.success());
    started.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn row(what: &str, times: &[f64]) {
    let max = times.iter().copied().fold(f64::NAN, f64::max);
    let min = times.iter().copied().fold(f64::NAN, f64::min);
    println!(
        "| {what} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        times.len(),
        times.first().copied().unwrap_or(f64::NAN),
        min,
        median(times.to_vec()),
        max
    );
}

fn main() {
    let starts: usize = setting("SEGUARD_BENCH_STARTS", if smoke_test() { 1 } else { 7 });
    support::runtime().block_on(async {
        let broker = Mosquitto::start();
        let victoria = Victoria::start();
        let dir = tempfile::tempdir().unwrap();
        let central_http = format!("127.0.0.1:{}", free_port());
        let central_config = dir.path().join("central.toml");
        std::fs::write(
            &central_config,
            support::central_toml(broker.port, &central_http, dir.path()),
        )
        .unwrap();
        let gateway_http = format!("127.0.0.1:{}", free_port());
        let site = dir.path().join("site.toml");
        let outbox = dir.path().join("outbox");
        std::fs::write(
            &site,
            support::site_toml(&SiteOptions {
                broker: broker.port,
                http_listen: &gateway_http,
                victoria_url: &victoria.url(),
                equipment: 101,
                outbox: Some(&outbox),
            }),
        )
        .unwrap();

        let (mut version, mut central, mut gateway) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..starts {
            version.push(ms(version_exit()));
            for (role, config, http, times) in [
                ("central", &central_config, &central_http, &mut central),
                ("gateway", &site, &gateway_http, &mut gateway),
            ] {
                let log = dir.path().join(format!("{role}.log"));
                let mut process = Seguard::spawn(role, config, http, log);
                times.push(ms(process.wait_ready(Duration::from_secs(20)).await));
                let status = process.stop();
                assert!(status.success(), "{role} exit: {status}");
            }
        }
        println!("| process | starts | first (ms) | min (ms) | median (ms) | max (ms) |");
        println!("|---|---|---|---|---|---|");
        row("`seguard --version` (spawn to exit: the limit)", &version);
        row("`seguard central` (spawn to /readyz 200)", &central);
        row("`seguard gateway` (spawn to /readyz 200)", &gateway);
        println!("target: under 1000 ms");
    });
}
