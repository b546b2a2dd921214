//! The rule-state checkpoint: the engine's timers and open alarms, so that a restart (even
//! after `kill -9`) carries on where the rules were. This doc is the specification; the
//! gateway's side (the file, when it is written) is `src/gateway/checkpoint.rs`.
//!
//! # What is saved
//! Per equipment: every rule point with its state (threshold levels with their on/off-delay
//! state and last reading time, rate windows, stale clocks, the elevator's car state,
//! `stopped_since`, occupancy, mode, trapped candidate and raised faults, expression and
//! interlock debounces), the latest values the conditions read, the instant of the last
//! snapshot, and whether the elevator's alarms are suppressed. The lifecycle: every alarm
//! record (open on the incident stream, unacknowledged, acknowledged by whom, latched, shelved
//! until, out of service, chatter history) and the flood window. And each rule's signature for
//! each equipment (the rule as configured, as [`Engine::reload`] compares them). A fill station
//! keeps nothing: its snapshot is settled with every batch, so it is empty between batches.
//!
//! # When
//! Only with the durable outbox (`[outbox] dir`), as `{dir}/rules.checkpoint`. The pipeline
//! takes the state after a step (a batch of messages, an operator action, a clock tick) once
//! that step's events are in the outbox lanes, so a checkpoint never holds an alarm as raised
//! that the outbox does not hold. It is written when it differs from the last one written and
//! [`MIN_INTERVAL`] has passed since (or [`COST_SHARE`] times what taking the state cost, when
//! that is longer: a burst does not spend its time rebuilding a large state; the journal covers
//! the gap), at least every [`HEARTBEAT`] even when unchanged (so its
//! age tells how long the gateway was down), and when the pipeline stops (shutdown, reload).
//!
//! # How it is made atomic
//! Written to `rules.checkpoint.tmp`, `fsync`ed, renamed over `rules.checkpoint`, and the
//! directory `fsync`ed, on a thread of its own (the pipeline only serializes). A crash leaves
//! the old file or the new one, never a mix; a left-over temp file is overwritten.
//! The file is a 32-byte header and a JSON body:
//!
//! ```text
//! offset  size  field
//! 0       8     magic b"SGRULECP"
//! 8       4     format version (u32 LE), now 1
//! 12      4     CRC-32 (IEEE, crc32fast) of bytes 16.. (saved-at, journal and body)
//! 16      8     saved at, milliseconds since the Unix epoch (i64 LE), wall clock
//! 24      8     the first journal this checkpoint does not cover (u64 LE), see below
//! 32      n     body: JSON (gateway id, rule signatures, units, lifecycle)
//! ```
//!
//! # The readings journal
//! Between two checkpoints the pipeline appends every batch of readings it evaluated to
//! `rules.journal.{n}` (a record: length u32 LE, CRC-32 u32 LE, the readings as a JSON array
//! of points, each equipment and time once and the time in nanoseconds, as the disk outbox
//! stores them) before it acknowledges their MQTT messages. Only readings that can change the
//! rule state are kept ([`Engine::reads`]: good quality, of an equipment with a rule that
//! watches that metric, or with an elevator, condition or fill rule, which see every reading of
//! their equipment); the others leave the state as it was, so replaying without them gives the
//! same state. A journal of an earlier version (an array of readings with RFC 3339 times) is
//! read as well, each reading as a point of one. Each checkpoint starts a new journal `n + 1` and says so in
//! its header; once it is renamed into place, the journals below go. At restore, the journals
//! from the checkpoint's number on are replayed into the restored rules (not after a stale or
//! unusable checkpoint), up to the first torn or corrupt record; the events they derive go out
//! again with the ids they had. So no reading whose message was acknowledged is missing from the
//! restored state. A journaled batch whose acknowledgement did not leave is also redelivered by
//! the broker; evaluated twice, it repeats the same state. The journal is written, not fsynced:
//! it survives a process crash; a power loss may cost its tail, as with `fsync = "interval"`.
//! Operator actions are not journaled: one taken in the last [`MIN_INTERVAL`] before a crash
//! may have to be repeated (longer for a state slow to take, see [`COST_SHARE`]).
//!
//! # Restore, at start ([`Engine::restore`])
//! - **Missing** (first start, or no outbox before): the rules start fresh.
//! - **Corrupt** (short, wrong magic, CRC mismatch, a body that does not decode) or of an
//!   **unknown version**: logged at ERROR, counted, moved aside as `rules.checkpoint.corrupt`,
//!   and the rules start fresh. Nothing is raised or cleared from it.
//! - **Another gateway's** (its id differs): counted as stale and not used at all.
//! - **Stale**: saved more than [`MAX_AGE`] before now (or more than [`MAX_AGE`] in the future).
//!   What the equipment did meanwhile is unknown, so no rule point takes its saved state: the
//!   rules evaluate afresh from the next reading. Every alarm that was open on the incident
//!   stream is closed by a clear that says why, so central keeps no incident that no rule will
//!   close; a condition that still holds raises again.
//! - **Otherwise** the points of every rule configured exactly as before for its equipment take
//!   their saved state, with the lifecycle records (acknowledgements, latches, shelves, out of
//!   service). An open alarm whose rule changed or was removed, or whose equipment was removed,
//!   while the gateway was stopped is closed by a clear with the reason, as a reload does.
//!
//! Delays that ran out while the gateway was down then act at their exact instants on the
//! first clock tick: a car stopped with a passenger at t0 raises `trapped` at t0 + 30 s, with
//! `stopped_since` t0, whether or not the gateway was restarted in between.
//!
//! # Neither twice nor lost
//! An event's id is a UUIDv5 of its content (gateway, equipment, rule, transition, instant and
//! details), and the rules stamp events with reading times. When the checkpoint is older than
//! the outbox (a crash within [`MIN_INTERVAL`] of a raise), the restored rules derive that raise
//! again with the same id, and central stores an id once. The reverse cannot happen: the state
//! is taken after its events are in the outbox. Readings evaluated after the last checkpoint are
//! in the journal (see above), so their effect is not lost either.
//!
//! Size: about 670 lines, 280 of them the restore tests beside the specification.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::condition::ConditionPoint;
use super::config::EngineSettings;
use super::elevator::ElevatorUnit;
use super::lifecycle::{group_of, SavedLifecycle};
use super::rate::RatePoint;
use super::reload::carry;
use super::stale::StalePoint;
use super::threshold::ThresholdPoint;
use super::Engine;
use crate::model::{AlarmEvent, Value};

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"SGRULECP";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
const HEADER: usize = 32;

