//! Rule evaluations per second for 10,000 equipment with realistic rule sets, in release mode:
//! `cargo bench --bench rules`.
//!
//! The fleet: 6,000 elevators (fault codes, trapped passenger, door open while running, power
//! cut, an overspeed threshold, stale data), 3,000 pressure vessels (nameplate high and
//! high-high, rate of change, stale data), 500 autoclaves (the same plus the door interlock and
//! an expression) and 500 filling stations (fills checked against a 10,000-cylinder registry).
//! Every equipment reports one message (one snapshot) per simulated second; a tick every second.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use seguard::model::{Quality, Reading, Source, Value};
use seguard::rules::Engine;

const ELEVATORS: usize = 6_000;
const VESSELS: usize = 3_000;
const AUTOCLAVES: usize = 500;
const STATIONS: usize = 500;
const CYLINDERS: usize = 10_000;

fn config_text() -> String {
    let mut t =
        String::from("[site]\nid = \"bench\"\nname = \"Bench\"\n\n[gateway]\nid = \"gw\"\n\n");
    for i in 0..ELEVATORS {
        let _ = write!(t, "[[equipment]]\nid = \"lift-{i}\"\nkind = \"elevator\"\nregistration_code = \"R{i}\"\n\n");
    }
    for i in 0..VESSELS {
        let _ = write!(t, "[[equipment]]\nid = \"pv-{i}\"\nkind = \"pressure_vessel\"\nregistration_code = \"V{i}\"\nnameplate = {{ working_pressure_mpa = 1.6, set_pressure_mpa = 1.76, design_pressure_mpa = 1.8 }}\n\n");
    }
    for i in 0..AUTOCLAVES {
        let _ = write!(t, "[[equipment]]\nid = \"ac-{i}\"\nkind = \"autoclave\"\nregistration_code = \"A{i}\"\nnameplate = {{ working_pressure_mpa = 1.2, set_pressure_mpa = 1.3, design_pressure_mpa = 1.4, safe_residual_mpa = 0.02 }}\n\n");
    }
    for i in 0..STATIONS {
        let _ = write!(t, "[[equipment]]\nid = \"st-{i}\"\nkind = \"filling_station\"\nregistration_code = \"S{i}\"\n\n");
    }
    t.push_str(
        r#"
[[rules.elevator]]
id = "lift"

[[rules.threshold]]
id = "overspeed"
kind = "elevator"
metric = "speed"
high = { limit = 2.9, severity = "critical" }

[[rules.vessel]]
id = "vessel"
deadband_mpa = 0.03
on_delay_s = 2

[[rules.rate]]
id = "rate"
kind = "pressure_vessel"
metric = "pressure"
max_rise_per_min = 0.5

[[rules.stale]]
id = "stale-lift"
kind = "elevator"
expected_interval_s = 1

[[rules.stale]]
id = "stale-vessel"
kind = "pressure_vessel"
metric = "pressure"
expected_interval_s = 1

[[rules.expr]]
id = "hot-open"
kind = "autoclave"
when = "temperature > 150 and not door_closed_locked"

[rules.fill]
station = "PD-01"
"#,
    );
    for i in 0..CYLINDERS {
        let _ = write!(t, "\n[[rules.cylinder]]\ncode = \"C{i}\"\nmedium = \"LPG\"\nvolume_l = 35.5\npermitted_fill_kg = 14.5\nnext_inspection = 2027-06-30\nstation = \"PD-01\"\n");
    }
    t
}

fn reading(equipment: &str, metric: &str, value: Value, time: DateTime<Utc>) -> Reading {
    Reading {
        equipment: equipment.to_owned(),
        metric: metric.to_owned(),
        value,
        unit: None,
        time,
        quality: Quality::Good,
        source: Source::Mqtt,
    }
}

