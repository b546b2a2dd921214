//! The rule-state checkpoint file of a gateway with the durable outbox: restored at start,
//! offered by the pipeline after every step, written atomically on a thread of its own. What it
//! holds, when it is written and what a stale or corrupt one does are specified in
//! `src/rules/checkpoint.rs`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use chrono::Utc;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::AlarmEvent;
use crate::rules::{self, frame_checkpoint, Engine};

pub const FILE: &str = "rules.checkpoint";
const TEMP: &str = "rules.checkpoint.tmp";
const CORRUPT: &str = "rules.checkpoint.corrupt";

/// What the writer thread is handed: the newest file to write (an older one not yet written
/// is replaced), and whether to stop once it is written.
#[derive(Default)]
struct Slot {
    next: Option<Vec<u8>>,
    closed: bool,
}

struct Throttle {
    checked: Option<Instant>,
    written: Option<Instant>,
    body: Vec<u8>,
}

pub struct Checkpoints {
    dir: PathBuf,
    metrics: Arc<Metrics>,
    slot: Arc<(Mutex<Slot>, Condvar)>,
    throttle: Mutex<Throttle>,
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
            }),
            writer: Mutex::new(Some(writer)),
        }
    }

    /// The engine for `config` with the saved state taken over, or a fresh one; the clears of
    /// alarms that end go to `events`.
    pub fn restore(&self, config: &Config, events: &mut Vec<AlarmEvent>) -> Engine {
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
            Ok((engine, outcome)) => {
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

    /// Called after every pipeline step, once its events are in the outbox: queues the state
    /// when it changed and [`rules::CHECKPOINT_MIN_INTERVAL`] passed, or when
    /// [`rules::CHECKPOINT_HEARTBEAT`] passed.
    pub fn offer(&self, engine: &Engine) {
        let now = Instant::now();
        let mut throttle = self.throttle.lock().expect("checkpoint throttle lock");
        if throttle
            .checked
            .is_some_and(|t| now.duration_since(t) < rules::CHECKPOINT_MIN_INTERVAL)
        {
            return;
        }
        throttle.checked = Some(now);
        let body = engine.checkpoint_body();
        let beat = throttle
            .written
            .is_none_or(|t| now.duration_since(t) >= rules::CHECKPOINT_HEARTBEAT);
        if body == throttle.body && !beat {
            return;
        }
        self.queue(frame_checkpoint(&body, Utc::now()));
        throttle.written = Some(now);
        throttle.body = body;
    }

    /// Queues the state now, whatever the throttle says (the pipeline stops).
    pub fn save(&self, engine: &Engine) {
        let mut throttle = self.throttle.lock().expect("checkpoint throttle lock");
        let body = engine.checkpoint_body();
        self.queue(frame_checkpoint(&body, Utc::now()));
        let now = Instant::now();
        throttle.checked = Some(now);
        throttle.written = Some(now);
        throttle.body = body;
    }

    fn queue(&self, file: Vec<u8>) {
        let (lock, wake) = &*self.slot;
        let mut slot = lock.lock().expect("checkpoint slot lock");
        slot.next = Some(file);
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

fn write_loop(dir: &Path, slot: &(Mutex<Slot>, Condvar), metrics: &Metrics) {
    let (lock, wake) = slot;
    loop {
        let file = {
            let mut slot = lock.lock().expect("checkpoint slot lock");
            while slot.next.is_none() && !slot.closed {
                slot = wake.wait(slot).expect("checkpoint slot lock");
            }
            match slot.next.take() {
                Some(file) => file,
                None => return,
            }
        };
        match write_atomic(dir, &file) {
            Ok(()) => metrics.rule_checkpoint_written(),
            Err(e) => metrics.rule_checkpoint_write_failed(&e.to_string()),
        }
    }
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
}
