//! Threshold rules, data-driven: a rule, a timeline of readings (or clock ticks) in seconds, and
//! the exact events expected.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::config::{Level, LevelKind, ThresholdRule};
use super::Engine;
use crate::model::{AlarmEvent, Quality, Reading, Severity, Source, Transition, Value};

enum Step {
    /// A reading of the rule's metric at t seconds.
    Value(f64, f64),
    /// A clock tick at t seconds with no reading.
    Tick(f64),
    /// A bad-quality reading: never evaluated.
    Bad(f64, f64),
}
use Step::*;

fn at(seconds: f64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0).unwrap()
        + chrono::Duration::milliseconds((seconds * 1000.0) as i64)
}

fn rule(
    levels: &[(LevelKind, f64)],
    deadband: f64,
    on_delay: f64,
    off_delay: f64,
) -> ThresholdRule {
    ThresholdRule {
        id: "p".into(),
        equipment: vec!["pv-1".into()],
        metric: "pressure".into(),
        levels: levels
            .iter()
            .map(|&(kind, limit)| Level {
                kind,
                limit,
                severity: kind.default_severity(),
            })
            .collect(),
        deadband,
        on_delay: Duration::from_secs_f64(on_delay),
        off_delay: Duration::from_secs_f64(off_delay),
    }
}

fn run(rule: &ThresholdRule, steps: &[Step]) -> Vec<(f64, String, Transition)> {
    let mut engine = Engine::new("gw", std::slice::from_ref(rule));
    let mut events: Vec<AlarmEvent> = Vec::new();
    for step in steps {
        match *step {
            Value(t, v) | Bad(t, v) => {
                let quality = if matches!(step, Bad(..)) {
                    Quality::Bad
                } else {
                    Quality::Good
                };
                let reading = Reading {
                    equipment: "pv-1".into(),
                    metric: "pressure".into(),
                    value: crate::model::Value::Number(v),
                    unit: Some("MPa".into()),
                    time: at(t),
                    quality,
                    source: Source::Mqtt,
                };
                engine.on_reading(&reading, &mut events);
            }
            Tick(t) => engine.tick(at(t), &mut events),
        }
    }
    events
        .into_iter()
        .map(|e| {
            let t = (e.time - at(0.0)).num_milliseconds() as f64 / 1000.0;
            (t, e.rule, e.transition)
        })
        .collect()
}

use LevelKind::*;
use Transition::{Clear, Raise};

fn ev(t: f64, rule: &str, transition: Transition) -> (f64, String, Transition) {
    (t, rule.to_owned(), transition)
}

#[test]
fn high_raises_once_and_clears_below_limit_minus_deadband() {
    let r = rule(&[(High, 1.6)], 0.05, 0.0, 0.0);
    let got = run(
        &r,
        &[
            Value(0.0, 1.0),
            Value(1.0, 1.65),
            Value(2.0, 1.7),
            Value(3.0, 1.56),
            Value(4.0, 1.549),
            Value(5.0, 1.5),
        ],
    );
    assert_eq!(
        got,
        vec![ev(1.0, "p.high", Raise), ev(4.0, "p.high", Clear)]
    );
}

#[test]
fn value_equal_to_the_limit_does_not_raise() {
    let r = rule(&[(High, 1.6)], 0.0, 0.0, 0.0);
    assert_eq!(run(&r, &[Value(0.0, 1.6)]), vec![]);
}

#[test]
fn high_high_and_high_are_separate_alarms() {
    let r = rule(&[(HighHigh, 1.8), (High, 1.6)], 0.0, 0.0, 0.0);
    let got = run(
        &r,
        &[
            Value(0.0, 1.7),
            Value(1.0, 1.9),
            Value(2.0, 1.7),
            Value(3.0, 1.0),
        ],
    );
    assert_eq!(
        got,
        vec![
            ev(0.0, "p.high", Raise),
            ev(1.0, "p.high_high", Raise),
            ev(2.0, "p.high_high", Clear),
            ev(3.0, "p.high", Clear),
        ]
    );
}

