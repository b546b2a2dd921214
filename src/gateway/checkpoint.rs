//! The rule-state checkpoint file of a gateway with the durable outbox: restored at start,
//! offered by the pipeline after every step, written atomically on a thread of its own; and the
//! readings journal between checkpoints. What they hold, when they are written and what a stale
//! or corrupt one does are specified in `src/rules/checkpoint.rs`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::{AlarmEvent, Reading};
use crate::rules::{self, frame_checkpoint, unframe_checkpoint, Engine, Restored};
use crate::uplink::influx::{points_json, Point};

pub const FILE: &str = "rules.checkpoint";
const TEMP: &str = "rules.checkpoint.tmp";
const CORRUPT: &str = "rules.checkpoint.corrupt";
const JOURNAL: &str = "rules.journal.";

/// What the writer thread is handed: the newest file to write (an older one not yet written
/// is replaced), and whether to stop once it is written.
#[derive(Default)]
struct Slot {
    /// The file, and the first journal it does not cover.
    next: Option<(Vec<u8>, u64)>,
    closed: bool,
}

/// The journal being appended to: `rules.journal.{number}`.
struct Journal {
    number: u64,
    file: Option<File>,
}

struct Throttle {
    checked: Option<Instant>,
    written: Option<Instant>,
    body: Vec<u8>,
    /// How long the last state took to take.
    cost: Duration,
}

pub struct Checkpoints {
    dir: PathBuf,
    metrics: Arc<Metrics>,
    slot: Arc<(Mutex<Slot>, Condvar)>,
    throttle: Mutex<Throttle>,
    journal: Mutex<Journal>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Checkpoints {
    /// Checkpoints in `dir` (the outbox directory); starts the writer thread.
    pub fn open(dir: &Path, metrics: Arc<Metrics>) -> Checkpoints {
        let slot = Arc::new((Mutex::new(Slot::default()), Condvar::new()));
        let writer = {
            let (dir, slot, metrics) = (dir.to_owned(), slot.clone(), metrics.clone());
            std::thread::Builder::new()
                .name("rule-checkpoint".into())
                .spawn(move || write_loop(&dir, &slot, &metrics))
                .expect("spawning the checkpoint writer")
        };
        Checkpoints {
            dir: dir.to_owned(),
            metrics,
            slot,
            throttle: Mutex::new(Throttle {
                checked: None,
                written: None,
                body: Vec::new(),
                cost: Duration::ZERO,
            }),
            journal: Mutex::new(Journal {
                number: 0,
                file: None,
            }),
            writer: Mutex::new(Some(writer)),
        }
    }

    /// The engine for `config` with the saved state taken over, or a fresh one; the clears of
    /// alarms that end go to `events`.
    pub fn restore(&self, config: &Config, events: &mut Vec<AlarmEvent>) -> Engine {
        // New journals are numbered after every one on disk, replayed or not.
        let next = journals(&self.dir).last().map_or(0, |(n, _)| n + 1);
        self.journal.lock().expect("journal lock").number = next;
        let path = self.dir.join(FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                let outcome = if e.kind() == io::ErrorKind::NotFound {
                    "missing"
                } else {
                    "corrupt"
                };
                self.metrics
                    .rule_checkpoint_loaded(outcome, &format!("{}: {e}", path.display()));
                return Engine::from_config(config);
            }
        };
        match Engine::restore(config, &bytes, Utc::now(), events) {
            Ok((mut engine, outcome)) => {
                if outcome == Restored::Restored {
                    let (_, first, _) = unframe_checkpoint(&bytes).expect("checked by restore");
                    self.replay(&mut engine, first, events);
                }
                let detail = format!(
                    "{}: {} alarms active, {} closed at restore",
                    path.display(),
                    engine.active().len(),
                    events.len()
                );
                self.metrics
                    .rule_checkpoint_loaded(outcome.as_str(), &detail);
                engine
            }
            Err(e) => {
                let aside = self.dir.join(CORRUPT);
                let moved = match fs::rename(&path, &aside) {
                    Ok(()) => format!("moved to {}", aside.display()),
                    Err(e) => format!("cannot move it aside: {e}"),
                };
                self.metrics.rule_checkpoint_loaded(
                    "corrupt",
                    &format!("{}: {e}; {moved}", path.display()),
                );
                Engine::from_config(config)
            }
        }
    }

