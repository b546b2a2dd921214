//! A device whose register map has holes, against pymodbus: holding registers 0–35 with two
//! unmapped blocks, which the default merge limits read in one request. The device refuses
//! that request (exception 0x02) and every read that touches a hole; the poller splits it,
//! reads every mapped point good from the first cycles, reports the configured register the
//! device does not have as bad with its exception, keeps the split plan for that device only,
//! and returns to the merged plan once the holes are gone. A device that does not answer such
//! a read at all is split too, at no more than one timeout a cycle.

#[path = "common/modbus.rs"]
mod harness;

use std::fmt::Write as _;
use std::time::Duration;

use harness::{devices, Poller, PyModbus};
use seguard::ingest::modbus::FailReason;
use seguard::model::{Quality, Reading, Value};
use serde_json::json;

/// The mapped registers: 0–9, 12–19 and 26–35; register n holds 100 + n.
fn mapped() -> Vec<u16> {
    (0..10).chain(12..20).chain(26..36).collect()
}

/// The addresses the device does not have: 10–11 and 20–25.
fn unmapped() -> Vec<u16> {
    (10..12).chain(20..26).collect()
}

/// One u16 register `r<n>` per mapped register, and with `ghost`, one at 22, which the profile
/// names but the device does not have. Every gap is within the default `max_gap` of 8: one
/// request 0–35.
fn profile(ghost: bool) -> String {
    let mut text = String::from("description = \"a register map with holes\"\n");
    let ghost = ghost.then(|| ("ghost".to_owned(), 22));
    for (metric, address) in mapped()
        .into_iter()
        .map(|a| (format!("r{a}"), a))
        .chain(ghost)
    {
        let _ = write!(
            text,
            "\n[[register]]\nmetric = \"{metric}\"\ntable = \"holding\"\naddress = {address}\ntype = \"u16\"\n"
        );
    }
    text
}

fn holding_values() -> serde_json::Value {
    json!({"0": (100..136).collect::<Vec<u16>>()})
}

/// Two devices of the profile on one server: `holes` (unit 1) lacks the unmapped addresses,
/// `whole` (unit 2) has every register. Default merge limits; `extra` goes into `[modbus]`.
fn site(port: u16, extra: &str) -> String {
    let device = |name: &str, unit: u8| {
        format!(
            "[[modbus.device]]\nname = \"{name}\"\nequipment = \"{name}\"\nprofile = \"holes\"\ntransport = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\nunit_id = {unit}\ninterval_ms = 200\n"
        )
    };
    format!(
        "[modbus]\n{extra}\n{}\n{}",
        device("holes", 1),
        device("whole", 2)
    )
}

