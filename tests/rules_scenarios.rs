//! Every scenario in `firmware-configs/scenarios/`: a gateway config (the rules under test), a
//! timeline of readings, ticks and operator actions at exact seconds, and the exact events
//! expected. The file is one TOML document; its `[scenario]` table is the timeline, the rest is
//! the config, checked by the same code as `seguard check`.
//!
//! ```toml
//! [scenario]
//! equipment = "lift-1"                      # default equipment of the steps
//! [[scenario.step]]
//! t = 0
//! set = { car_status = "stopped", occupied = true }   # readings at t, one snapshot
//! [[scenario.step]]
//! t = 30
//! tick = true                               # the clock reaches t without a reading
//! [[scenario.step]]
//! t = 35
//! topic = "elevator/lift-1/status"          # a message through the MQTT mappings
//! payload = '{"car_status": 0}'
//! rejected = "unknown_code"                 # optional: the rejection it must meet
//! [[scenario.step]]
//! t = 40
//! ack = { rule = "lift.trapped", user = "li", comment = "on it" }
//! [[scenario.expect]]
//! t = 30
//! rule = "lift.trapped"
//! transition = "raise"
//! severity = "critical"                     # optional; so are details, message, actor
//! details = { floor = "3", door_zone = false }
//! ```

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use seguard::model::{AlarmEvent, Quality, Reading, Source, Value};
use seguard::rules::{Engine, Operator};
use toml::Value as Toml;

fn at(seconds: f64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0).unwrap()
        + chrono::Duration::milliseconds((seconds * 1000.0).round() as i64)
}

fn seconds(time: DateTime<Utc>) -> f64 {
    (time - at(0.0)).num_milliseconds() as f64 / 1000.0
}

fn number(v: &Toml) -> f64 {
    v.as_float()
        .or_else(|| v.as_integer().map(|i| i as f64))
        .expect("a number")
}

fn to_value(v: &Toml) -> Value {
    match v {
        Toml::String(s) => Value::Text(s.clone()),
        Toml::Boolean(b) => Value::Bool(*b),
        other => Value::Number(number(other)),
    }
}

fn text<'a>(table: &'a toml::Table, key: &str) -> Option<&'a str> {
    table.get(key).and_then(Toml::as_str)
}

struct Outcome {
    events: Vec<AlarmEvent>,
    engine: Engine,
    fills: Vec<seguard::model::FillRecord>,
}

