//! Modbus TCP and RTU-over-TCP ingest against pymodbus, an independent implementation started
//! on a loopback port: every type and byte order decodes, exceptions become counted
//! bad-quality readings, a silent device goes offline and comes back, and the poller
//! reconnects after the server restarts.

#[path = "common/modbus.rs"]
mod harness;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use harness::{devices, is_online, words, Poller, PyModbus};
use seguard::ingest::modbus::FailReason;
use seguard::model::{Quality, Source, Value};
use serde_json::json;

const ORDERS: [&str; 4] = ["ABCD", "CDAB", "BADC", "DCBA"];

/// A profile with one register per type and order, the pymodbus spec that fills them, and the
/// value each metric must arrive as.
struct AllTypes {
    profile: String,
    spec: serde_json::Value,
    expected: BTreeMap<String, Value>,
}

fn all_types() -> AllTypes {
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

fn site(transport: &str, port: u16, extra: &str) -> String {
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

const SMALL_PROFILE: &str = r#"
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

fn small_spec() -> serde_json::Value {
    json!({"slaves": {"1": {"holding": {"0": [11, 12]}, "input": {"0": [13]}}}})
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
    for m in ["a", "b"] {
        let r = by_metric(m).unwrap_or_else(|| panic!("{m} missing"));
        assert_eq!(r.quality, Quality::Bad, "{m}");
        match &r.value {
            Value::Text(reason) => assert!(reason.contains("exception 0x02"), "{reason}"),
            other => panic!("a bad reading carries its reason, not {other:?}"),
        }
    }
    let c = by_metric("c").expect("c");
    assert_eq!((c.quality, c.value), (Quality::Good, Value::Number(13.0)));
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