/// The readings of `device` in one poll batch (one batch is one cycle of its one group).
async fn next_cycle(poller: &mut Poller, device: &str) -> Vec<Reading> {
    loop {
        let batch = poller
            .next(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no poll of {device}"));
        if batch
            .readings
            .iter()
            .any(|r| r.equipment == device && r.metric == "r0")
        {
            return batch
                .readings
                .into_iter()
                .filter(|r| r.metric != "device_online")
                .collect();
        }
    }
}

/// Whether every mapped point is good with its value and `ghost` is bad with exception 0x02.
fn read_correctly(readings: &[Reading]) -> Result<(), String> {
    mapped_good(readings)?;
    match readings.iter().find(|r| r.metric == "ghost") {
        Some(r) if r.quality == Quality::Bad => match &r.value {
            Value::Text(reason) if reason.contains("exception 0x02") => Ok(()),
            other => Err(format!("ghost carries {other:?}, not its exception")),
        },
        other => Err(format!("ghost: {other:?}")),
    }
}

/// Whether every mapped point is good with its value.
fn mapped_good(readings: &[Reading]) -> Result<(), String> {
    for a in mapped() {
        let metric = format!("r{a}");
        let r = readings.iter().find(|r| r.metric == metric);
        let Some(r) = r else {
            return Err(format!("{metric} missing"));
        };
        if (r.quality, &r.value) != (Quality::Good, &Value::Number(f64::from(100 + a))) {
            return Err(format!("{metric}: {:?} {:?}", r.quality, r.value));
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_device_with_holes_reads_correctly_within_three_cycles_with_the_default_config() {
    let server = PyModbus::tcp(&json!({"slaves": {
        "1": {"holding": holding_values(), "unmapped": {"holding": unmapped()}},
        "2": {"holding": holding_values()},
    }}));
    let port = server.port.expect("port");
    let (_dir, devices) = devices(
        &site(port, ""),
        &[("holes", &profile(true))],
        &["holes", "whole"],
    );
    // The default plan: one request, holding 0–35, shared by both devices.
    let plan = &devices[0].groups[0].requests;
    assert_eq!(
        plan.iter().map(|r| (r.start, r.count)).collect::<Vec<_>>(),
        [(0, 36)]
    );
    assert!(std::sync::Arc::ptr_eq(plan, &devices[1].groups[0].requests));
    let mut poller = Poller::start(devices);

    let mut cycles = Vec::new();
    for _ in 0..3 {
        cycles.push(next_cycle(&mut poller, "holes").await);
    }
    let first_correct = cycles.iter().position(|c| read_correctly(c).is_ok());
    assert!(
        first_correct.is_some(),
        "not read correctly within three cycles: {:?}\nserver log:\n{}",
        cycles.iter().map(|c| read_correctly(c)).collect::<Vec<_>>(),
        server.log()
    );
    // Once correct, it stays so: the working plan is remembered.
    for (i, cycle) in cycles.iter().enumerate().skip(first_correct.unwrap_or(0)) {
        assert_eq!(read_correctly(cycle), Ok(()), "cycle {}", i + 1);
    }
    for _ in 0..2 {
        let cycle = next_cycle(&mut poller, "holes").await;
        assert_eq!(read_correctly(&cycle), Ok(()));
    }

    // The split is counted; the device reads 0–9, 12–19, 22 (refused) and 26–35 now, and no
    // further split was needed after the first cycle.
    let counters = poller.counters.clone();
    assert_eq!(counters.splits("holes"), 3);
    assert_eq!(counters.requests("holes"), Some(4));
    // The device of the same profile without holes keeps the one merged request.
    let whole = next_cycle(&mut poller, "whole").await;
    assert!(whole
        .iter()
        .all(|r| r.quality == Quality::Good || r.metric == "ghost"));
    assert_eq!(counters.splits("whole"), 0);
    assert_eq!(counters.requests("whole"), Some(1));
    poller.stop().await;
}

#[tokio::test]
async fn a_device_whose_holes_are_filled_goes_back_to_the_merged_request() {
    // The holes are exceptions of the control file, so the test can remove them: a firmware
    // update that maps every register.
    let server = PyModbus::tcp(&json!({"slaves": {
        "1": {"holding": holding_values()},
        "2": {"holding": holding_values()},
    }}));
    let mut holes = unmapped();
    holes.push(22);
    server.set_control(&json!({"exceptions": {"1": {"holding": holes}}}));
    let port = server.port.expect("port");
    let (_dir, devices) = devices(
        &site(port, "merge_retry_s = 1"),
        &[("holes", &profile(true))],
        &["holes", "whole"],
    );
    let mut poller = Poller::start(devices);
    let cycle = next_cycle(&mut poller, "holes").await;
    assert_eq!(read_correctly(&cycle), Ok(()));
    assert_eq!(poller.counters.requests("holes"), Some(4));

    server.set_control(&json!({}));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let cycle = next_cycle(&mut poller, "holes").await;
        if poller.counters.requests("holes") == Some(1) {
            let ghost = cycle.iter().find(|r| r.metric == "ghost");
            assert_eq!(
                ghost.map(|r| (r.quality, r.value.clone())),
                Some((Quality::Good, Value::Number(122.0))),
                "the merged request reads the register the update added"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {:?} requests",
            poller.counters.requests("holes")
        );
    }
    poller.stop().await;
}

#[tokio::test]
async fn a_device_that_does_not_answer_reads_across_its_holes_is_split_at_one_timeout_a_cycle() {
    let server = PyModbus::tcp(&json!({"slaves": {
        "1": {"holding": holding_values(), "unanswered": {"holding": unmapped()}},
        "2": {"holding": holding_values()},
    }}));
    let port = server.port.expect("port");
    let (_dir, devices) = devices(
        &site(port, "request_timeout_ms = 200\nbackoff_max_ms = 400"),
        &[("holes", &profile(false))],
        &["holes", "whole"],
    );
    let mut poller = Poller::start(devices);
    let counters = poller.counters.clone();
    let timeouts = || counters.failures("holes", FailReason::Timeout);

    // 1: 0–35 times out, and nothing else answered: a probe next. 2: the probe (register 0
    // alone) is answered, 0–35 times out again: split at the widest hole, 20–25. 3 and 4: the
    // same for 0–19, split at 10–11. Then three requests, all answered.
    let mut cycles = 0;
    loop {
        let cycle = next_cycle(&mut poller, "holes").await;
        cycles += 1;
        assert!(
            timeouts() <= cycles,
            "{} timeouts in {cycles} cycles",
            timeouts()
        );
        if mapped_good(&cycle).is_ok() {
            break;
        }
        assert!(
            cycles < 10,
            "not read after {cycles} cycles: {:?}",
            mapped_good(&cycle)
        );
    }
    assert_eq!((cycles, timeouts()), (5, 4));
    assert_eq!(counters.splits("holes"), 2);
    assert_eq!(counters.requests("holes"), Some(3));
    // Remembered: no timeout after that.
    for _ in 0..3 {
        assert_eq!(mapped_good(&next_cycle(&mut poller, "holes").await), Ok(()));
    }
    assert_eq!(timeouts(), 4);
    assert_eq!(counters.failures("whole", FailReason::Timeout), 0);
    assert_eq!(counters.requests("whole"), Some(1));
    poller.stop().await;
}
