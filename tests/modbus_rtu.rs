//! Modbus RTU on a serial line: pymodbus serves two slaves on one end of a socat pseudo-terminal
//! pair, the poller reads the other end as one bus. When one slave stops answering, the other
//! keeps its interval (late by at most one timeout), the silent one goes offline, and it comes
//! back without a restart.

#[path = "common/modbus.rs"]
mod harness;

use std::time::Duration;

use harness::{devices, is_online, Poller, PyModbus, SocatPair};
use seguard::ingest::modbus::FailReason;
use seguard::model::{Quality, Value};
use serde_json::json;

const PROFILE: &str = r#"
[[register]]
metric = "a"
table = "holding"
address = 0
type = "u16"
[[register]]
metric = "t"
table = "input"
address = 0
type = "f32"
"#;

const INTERVAL_MS: i64 = 200;
const TIMEOUT_MS: i64 = 150;

#[tokio::test]
async fn a_dead_slave_does_not_hold_up_the_other_one_on_the_bus() {
    let pair = SocatPair::start();
    let server = PyModbus::serial(
        &pair.b,
        &json!({"slaves": {
            "1": {"holding": {"0": [101]}, "input": {"0": [0x42F6, 0xE979]}},
            "2": {"holding": {"0": [202]}, "input": {"0": [0x4049, 0x0FDB]}},
        }}),
    );
    let site = format!(
        r#"
[modbus]
request_timeout_ms = {TIMEOUT_MS}
offline_after_cycles = 2
backoff_max_ms = 1000
[[modbus.bus]]
name = "rs485"
port = "{}"
baud = 9600
[[modbus.device]]
equipment = "eq-1"
profile = "p"
transport = "rtu"
bus = "rs485"
unit_id = 1
interval_ms = {INTERVAL_MS}
[[modbus.device]]
equipment = "eq-2"
profile = "p"
transport = "rtu"
bus = "rs485"
unit_id = 2
interval_ms = {INTERVAL_MS}
"#,
        pair.a.display()
    );
    let (_dir, devices) = devices(&site, &[("p", PROFILE)], &["eq-1", "eq-2"]);
    let mut poller = Poller::start(devices);
    let mut seen = Vec::new();
    for eq in ["eq-1", "eq-2"] {
        if !seen.iter().any(|r| is_online(r, eq, true)) {
            let more = poller
                .until(Duration::from_secs(10), |r| is_online(r, eq, true))
                .await
                .unwrap_or_else(|| panic!("{eq} never answered; server log:\n{}", server.log()));
            seen.extend(more);
        }
    }
    let value = |eq: &str, m: &str| {
        seen.iter()
            .find(|r| r.equipment == eq && r.metric == m)
            .map(|r| (r.quality, r.value.clone()))
    };
    assert_eq!(
        value("eq-1", "a"),
        Some((Quality::Good, Value::Number(101.0)))
    );
    assert_eq!(
        value("eq-2", "a"),
        Some((Quality::Good, Value::Number(202.0)))
    );
    assert_eq!(
        value("eq-1", "t"),
        Some((Quality::Good, Value::Number(f64::from(123.456f32))))
    );

    // Slave 2 stops answering. Watch slave 1 for three seconds.
    server.set_control(&json!({"dead": [2]}));
    let started = tokio::time::Instant::now();
    let mut eq1_times = Vec::new();
    let mut eq2_offline = false;
    while started.elapsed() < Duration::from_secs(3) {
        let Some(batch) = poller.next(Duration::from_secs(1)).await else {
            panic!("the bus stalled: no batch for a second");
        };
        for r in &batch.readings {
            if r.equipment == "eq-1" {
                assert_eq!(r.quality, Quality::Good, "slave 1 stays good: {r:?}");
                if r.metric == "a" {
                    eq1_times.push(r.time);
                }
            }
            if is_online(r, "eq-2", false) {
                eq2_offline = true;
            }
        }
    }
    assert!(eq2_offline, "slave 2 reported offline");
    assert!(poller.counters.failures("eq-2", FailReason::Timeout) >= 2);
    assert_eq!(poller.counters.failures("eq-1", FailReason::Timeout), 0);
    let gaps: Vec<i64> = eq1_times
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .collect();
    eprintln!("slave 1 gaps while slave 2 is dead (ms): {gaps:?}");
    // Fixed rate: each poll of slave 1 starts at its planned time or late by at most one
    // timeout (the dead slave's request), plus a little scheduling slack.
    let slack = 60;
    assert!(
        gaps.iter().all(|g| *g <= INTERVAL_MS + TIMEOUT_MS + slack),
        "slave 1 gaps {gaps:?}"
    );
    assert!(
        eq1_times.len() as i64 >= 3000 / INTERVAL_MS - 2,
        "slave 1 kept its interval: {} polls in 3 s, gaps {gaps:?}",
        eq1_times.len()
    );

    // Slave 2 answers again: back online without a restart.
    server.set_control(&json!({}));
    let back = poller
        .until(Duration::from_secs(10), |r| is_online(r, "eq-2", true))
        .await
        .expect("slave 2 back online");
    assert!(back
        .iter()
        .any(|r| r.equipment == "eq-2" && r.metric == "a" && r.quality == Quality::Good));
    poller.stop().await;
}
