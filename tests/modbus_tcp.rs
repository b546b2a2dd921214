//! Modbus TCP and RTU-over-TCP ingest against pymodbus, an independent implementation started
//! on a loopback port: every type and byte order decodes, exceptions become counted
//! bad-quality readings, a silent device goes offline and comes back, and the poller
//! reconnects after the server restarts.

#[path = "common/modbus.rs"]
mod harness;

use std::time::Duration;

use harness::{
    all_types, devices, is_online, small_spec, tcp_site as site, Poller, PyModbus, SMALL_PROFILE,
};
use seguard::ingest::modbus::FailReason;
use seguard::model::{Quality, Source, Value};
use serde_json::json;

fn same(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Number(a), Value::Number(b)) => (a - b).abs() <= b.abs() * 1e-12,
        _ => got == want,
    }
}

async fn every_type_and_order_arrives_decoded(transport: &str) {
    let all = all_types();
    let server = if transport == "tcp" {
        PyModbus::tcp(&all.spec)
    } else {
        PyModbus::rtu_over_tcp(&all.spec)
    };
    let port = server.port.expect("tcp port");
    let (_dir, devices) = devices(
        &site(transport, port, ""),
        &[("p", &all.profile)],
        &["eq-1"],
    );
    // 32 numbers in 80 holding registers, plus bits, text, coils: several merged requests.
    assert!(devices[0].groups[0].requests.len() >= 5);
    let mut poller = Poller::start(devices);
    let batch = poller
        .until(Duration::from_secs(10), |r| r.metric == "u16_ABCD")
        .await
        .unwrap_or_else(|| panic!("no readings; server log:\n{}", server.log()));
    // One poll of the group is one batch: it holds every metric.
    let readings = batch;
    for (metric, want) in &all.expected {
        let got = readings
            .iter()
            .find(|r| &r.metric == metric)
            .unwrap_or_else(|| panic!("{metric} missing"));
        assert_eq!(got.quality, Quality::Good, "{metric}: {:?}", got.value);
        assert_eq!(got.source, Source::Modbus);
        assert_eq!(got.equipment, "eq-1");
        assert!(
            same(&got.value, want),
            "{metric}: got {:?}, want {want:?}",
            got.value
        );
    }
    let scaled = readings.iter().find(|r| r.metric == "scaled");
    assert_eq!(scaled.and_then(|r| r.unit.as_deref()), Some("°C"));
    assert!(readings.iter().any(|r| is_online(r, "eq-1", true)));
    assert_eq!(poller.counters.failures("eq-1", FailReason::Decode), 0);
    poller.stop().await;
}

#[tokio::test]
async fn every_type_and_order_arrives_decoded_over_tcp() {
    every_type_and_order_arrives_decoded("tcp").await;
}

#[tokio::test]
async fn every_type_and_order_arrives_decoded_over_rtu_over_tcp() {
    every_type_and_order_arrives_decoded("rtu_over_tcp").await;
}

#[tokio::test]
async fn an_exception_becomes_a_counted_bad_reading_not_a_zero() {
    let server = PyModbus::tcp(&small_spec());
    server.set_control(&json!({"exceptions": {"1": {"holding": [1]}}}));
    let port = server.port.expect("port");
    let (_dir, devices) = devices(&site("tcp", port, ""), &[("p", SMALL_PROFILE)], &["eq-1"]);
    let mut poller = Poller::start(devices);
    let readings = poller
        .until(Duration::from_secs(10), |r| r.metric == "c")
        .await
        .expect("a poll");
    let by_metric = |m: &str| readings.iter().find(|r| r.metric == m).cloned();
    // a and b are one merged request, which the device refuses: it is split, and only b, the
    // register that answers the exception alone, is bad.
    let b = by_metric("b").expect("b");
    assert_eq!(b.quality, Quality::Bad);
    match &b.value {
        Value::Text(reason) => assert!(reason.contains("exception 0x02"), "{reason}"),
        other => panic!("a bad reading carries its reason, not {other:?}"),
    }
    for (m, want) in [("a", 11.0), ("c", 13.0)] {
        let r = by_metric(m).unwrap_or_else(|| panic!("{m} missing"));
        assert_eq!(
            (r.quality, r.value),
            (Quality::Good, Value::Number(want)),
            "{m}"
        );
    }
    assert_eq!(poller.counters.splits("eq-1"), 1);
    assert!(poller.counters.failures("eq-1", FailReason::Exception) >= 1);
    assert_eq!(poller.counters.failures("eq-1", FailReason::Timeout), 0);
    // An exception is an answer: the device is online.
    assert_eq!(poller.counters.transitions(), [("eq-1".to_owned(), true)]);

    server.set_control(&json!({}));
    let readings = poller
        .until(Duration::from_secs(10), |r| {
            r.metric == "b" && r.quality == Quality::Good
        })
        .await
        .expect("b good again");
    let b = readings.iter().rev().find(|r| r.metric == "b");
    assert_eq!(b.map(|r| r.value.clone()), Some(Value::Number(12.0)));
    poller.stop().await;
}