fn run(path: &Path) -> (toml::Table, Outcome) {
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut document: toml::Table =
        toml::from_str(&source).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let scenario = document
        .remove("scenario")
        .and_then(|s| s.as_table().cloned())
        .unwrap_or_else(|| panic!("{}: no [scenario]", path.display()));
    let config_text = toml::to_string(&document).expect("config serializes");
    let config = seguard::config::parse(&config_text, path)
        .unwrap_or_else(|e| panic!("{} config: {e}", path.display()));
    let mut engine = Engine::from_config(&config);
    let mapper = seguard::ingest::mqtt::Mapper::new(
        config.mqtt_mappings.clone(),
        config.equipment.iter().map(|e| e.id.clone()).collect(),
        64 * 1024,
    );
    let default_equipment = text(&scenario, "equipment").map(str::to_owned);
    let mut events = Vec::new();
    let mut fills = Vec::new();
    let empty = Vec::new();
    for step in scenario
        .get("step")
        .and_then(Toml::as_array)
        .unwrap_or(&empty)
    {
        let step = step.as_table().expect("a step is a table");
        let time = at(number(step.get("t").expect("a step has t")));
        let equipment = text(step, "equipment")
            .map(str::to_owned)
            .or_else(|| default_equipment.clone());
        if let Some(set) = step.get("set").and_then(Toml::as_table) {
            let equipment = equipment.clone().expect("set needs an equipment");
            let quality = if step.get("bad").and_then(Toml::as_bool) == Some(true) {
                Quality::Bad
            } else {
                Quality::Good
            };
            let readings: Vec<Reading> = set
                .iter()
                .map(|(metric, value)| Reading {
                    equipment: equipment.clone(),
                    metric: metric.clone(),
                    value: to_value(value),
                    unit: None,
                    time,
                    quality,
                    source: Source::Mqtt,
                })
                .collect();
            engine.on_readings(&readings, &mut events);
        }
        if let Some(payload) = step.get("payload").and_then(Toml::as_str) {
            // A message as the terminal sends it, through the config's MQTT mappings (and the
            // terminal profiles they use); its time is t unless the payload carries one.
            let topic = text(step, "topic").expect("payload needs a topic");
            let mapped = mapper.map(topic, payload.as_bytes(), time);
            match (mapped, text(step, "rejected")) {
                (Ok(mapped), None) => engine.on_readings(&mapped.readings, &mut events),
                (Err(r), Some(reason)) => assert_eq!(r.reason(), reason, "{}", path.display()),
                (Ok(_), Some(reason)) => panic!(
                    "{}: payload at {} accepted, expected rejection {reason}",
                    path.display(),
                    seconds(time)
                ),
                (Err(r), None) => panic!(
                    "{}: payload at {} rejected: {r}",
                    path.display(),
                    seconds(time)
                ),
            }
        }
        if step.get("tick").and_then(Toml::as_bool) == Some(true) {
            engine.tick(time, &mut events);
        }
        for action in ["ack", "shelve", "unshelve", "out_of_service", "in_service"] {
            let Some(a) = step.get(action).and_then(Toml::as_table) else {
                continue;
            };
            let eq = text(a, "equipment")
                .map(str::to_owned)
                .or_else(|| equipment.clone())
                .expect("an action needs an equipment");
            let rule = text(a, "rule").expect("an action needs a rule");
            let user = text(a, "user").unwrap_or("operator");
            let comment = text(a, "comment");
            let by = Operator::new(&eq, rule, user, comment, time);
            let result = match action {
                "ack" => engine.acknowledge(by, &mut events),
                "shelve" => {
                    let duration = std::time::Duration::from_secs_f64(number(
                        a.get("duration_s").expect("shelve needs duration_s"),
                    ));
                    engine.shelve(by, duration, &mut events).map(|_| ())
                }
                "unshelve" => engine.unshelve(by, &mut events),
                other => engine.set_out_of_service(by, other == "out_of_service", &mut events),
            };
            match (result, text(a, "error")) {
                (Ok(()), None) => {}
                (Err(e), Some(expected)) => assert_eq!(
                    e.to_string(),
                    expected,
                    "{}: {action} at {}",
                    path.display(),
                    seconds(time)
                ),
                (Ok(()), Some(expected)) => panic!(
                    "{}: {action} at {} succeeded, expected `{expected}`",
                    path.display(),
                    seconds(time)
                ),
                (Err(e), None) => panic!(
                    "{}: {action} at {} failed: {e}",
                    path.display(),
                    seconds(time)
                ),
            }
        }
        fills.extend(engine.take_fills());
    }
    (
        scenario,
        Outcome {
            events,
            engine,
            fills,
        },
    )
}