    /// Replays the journals from `first` on into `engine`.
    fn replay(&self, engine: &mut Engine, first: u64, events: &mut Vec<AlarmEvent>) {
        for (number, path) in journals(&self.dir) {
            if number < first {
                continue;
            }
            let bytes = fs::read(&path).unwrap_or_default();
            let (batches, complete) = decode_journal(&bytes);
            for readings in &batches {
                engine.on_readings(readings, events);
            }
            tracing::info!(journal = %path.display(), batches = batches.len(), complete, "rule journal replayed");
        }
    }

    /// Appends the readings the rules just evaluated to the journal, before their messages are
    /// acknowledged: those that can change the rule state ([`Engine::reads`]), as points (each
    /// equipment and time once, the time in nanoseconds).
    pub fn journal(&self, engine: &Engine, readings: &[Reading]) {
        let kept: Vec<&Reading> = readings.iter().filter(|r| engine.reads(r)).collect();
        if kept.is_empty() {
            return;
        }
        let payload = points_json(&kept);
        let mut record = Vec::with_capacity(8 + payload.len());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        let mut journal = self.journal.lock().expect("journal lock");
        let path = self.dir.join(format!("{JOURNAL}{}", journal.number));
        let written = match &mut journal.file {
            Some(file) => file.write_all(&record),
            None => fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut file| {
                    file.write_all(&record)?;
                    journal.file = Some(file);
                    Ok(())
                }),
        };
        if let Err(e) = written {
            journal.file = None;
            self.metrics
                .rule_checkpoint_write_failed(&format!("{}: {e}", path.display()));
        }
    }

    /// Called after every pipeline step, once its events are in the outbox: queues the state
    /// when it changed and [`rules::CHECKPOINT_MIN_INTERVAL`] passed (or, for a state that is
    /// slow to take, [`rules::CHECKPOINT_COST_SHARE`] times what it took last), or when
    /// [`rules::CHECKPOINT_HEARTBEAT`] passed. The journal covers the readings in between.
    pub fn offer(&self, engine: &Engine) {
        let now = Instant::now();
        let mut throttle = self.throttle.lock().expect("checkpoint throttle lock");
        let interval = interval(throttle.cost);
        if throttle
            .checked
            .is_some_and(|t| now.duration_since(t) < interval)
        {
            return;
        }
        throttle.checked = Some(now);
        let body = engine.checkpoint_body();
        throttle.cost = now.elapsed();
        let beat = throttle
            .written
            .is_none_or(|t| now.duration_since(t) >= rules::CHECKPOINT_HEARTBEAT);
        if body == throttle.body && !beat {
            return;
        }
        self.queue(&body);
        throttle.written = Some(now);
        throttle.body = body;
    }

    /// Queues the state now, whatever the throttle says (the pipeline stops).
    pub fn save(&self, engine: &Engine) {
        let mut throttle = self.throttle.lock().expect("checkpoint throttle lock");
        let body = engine.checkpoint_body();
        self.queue(&body);
        let now = Instant::now();
        throttle.checked = Some(now);
        throttle.written = Some(now);
        throttle.body = body;
    }

    /// Queues the checkpoint of `body`; the readings after it go to a new journal.
    fn queue(&self, body: &[u8]) {
        let following = {
            let mut journal = self.journal.lock().expect("journal lock");
            journal.number += 1;
            journal.file = None;
            journal.number
        };
        let file = frame_checkpoint(body, Utc::now(), following);
        let (lock, wake) = &*self.slot;
        let mut slot = lock.lock().expect("checkpoint slot lock");
        slot.next = Some((file, following));
        wake.notify_all();
    }

    /// Waits until what was queued is written, then stops the writer.
    pub fn close(&self) {
        {
            let (lock, wake) = &*self.slot;
            let mut slot = lock.lock().expect("checkpoint slot lock");
            slot.closed = true;
            wake.notify_all();
        }
        if let Some(writer) = self.writer.lock().expect("checkpoint writer lock").take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Checkpoints {
    /// A gateway dropped without [`Checkpoints::close`] still ends its writer thread (after
    /// the file queued last).
    fn drop(&mut self) {
        let (lock, wake) = &*self.slot;
        if let Ok(mut slot) = lock.lock() {
            slot.closed = true;
            wake.notify_all();
        }
    }
}

/// The least time between two states taken while it changes, for a state that took `cost`.
fn interval(cost: Duration) -> Duration {
    (cost * rules::CHECKPOINT_COST_SHARE)
        .clamp(rules::CHECKPOINT_MIN_INTERVAL, rules::CHECKPOINT_HEARTBEAT)
}

fn write_loop(dir: &Path, slot: &(Mutex<Slot>, Condvar), metrics: &Metrics) {
    let (lock, wake) = slot;
    loop {
        let (file, following) = {
            let mut slot = lock.lock().expect("checkpoint slot lock");
            while slot.next.is_none() && !slot.closed {
                slot = wake.wait(slot).expect("checkpoint slot lock");
            }
            match slot.next.take() {
                Some(next) => next,
                None => return,
            }
        };
        match write_atomic(dir, &file) {
            Ok(()) => {
                metrics.rule_checkpoint_written();
                // Covered by the checkpoint now in place.
                for (number, path) in journals(dir) {
                    if number < following {
                        let _ = fs::remove_file(path);
                    }
                }
            }
            Err(e) => metrics.rule_checkpoint_write_failed(&e.to_string()),
        }
    }
}

/// The journal files in `dir`, by number.
fn journals(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let number = path
                .file_name()?
                .to_str()?
                .strip_prefix(JOURNAL)?
                .parse()
                .ok()?;
            Some((number, path))
        })
        .collect();
    found.sort();
    found
}