/// A checkpoint is written at most this often while the state changes.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The state is taken at most once per this many times what taking it cost last (when that
/// is longer than [`MIN_INTERVAL`]): a large state under a burst costs at most a fiftieth of
/// the pipeline's time, and the journal covers the longer gap.
pub const COST_SHARE: u32 = 50;
/// A checkpoint is written at least this often while the gateway runs.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// A checkpoint older than this is stale: its timers are not restored.
pub const MAX_AGE: Duration = Duration::from_secs(600);

const STALE: &str = "the gateway was stopped too long to trust the saved rule state; it is evaluated again from the next reading";
const RULE_CHANGED: &str =
    "the rule changed while the gateway was stopped; it is evaluated again from the next reading";
const RULE_REMOVED: &str = "the rule no longer applies to this equipment after a restart";
const EQUIPMENT_REMOVED: &str = "the equipment was removed from the config during a restart";

/// Why a checkpoint file cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CheckpointError {
    #[error("too short for a checkpoint ({0} bytes)")]
    Short(usize),
    #[error("not a rule checkpoint (wrong magic)")]
    Magic,
    #[error("format version {0}, this build reads {VERSION}")]
    Version(u32),
    #[error("checksum mismatch")]
    Checksum,
    #[error("body does not decode: {0}")]
    Body(String),
}

