//! The durable lane: segment files, the ledger, and the writer thread. Spec in `outbox`.
//!
//! - `lane.rs`: [`DiskLane`], what the pipeline and the uplinks call (push, peek, confirm).
//! - `read.rs`: reading a backlog from the segment files, on the blocking pool.
//! - `recovery.rs`: the lane directory's lock, and recovery on open.
//! - `writer.rs`: the writer thread, which owns the segment being written.
//!
//! This file holds what they share: the lane's state and the writer's commands.

mod lane;
mod read;
mod recovery;
mod writer;

pub use lane::DiskLane;

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{oneshot, Notify};

use super::outage::Progress;
use super::rate::TokenBucket;
use super::{segment, LaneOptions, OutboxError};
use crate::metrics::Metrics;

/// One sparse-index entry every this many records: a read seeks to at most this far before the
/// head, and the age of the oldest entry is exact to this many records when read from disk.
const INDEX_EVERY: u64 = 64;
/// Reads of a backlog go in chunks of this size.
const READ_CHUNK: usize = 1024 * 1024;
const MIN_SEGMENT_BYTES: u64 = 4096;
/// The ledger is fsynced at most this often (and on close): a power loss may replay the
/// confirms of this last period, a process crash none (the rename is done in `confirm`).
const LEDGER_SYNC_EVERY: Duration = Duration::from_secs(1);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the lane knows of one segment file.
#[derive(Debug)]
struct SegMeta {
    first_seq: u64,
    /// One past the last record's sequence number (`first_seq` while empty).
    end_seq: u64,
    records: u64,
    /// Valid length of the file: header and whole records.
    bytes: u64,
    /// (sequence, offset, append time) of every `INDEX_EVERY`-th record, the first included.
    index: Vec<(u64, u64, u64)>,
    sealed: bool,
    /// Corruption already counted: reads skip it without counting it again.
    known_corrupt: bool,
}

impl SegMeta {
    fn overlaps(&self, from: u64, to: u64) -> bool {
        self.first_seq < to && from < self.end_seq.max(self.first_seq + 1)
    }

    /// The index entry to start reading at for `seq`.
    fn seek_for(&self, seq: u64) -> (u64, Option<u64>) {
        match self.index.iter().rev().find(|(s, _, _)| *s <= seq) {
            Some(&(_, offset, time)) => (offset, Some(time)),
            None => (segment::HEADER_BYTES, None),
        }
    }
}

struct State<T> {
    segments: VecDeque<SegMeta>,
    /// The oldest sequence number not yet confirmed or dropped.
    head: u64,
    next_seq: u64,
    /// The newest entries, decoded: (sequence, append time, entry).
    cache: VecDeque<(u64, u64, T)>,
    /// The batch the consumer holds: (sequence, append time) of each entry.
    in_flight: Option<Vec<(u64, u64)>>,
    /// A peek is reading the disk from this sequence number: drops spare everything after it.
    reading_from: Option<u64>,
    /// (sequence, append time) of the record after the last batch read from disk: the age of
    /// the oldest entry once that batch is confirmed.
    next_hint: Option<(u64, u64)>,
    /// Bytes reserved by `push_all` calls of a `Wait` lane.
    reserved: u64,
    disk_bytes: u64,
    /// Entries lost (dropped or skipped) since the last `take_lost`.
    lost: u64,
    /// Entries lost since the lane opened; never reset.
    lost_total: u64,
    bucket: Option<TokenBucket>,
}

impl<T> State<T> {
    fn add_lost(&mut self, n: u64) {
        self.lost += n;
        self.lost_total += n;
    }

    fn len(&self) -> usize {
        let mut n = 0u64;
        for s in &self.segments {
            if s.end_seq <= self.head {
                continue;
            }
            n += if s.first_seq >= self.head {
                s.records
            } else {
                (s.end_seq - self.head).min(s.records)
            };
        }
        n as usize
    }

    /// Moves the head out of gaps (dropped segments, skipped records at a segment's start) and
    /// forgets cached entries below it.
    fn normalize_head(&mut self) {
        match self.segments.iter().find(|s| s.end_seq > self.head) {
            Some(s) if s.first_seq > self.head => self.head = s.first_seq,
            Some(_) => {}
            None => self.head = self.head.max(self.next_seq),
        }
        while self
            .cache
            .front()
            .is_some_and(|(seq, _, _)| *seq < self.head)
        {
            self.cache.pop_front();
        }
    }

    /// The protected range of sequence numbers: the batch in flight and a disk read in progress.
    fn protected(&self) -> Option<(u64, u64)> {
        let flight = self.in_flight.as_ref().and_then(|b| {
            let first = b.first()?.0;
            let last = b.last()?.0;
            Some((first, last + 1))
        });
        match (flight, self.reading_from) {
            (_, Some(from)) => Some((from.min(flight.map_or(from, |f| f.0)), u64::MAX)),
            (f, None) => f,
        }
    }
}

struct Shared<T> {
    name: String,
    dir: PathBuf,
    options: LaneOptions,
    segment_bytes: u64,
    metrics: Arc<Metrics>,
    state: Mutex<State<T>>,
    added: Notify,
    freed: Notify,
    /// When the consumer last made progress: a full telemetry lane drops only in an outage.
    progress: Progress,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().expect("outbox lane lock")
    }

    fn io(&self, action: &'static str, path: &Path, source: io::Error) -> OutboxError {
        OutboxError::Io {
            lane: self.name.clone(),
            action,
            path: path.to_owned(),
            source,
        }
    }

    fn count_corrupt(&self, state: &mut State<T>, n: u64) {
        if n > 0 {
            state.add_lost(n);
            self.metrics.outbox_skipped(&self.name, n);
        }
    }
}

type AppendReply<T> = oneshot::Sender<Result<(), (io::Error, Vec<Vec<u8>>, Vec<T>)>>;

enum Command<T> {
    Append {
        payloads: Vec<Vec<u8>>,
        items: Vec<T>,
        reply: AppendReply<T>,
    },
    /// The ledger was replaced: sync it per policy, delete wholly confirmed segments.
    Confirmed,
    Close {
        reply: oneshot::Sender<Result<(), OutboxError>>,
    },
}