fn check(path: &Path) {
    let (scenario, outcome) = run(path);
    let name = path.display();
    let default_equipment = text(&scenario, "equipment");
    let empty = Vec::new();
    let expected = scenario
        .get("expect")
        .and_then(Toml::as_array)
        .unwrap_or(&empty);
    let line = |t: f64, e: &str, r: &str, tr: &str| format!("{t:>7.3} {e} {r} {tr}");
    let got: Vec<String> = outcome
        .events
        .iter()
        .map(|e| {
            line(
                seconds(e.time),
                &e.equipment,
                &e.rule,
                e.transition.as_str(),
            )
        })
        .collect();
    let want: Vec<String> = expected
        .iter()
        .map(|x| {
            let x = x.as_table().expect("an expectation is a table");
            line(
                number(x.get("t").expect("expect.t")),
                text(x, "equipment")
                    .or(default_equipment)
                    .expect("expect.equipment"),
                text(x, "rule").expect("expect.rule"),
                text(x, "transition").expect("expect.transition"),
            )
        })
        .collect();
    assert_eq!(
        got.join("\n"),
        want.join("\n"),
        "\n{name}: events differ (got left, expected right); messages:\n{}",
        outcome
            .events
            .iter()
            .map(|e| format!("  {} {}", e.rule, e.message))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (event, x) in outcome.events.iter().zip(expected) {
        let x = x.as_table().expect("table");
        if let Some(severity) = text(x, "severity") {
            assert_eq!(
                event.severity.as_str(),
                severity,
                "{name}: severity of {event:?}"
            );
        }
        if let Some(message) = text(x, "message") {
            assert!(
                event.message.contains(message),
                "{name}: message `{}` lacks `{message}`",
                event.message
            );
        }
        if let Some(actor) = text(x, "actor") {
            assert_eq!(event.actor.as_deref(), Some(actor), "{name}: actor");
        }
        if let Some(comment) = text(x, "comment") {
            assert_eq!(event.comment.as_deref(), Some(comment), "{name}: comment");
        }
        if let Some(limit) = x.get("limit") {
            let limit = number(limit);
            let got = event.limit.expect("event has a limit");
            assert!((got - limit).abs() < 1e-9, "{name}: limit {got} != {limit}");
        }
        if let Some(details) = x.get("details").and_then(Toml::as_table) {
            for (key, value) in details {
                assert_eq!(
                    event.details.get(key),
                    Some(&to_value(value)),
                    "{name}: details.{key} of {} {} at {}",
                    event.rule,
                    event.transition.as_str(),
                    seconds(event.time)
                );
            }
        }
    }
    for s in scenario
        .get("final")
        .and_then(Toml::as_array)
        .unwrap_or(&empty)
    {
        let s = s.as_table().expect("table");
        let equipment = text(s, "equipment")
            .or(default_equipment)
            .expect("final.equipment");
        let rule = text(s, "rule").expect("final.rule");
        let state = outcome
            .engine
            .state(equipment, rule)
            .map(|s| serde_json::to_value(s).unwrap());
        assert_eq!(
            state.as_ref().and_then(|s| s.as_str()),
            text(s, "state"),
            "{name}: final state of {equipment} {rule}"
        );
    }
    if let Some(fills) = scenario.get("fills").and_then(Toml::as_array) {
        let got: Vec<String> = outcome
            .fills
            .iter()
            .map(|f| {
                let reasons: Vec<&str> = f.rejections.iter().map(|r| r.as_str()).collect();
                format!("{} {}", f.cylinder_code, reasons.join(","))
            })
            .collect();
        let want: Vec<String> = fills
            .iter()
            .map(|f| {
                let f = f.as_table().expect("table");
                let reasons: Vec<&str> = f
                    .get("rejections")
                    .and_then(Toml::as_array)
                    .map(|a| a.iter().filter_map(Toml::as_str).collect())
                    .unwrap_or_default();
                format!(
                    "{} {}",
                    text(f, "cylinder").expect("fills.cylinder"),
                    reasons.join(",")
                )
            })
            .collect();
        assert_eq!(got, want, "{name}: fill records");
    }
}

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/firmware-configs/scenarios"
    ));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("firmware-configs/scenarios")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_scenario_yields_exactly_its_expected_events() {
    let files = scenarios();
    assert!(files.len() >= 15, "scenarios are missing: {}", files.len());
    let mut failures = Vec::new();
    for file in &files {
        if let Err(panic) = std::panic::catch_unwind(|| check(file)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}:\n{message}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

/// Every MQTT terminal profile shipped in `firmware-configs/profiles/` is driven by at least one
/// scenario, so a profile never ships untried.
#[test]
fn every_terminal_profile_has_a_scenario() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/firmware-configs/profiles"
    ));
    let mut profiles: Vec<String> = std::fs::read_dir(dir)
        .expect("firmware-configs/profiles")
        .filter_map(|e| {
            let path = e.expect("dir entry").path();
            let name = path.file_stem()?.to_str()?.to_owned();
            (path.extension()? == "toml" && name.ends_with("-terminal")).then_some(name)
        })
        .collect();
    profiles.sort();
    assert_eq!(profiles, ["gbt-coded-terminal", "word-terminal"]);
    let scenario_texts: Vec<String> = scenarios()
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("scenario"))
        .collect();
    for profile in profiles {
        let used = format!("profile = \"{profile}\"");
        assert!(
            scenario_texts.iter().any(|t| t.contains(&used)),
            "no scenario uses the terminal profile {profile}"
        );
    }
}