/// What [`Engine::restore`] did with a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// Every unchanged rule carries on.
    Restored,
    /// Too old, or another gateway's: the rules start afresh and open alarms are closed.
    Stale,
}

impl Restored {
    pub fn as_str(self) -> &'static str {
        match self {
            Restored::Restored => "restored",
            Restored::Stale => "stale",
        }
    }
}

/// One equipment's rule state.
#[derive(Serialize, Deserialize)]
struct SavedUnit<'a> {
    equipment: Cow<'a, str>,
    thresholds: Cow<'a, [(String, ThresholdPoint)]>,
    rates: Cow<'a, [RatePoint]>,
    stale: Cow<'a, [StalePoint]>,
    elevator: Option<Cow<'a, ElevatorUnit>>,
    elevator_suppressed: bool,
    conditions: Cow<'a, [ConditionPoint]>,
    values: Cow<'a, HashMap<String, Value>>,
    snapshot: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize)]
struct Body<'a> {
    gateway: Cow<'a, str>,
    /// Each distinct rule signature once (a rule reads the same for all its equipment).
    rules: Vec<Cow<'a, str>>,
    /// (equipment, rule id, index into `rules`), sorted.
    signatures: Vec<(String, String, usize)>,
    units: Vec<SavedUnit<'a>>,
    lifecycle: SavedLifecycle,
}

impl Engine {
    /// The engine's state as a checkpoint body. Equal states give equal bodies, so the caller
    /// can skip writing an unchanged one.
    pub fn checkpoint_body(&self) -> Vec<u8> {
        let mut rules: Vec<Cow<str>> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut signatures: Vec<_> = self
            .signatures
            .iter()
            .map(|((e, r), s)| {
                let i = *index.entry(s.as_str()).or_insert_with(|| {
                    rules.push(Cow::Borrowed(s.as_str()));
                    rules.len() - 1
                });
                (e.clone(), r.clone(), i)
            })
            .collect();
        signatures.sort();
        let body = Body {
            gateway: Cow::Borrowed(&self.gateway),
            rules,
            signatures,
            units: self
                .units
                .iter()
                .map(|u| SavedUnit {
                    equipment: Cow::Borrowed(&u.equipment),
                    thresholds: Cow::Borrowed(&u.thresholds),
                    rates: Cow::Borrowed(&u.rates),
                    stale: Cow::Borrowed(&u.stale),
                    elevator: u.elevator.as_ref().map(Cow::Borrowed),
                    elevator_suppressed: u.elevator_suppressed,
                    conditions: Cow::Borrowed(&u.conditions),
                    values: Cow::Borrowed(&u.values),
                    snapshot: u.snapshot,
                })
                .collect(),
            lifecycle: self.lifecycle.save(),
        };
        serde_json::to_vec(&body).expect("rule state serializes")
    }

