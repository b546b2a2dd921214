//! Alarm latency from the device's publish to the incident stored at central, while telemetry
//! flows in the background; CPU and memory of the gateway and of central under that load.
//!
//! `cargo bench --bench alarm` (release). Starts mosquitto and VictoriaMetrics on loopback
//! ports, `seguard central` on SQLite and `seguard gateway` as processes of the release binary,
//! and then, once with in-memory lanes and once with the durable disk outbox:
//! - background load: 10 readings a message to 100 pressure vessels at `SEGUARD_BENCH_RATE`
//!   messages/s (default 10,000), QoS1, paced every 10 ms;
//! - alarms: every 50 ms, one message to vessel `pv-100` whose `m0` alternately crosses the
//!   threshold rule's limit (raise) and falls back (clear). The rule has no delay, so each
//!   message is one incident. The publish time is the payload's `ts`, which the gateway takes as
//!   the reading's and the event's time; central stores its own receive time beside it
//!   (`events.time_ms`, `events.received_ms`), read from its SQLite store at the end.
//! - the limits, in the same run: a plain subscriber on mosquitto times the same alarm messages
//!   over one broker hop (the gateway's path has two, plus a SQLite commit), and a probe times
//!   a 4 KiB append plus `fdatasync` in the same file system every 50 ms (the disk outbox and
//!   central's SQLite, in full sync, wait for such syncs).
//!
//! After `SEGUARD_BENCH_WARMUP` seconds of load (default 3), it measures for
//! `SEGUARD_BENCH_SECONDS` (default 20): the gateway's readings in and points confirmed by
//! VictoriaMetrics per second (its `/metrics`), to show it kept up with the load; CPU = utime + stime of each process over wall time
//! (`/proc/PID/stat`), RSS = median of `VmRSS` sampled each second, peak = `VmHWM`.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, Mosquitto, Victoria};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use support::{median, now_micros, now_ms, quantile, setting, smoke_test, Seguard, SiteOptions};
use tokio_util::sync::CancellationToken;

const LOAD_EQUIPMENT: u64 = 100;
/// The vessel whose messages raise and clear alarms: the one after the load's.
const ALARM_TOPIC: &str = "bench/pv-100/telemetry";

struct Settings {
    rate: u64,
    warmup: Duration,
    window: Duration,
    alarm_every: Duration,
}

fn client(port: u16, id: &str) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options
        .set_inflight(1000)
        .set_keep_alive(Duration::from_secs(60));
    AsyncClient::new(options, 10_000)
}

/// Polls an event loop until `stop`, handing every incoming packet to `on_packet`.
fn drive(
    mut event_loop: EventLoop,
    stop: CancellationToken,
    mut on_packet: impl FnMut(Packet) + Send + 'static,
) {
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                event = event_loop.poll() => event,
                _ = stop.cancelled() => return,
            };
            match event {
                Ok(Event::Incoming(packet)) => on_packet(packet),
                Ok(Event::Outgoing(_)) => {}
                Err(e) => panic!("bench MQTT client failed: {e}"),
            }
        }
    });
}

