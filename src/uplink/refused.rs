//! What central refused, kept at the gateway. A message leaves the outbox lane at the broker's
//! PUBACK, before central has read it; so the central uplink remembers what it published
//! recently ([`Recent`]), and when central's notice on `{prefix}/{gateway}/rejections` names one
//! of those messages, the gateway keeps it with central's reason ([`Kept`]): in memory, and with
//! the durable outbox in `central-rejected.jsonl` in the outbox directory (one JSON line per
//! refusal, appended; compacted to the newest [`KEPT_MAX`] when it holds twice that), so it
//! survives a restart. `GET /api/v1/central/rejected` lists them.
//!
//! Both are bounded. [`Recent`]: [`RECENT_MAX_MESSAGES`] messages, none older than
//! [`RECENT_MAX_AGE`], at most [`RECENT_MAX_BYTES`] of message text, plus about 250 bytes of
//! bookkeeping each (the id twice, map and queue slots): under 19 MiB in all. The trapped
//! incident of `tests/central_trust.rs` is 1,003 bytes of JSON, so 10,000 incidents take about
//! 12 MiB. A notice that comes later than that still counts and is kept, without the message.
//! [`Kept`]: the newest [`KEPT_MAX`] refusals.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many published messages are remembered.
pub const RECENT_MAX_MESSAGES: usize = 10_000;
/// How long a published message is remembered: central answers within seconds.
pub const RECENT_MAX_AGE: Duration = Duration::from_secs(600);
/// How many bytes of published messages are remembered.
pub const RECENT_MAX_BYTES: usize = 16 << 20;
/// How many refusals are kept (in memory, and at least as many in the file).
pub const KEPT_MAX: usize = 1_000;
/// The file of refusals, in the outbox directory.
pub const FILE_NAME: &str = "central-rejected.jsonl";

/// The messages published to central recently, by id, as JSON (before sealing).
#[derive(Default)]
pub struct Recent {
    by_id: HashMap<String, Arc<[u8]>>,
    order: VecDeque<(Instant, String)>,
    bytes: usize,
}

impl Recent {
    /// Remembers a published message (once: a message published again keeps its first time).
    pub fn remember(&mut self, id: String, json: &[u8], now: Instant) {
        if self.by_id.contains_key(&id) {
            return;
        }
        self.bytes += json.len();
        self.by_id.insert(id.clone(), Arc::from(json));
        self.order.push_back((now, id));
        self.prune(now);
    }

    /// The message published with `id`, while it is remembered.
    pub fn get(&mut self, id: &str, now: Instant) -> Option<Arc<[u8]>> {
        self.prune(now);
        self.by_id.get(id).cloned()
    }

    fn prune(&mut self, now: Instant) {
        while let Some((at, id)) = self.order.front() {
            let over = self.order.len() > RECENT_MAX_MESSAGES
                || self.bytes > RECENT_MAX_BYTES
                || now.saturating_duration_since(*at) > RECENT_MAX_AGE;
            if !over {
                break;
            }
            if let Some(json) = self.by_id.remove(id) {
                self.bytes -= json.len();
            }
            self.order.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// One message central refused, with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refused {
    /// When the gateway heard of the refusal.
    pub time: DateTime<Utc>,
    /// `incidents` or `fills` (the topic kind).
    pub kind: String,
    pub id: Option<String>,
    /// Central's reason code (`bad_signature`, `malformed`...) and its words.
    pub reason: String,
    pub detail: String,
    /// Whether the notice was sealed with the gateway's key.
    pub verified: bool,
    /// The message as the gateway published it; `None` when the notice came after the uplink
    /// had forgotten it (see the module's bounds) or named no id.
    pub message: Option<serde_json::Value>,
}

/// The refusals kept, oldest first, and their file when the outbox is on disk.
#[derive(Default)]
pub struct Kept {
    list: VecDeque<Refused>,
    file: Option<PathBuf>,
    lines_in_file: usize,
}

impl Kept {
    /// Keeps refusals in `dir`'s [`FILE_NAME`] from now on, after reading what it holds (a line
    /// that does not read, as a torn last line after a crash, is skipped and logged).
    pub fn open(&mut self, dir: &Path) -> std::io::Result<()> {
        let path = dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        self.lines_in_file = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.lines_in_file += 1;
            match serde_json::from_str::<Refused>(line) {
                Ok(r) => self.push(r),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "a refusal line does not read; skipped")
                }
            }
        }
        if !text.is_empty() && !text.ends_with('\n') {
            // End the torn line, so the next refusal starts a line of its own.
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)?
                .write_all(b"\n")?;
        }
        self.file = Some(path);
        Ok(())
    }

    /// Keeps a refusal; in the file too when there is one (a failed write is logged: the
    /// refusal is still counted, alarmed and listed).
    pub fn add(&mut self, refused: Refused) {
        if let Some(path) = self.file.clone() {
            if let Err(e) = self.write(&path, &refused) {
                tracing::error!(file = %path.display(), error = %e, "cannot keep central's refusal on disk");
            }
        }
        self.push(refused);
    }

    fn push(&mut self, refused: Refused) {
        self.list.push_back(refused);
        while self.list.len() > KEPT_MAX {
            self.list.pop_front();
        }
    }

    fn write(&mut self, path: &Path, refused: &Refused) -> std::io::Result<()> {
        if self.lines_in_file + 1 > 2 * KEPT_MAX {
            // Compact: the newest refusals (this one included), then replace the file whole.
            let tmp = path.with_extension("jsonl.tmp");
            let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            let keep = self.list.len().min(KEPT_MAX - 1);
            for r in self.list.iter().skip(self.list.len() - keep) {
                out.write_all(&line(r))?;
            }
            out.write_all(&line(refused))?;
            out.into_inner().map_err(|e| e.into_error())?.sync_data()?;
            std::fs::rename(&tmp, path)?;
            self.lines_in_file = keep + 1;
            return Ok(());
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        file.write_all(&line(refused))?;
        self.lines_in_file += 1;
        Ok(())
    }

    /// The refusals kept, oldest first.
    pub fn list(&self) -> Vec<Refused> {
        self.list.iter().cloned().collect()
    }
}

