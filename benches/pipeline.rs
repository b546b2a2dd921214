//! Whole gateway path at QoS1 beside mosquitto's raw relay of the same messages, in one run.
//!
//! `cargo bench --bench pipeline` (release). Starts mosquitto and VictoriaMetrics on loopback
//! ports, then:
//! 1. baseline: a rumqttc publisher → mosquitto → a rumqttc subscriber at QoS1;
//! 2. seguard: the same publisher → mosquitto → gateway (mapping, rules, outbox) →
//!    VictoriaMetrics, timed until VictoriaMetrics confirmed every point.
//!
//! Messages carry 10 readings each. Set `SEGUARD_BENCH_MESSAGES` to change the count.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Mosquitto, Victoria};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

const READINGS_PER_MESSAGE: usize = 10;

fn payload(i: u64) -> Vec<u8> {
    let mut s = format!("{{\"ts\":{}", 1_790_000_000_000u64 + i);
    for f in 0..READINGS_PER_MESSAGE {
        s.push_str(&format!(",\"m{f}\":{}.{}", i % 1000, f));
    }
    s.push('}');
    s.into_bytes()
}

/// Publishes `n` messages at QoS1 as fast as the broker acknowledges them; returns when all
/// PUBACKs arrived.
async fn publish(port: u16, n: u64, topics: u64) {
    let mut options = MqttOptions::new("bench-publisher", "127.0.0.1", port);
    options
        .set_inflight(1000)
        .set_keep_alive(Duration::from_secs(60));
    let (client, mut event_loop) = AsyncClient::new(options, 10_000);
    let acks = tokio::spawn(async move {
        let mut acked = 0;
        while acked < n {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("publisher connection failed: {e}"),
            }
        }
    });
    for i in 0..n {
        let topic = format!("bench/pv-{}/telemetry", i % topics);
        client
            .publish(topic, QoS::AtLeastOnce, false, payload(i))
            .await
            .expect("publish");
    }
    acks.await.expect("publisher event loop");
}

/// Baseline: messages per second mosquitto relays from one QoS1 publisher to one QoS1 subscriber.
async fn raw_relay(port: u16, n: u64, topics: u64) -> f64 {
    let mut options = MqttOptions::new("bench-subscriber", "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(60))
        .set_clean_session(false);
    let (client, mut event_loop) = AsyncClient::new(options, 10_000);
    client
        .subscribe("bench/+/telemetry", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (ready_tx, mut ready) = mpsc::channel(1);
    let subscriber = tokio::spawn(async move {
        let mut received = 0;
        while received < n {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(()).await;
                }
                Ok(Event::Incoming(Packet::Publish(_))) => received += 1,
                Ok(_) => {}
                Err(e) => panic!("subscriber failed: {e}"),
            }
        }
    });
    ready.recv().await;
    let started = Instant::now();
    publish(port, n, topics).await;
    subscriber.await.unwrap();
    n as f64 / started.elapsed().as_secs_f64()
}

fn gateway_config(broker: u16, victoria: &Victoria, topics: u64) -> seguard::config::Config {
    let mut text = format!(
        "[site]\nid = \"bench\"\nname = \"bench\"\n[gateway]\nid = \"gw-bench\"\nhttp_listen = \"127.0.0.1:0\"\n\
         [mqtt]\nhost = \"127.0.0.1\"\nport = {broker}\nclient_id = \"bench-gateway\"\n"
    );
    for t in 0..topics {
        text.push_str(&format!(
            "[[equipment]]\nid = \"pv-{t}\"\nkind = \"pressure_vessel\"\nregistration_code = \"R{t}\"\n\
             nameplate = {{ working_pressure_mpa = 1.0, set_pressure_mpa = 1.1, design_pressure_mpa = 1.2 }}\n"
        ));
    }
    text.push_str("[[ingest.mqtt]]\ntopic = \"bench/{equipment}/telemetry\"\ntime_pointer = \"/ts\"\nfields = [\n");
    for f in 0..READINGS_PER_MESSAGE {
        text.push_str(&format!(
            "  {{ pointer = \"/m{f}\", metric = \"m{f}\" }},\n"
        ));
    }
    text.push_str("]\n");
    text.push_str(
        "[[rules.threshold]]\nid = \"m0-high\"\nkind = \"pressure_vessel\"\nmetric = \"m0\"\nhigh = { limit = 2000.0 }\n",
    );
    text.push_str(&format!(
        "[[uplink.influx]]\nname = \"vm\"\napi = \"v2\"\nurl = \"{}\"\norg = \"o\"\nbucket = \"b\"\ntoken = \"t\"\n\
         batch_max_points = 20000\nflush_interval_ms = 200\nqueue_max_points = 10000000\n",
        victoria.url()
    ));
    seguard::config::parse(&text, Path::new("bench.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Messages per second through the whole gateway path, until the sink confirmed every point.
async fn gateway_path(broker: u16, victoria: &Victoria, n: u64, topics: u64) -> (f64, Duration) {
    let gateway = seguard::gateway::Gateway::start(gateway_config(broker, victoria, topics))
        .await
        .expect("gateway starts");
    let metrics = gateway.metrics.clone();
    while metric(
        &metrics.render(),
        "seguard_broker_connected{uplink=\"site\"}",
    ) != 1.0
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    publish(broker, n, topics).await;
    let published = started.elapsed();
    let want = (n as usize * READINGS_PER_MESSAGE) as f64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while metric(
        &metrics.render(),
        "seguard_uplink_points_total{uplink=\"vm\"}",
    ) < want
    {
        assert!(
            Instant::now() < deadline,
            "gateway did not deliver every point"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    gateway.stop().await;
    (n as f64 / elapsed.as_secs_f64(), published)
}

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it, and
/// then it only proves that it still works, on a small load in a few seconds.
fn smoke_test() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn main() {
    let n: u64 = std::env::var("SEGUARD_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke_test() { 2_000 } else { 200_000 });
    let topics = 100;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let broker = Mosquitto::start();
        let victoria = Victoria::start();
        println!("messages: {n}, readings per message: {READINGS_PER_MESSAGE}, equipment: {topics}");
        let mut rows = Vec::new();
        for round in 1..=3 {
            let relay = raw_relay(broker.port, n, topics).await;
            let (path, published) = gateway_path(broker.port, &victoria, n, topics).await;
            println!(
                "round {round}: mosquitto raw relay QoS1 {relay:>9.0} msg/s | seguard whole path {path:>9.0} msg/s \
                 ({:>9.0} readings/s, publish took {:.2} s) | ratio {:.2}",
                path * READINGS_PER_MESSAGE as f64,
                published.as_secs_f64(),
                path / relay
            );
            rows.push((relay, path));
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let relay = median(rows.iter().map(|r| r.0).collect());
        let path = median(rows.iter().map(|r| r.1).collect());
        println!(
            "median: raw relay {relay:.0} msg/s, seguard {path:.0} msg/s ({:.0} readings/s), ratio {:.2} (target >= 0.50)",
            path * READINGS_PER_MESSAGE as f64,
            path / relay
        );
    });
}