/// Polls an event loop until `stop`; returns the count of PUBACKs.
fn count_acks(event_loop: EventLoop, stop: CancellationToken) -> Arc<AtomicU64> {
    let acked = Arc::new(AtomicU64::new(0));
    let counter = acked.clone();
    drive(event_loop, stop, move |packet| {
        if let Packet::PubAck(_) = packet {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    acked
}

/// Publishes telemetry at `rate` messages/s until `stop`; returns the PUBACK counter.
fn background_load(port: u16, rate: u64, stop: CancellationToken) -> Arc<AtomicU64> {
    let (client, event_loop) = client(port, "bench-load");
    let acked = count_acks(event_loop, stop.clone());
    tokio::spawn(async move {
        let started = Instant::now();
        let mut sent = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while !stop.is_cancelled() {
            tick.tick().await;
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                let topic = format!("bench/pv-{}/telemetry", sent % LOAD_EQUIPMENT);
                let body = support::payload(now_ms(), sent % 1000);
                if client
                    .publish(topic, QoS::AtLeastOnce, false, body)
                    .await
                    .is_err()
                {
                    return;
                }
                sent += 1;
            }
        }
    });
    acked
}

/// Latencies in ms of the alarm messages over one mosquitto hop, measured by a subscriber.
async fn one_hop_latencies(port: u16, stop: CancellationToken) -> Arc<Mutex<Vec<f64>>> {
    let (client, event_loop) = client(port, "bench-hop");
    client
        .subscribe(ALARM_TOPIC, QoS::AtLeastOnce)
        .await
        .unwrap();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let out = latencies.clone();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    drive(event_loop, stop, move |packet| match packet {
        Packet::SubAck(_) => {
            subscribed_tx.take().map(|tx| tx.send(()));
        }
        Packet::Publish(p) => {
            let body: serde_json::Value = serde_json::from_slice(&p.payload).unwrap_or_default();
            if let Some(sent_us) = body["sent_us"].as_u64() {
                let latency_ms = (now_micros() - sent_us) as f64 / 1000.0;
                out.lock().unwrap().push(latency_ms);
            }
        }
        _ => {}
    });
    subscribed.await.expect("subscribed");
    latencies
}

/// Times a 4 KiB append plus `fdatasync` in `dir` every 50 ms until `stop`: what the disk
/// gives the outbox in the same run. Returns the durations in ms.
fn fsync_probe(dir: &Path, stop: CancellationToken) -> std::thread::JoinHandle<Vec<f64>> {
    use std::io::Write as _;
    let path = dir.join(format!("fsync-probe-{}", now_ms()));
    std::thread::spawn(move || {
        let mut file = std::fs::File::create(&path).expect("fsync probe file");
        let mut times = Vec::new();
        while !stop.is_cancelled() {
            let started = Instant::now();
            file.write_all(&[0u8; 4096]).expect("fsync probe write");
            file.sync_data().expect("fsync probe sync");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(&path);
        times
    })
}

/// A counter on the gateway's `/metrics`.
async fn gateway_counter(http: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("http://{http}/metrics"))
        .await
        .expect("gateway metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

const READINGS_IN: &str = "seguard_readings_received_total{source=\"mqtt\"}";
const POINTS_OUT: &str = "seguard_uplink_points_total{uplink=\"vm\"}";

/// The figures of one outbox mode.
struct Measured {
    load_msg_s: f64,
    /// Readings the gateway took in, and points VictoriaMetrics confirmed, per second.
    readings_in_s: f64,
    points_out_s: f64,
    /// Alarm messages the broker acknowledged (PUBACK).
    alarms_sent: u64,
    /// Publish → stored at central, ms, one per alarm message.
    stored: Vec<f64>,
    /// Publish → a plain subscriber, ms.
    one_hop: Vec<f64>,
    /// 4 KiB write + fdatasync in the outbox's file system, ms.
    fsync: Vec<f64>,
    gateway: Usage,
    central: Usage,
}

struct Usage {
    cpu_cores: f64,
    rss_mib: f64,
    peak_mib: f64,
}

/// Samples CPU and RSS of both processes once a second for `window`.
async fn usage(processes: [&Seguard; 2], window: Duration) -> [Usage; 2] {
    let cpu_0 = processes.map(|p| p.cpu_seconds());
    let started = Instant::now();
    let mut rss: [Vec<f64>; 2] = Default::default();
    while started.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(1).min(window)).await;
        for (samples, p) in rss.iter_mut().zip(processes) {
            samples.push(p.status_kib("VmRSS") as f64 / 1024.0);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    std::array::from_fn(|i| Usage {
        cpu_cores: (processes[i].cpu_seconds() - cpu_0[i]) / wall,
        rss_mib: median(rss[i].clone()),
        peak_mib: processes[i].status_kib("VmHWM") as f64 / 1024.0,
    })
}

async fn stored_latencies(db: &Path, from_ms: u64, to_ms: u64) -> Vec<f64> {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("central.db");
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT time_ms, received_ms FROM events WHERE equipment = 'pv-100' AND time_ms BETWEEN ? AND ?",
    )
    .bind(from_ms as i64)
    .bind(to_ms as i64)
    .fetch_all(&pool)
    .await
    .expect("reading events");
    pool.close().await;
    rows.iter().map(|(t, r)| (r - t) as f64).collect()
}

async fn measure(
    broker: u16,
    victoria: &Victoria,
    central: &Seguard,
    dir: &Path,
    outbox: bool,
    s: &Settings,
) -> Measured {
    let http = format!("127.0.0.1:{}", free_port());
    let outbox_dir = dir.join(format!("outbox-{}", now_ms()));
    let site = dir.join("site.toml");
    let text = support::site_toml(&SiteOptions {
        broker,
        http_listen: &http,
        victoria_url: &victoria.url(),
        equipment: LOAD_EQUIPMENT + 1,
        outbox: outbox.then_some(outbox_dir.as_path()),
    });
    std::fs::write(&site, text).unwrap();
    let mut gateway = Seguard::spawn("gateway", &site, &http, dir.join("gateway.log"));
    gateway.wait_ready(Duration::from_secs(20)).await;

    let stop = CancellationToken::new();
    let one_hop = one_hop_latencies(broker, stop.clone()).await;
    let load_acked = background_load(broker, s.rate, stop.clone());
    tokio::time::sleep(s.warmup).await;

    let (alarms, alarm_loop) = client(broker, "bench-alarms");
    let alarm_acks = count_acks(alarm_loop, stop.clone());
    let alarm_stop = CancellationToken::new();
    let from_ms = now_ms();
    let load_0 = load_acked.load(Ordering::Relaxed);
    let readings_0 = gateway_counter(&http, READINGS_IN).await;
    let points_0 = gateway_counter(&http, POINTS_OUT).await;
    let probe = fsync_probe(dir, alarm_stop.clone());
    let started = Instant::now();
    let alarm_task = {
        let alarm_stop = alarm_stop.clone();
        let every = s.alarm_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut sent = 0u64;
            while !alarm_stop.is_cancelled() {
                tick.tick().await;
                let value = if sent.is_multiple_of(2) { 3000 } else { 0 };
                let body = String::from_utf8(support::payload(now_ms(), value)).unwrap();
                let body = body.replacen('{', &format!("{{\"sent_us\":{},", now_micros()), 1);
                alarms
                    .publish(ALARM_TOPIC, QoS::AtLeastOnce, false, body)
                    .await
                    .expect("alarm publish");
                sent += 1;
            }
            sent
        })
    };
    let [gateway_usage, central_usage] = usage([&gateway, central], s.window).await;
    alarm_stop.cancel();
    let alarms_queued = alarm_task.await.unwrap();
    // What counts is what the broker took (its PUBACK), not what the client queued: on a
    // loaded machine the last publishes leave the client a while after `publish` returned.
    let acked_by = Instant::now() + Duration::from_secs(30);
    while alarm_acks.load(Ordering::Relaxed) < alarms_queued && Instant::now() < acked_by {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alarms_sent = alarm_acks.load(Ordering::Relaxed);
    if alarms_sent < alarms_queued {
        println!("{alarms_queued} alarm messages queued, {alarms_sent} acknowledged by the broker within 30 s");
    }
    let fsync = tokio::task::spawn_blocking(move || probe.join().expect("fsync probe"))
        .await
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    let load_msg_s = (load_acked.load(Ordering::Relaxed) - load_0) as f64 / wall;
    let readings_in_s = (gateway_counter(&http, READINGS_IN).await - readings_0) / wall;
    let points_out_s = (gateway_counter(&http, POINTS_OUT).await - points_0) / wall;
    let to_ms = now_ms();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();

    let db = dir.join("central.db");
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let stored = stored_latencies(&db, from_ms, to_ms).await;
        if stored.len() as u64 >= alarms_sent || Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = gateway.stop();
    assert!(status.success(), "gateway exit: {status}");
    let one_hop = one_hop.lock().unwrap().clone();
    Measured {
        load_msg_s,
        readings_in_s,
        points_out_s,
        alarms_sent,
        stored,
        one_hop,
        fsync,
        gateway: gateway_usage,
        central: central_usage,
    }
}

fn main() {
    let smoke = smoke_test();
    let s = Settings {
        rate: setting("SEGUARD_BENCH_RATE", if smoke { 500 } else { 10_000 }),
        warmup: Duration::from_secs_f64(setting(
            "SEGUARD_BENCH_WARMUP",
            if smoke { 0.5 } else { 3.0 },
        )),
        window: Duration::from_secs_f64(setting(
            "SEGUARD_BENCH_SECONDS",
            if smoke { 2.0 } else { 20.0 },
        )),
        alarm_every: Duration::from_millis(if smoke { 200 } else { 50 }),
    };
    support::runtime().block_on(async {
        let broker = Mosquitto::start();
        let victoria = Victoria::start();
        let dir = tempfile::tempdir().unwrap();
        let http = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("central.toml");
        std::fs::write(&config, support::central_toml(broker.port, &http, dir.path())).unwrap();
        let mut central = Seguard::spawn("central", &config, &http, dir.path().join("central.log"));
        central.wait_ready(Duration::from_secs(20)).await;
        println!(
            "background load {} msg/s x {} readings, an alarm message every {:?}, measured {:?} after {:?} warm-up",
            s.rate,
            support::READINGS_PER_MESSAGE,
            s.alarm_every,
            s.window,
            s.warmup
        );
        let mut results = Vec::new();
        for outbox in [false, true] {
            let m = measure(broker.port, &victoria, &central, dir.path(), outbox, &s).await;
            assert_eq!(
                m.stored.len() as u64,
                m.alarms_sent,
                "every alarm message became one stored incident"
            );
            results.push((if outbox { "disk, fsync batch" } else { "in memory" }, m));
        }
        println!(
            "| outbox | alarms stored | p50 (ms) | p99 (ms) | max (ms) | limit: one mosquitto hop p50 (ms) | p99 (ms) \
             | limit: 4 KiB fdatasync p50 (ms) | p99 (ms) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for (name, m) in &results {
            println!(
                "| {name} | {} of {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
                m.stored.len(),
                m.alarms_sent,
                quantile(m.stored.clone(), 0.5),
                quantile(m.stored.clone(), 0.99),
                quantile(m.stored.clone(), 1.0),
                quantile(m.one_hop.clone(), 0.5),
                quantile(m.one_hop.clone(), 0.99),
                quantile(m.fsync.clone(), 0.5),
                quantile(m.fsync.clone(), 0.99),
            );
        }
        println!(
            "\n| outbox | load published (msg/s) | gateway readings in (/s) | points to VictoriaMetrics (/s) \
             | gateway CPU (cores) | gateway RSS / peak (MiB) | central CPU (cores) | central RSS / peak (MiB) |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for (name, m) in &results {
            println!(
                "| {name} | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} / {:.1} | {:.2} | {:.1} / {:.1} |",
                m.load_msg_s,
                m.readings_in_s,
                m.points_out_s,
                m.gateway.cpu_cores,
                m.gateway.rss_mib,
                m.gateway.peak_mib,
                m.central.cpu_cores,
                m.central.rss_mib,
                m.central.peak_mib,
            );
        }
        let status = central.stop();
        assert!(status.success(), "central exit: {status}");
    });
}