    /// The engine for `config`, with the state of a checkpoint file (`bytes`) taken over as the
    /// module doc says; the clears of alarms that end go to `events`. A file that cannot be
    /// used is an error, and nothing is raised or cleared.
    pub fn restore<'a>(
        config: impl Into<EngineSettings<'a>>,
        bytes: &[u8],
        now: DateTime<Utc>,
        events: &mut Vec<AlarmEvent>,
    ) -> Result<(Engine, Restored), CheckpointError> {
        let config = config.into();
        let (saved_at, _, body) = unframe(bytes)?;
        let saved: Body =
            serde_json::from_slice(body).map_err(|e| CheckpointError::Body(e.to_string()))?;
        let mut engine = Engine::from_config(config);
        let max_age = chrono::Duration::from_std(MAX_AGE).expect("a short duration");
        let stale =
            saved.gateway != engine.gateway || now - saved_at > max_age || saved_at - now > max_age;
        let old_signatures: HashMap<(String, String), &str> = saved
            .signatures
            .into_iter()
            .filter_map(|(e, r, i)| Some(((e, r), saved.rules.get(i)?.as_ref())))
            .collect();
        let new_signatures = engine.signatures.clone();
        let gone = |equipment: &str, rule: &str| -> Option<&'static str> {
            let key = (equipment.to_owned(), rule.to_owned());
            match (old_signatures.get(&key), new_signatures.get(&key)) {
                _ if stale => Some(STALE),
                (Some(old), Some(current)) if *old == current => None,
                (_, Some(_)) => Some(RULE_CHANGED),
                _ if !config.has_equipment(equipment) => Some(EQUIPMENT_REMOVED),
                _ => Some(RULE_REMOVED),
            }
        };
        let mut units: HashMap<String, SavedUnit> = saved
            .units
            .into_iter()
            .map(|u| (u.equipment.to_string(), u))
            .collect();
        for unit in &mut engine.units {
            let Some(old) = units.remove(&unit.equipment) else {
                continue;
            };
            let e = unit.equipment.as_str();
            let kept = |name: &str| gone(e, group_of(name)).is_none();
            let mut thresholds = old.thresholds.into_owned();
            carry(
                &mut unit.thresholds,
                &mut thresholds,
                |(_, p)| p.name(),
                kept,
            );
            carry(
                &mut unit.rates,
                &mut old.rates.into_owned(),
                |p| p.rule_id(),
                kept,
            );
            carry(
                &mut unit.stale,
                &mut old.stale.into_owned(),
                |p| p.rule_id(),
                kept,
            );
            carry(
                &mut unit.conditions,
                &mut old.conditions.into_owned(),
                |p| p.name(),
                kept,
            );
            if let (Some(current), Some(previous)) = (&unit.elevator, old.elevator) {
                if current.rule_id() == previous.rule_id() && kept(current.rule_id()) {
                    unit.elevator = Some(previous.into_owned());
                    unit.elevator_suppressed = old.elevator_suppressed;
                }
            }
            if unit.keeps_values && !stale {
                unit.values = old.values.into_owned();
            }
            if !stale {
                unit.snapshot = old.snapshot;
            }
        }
        let old_lifecycle = engine.lifecycle.with_saved(saved.lifecycle);
        let mut lifecycle = engine.lifecycle.with_saved(SavedLifecycle::default());
        lifecycle.carry_over(old_lifecycle, gone, now, events);
        engine.lifecycle = lifecycle;
        let outcome = if stale {
            Restored::Stale
        } else {
            Restored::Restored
        };
        Ok((engine, outcome))
    }
}

