//! Property: no sequence of readings, ticks and operator actions makes the engine panic, and on
//! the event stream no alarm is raised twice without a clear in between (nor cleared when not
//! raised).

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use seguard::model::{Quality, Reading, Source, Transition, Value};
use seguard::rules::{Engine, Operator};

const CONFIG: &str = r#"
[site]
id = "s1"
name = "Property site"

[gateway]
id = "gw1"

[[equipment]]
id = "lift-1"
kind = "elevator"
registration_code = "31103101002016010001"

[[equipment]]
id = "ac-1"
kind = "autoclave"
registration_code = "21103101002018000077"
nameplate = { working_pressure_mpa = 1.2, set_pressure_mpa = 1.3, design_pressure_mpa = 1.4, safe_residual_mpa = 0.02 }

[[equipment]]
id = "station-1"
kind = "filling_station"
registration_code = "TS4231001-2027"

[[rules.elevator]]
id = "lift"
trapped_delay_at_landing_s = 5
trapped_delay_outside_zone_s = 3

[[rules.vessel]]
id = "vessel"
on_delay_s = 1
off_delay_s = 2

[[rules.threshold]]
id = "temp"
equipment = ["ac-1"]
metric = "temperature"
high = { limit = 200.0 }
low = { limit = 10.0 }
deadband = 2.0

[[rules.rate]]
id = "rate"
equipment = ["ac-1"]
metric = "pressure"
max_rise_per_min = 1.0
max_fall_per_min = 1.0
window_s = 10

[[rules.stale]]
id = "stale"
equipment = ["ac-1", "lift-1"]
expected_interval_s = 2

[[rules.expr]]
id = "hot-open"
equipment = ["ac-1"]
when = "temperature > 150 and not door_closed_locked"
on_delay_s = 1
off_delay_s = 1

[rules.fill]
station = "PD-01"

[[rules.cylinder]]
code = "C1"
medium = "LPG"
volume_l = 35.5
permitted_fill_kg = 14.5
next_inspection = 2027-06-30
station = "PD-01"

[rules.lifecycle]
latched = ["vessel.high_high"]
chatter_announce_interval_s = 5
"#;

#[derive(Debug, Clone)]
enum Step {
    Reading {
        equipment: usize,
        metric: usize,
        value: Value,
        bad: bool,
    },
    Tick,
    Ack(usize, usize),
    Shelve(usize, usize, u64),
    Unshelve(usize, usize),
    OutOfService(usize, usize, bool),
}

const EQUIPMENT: [&str; 4] = ["lift-1", "ac-1", "station-1", "ghost"];
const METRICS: [&str; 16] = [
    "car_status",
    "door_zone",
    "floor",
    "door_closed_locked",
    "occupied",
    "service_mode",
    "speed",
    "fault_code",
    "alarm_button",
    "power",
    "pressure",
    "temperature",
    "cylinder_code",
    "fill_mass_kg",
    "medium",
    "residual_pressure",
];
const RULES: [&str; 8] = [
    "lift.trapped",
    "lift.door_open_while_running",
    "vessel.high",
    "vessel.high_high",
    "vessel.door_interlock",
    "temp.high",
    "hot-open",
    "fill.rejected",
];

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(0.0),
            Just(1.0),
            Just(90.0),
            Just(40.0),
            Just(11.0),
            Just(93.0),
            Just(1.35),
            Just(1.25),
            Just(250.0),
            Just(f64::NAN),
            Just(f64::INFINITY),
            -1e9..1e9f64,
            0.0..2.0f64,
        ]
        .prop_map(Value::Number),
        prop_oneof![
            Just("stopped"),
            Just("running"),
            Just("normal"),
            Just("inspection"),
            Just("battery"),
            Just("mains"),
            Just("C1"),
            Just("LPG"),
            Just(""),
            Just("B2"),
        ]
        .prop_map(|s| Value::Text(s.to_owned())),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..EQUIPMENT.len(), 0..METRICS.len(), value(), prop::bool::weighted(0.05)).prop_map(
            |(equipment, metric, value, bad)| Step::Reading { equipment, metric, value, bad }
        ),
        2 => Just(Step::Tick),
        1 => (0..3usize, 0..RULES.len()).prop_map(|(e, r)| Step::Ack(e, r)),
        1 => (0..3usize, 0..RULES.len(), 1..20u64).prop_map(|(e, r, d)| Step::Shelve(e, r, d)),
        1 => (0..3usize, 0..RULES.len()).prop_map(|(e, r)| Step::Unshelve(e, r)),
        1 => (0..3usize, 0..RULES.len(), any::<bool>()).prop_map(|(e, r, o)| Step::OutOfService(e, r, o)),
    ]
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0).unwrap() + chrono::Duration::milliseconds(ms)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn no_panic_and_never_two_open_alarms_of_one_rule(
        steps in prop::collection::vec((step(), 0..3000i64, prop::bool::weighted(0.1)), 1..200)
    ) {
        let config = seguard::config::parse(CONFIG, Path::new("property.toml")).expect("config");
        let mut engine = Engine::from_config(&config);
        let mut events = Vec::new();
        let mut clock = 0i64;
        for (step, advance, same_instant) in steps {
            if !same_instant {
                clock += advance;
            }
            let now = at(clock);
            match step {
                Step::Reading { equipment, metric, value, bad } => {
                    let reading = Reading {
                        equipment: EQUIPMENT[equipment].to_owned(),
                        metric: METRICS[metric].to_owned(),
                        value,
                        unit: None,
                        // Now and then a late reading.
                        time: if bad { at(clock - 5000) } else { now },
                        quality: if bad { Quality::Bad } else { Quality::Good },
                        source: Source::Mqtt,
                    };
                    engine.on_reading(&reading, &mut events);
                }
                Step::Tick => engine.tick(now, &mut events),
                Step::Ack(e, r) => {
                    let _ = engine.acknowledge(Operator::new(EQUIPMENT[e], RULES[r], "op", None, now), &mut events);
                }
                Step::Shelve(e, r, d) => {
                    let _ = engine.shelve(Operator::new(EQUIPMENT[e], RULES[r], "op", None, now), std::time::Duration::from_secs(d), &mut events);
                }
                Step::Unshelve(e, r) => {
                    let _ = engine.unshelve(Operator::new(EQUIPMENT[e], RULES[r], "op", None, now), &mut events);
                }
                Step::OutOfService(e, r, on) => {
                    let _ = engine.set_out_of_service(Operator::new(EQUIPMENT[e], RULES[r], "op", None, now), on, &mut events);
                }
            }
            let _ = engine.active();
            let _ = engine.stats();
        }
        let mut open: HashSet<(String, String)> = HashSet::new();
        for e in &events {
            let key = (e.equipment.clone(), e.rule.clone());
            match e.transition {
                Transition::Raise => prop_assert!(open.insert(key), "raised twice without a clear: {e:?}"),
                Transition::Clear => prop_assert!(open.remove(&key), "cleared but not open: {e:?}"),
                _ => {}
            }
        }
        for (equipment, rule) in &open {
            prop_assert!(engine.is_open(equipment, rule), "{equipment} {rule} open on the stream, not in the engine");
        }
    }
}