#[test]
fn low_levels_mirror_high_ones() {
    let r = rule(&[(Low, 0.5), (LowLow, 0.2)], 0.1, 0.0, 0.0);
    let got = run(
        &r,
        &[
            Value(0.0, 0.4),
            Value(1.0, 0.1),
            Value(2.0, 0.35),
            Value(3.0, 0.55),
            Value(4.0, 0.61),
        ],
    );
    assert_eq!(
        got,
        vec![
            ev(0.0, "p.low", Raise),
            ev(1.0, "p.low_low", Raise),
            ev(2.0, "p.low_low", Clear),
            ev(4.0, "p.low", Clear),
        ]
    );
}

#[test]
fn on_delay_ignores_brief_excursions() {
    let r = rule(&[(High, 1.6)], 0.0, 5.0, 0.0);
    // A value holds until the next reading: 0 to 4.9 s and 6.0 to 10.9 s are both under 5 s.
    let got = run(
        &r,
        &[
            Value(0.0, 1.7),
            Value(4.9, 1.5),
            Value(6.0, 1.7),
            Tick(10.9),
        ],
    );
    assert_eq!(got, vec![]);
}

#[test]
fn on_delay_raises_at_the_exact_instant_it_ends() {
    let r = rule(&[(High, 1.6)], 0.0, 5.0, 0.0);
    // The tick comes late (at 7.3 s); the event still carries 5.0 s.
    let got = run(&r, &[Value(0.0, 1.7), Value(2.0, 1.8), Tick(7.3)]);
    assert_eq!(got, vec![ev(5.0, "p.high", Raise)]);
}

#[test]
fn an_expired_delay_takes_effect_before_the_next_reading() {
    let r = rule(&[(High, 1.6)], 0.0, 5.0, 0.0);
    // No tick in between: the reading at 9 s (back to normal) must not cancel the raise at 5 s.
    let got = run(&r, &[Value(0.0, 1.7), Value(9.0, 1.0)]);
    assert_eq!(
        got,
        vec![ev(5.0, "p.high", Raise), ev(9.0, "p.high", Clear)]
    );
}

#[test]
fn off_delay_keeps_the_alarm_until_normal_long_enough() {
    let r = rule(&[(High, 1.6)], 0.0, 0.0, 10.0);
    let got = run(
        &r,
        &[
            Value(0.0, 1.7),
            Value(1.0, 1.5),
            Value(5.0, 1.7),
            Value(6.0, 1.5),
            Tick(15.9),
            Tick(16.0),
        ],
    );
    assert_eq!(
        got,
        vec![ev(0.0, "p.high", Raise), ev(16.0, "p.high", Clear)]
    );
}

#[test]
fn bad_quality_and_late_readings_are_not_evaluated() {
    let r = rule(&[(High, 1.6)], 0.0, 0.0, 0.0);
    let got = run(
        &r,
        &[
            Value(10.0, 1.0),
            Bad(11.0, 9.9),
            Value(5.0, 9.9),
            Value(12.0, 1.0),
        ],
    );
    assert_eq!(got, vec![]);
}

#[test]
fn active_alarms_and_event_details() {
    let r = rule(&[(High, 1.6)], 0.0, 0.0, 0.0);
    let mut engine = Engine::new("gw", std::slice::from_ref(&r));
    let mut events = Vec::new();
    let reading = Reading {
        equipment: "pv-1".into(),
        metric: "pressure".into(),
        value: Value::Number(1.72),
        unit: Some("MPa".into()),
        time: at(3.0),
        quality: Quality::Good,
        source: Source::Mqtt,
    };
    engine.on_reading(&reading, &mut events);
    let active = engine.active();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].since, at(3.0));
    let e = &events[0];
    assert_eq!(
        (e.severity, e.value, e.limit),
        (Severity::High, Some(1.72), Some(1.6))
    );
    assert_eq!(e.message, "pv-1 1.72 MPa above high limit 1.6 MPa");
    // The id is derived from the content, so a replay yields the same id.
    let mut again = Engine::new("gw", std::slice::from_ref(&r));
    let mut replay = Vec::new();
    again.on_reading(&reading, &mut replay);
    assert_eq!(replay[0].id, e.id);
}