/// The batches of a journal up to its first torn or corrupt record, and whether it ended clean.
fn decode_journal(bytes: &[u8]) -> (Vec<Vec<Reading>>, bool) {
    let mut batches = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 8 {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let Some(payload) = rest.get(8..8 + len) else {
            return (batches, false);
        };
        if crc32fast::hash(payload) != crc {
            return (batches, false);
        }
        // An array of points; a journal written before points were its unit is an array of
        // readings, each read as a point of one.
        match serde_json::from_slice::<Vec<Point>>(payload) {
            Ok(points) => batches.push(
                points
                    .iter()
                    .flat_map(|p| p.readings.iter().cloned())
                    .collect(),
            ),
            Err(_) => return (batches, false),
        }
        rest = &rest[8 + len..];
    }
    (batches, rest.is_empty())
}

/// Temp file, fsync, rename over the checkpoint, fsync the directory.
fn write_atomic(dir: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = dir.join(TEMP);
    let mut file = File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, dir.join(FILE))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = "[site]\nid = \"s\"\nname = \"S\"\n[gateway]\nid = \"gw\"\n\
            [[equipment]]\nid = \"lift-1\"\nkind = \"elevator\"\nregistration_code = \"1\"\n\
            [[rules.elevator]]\nid = \"lift\"\n";
        crate::config::parse(text, Path::new("site.toml")).unwrap()
    }

    #[test]
    fn a_saved_state_is_on_disk_after_close_and_a_corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let checkpoints = Checkpoints::open(dir.path(), metrics.clone());
        let mut events = Vec::new();
        let engine = checkpoints.restore(&config(), &mut events);
        assert!(metrics
            .render()
            .contains("seguard_rule_checkpoints_total{outcome=\"missing\"} 1"));
        checkpoints.save(&engine);
        checkpoints.close();
        let bytes = fs::read(dir.path().join(FILE)).unwrap();
        assert!(!dir.path().join(TEMP).exists());

        let checkpoints = Checkpoints::open(dir.path(), metrics.clone());
        checkpoints.restore(&config(), &mut events);
        assert!(metrics
            .render()
            .contains("seguard_rule_checkpoints_total{outcome=\"restored\"} 1"));

        let mut damaged = bytes.clone();
        let last = damaged.len() - 2;
        damaged[last] ^= 1;
        fs::write(dir.path().join(FILE), &damaged).unwrap();
        checkpoints.restore(&config(), &mut events);
        assert!(events.is_empty());
        assert!(metrics
            .render()
            .contains("seguard_rule_checkpoints_total{outcome=\"corrupt\"} 1"));
        assert!(!dir.path().join(FILE).exists());
        assert_eq!(fs::read(dir.path().join(CORRUPT)).unwrap(), damaged);
        checkpoints.close();
    }

    fn stuck_at(t0: chrono::DateTime<Utc>) -> Vec<Reading> {
        use crate::model::{Quality, Source, Value};
        [
            ("car_status", Value::Text("stopped".into())),
            ("door_zone", Value::Bool(false)),
            ("door_closed_locked", Value::Bool(true)),
            ("occupied", Value::Bool(true)),
        ]
        .into_iter()
        .map(|(metric, value)| Reading {
            equipment: "lift-1".into(),
            metric: metric.into(),
            value,
            unit: None,
            time: t0,
            quality: Quality::Good,
            source: Source::Mqtt,
        })
        .collect()
    }

    /// Restores from `dir` and lets 40 s pass after `t0`: the trapped raises.
    fn trapped_after_restore(dir: &Path, t0: chrono::DateTime<Utc>) -> Vec<AlarmEvent> {
        let checkpoints = Checkpoints::open(dir, Arc::new(Metrics::new()));
        let mut events = Vec::new();
        let mut engine = checkpoints.restore(&config(), &mut events);
        checkpoints.close();
        for s in 0..=40 {
            engine.tick(t0 + chrono::Duration::seconds(s), &mut events);
        }
        events.retain(|e| e.rule == "lift.trapped");
        events
    }

    #[test]
    fn readings_after_the_last_checkpoint_are_replayed_from_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints::open(dir.path(), Arc::new(Metrics::new()));
        let mut events = Vec::new();
        let mut engine = checkpoints.restore(&config(), &mut events);
        checkpoints.save(&engine);
        // The car stops after the checkpoint; the pipeline journals the readings, and the
        // process dies before the next checkpoint.
        let t0 = Utc::now() - chrono::Duration::seconds(5);
        let readings = stuck_at(t0);
        engine.on_readings(&readings, &mut events);
        checkpoints.journal(&engine, &readings);
        checkpoints.close();
        drop(checkpoints);
        let journal = dir.path().join(format!("{JOURNAL}1"));
        assert!(journal.exists(), "{:?}", journals(dir.path()));
        // A torn record at the end, as a crash in the middle of a write leaves it.
        let mut file = fs::OpenOptions::new().append(true).open(&journal).unwrap();
        file.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        drop(file);

        let raised = trapped_after_restore(dir.path(), t0);
        assert_eq!(raised.len(), 1, "{raised:?}");
        assert_eq!(raised[0].time, t0 + chrono::Duration::seconds(30));

        // The restore's own first checkpoint covers the journal, which then goes.
        let checkpoints = Checkpoints::open(dir.path(), Arc::new(Metrics::new()));
        let engine = checkpoints.restore(&config(), &mut Vec::new());
        checkpoints.save(&engine);
        checkpoints.close();
        assert!(!journal.exists(), "{:?}", journals(dir.path()));
        assert_eq!(trapped_after_restore(dir.path(), t0).len(), 1);
    }

    #[test]
    fn without_its_journal_the_checkpoint_alone_misses_the_stop() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints::open(dir.path(), Arc::new(Metrics::new()));
        let mut events = Vec::new();
        let mut engine = checkpoints.restore(&config(), &mut events);
        checkpoints.save(&engine);
        let t0 = Utc::now() - chrono::Duration::seconds(5);
        engine.on_readings(&stuck_at(t0), &mut events);
        checkpoints.journal(&engine, &stuck_at(t0));
        checkpoints.close();
        for (_, path) in journals(dir.path()) {
            fs::remove_file(path).unwrap();
        }
        assert!(trapped_after_restore(dir.path(), t0).is_empty());
    }

    #[test]
    fn a_journal_of_an_earlier_version_is_replayed() {
        // Before points were its unit, a record was the readings as a JSON array, each with
        // its equipment and an RFC 3339 time.
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints::open(dir.path(), Arc::new(Metrics::new()));
        let engine = checkpoints.restore(&config(), &mut Vec::new());
        checkpoints.save(&engine);
        checkpoints.close();
        let t0 = Utc::now() - chrono::Duration::seconds(5);
        let payload = serde_json::to_vec(&stuck_at(t0)).unwrap();
        assert!(payload.starts_with(b"[{\"equipment\":\"lift-1\""));
        let mut record = (payload.len() as u32).to_le_bytes().to_vec();
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        fs::write(dir.path().join(format!("{JOURNAL}1")), &record).unwrap();
        let (batches, complete) = decode_journal(&record);
        assert!(complete);
        assert_eq!(batches, vec![stuck_at(t0)]);

        let raised = trapped_after_restore(dir.path(), t0);
        assert_eq!(raised.len(), 1, "{raised:?}");
        assert_eq!(raised[0].time, t0 + chrono::Duration::seconds(30));
    }

    #[test]
    fn the_journal_keeps_what_the_rules_read_each_point_once() {
        use crate::model::{Quality, Value};
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints::open(dir.path(), Arc::new(Metrics::new()));
        let engine = checkpoints.restore(&config(), &mut Vec::new());
        checkpoints.save(&engine);
        let t0 = Utc::now() - chrono::Duration::seconds(5);
        let mut readings = stuck_at(t0);
        // Equipment without rules, and a reading of bad quality: the rules never see them.
        let mut other = readings[0].clone();
        other.equipment = "pv-9".into();
        other.value = Value::Number(2.5);
        let mut bad = readings[1].clone();
        bad.quality = Quality::Bad;
        readings.insert(2, other);
        readings.push(bad);
        checkpoints.journal(&engine, &readings);
        checkpoints.close();
        let bytes = fs::read(dir.path().join(format!("{JOURNAL}1"))).unwrap();
        let payload = String::from_utf8(bytes[8..].to_vec()).unwrap();
        assert_eq!(payload.matches("lift-1").count(), 1, "{payload}");
        assert!(!payload.contains("pv-9"), "{payload}");
        let (batches, complete) = decode_journal(&bytes);
        assert!(complete);
        assert_eq!(batches, vec![stuck_at(t0)]);
        assert_eq!(trapped_after_restore(dir.path(), t0).len(), 1);
    }

    #[test]
    fn a_state_slow_to_take_is_taken_less_often() {
        assert_eq!(interval(Duration::ZERO), rules::CHECKPOINT_MIN_INTERVAL);
        assert_eq!(interval(Duration::from_millis(100)), Duration::from_secs(5));
        assert_eq!(
            interval(Duration::from_secs(60)),
            rules::CHECKPOINT_HEARTBEAT
        );
    }
}