/// The file for a checkpoint `body` saved at `saved_at`, followed by journal `journal`.
pub fn frame(body: &[u8], saved_at: DateTime<Utc>, journal: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&saved_at.timestamp_millis().to_le_bytes());
    out.extend_from_slice(&journal.to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out[16..]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The saved-at instant, the journal that follows and the body of a checkpoint file, checked.
pub fn unframe(bytes: &[u8]) -> Result<(DateTime<Utc>, u64, &[u8]), CheckpointError> {
    if bytes.len() < HEADER {
        return Err(CheckpointError::Short(bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err(CheckpointError::Magic);
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let version = word(8);
    if version != VERSION {
        return Err(CheckpointError::Version(version));
    }
    if crc32fast::hash(&bytes[16..]) != word(12) {
        return Err(CheckpointError::Checksum);
    }
    let millis = i64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let saved_at = DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| CheckpointError::Body(format!("saved-at {millis} ms is out of range")))?;
    let journal = u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes"));
    Ok((saved_at, journal, &bytes[HEADER..]))
}

/// Serde for the `chrono::Duration`s of rule points, as whole milliseconds.
pub(super) mod millis {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(d: &chrono::Duration, s: S) -> Result<S::Ok, S::Error> {
        d.num_milliseconds().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<chrono::Duration, D::Error> {
        let ms = i64::deserialize(d)?;
        chrono::Duration::try_milliseconds(ms)
            .ok_or_else(|| serde::de::Error::custom(format!("{ms} ms is out of range")))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::{Quality, Reading, Source, Transition};
    use crate::rules::Operator;

    const SITE: &str = "[site]\nid = \"s\"\nname = \"S\"\n[gateway]\nid = \"gw\"\n\
        [[equipment]]\nid = \"lift-1\"\nkind = \"elevator\"\nregistration_code = \"1\"\n\
        [[equipment]]\nid = \"pv-1\"\nkind = \"pressure_vessel\"\nregistration_code = \"2\"\n\
        nameplate = { working_pressure_mpa = 1.0, set_pressure_mpa = 1.1, design_pressure_mpa = 1.2 }\n";

    fn config(rules: &str) -> crate::config::Config {
        crate::config::parse(&format!("{SITE}{rules}"), std::path::Path::new("site.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Elevator `lift` (30 s outside the door zone) and a high limit on pv-1 with a 20 s delay.
    fn rules(high: f64) -> String {
        format!(
            "[[rules.elevator]]\nid = \"lift\"\n\
             [[rules.threshold]]\nid = \"p\"\nkind = \"pressure_vessel\"\nmetric = \"pressure\"\n\
             on_delay_s = 20\nhigh = {{ limit = {high} }}\n"
        )
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn reading(equipment: &str, metric: &str, value: Value, t: i64) -> Reading {
        Reading {
            equipment: equipment.into(),
            metric: metric.into(),
            value,
            unit: None,
            time: at(t),
            quality: Quality::Good,
            source: Source::Mqtt,
        }
    }

    /// A car that stops between floors with a passenger at t = 0, and pv-1 above its limit
    /// from t = 0.
    fn trapped_at_zero(engine: &mut Engine) -> Vec<AlarmEvent> {
        let text = |s: &str| Value::Text(s.into());
        let snapshot = [
            reading("lift-1", "car_status", text("stopped"), 0),
            reading("lift-1", "door_zone", Value::Bool(false), 0),
            reading("lift-1", "floor", text("5"), 0),
            reading("lift-1", "door_closed_locked", Value::Bool(true), 0),
            reading("lift-1", "occupied", Value::Bool(true), 0),
            reading("pv-1", "pressure", Value::Number(1.3), 0),
        ];
        let mut events = Vec::new();
        engine.on_readings(&snapshot, &mut events);
        events
    }

    fn ticks(engine: &mut Engine, from: i64, to: i64) -> Vec<AlarmEvent> {
        let mut events = Vec::new();
        for t in from..=to {
            engine.tick(at(t), &mut events);
        }
        events
    }

    fn saved(engine: &Engine, t: i64) -> Vec<u8> {
        frame(&engine.checkpoint_body(), at(t), 0)
    }

    #[test]
    fn a_restored_engine_raises_at_the_instant_and_with_the_ids_of_one_never_stopped() {
        let mut steady = Engine::from_config(&config(&rules(1.05)));
        assert!(trapped_at_zero(&mut steady).is_empty());
        let expected = ticks(&mut steady, 1, 40);
        assert_eq!(expected.len(), 2, "{expected:?}");

        let mut crashed = Engine::from_config(&config(&rules(1.05)));
        trapped_at_zero(&mut crashed);
        ticks(&mut crashed, 1, 10);
        let file = saved(&crashed, 10);
        drop(crashed);

        let mut events = Vec::new();
        let (mut restored, outcome) =
            Engine::restore(&config(&rules(1.05)), &file, at(11), &mut events).unwrap();
        assert_eq!(outcome, Restored::Restored);
        assert!(events.is_empty(), "{events:?}");
        let after = ticks(&mut restored, 11, 40);
        assert_eq!(after, expected, "same events, same instants, same ids");
        let trapped = after.iter().find(|e| e.rule == "lift.trapped").unwrap();
        assert_eq!(trapped.time, at(30));
        assert_eq!(
            trapped.details["stopped_since"],
            Value::Text(at(0).to_rfc3339())
        );
        assert_eq!(trapped.details["stopped_s"], Value::Number(30.0));
    }

    #[test]
    fn open_alarms_stay_open_and_are_not_raised_again() {
        let mut engine = Engine::from_config(&config(&rules(1.05)));
        trapped_at_zero(&mut engine);
        assert_eq!(ticks(&mut engine, 1, 31).len(), 2);
        let mut events = Vec::new();
        engine
            .acknowledge(
                Operator::new("pv-1", "p.high", "ops", None, at(32)),
                &mut events,
            )
            .unwrap();
        let file = saved(&engine, 32);

        let mut events = Vec::new();
        let (mut restored, _) =
            Engine::restore(&config(&rules(1.05)), &file, at(40), &mut events).unwrap();
        assert!(events.is_empty(), "{events:?}");
        assert!(restored.is_open("lift-1", "lift.trapped"));
        assert_eq!(
            restored.state("pv-1", "p.high"),
            Some(crate::rules::AlarmState::ActiveAcknowledged)
        );
        assert!(ticks(&mut restored, 40, 100).is_empty());
        // The doors open at a landing: the one trapped alarm clears.
        let mut events = Vec::new();
        restored.on_readings(
            &[
                reading("lift-1", "door_zone", Value::Bool(true), 101),
                reading("lift-1", "door_closed_locked", Value::Bool(false), 101),
            ],
            &mut events,
        );
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            (events[0].rule.as_str(), events[0].transition),
            ("lift.trapped", Transition::Clear)
        );
    }

    #[test]
    fn a_stale_checkpoint_restores_no_timer_and_closes_what_was_open() {
        let mut engine = Engine::from_config(&config(&rules(1.05)));
        trapped_at_zero(&mut engine);
        ticks(&mut engine, 1, 25);
        assert!(engine.is_open("pv-1", "p.high"));
        assert!(!engine.is_open("lift-1", "lift.trapped"));
        let file = saved(&engine, 25);

        let late = 25 + MAX_AGE.as_secs() as i64 + 1;
        let mut events = Vec::new();
        let (mut restored, outcome) =
            Engine::restore(&config(&rules(1.05)), &file, at(late), &mut events).unwrap();
        assert_eq!(outcome, Restored::Stale);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            (events[0].rule.as_str(), events[0].transition),
            ("p.high", Transition::Clear)
        );
        assert!(events[0].message.ends_with(STALE), "{}", events[0].message);
        // The trapped timer of long ago does not fire.
        assert!(ticks(&mut restored, late, late + 60).is_empty());
        assert!(restored.active().is_empty());
    }

    #[test]
    fn only_rules_configured_as_before_keep_their_state() {
        let mut engine = Engine::from_config(&config(&rules(1.05)));
        trapped_at_zero(&mut engine);
        ticks(&mut engine, 1, 21);
        assert!(engine.is_open("pv-1", "p.high"));
        let file = saved(&engine, 21);

        // The pressure limit changed while the gateway was stopped; the elevator rule did not.
        let mut events = Vec::new();
        let (mut restored, outcome) =
            Engine::restore(&config(&rules(1.25)), &file, at(22), &mut events).unwrap();
        assert_eq!(outcome, Restored::Restored);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].rule, "p.high");
        assert!(events[0].message.ends_with(RULE_CHANGED));
        let after = ticks(&mut restored, 22, 31);
        assert_eq!(after.len(), 1, "{after:?}");
        assert_eq!(
            (after[0].rule.as_str(), after[0].time),
            ("lift.trapped", at(30))
        );
    }

    #[test]
    fn a_damaged_file_is_refused_whole() {
        let mut engine = Engine::from_config(&config(&rules(1.05)));
        trapped_at_zero(&mut engine);
        let file = saved(&engine, 1);
        let restore = |bytes: &[u8]| {
            let mut events = Vec::new();
            let result = Engine::restore(&config(&rules(1.05)), bytes, at(2), &mut events);
            assert!(events.is_empty());
            result.err()
        };
        assert_eq!(restore(&file), None);
        assert_eq!(restore(&file[..10]), Some(CheckpointError::Short(10)));
        assert_eq!(
            restore(&file[..file.len() - 1]),
            Some(CheckpointError::Checksum)
        );
        let mut other = file.clone();
        other[0] = b'X';
        assert_eq!(restore(&other), Some(CheckpointError::Magic));
        let mut newer = file.clone();
        newer[8] = 2;
        assert_eq!(restore(&newer), Some(CheckpointError::Version(2)));
        // Every flipped bit past the version is caught by the checksum.
        for byte in (12..file.len()).step_by(7) {
            let mut bad = file.clone();
            bad[byte] ^= 0x10;
            assert_eq!(
                restore(&bad),
                Some(CheckpointError::Checksum),
                "byte {byte}"
            );
        }
        // A body with a valid checksum that is not a checkpoint.
        let junk = frame(b"{\"gateway\":\"gw\"}", at(1), 0);
        assert!(matches!(restore(&junk), Some(CheckpointError::Body(_))));
    }

    #[test]
    fn another_gateways_checkpoint_is_not_used() {
        let mut engine = Engine::from_config(&config(&rules(1.05)));
        trapped_at_zero(&mut engine);
        let body = String::from_utf8(engine.checkpoint_body())
            .unwrap()
            .replacen("\"gateway\":\"gw\"", "\"gateway\":\"gw-other\"", 1);
        let file = frame(body.as_bytes(), at(1), 0);
        let mut events = Vec::new();
        let (mut restored, outcome) =
            Engine::restore(&config(&rules(1.05)), &file, at(2), &mut events).unwrap();
        assert_eq!(outcome, Restored::Stale);
        assert!(ticks(&mut restored, 2, 40).is_empty());
    }

    #[test]
    fn an_unchanged_state_gives_the_same_body() {
        let mut engine = Engine::from_config(&config(&rules(1.05)));
        trapped_at_zero(&mut engine);
        assert_eq!(engine.checkpoint_body(), engine.checkpoint_body());
        let before = engine.checkpoint_body();
        ticks(&mut engine, 1, 40);
        assert_ne!(engine.checkpoint_body(), before);
    }

    #[test]
    fn a_reading_the_rules_do_not_read_leaves_the_state_as_it_was() {
        let mut engine = Engine::from_config(&config(&rules(1.05)));
        trapped_at_zero(&mut engine);
        let mut bad = reading("pv-1", "pressure", Value::Number(0.2), 5);
        bad.quality = Quality::Bad;
        let unread = [
            reading("pv-1", "temperature", Value::Number(80.0), 5),
            reading("pv-9", "pressure", Value::Number(9.0), 5),
            bad,
        ];
        for r in &unread {
            assert!(!engine.reads(r), "{r:?}");
            let before = engine.checkpoint_body();
            let mut events = Vec::new();
            engine.on_readings(std::slice::from_ref(r), &mut events);
            assert!(events.is_empty());
            assert_eq!(engine.checkpoint_body(), before, "{r:?}");
        }
        // What a rule reads: the limit's metric, and an elevator's readings (any metric: its
        // delays run out at the time of any reading of the equipment).
        assert!(engine.reads(&reading("lift-1", "cabin_temp", Value::Number(21.0), 6)));
        let read = [
            reading("pv-1", "pressure", Value::Number(0.2), 5),
            reading("lift-1", "door_zone", Value::Bool(true), 6),
        ];
        for r in &read {
            assert!(engine.reads(r), "{r:?}");
            let before = engine.checkpoint_body();
            engine.on_readings(std::slice::from_ref(r), &mut Vec::new());
            assert_ne!(engine.checkpoint_body(), before, "{r:?}");
        }
    }
}
