//! Whole gateway path at QoS1 beside mosquitto's raw relay of the same messages, in one run.
//!
//! `cargo bench --bench pipeline` (release). Starts mosquitto and VictoriaMetrics on loopback
//! ports, then, in each of three rounds (one under `cargo test`):
//! 1. baseline: a rumqttc publisher → mosquitto → a rumqttc subscriber at QoS1;
//! 2. seguard, in-memory lanes: the same publisher → mosquitto → gateway (mapping, rules,
//!    outbox) → VictoriaMetrics, timed until VictoriaMetrics confirmed every point;
//! 3. seguard, durable disk outbox (`[outbox]`, fsync before each push returns, as in
//!    production): the same path, where a message is acknowledged to mosquitto only once its
//!    readings are on disk.
//!
//! Messages carry 10 readings each. Set `SEGUARD_BENCH_MESSAGES` to change the count.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Mosquitto, Victoria};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::{median, payload, site_toml, smoke_test, SiteOptions, READINGS_PER_MESSAGE};

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
            .publish(
                topic,
                QoS::AtLeastOnce,
                false,
                payload(1_790_000_000_000 + i, i % 1000),
            )
            .await
            .expect("publish");
    }
    acks.await.expect("publisher event loop");
}

/// Baseline: messages per second mosquitto relays from one QoS1 publisher to one QoS1 subscriber.
async fn raw_relay(port: u16, n: u64, topics: u64) -> f64 {
    let subscriber = support::relay::subscriber(port, "bench/+/telemetry", n).await;
    let started = Instant::now();
    publish(port, n, topics).await;
    subscriber.await.unwrap();
    n as f64 / started.elapsed().as_secs_f64()
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Messages per second through the whole gateway path, until the sink confirmed every point.
async fn gateway_path(
    broker: u16,
    victoria: &Victoria,
    n: u64,
    topics: u64,
    outbox: Option<&Path>,
) -> (f64, Duration) {
    let text = site_toml(&SiteOptions {
        broker,
        http_listen: "127.0.0.1:0",
        victoria_url: &victoria.url(),
        equipment: topics,
        outbox,
    });
    let config =
        seguard::config::parse(&text, Path::new("bench.toml")).unwrap_or_else(|e| panic!("{e}"));
    let gateway = seguard::gateway::Gateway::start(config)
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
    // One point (line) a message: its readings travel whole.
    let want = n as f64;
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

fn main() {
    let n = support::setting(
        "SEGUARD_BENCH_MESSAGES",
        if smoke_test() { 2_000 } else { 200_000 },
    );
    let topics = 100;
    support::runtime().block_on(async {
        let broker = Mosquitto::start();
        let victoria = Victoria::start();
        println!("messages: {n}, readings per message: {READINGS_PER_MESSAGE}, equipment: {topics}");
        let mut rows = Vec::new();
        let rounds = if smoke_test() { 1 } else { 3 };
        for round in 1..=rounds {
            let relay = raw_relay(broker.port, n, topics).await;
            let (memory, published) = gateway_path(broker.port, &victoria, n, topics, None).await;
            let outbox = tempfile::tempdir().expect("outbox dir");
            let (disk, _) =
                gateway_path(broker.port, &victoria, n, topics, Some(outbox.path())).await;
            println!(
                "round {round}: mosquitto raw relay QoS1 {relay:>7.0} msg/s | seguard in-memory lanes {memory:>7.0} msg/s \
                 (ratio {:.2}, publish took {:.2} s) | seguard disk outbox {disk:>7.0} msg/s (ratio {:.2})",
                memory / relay,
                published.as_secs_f64(),
                disk / relay
            );
            rows.push((relay, memory, disk));
        }
        let relay = median(rows.iter().map(|r| r.0).collect());
        let memory = median(rows.iter().map(|r| r.1).collect());
        let disk = median(rows.iter().map(|r| r.2).collect());
        let per = READINGS_PER_MESSAGE as f64;
        println!(
            "median: raw relay {relay:.0} msg/s | in-memory {memory:.0} msg/s ({:.0} readings/s), ratio {:.2} | \
             disk outbox {disk:.0} msg/s ({:.0} readings/s), ratio {:.2} (target >= 0.50)",
            memory * per,
            memory / relay,
            disk * per,
            disk / relay
        );
    });
}