#[tokio::test]
async fn a_silent_device_goes_offline_after_n_cycles_and_comes_back_without_restart() {
    let server = PyModbus::tcp(&small_spec());
    let port = server.port.expect("port");
    let extra = "interval_ms = 100\ntimeout_ms = 150\noffline_after_cycles = 3";
    let site = site("tcp", port, "").replace("interval_ms = 200", extra);
    let (_dir, mut devices) = devices(&site, &[("p", SMALL_PROFILE)], &["eq-1"]);
    devices[0].backoff_max = Duration::from_millis(300);
    let mut poller = Poller::start(devices);
    poller
        .until(Duration::from_secs(10), |r| is_online(r, "eq-1", true))
        .await
        .expect("online first");

    server.set_control(&json!({"dead": [1]}));
    let seen = poller
        .until(Duration::from_secs(10), |r| is_online(r, "eq-1", false))
        .await
        .expect("offline after 3 silent cycles");
    let bad: Vec<_> = seen.iter().filter(|r| r.quality == Quality::Bad).collect();
    assert!(!bad.is_empty(), "silent cycles give bad readings");
    assert!(
        seen.iter()
            .filter(|r| r.metric != "device_online")
            .all(|r| r.quality == Quality::Bad || r.value != Value::Number(0.0)),
        "never zeros"
    );
    let timeouts = poller.counters.failures("eq-1", FailReason::Timeout);
    assert!(timeouts >= 3, "{timeouts} timeouts counted");

    server.set_control(&json!({}));
    poller
        .until(Duration::from_secs(10), |r| is_online(r, "eq-1", true))
        .await
        .expect("back online without a restart");
    assert_eq!(
        poller.counters.transitions(),
        [
            ("eq-1".to_owned(), true),
            ("eq-1".to_owned(), false),
            ("eq-1".to_owned(), true)
        ]
    );
    // Silence is not a refusal: the merged request of a and b (probed while the device was
    // silent) was not split.
    assert_eq!(poller.counters.splits("eq-1"), 0);
    assert_eq!(poller.counters.requests("eq-1"), Some(2));
    poller.stop().await;
}

#[tokio::test]
async fn reconnects_when_the_server_comes_back_on_the_same_port() {
    let server = PyModbus::tcp(&small_spec());
    let port = server.port.expect("port");
    let site = site("tcp", port, "").replace(
        "interval_ms = 200",
        "interval_ms = 100\ntimeout_ms = 200\noffline_after_cycles = 2",
    );
    let (_dir, mut devices) = devices(&site, &[("p", SMALL_PROFILE)], &["eq-1"]);
    devices[0].backoff_max = Duration::from_millis(300);
    let mut poller = Poller::start(devices);
    poller
        .until(Duration::from_secs(10), |r| is_online(r, "eq-1", true))
        .await
        .expect("online first");

    server.stop();
    poller
        .until(Duration::from_secs(10), |r| is_online(r, "eq-1", false))
        .await
        .expect("offline while the server is gone");

    let again = PyModbus::tcp_on(port, &small_spec(), false);
    let seen = poller
        .until(Duration::from_secs(10), |r| is_online(r, "eq-1", true))
        .await
        .unwrap_or_else(|| panic!("no reconnect; server log:\n{}", again.log()));
    assert!(seen
        .iter()
        .any(|r| r.metric == "a" && r.quality == Quality::Good && r.value == Value::Number(11.0)));
    poller.stop().await;
}