fn line(r: &Refused) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(r).expect("a refusal serializes");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(n: usize) -> Refused {
        Refused {
            time: Utc::now(),
            kind: "incidents".into(),
            id: Some(format!("id-{n}")),
            reason: "malformed".into(),
            detail: "d".into(),
            verified: true,
            message: Some(serde_json::json!({ "n": n })),
        }
    }

    #[test]
    fn recent_messages_are_bounded_by_count_and_age() {
        let mut recent = Recent::default();
        let start = Instant::now();
        for n in 0..RECENT_MAX_MESSAGES + 5 {
            recent.remember(format!("id-{n}"), b"{}", start);
        }
        assert_eq!(recent.len(), RECENT_MAX_MESSAGES);
        assert!(recent.get("id-4", start).is_none());
        assert_eq!(recent.get("id-5", start).as_deref(), Some(&b"{}"[..]));
        // Published again: remembered once.
        recent.remember("id-5".into(), b"{}", start);
        assert_eq!(recent.len(), RECENT_MAX_MESSAGES);
        let later = start + RECENT_MAX_AGE + Duration::from_secs(1);
        recent.remember("new".into(), b"[1]", later);
        assert!(recent.get("id-5", later).is_none());
        assert_eq!(recent.len(), 1);
        assert_eq!(recent.bytes, 3);
    }

    #[test]
    fn recent_messages_are_bounded_by_bytes() {
        let mut recent = Recent::default();
        let now = Instant::now();
        let big = vec![b' '; RECENT_MAX_BYTES / 4 + 1];
        for n in 0..4 {
            recent.remember(format!("id-{n}"), &big, now);
        }
        assert_eq!(recent.len(), 3);
        assert!(recent.bytes <= RECENT_MAX_BYTES);
    }

    #[test]
    fn refusals_survive_a_reopen_and_the_file_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut kept = Kept::default();
        kept.open(dir.path()).unwrap();
        for n in 0..2 * KEPT_MAX + 10 {
            kept.add(refused(n));
        }
        let path = dir.path().join(FILE_NAME);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 2 * KEPT_MAX, "{lines} lines");
        assert_eq!(kept.list().len(), KEPT_MAX);
        // A torn last line (a crash mid-write) is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"time\":")
            .unwrap();
        let mut reopened = Kept::default();
        reopened.open(dir.path()).unwrap();
        assert_eq!(reopened.list(), kept.list());
        assert_eq!(
            reopened.list().last().unwrap().id.as_deref(),
            Some(format!("id-{}", 2 * KEPT_MAX + 9).as_str())
        );
        // The next refusal starts a line of its own and reads after another reopen.
        reopened.add(refused(7_777));
        let mut again = Kept::default();
        again.open(dir.path()).unwrap();
        assert_eq!(again.list().last(), reopened.list().last());
    }
}