/// One message of every equipment at second `s`.
fn messages(s: i64) -> Vec<Vec<Reading>> {
    let time = Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap();
    let mut out = Vec::with_capacity(ELEVATORS + VESSELS + AUTOCLAVES + STATIONS);
    for i in 0..ELEVATORS {
        let id = format!("lift-{i}");
        // Cars cycle: run 20 s, stop 40 s; one in fifty carries a passenger while stopped.
        let phase = (s + i as i64) % 60;
        let running = phase < 20;
        let occupied = i % 50 == 0 || running;
        out.push(vec![
            reading(
                &id,
                "car_status",
                Value::Text(if running { "running" } else { "stopped" }.into()),
                time,
            ),
            reading(&id, "door_zone", Value::Bool(!running && i % 7 != 0), time),
            reading(&id, "floor", Value::Text(format!("{}", phase % 30)), time),
            reading(
                &id,
                "door_closed_locked",
                Value::Bool(running || phase > 25),
                time,
            ),
            reading(&id, "occupied", Value::Bool(occupied), time),
            reading(&id, "service_mode", Value::Text("normal".into()), time),
            reading(
                &id,
                "speed",
                Value::Number(if running { 2.5 } else { 0.0 }),
                time,
            ),
            reading(
                &id,
                "fault_code",
                Value::Number(if (s + i as i64) % 600 == 0 { 2.0 } else { 0.0 }),
                time,
            ),
            reading(&id, "power", Value::Text("mains".into()), time),
        ]);
    }
    for i in 0..VESSELS {
        let id = format!("pv-{i}");
        let p = 1.55 + 0.15 * (((s + i as i64) as f64) / 30.0).sin();
        out.push(vec![
            reading(&id, "pressure", Value::Number(p), time),
            reading(&id, "temperature", Value::Number(60.0), time),
        ]);
    }
    for i in 0..AUTOCLAVES {
        let id = format!("ac-{i}");
        let cycle = (s + i as i64) % 120;
        out.push(vec![
            reading(
                &id,
                "pressure",
                Value::Number(if cycle < 90 { 1.1 } else { 0.01 }),
                time,
            ),
            reading(
                &id,
                "temperature",
                Value::Number(if cycle < 90 { 180.0 } else { 40.0 }),
                time,
            ),
            reading(&id, "door_closed_locked", Value::Bool(cycle < 100), time),
        ]);
    }
    for i in 0..STATIONS {
        let id = format!("st-{i}");
        out.push(vec![
            reading(
                &id,
                "cylinder_code",
                Value::Text(format!("C{}", (s as usize * 7 + i) % (CYLINDERS + 50))),
                time,
            ),
            reading(&id, "medium", Value::Text("LPG".into()), time),
            reading(
                &id,
                "fill_mass_kg",
                Value::Number(14.0 + ((s as usize + i) % 10) as f64 / 10.0),
                time,
            ),
        ]);
    }
    out
}

fn main() {
    let text = config_text();
    let started = Instant::now();
    let config = seguard::config::parse(&text, Path::new("bench.toml")).expect("bench config");
    println!(
        "config: {} equipment, {} cylinders parsed and validated in {:.2} s",
        config.equipment.len(),
        config.rules.cylinders.len(),
        started.elapsed().as_secs_f64()
    );
    let mut engine = Engine::from_config(&config);
    let seconds = 60;
    let batches: Vec<Vec<Vec<Reading>>> = (0..seconds).map(messages).collect();
    let n_readings: usize = batches.iter().flatten().map(Vec::len).sum();
    let mut events = Vec::new();
    let mut n_events = 0usize;
    // Warm up, then measure.
    engine.tick(Utc.timestamp_opt(1_800_000_000, 0).unwrap(), &mut events);
    let evaluations_before = engine.evaluations();
    let started = Instant::now();
    let mut tick_time = 0.0;
    for (s, batch) in batches.iter().enumerate() {
        for message in batch {
            engine.on_readings(message, &mut events);
            n_events += events.len();
            events.clear();
        }
        let _ = engine.take_fills();
        let t = Instant::now();
        engine.tick(
            Utc.timestamp_opt(1_800_000_000 + s as i64, 500_000_000)
                .unwrap(),
            &mut events,
        );
        tick_time += t.elapsed().as_secs_f64();
        n_events += events.len();
        events.clear();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let evaluations = engine.evaluations() - evaluations_before;
    println!(
        "{} equipment, {seconds} simulated seconds: {n_readings} readings, {evaluations} rule evaluations, {n_events} events in {elapsed:.3} s",
        config.equipment.len()
    );
    println!(
        "  {:.0} readings/s, {:.0} rule evaluations/s ({:.2} µs per reading), ticks {:.1} ms each",
        n_readings as f64 / elapsed,
        evaluations as f64 / elapsed,
        elapsed * 1e6 / n_readings as f64,
        tick_time * 1000.0 / seconds as f64
    );
    println!(
        "  real-time budget: the fleet sends {} readings/s; the engine took {:.1} % of one core for them",
        n_readings / seconds as usize,
        elapsed / seconds as f64 * 100.0
    );
    println!("  alarm stats at the end: {:?}", engine.stats());
}
