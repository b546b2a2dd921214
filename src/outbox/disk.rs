//! The durable lane: segment files, the ledger, and the writer thread. Spec in `outbox`.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

use super::outage::Progress;
use super::rate::TokenBucket;
use super::{ledger, segment, FsyncPolicy, LaneOptions, OutboxError, Overflow, Recovery};
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

pub struct DiskLane<T> {
    shared: Arc<Shared<T>>,
    commands: Mutex<Option<mpsc::Sender<Command<T>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// `{lane}/lock`, exclusively locked (flock) while the lane is open: a second process (or
    /// a second open in this one) on the same directory is refused instead of corrupting it.
    _lock: File,
}

impl<T> Drop for DiskLane<T> {
    /// Without [`DiskLane::close`], dropping is like a process crash: the writer stops after
    /// the command at hand, with no extra fsync.
    fn drop(&mut self) {
        if let Ok(mut commands) = self.commands.lock() {
            commands.take();
        }
        if let Some(writer) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = writer.join();
        }
    }
}

impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> DiskLane<T> {
    pub fn open(
        root: &Path,
        name: String,
        options: LaneOptions,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, Recovery), OutboxError> {
        let dir = root.join(super::lane_dir_name(&name));
        let lock = lock_dir(&name, &dir)?;
        let segment_bytes = options
            .segment_bytes
            .min(options.quota_bytes / 8)
            .max(MIN_SEGMENT_BYTES);
        let bucket = options.drain_rate.map(TokenBucket::new);
        let progress = Progress::new(options.timing.outage_after);
        let shared = Arc::new(Shared {
            name: name.clone(),
            dir: dir.clone(),
            options,
            segment_bytes,
            metrics,
            state: Mutex::new(State {
                segments: VecDeque::new(),
                head: 0,
                next_seq: 0,
                cache: VecDeque::new(),
                in_flight: None,
                reading_from: None,
                next_hint: None,
                reserved: 0,
                disk_bytes: 0,
                lost: 0,
                lost_total: 0,
                bucket,
            }),
            added: Notify::new(),
            freed: Notify::new(),
            progress,
        });
        let recovery = recover(&shared)?;
        let (tx, rx) = mpsc::channel();
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name(format!("outbox-{}", super::lane_dir_name(&name)))
            .spawn(move || Writer::new(writer_shared).run(rx))
            .map_err(|e| shared.io("start the writer thread for", &dir, e))?;
        Ok((
            DiskLane {
                shared,
                commands: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                _lock: lock,
            },
            recovery,
        ))
    }

    pub fn len(&self) -> usize {
        self.shared.lock().len()
    }

    pub fn disk_bytes(&self) -> u64 {
        self.shared.lock().disk_bytes
    }

    pub fn take_lost(&self) -> u64 {
        std::mem::take(&mut self.shared.lock().lost)
    }

    pub fn lost_total(&self) -> u64 {
        self.shared.lock().lost_total
    }

    pub fn oldest_age(&self) -> Option<Duration> {
        let state = self.shared.lock();
        if state.len() == 0 {
            return None;
        }
        let head = state.head;
        let time = state
            .in_flight
            .as_ref()
            .and_then(|b| b.first().map(|e| e.1))
            .or_else(|| {
                state
                    .cache
                    .front()
                    .filter(|(seq, _, _)| *seq <= head)
                    .map(|e| e.1)
            })
            .or_else(|| state.next_hint.filter(|(seq, _)| *seq >= head).map(|e| e.1))
            .or_else(|| {
                let seg = state.segments.iter().find(|s| s.end_seq > head)?;
                seg.seek_for(head).1
            })?;
        Some(Duration::from_millis(now_ms().saturating_sub(time)))
    }

    fn send(&self, command: Command<T>) -> Result<(), Command<T>> {
        let commands = self.commands.lock().expect("outbox commands lock");
        match commands.as_ref() {
            Some(tx) => tx.send(command).map_err(|e| e.0),
            None => Err(command),
        }
    }

    pub async fn push_all(&self, items: Vec<T>) {
        let shared = &self.shared;
        let mut payloads = Vec::with_capacity(items.len());
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            match serde_json::to_vec(&item) {
                Ok(p) if p.len() <= segment::MAX_RECORD_BYTES => {
                    payloads.push(p);
                    kept.push(item);
                }
                Ok(p) => {
                    tracing::error!(lane = %shared.name, bytes = p.len(), "outbox entry too large; dropped");
                    shared.lock().add_lost(1);
                    shared.metrics.dropped(&shared.name, 1);
                }
                Err(e) => {
                    tracing::error!(lane = %shared.name, error = %e, "outbox entry does not serialize; dropped");
                    shared.lock().add_lost(1);
                    shared.metrics.dropped(&shared.name, 1);
                }
            }
        }
        if payloads.is_empty() {
            return;
        }
        let need: u64 = payloads
            .iter()
            .map(|p| (segment::RECORD_HEADER_BYTES + p.len()) as u64)
            .sum();
        if self.len() == 0 {
            shared.progress.mark();
        }
        // An incident lane always waits for room; a telemetry lane waits too (backpressure)
        // unless its consumer is in an outage, when the writer drops the oldest instead.
        let mut reserved = false;
        loop {
            if shared.options.overflow == Overflow::DropOldest && shared.progress.in_outage() {
                break;
            }
            let freed = shared.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut state = shared.lock();
                let fits = state.disk_bytes + state.reserved + need <= shared.options.quota_bytes;
                if fits || (state.len() == 0 && state.reserved == 0) {
                    state.reserved += need;
                    reserved = true;
                    break;
                }
            }
            match shared.options.overflow {
                Overflow::Wait => freed.await,
                Overflow::DropOldest => {
                    let _ = tokio::time::timeout(shared.progress.until_outage(), freed).await;
                }
            }
        }
        let mut items = kept;
        let mut retry = Duration::from_millis(10);
        loop {
            let (reply, answer) = oneshot::channel();
            let command = Command::Append {
                payloads,
                items,
                reply,
            };
            let failure = match self.send(command) {
                Ok(()) => match answer.await {
                    Ok(Ok(())) => break,
                    Ok(Err((e, p, i))) => {
                        payloads = p;
                        items = i;
                        e.to_string()
                    }
                    Err(_) => {
                        // The writer died holding the entries: never claim they are held.
                        tracing::error!(lane = %shared.name, "{}", writer_vanished(&shared.name));
                        return std::future::pending().await;
                    }
                },
                Err(command) => {
                    let Command::Append {
                        payloads: p,
                        items: i,
                        ..
                    } = command
                    else {
                        return std::future::pending().await;
                    };
                    payloads = p;
                    items = i;
                    "the writer thread is stopped".to_owned()
                }
            };
            tracing::error!(lane = %shared.name, error = %failure, retry_in_ms = retry.as_millis() as u64, "outbox write failed; the input is held back until it succeeds");
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(Duration::from_secs(1));
        }
        if reserved {
            let mut state = shared.lock();
            state.reserved = state.reserved.saturating_sub(need);
        }
        shared.added.notify_one();
    }

    pub async fn peek_batch(
        &self,
        max: usize,
        linger: Duration,
        shutdown: &CancellationToken,
    ) -> Vec<T> {
        let shared = &self.shared;
        let max = max.max(1);
        loop {
            loop {
                let added = shared.added.notified();
                if self.len() > 0 {
                    break;
                }
                tokio::select! {
                    _ = added => {}
                    _ = shutdown.cancelled() => return Vec::new(),
                }
            }
            let deadline = tokio::time::Instant::now() + linger;
            loop {
                let added = shared.added.notified();
                if self.len() >= max || shutdown.is_cancelled() {
                    break;
                }
                tokio::select! {
                    _ = added => {}
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = shutdown.cancelled() => break,
                }
            }
            let mut allowed = max;
            if !shutdown.is_cancelled() {
                loop {
                    let wait = {
                        let mut state = shared.lock();
                        let want = max.min(state.len()).max(1);
                        match state.bucket.as_mut() {
                            None => break,
                            Some(bucket) => {
                                let now = tokio::time::Instant::now();
                                let wait = bucket.wait_for(want, now);
                                if wait.is_zero() {
                                    allowed = max.min(bucket.available(now)).max(1);
                                    break;
                                }
                                wait
                            }
                        }
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
            let batch = self.read_batch(allowed).await;
            if batch.is_empty() {
                continue;
            }
            if let Some(bucket) = shared.lock().bucket.as_mut() {
                bucket.take(batch.len(), tokio::time::Instant::now());
            }
            return batch;
        }
    }

    /// Reads up to `n` entries from the head: from the disk below the cache, then from the cache.
    async fn read_batch(&self, n: usize) -> Vec<T> {
        let shared = &self.shared;
        let (head, limit, plan) = {
            let mut state = shared.lock();
            state.normalize_head();
            let head = state.head;
            if state.cache.front().is_some_and(|(seq, _, _)| *seq <= head) {
                let mut batch = Vec::with_capacity(n.min(4096));
                let mut flight = Vec::with_capacity(n.min(4096));
                for (seq, time, item) in state.cache.iter().take(n) {
                    batch.push(item.clone());
                    flight.push((*seq, *time));
                }
                state.in_flight = Some(flight);
                return batch;
            }
            let limit = state
                .cache
                .front()
                .map_or(state.next_seq, |(seq, _, _)| *seq);
            let plan: Vec<SegRead> = state
                .segments
                .iter()
                .filter(|s| s.overlaps(head, limit))
                .map(|s| SegRead {
                    path: segment::path(&shared.dir, s.first_seq),
                    first_seq: s.first_seq,
                    start: s.seek_for(head).0,
                    end: s.bytes,
                    known_corrupt: s.known_corrupt,
                })
                .collect();
            state.reading_from = Some(head);
            (head, limit, plan)
        };
        let name = shared.name.clone();
        // One record more than asked for, to know the age of the oldest entry after this batch.
        let ahead = n.saturating_add(1);
        let read = tokio::task::spawn_blocking(move || read_plan::<T>(&plan, head, limit, ahead))
            .await
            .unwrap_or_else(|e| {
                tracing::error!(lane = %name, error = %e, "outbox read task failed");
                ReadOutcome::default()
            });
        for error in &read.errors {
            tracing::error!(lane = %shared.name, error = %error, "outbox read failed; retrying at the next peek");
        }
        let mut state = shared.lock();
        state.reading_from = None;
        shared.count_corrupt(&mut state, read.corrupt);
        for first_seq in &read.corrupt_segments {
            if let Some(s) = state
                .segments
                .iter_mut()
                .find(|s| s.first_seq == *first_seq)
            {
                s.known_corrupt = true;
            }
        }
        let mut entries = read.entries;
        state.next_hint = None;
        if entries.len() > n {
            state.next_hint = entries.pop().map(|(seq, time, _)| (seq, time));
        }
        let mut batch = Vec::with_capacity(n.min(4096));
        let mut flight = Vec::with_capacity(n.min(4096));
        let mut next = head;
        for (seq, time, item) in entries {
            if seq >= state.head {
                batch.push(item);
                flight.push((seq, time));
                next = seq + 1;
            }
        }
        if batch.len() < n && read.errors.is_empty() {
            let from = next.max(limit);
            if state.cache.front().is_some_and(|(seq, _, _)| *seq <= from) {
                for (seq, time, item) in state.cache.iter() {
                    if batch.len() >= n {
                        break;
                    }
                    if *seq >= from {
                        batch.push(item.clone());
                        flight.push((*seq, *time));
                    }
                }
            }
        }
        if batch.is_empty() {
            // Nothing readable below `limit`: those sequence numbers were skipped as corrupt.
            if read.errors.is_empty() && read.complete && state.head == head {
                tracing::warn!(lane = %shared.name, from = head, to = limit, "no readable outbox record in this range; skipping it");
                state.head = limit;
                state.normalize_head();
            }
            return batch;
        }
        state.in_flight = Some(flight);
        batch
    }

    pub fn confirm(&self, n: usize) {
        let shared = &self.shared;
        {
            let mut state = shared.lock();
            let Some(batch) = state.in_flight.take() else {
                tracing::warn!(lane = %shared.name, n, "confirm without a peeked batch; ignored");
                return;
            };
            let n = n.min(batch.len());
            if n == 0 {
                return;
            }
            let new_head = if n == batch.len() {
                batch[n - 1].0 + 1
            } else {
                batch[n].0
            };
            if new_head <= state.head {
                return;
            }
            state.head = new_head;
            state.normalize_head();
            shared.progress.mark();
            if let Err(e) = ledger::replace(&shared.dir, state.head) {
                tracing::error!(lane = %shared.name, error = %e, "cannot write the outbox ledger; confirmed entries may be sent again after a restart");
            }
            shared.metrics.queue_depth(&shared.name, state.len());
        }
        let _ = self.send(Command::Confirmed);
        shared.freed.notify_waiters();
    }

    pub fn release(&self) {
        let mut state = self.shared.lock();
        if let Some(batch) = state.in_flight.take() {
            if let Some(bucket) = state.bucket.as_mut() {
                bucket.give_back(batch.len(), tokio::time::Instant::now());
            }
        }
    }

    pub async fn close(&self) -> Result<(), OutboxError> {
        let (reply, answer) = oneshot::channel();
        if self.send(Command::Close { reply }).is_err() {
            return Ok(());
        }
        let result = answer.await.unwrap_or_else(|_| {
            Err(OutboxError::WriterGone {
                lane: self.shared.name.clone(),
            })
        });
        self.commands.lock().expect("outbox commands lock").take();
        let writer = self.writer.lock().expect("outbox writer lock").take();
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        result
    }
}

fn writer_vanished(lane: &str) -> String {
    format!("the writer thread of {lane} stopped without answering")
}

/// Creates the lane directory and takes its lock file.
fn lock_dir(lane: &str, dir: &Path) -> Result<File, OutboxError> {
    let io = |action, path: &Path, source| OutboxError::Io {
        lane: lane.to_owned(),
        action,
        path: path.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(OutboxError::Locked {
            lane: lane.to_owned(),
            path,
        }),
        Err(fs::TryLockError::Error(e)) => Err(io("lock", &path, e)),
    }
}

/// Recovery on open: the steps of the module doc.
fn recover<T>(shared: &Shared<T>) -> Result<Recovery, OutboxError> {
    let dir = &shared.dir;
    fs::create_dir_all(dir).map_err(|e| shared.io("create", dir, e))?;
    let temp = dir.join(ledger::TEMP);
    if temp.exists() {
        fs::remove_file(&temp).map_err(|e| shared.io("remove", &temp, e))?;
    }
    let mut recovery = Recovery::default();
    let ledger_head = match ledger::read(dir).map_err(|e| shared.io("read", dir, e))? {
        ledger::Read::Missing => 0,
        ledger::Read::Head(head) => head,
        ledger::Read::Unreadable => {
            tracing::warn!(lane = %shared.name, "outbox ledger unreadable; replaying everything on disk");
            recovery.ledger_reset = true;
            0
        }
    };
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| shared.io("list", dir, e))? {
        let entry = entry.map_err(|e| shared.io("list", dir, e))?;
        if let Some(first) = entry
            .file_name()
            .to_str()
            .and_then(segment::parse_file_name)
        {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    let mut segments = VecDeque::new();
    let mut max_seq: Option<u64> = None;
    let mut changed_dir = false;
    for first in firsts {
        let path = segment::path(dir, first);
        let bytes = fs::read(&path).map_err(|e| shared.io("read", &path, e))?;
        let scan = segment::scan(&bytes, first);
        if scan.bad_header {
            tracing::error!(lane = %shared.name, path = %path.display(), "outbox segment header is damaged; reading its records anyway");
        }
        if scan.corrupt > 0 {
            tracing::error!(lane = %shared.name, path = %path.display(), skipped = scan.corrupt, "outbox segment has corrupt records; skipped them");
        }
        recovery.corrupt_records += scan.corrupt;
        let last = scan.records.last().map(|r| r.0);
        if let Some(last) = last {
            max_seq = Some(max_seq.map_or(last, |m| m.max(last)));
        }
        if !matches!(last, Some(last) if last >= ledger_head) {
            fs::remove_file(&path).map_err(|e| shared.io("remove", &path, e))?;
            changed_dir = true;
            continue;
        }
        if scan.valid_end < bytes.len() as u64 {
            let cut = bytes.len() as u64 - scan.valid_end;
            tracing::warn!(lane = %shared.name, path = %path.display(), bytes = cut, "outbox segment has a torn tail; truncated");
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| shared.io("open", &path, e))?;
            file.set_len(scan.valid_end)
                .and_then(|()| file.sync_all())
                .map_err(|e| shared.io("truncate", &path, e))?;
            recovery.truncated_bytes += cut;
        }
        let index = scan
            .records
            .iter()
            .enumerate()
            .filter(|(i, _)| (*i as u64).is_multiple_of(INDEX_EVERY))
            .map(|(_, r)| *r)
            .collect();
        segments.push_back(SegMeta {
            first_seq: first,
            end_seq: last.map_or(first, |l| l + 1),
            records: scan.records.len() as u64,
            bytes: scan.valid_end,
            index,
            sealed: true,
            known_corrupt: scan.corrupt > 0 || scan.bad_header,
        });
    }
    if changed_dir {
        ledger::sync_dir(dir).map_err(|e| shared.io("sync", dir, e))?;
    }
    let mut state = shared.lock();
    state.next_seq = max_seq.map_or(ledger_head, |m| (m + 1).max(ledger_head));
    state.head = ledger_head;
    state.disk_bytes = segments.iter().map(|s| s.bytes).sum();
    state.segments = segments;
    state.normalize_head();
    let corrupt = recovery.corrupt_records;
    shared.count_corrupt(&mut state, corrupt);
    recovery.entries = state.len();
    recovery.segments = state.segments.len();
    shared.metrics.queue_depth(&shared.name, recovery.entries);
    if recovery.entries > 0 || corrupt > 0 {
        tracing::info!(lane = %shared.name, entries = recovery.entries, segments = recovery.segments, corrupt, truncated_bytes = recovery.truncated_bytes, "outbox recovered");
    }
    Ok(recovery)
}

/// One segment to read from: where to start, and its valid length when the read was planned.
struct SegRead {
    path: PathBuf,
    first_seq: u64,
    start: u64,
    end: u64,
    known_corrupt: bool,
}

struct ReadOutcome<T> {
    entries: Vec<(u64, u64, T)>,
    corrupt: u64,
    corrupt_segments: Vec<u64>,
    errors: Vec<io::Error>,
    /// The read went through every planned segment up to `limit`.
    complete: bool,
}

impl<T> Default for ReadOutcome<T> {
    fn default() -> Self {
        ReadOutcome {
            entries: Vec::new(),
            corrupt: 0,
            corrupt_segments: Vec::new(),
            errors: Vec::new(),
            complete: false,
        }
    }
}

/// Reads and decodes up to `n` entries with `head <= seq < limit`, in order. Runs on the
/// blocking pool.
fn read_plan<T: DeserializeOwned>(
    plan: &[SegRead],
    head: u64,
    limit: u64,
    n: usize,
) -> ReadOutcome<T> {
    let mut out = ReadOutcome::default();
    let mut after: Option<u64> = head.checked_sub(1);
    for seg in plan {
        let mut corrupt_here = 0u64;
        match read_segment(seg, head, limit, n, &mut after, &mut out, &mut corrupt_here) {
            Ok(true) => {}
            Ok(false) => {
                if corrupt_here > 0 {
                    out.corrupt_segments.push(seg.first_seq);
                    if !seg.known_corrupt {
                        out.corrupt += corrupt_here;
                    }
                }
                return out;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {} // dropped meanwhile
            Err(e) => {
                out.errors.push(e);
                return out;
            }
        }
        if corrupt_here > 0 {
            out.corrupt_segments.push(seg.first_seq);
            if !seg.known_corrupt {
                out.corrupt += corrupt_here;
            }
        }
    }
    out.complete = true;
    out
}

/// Reads one segment; `Ok(false)` when the batch is full or `limit` was reached.
fn read_segment<T: DeserializeOwned>(
    seg: &SegRead,
    head: u64,
    limit: u64,
    n: usize,
    after: &mut Option<u64>,
    out: &mut ReadOutcome<T>,
    corrupt: &mut u64,
) -> io::Result<bool> {
    let mut file = File::open(&seg.path)?;
    let mut offset = seg.start;
    let mut chunk = READ_CHUNK;
    let mut buf = Vec::new();
    while offset < seg.end {
        let len = (seg.end - offset).min(chunk as u64) as usize;
        buf.resize(len, 0);
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut buf)?;
        let mut pos = 0usize;
        // Records before the head are read only to move past them: any sequence is fine there.
        let mut expect_after = if offset == seg.start { None } else { *after };
        loop {
            if pos >= buf.len() {
                break;
            }
            let remaining = seg.end - (offset + pos as u64);
            let at = match segment::parse_at(&buf, pos, expect_after) {
                // A length that runs past the valid end of the segment is a corrupt length.
                segment::At::Incomplete { need: Some(need) } if need as u64 > remaining => {
                    segment::At::Bad
                }
                at => at,
            };
            let found = match at {
                segment::At::Record(f) => f,
                segment::At::Incomplete { need } => {
                    if (buf.len() - pos) as u64 >= remaining {
                        // The planned end cuts a record header: the file changed under us.
                        return Ok(true);
                    }
                    if let Some(need) = need {
                        chunk = chunk.max(need);
                    }
                    break; // read on from this record
                }
                segment::At::Bad => match segment::resync(&buf, pos, expect_after) {
                    Some(f) => {
                        *corrupt += match expect_after {
                            Some(a) => f.seq.saturating_sub(a + 1).max(1),
                            None => 1,
                        };
                        f
                    }
                    None if offset + (buf.len() as u64) < seg.end => {
                        // The next good record may lie past this chunk: read the rest whole.
                        chunk = (seg.end - offset - pos as u64) as usize;
                        break;
                    }
                    None => {
                        *corrupt += 1;
                        return Ok(true);
                    }
                },
            };
            pos = found.end();
            expect_after = Some(found.seq);
            if found.seq < head {
                continue;
            }
            if found.seq >= limit {
                return Ok(false);
            }
            *after = Some(found.seq);
            match serde_json::from_slice::<T>(found.payload(&buf)) {
                Ok(item) => out.entries.push((found.seq, found.time_ms, item)),
                Err(e) => {
                    tracing::error!(seq = found.seq, error = %e, "outbox entry does not decode; skipped");
                    *corrupt += 1;
                }
            }
            if out.entries.len() >= n {
                return Ok(false);
            }
        }
        offset += pos as u64;
    }
    Ok(true)
}

/// The writer thread: owns the segment being written.
struct Writer<T> {
    shared: Arc<Shared<T>>,
    active: Option<(u64, File)>,
    data_dirty: bool,
    dir_dirty: bool,
    ledger_dirty: bool,
    last_sync: Instant,
    last_ledger_sync: Instant,
    buf: Vec<u8>,
}

impl<T: Clone + Send + 'static> Writer<T> {
    fn new(shared: Arc<Shared<T>>) -> Self {
        Writer {
            shared,
            active: None,
            data_dirty: false,
            dir_dirty: false,
            ledger_dirty: false,
            last_sync: Instant::now(),
            last_ledger_sync: Instant::now(),
            buf: Vec::new(),
        }
    }

    fn interval(&self) -> Option<Duration> {
        match self.shared.options.fsync {
            FsyncPolicy::Batch => None,
            FsyncPolicy::Interval(d) => Some(d),
        }
    }

    fn run(mut self, commands: mpsc::Receiver<Command<T>>) {
        loop {
            let data_due = match self.interval() {
                Some(interval) if self.data_dirty || self.dir_dirty => {
                    Some(interval.saturating_sub(self.last_sync.elapsed()))
                }
                _ => None,
            };
            let ledger_due = self
                .ledger_dirty
                .then(|| LEDGER_SYNC_EVERY.saturating_sub(self.last_ledger_sync.elapsed()));
            let first = match data_due.into_iter().chain(ledger_due).min() {
                Some(left) => match commands.recv_timeout(left) {
                    Ok(c) => Some(c),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                },
                None => match commands.recv() {
                    Ok(c) => Some(c),
                    Err(_) => return,
                },
            };
            // Group commit: take everything queued, write it all, sync once, then answer.
            let mut batch: Vec<Command<T>> = first.into_iter().collect();
            while let Ok(c) = commands.try_recv() {
                batch.push(c);
            }
            let mut written = Vec::new();
            let mut close = None;
            let mut confirmed = false;
            for command in batch {
                match command {
                    Command::Append {
                        payloads,
                        items,
                        reply,
                    } => match self.append(&payloads) {
                        Ok((first_seq, time_ms)) => {
                            written.push((reply, payloads, items, first_seq, time_ms))
                        }
                        Err(e) => {
                            let _ = reply.send(Err((e, payloads, items)));
                        }
                    },
                    Command::Confirmed => confirmed = true,
                    Command::Close { reply } => close = Some(reply),
                }
            }
            if confirmed {
                self.ledger_dirty = true;
                self.delete_confirmed();
            }
            let due = match self.interval() {
                None => true,
                Some(interval) => self.last_sync.elapsed() >= interval,
            } || (self.ledger_dirty
                && self.last_ledger_sync.elapsed() >= LEDGER_SYNC_EVERY);
            let synced = if due || close.is_some() {
                self.sync(close.is_some())
            } else {
                Ok(())
            };
            if let Err(e) = &synced {
                tracing::error!(lane = %self.shared.name, error = %e, "outbox fsync failed; the batch is written again in a new segment");
                self.active = None;
                if let Some(seg) = self.shared.lock().segments.back_mut() {
                    seg.sealed = true;
                }
            }
            let mut added = false;
            for (reply, payloads, items, first_seq, time_ms) in written {
                match &synced {
                    Ok(()) => {
                        self.cache(items, first_seq, time_ms);
                        added = true;
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let e = io::Error::new(e.kind(), e.to_string());
                        let _ = reply.send(Err((e, payloads, items)));
                    }
                }
            }
            if added {
                self.shared.added.notify_one();
            }
            if let Some(reply) = close {
                let _ = reply.send(self.close());
                return;
            }
        }
    }

    /// Keeps the newest entries decoded for the consumer.
    fn cache(&mut self, items: Vec<T>, first_seq: u64, time_ms: u64) {
        let mut state = self.shared.lock();
        let head = state.head;
        for (i, item) in items.into_iter().enumerate() {
            let seq = first_seq + i as u64;
            // Read from disk and confirmed meanwhile, or dropped: not cached.
            let dropped = !state.segments.iter().any(|s| s.overlaps(seq, seq + 1));
            if seq >= head && !dropped {
                state.cache.push_back((seq, time_ms, item));
            }
        }
        while state.cache.len() > self.shared.options.memory_entries {
            state.cache.pop_front();
        }
    }

    /// Writes the records of one `push_all` and returns their first sequence number and time.
    fn append(&mut self, payloads: &[Vec<u8>]) -> io::Result<(u64, u64)> {
        let need: u64 = payloads
            .iter()
            .map(|p| (segment::RECORD_HEADER_BYTES + p.len()) as u64)
            .sum();
        if self.shared.options.overflow == Overflow::DropOldest {
            self.make_room(need);
        }
        let rotate = {
            let state = self.shared.lock();
            match (&self.active, state.segments.back()) {
                (Some(_), Some(seg)) => {
                    seg.bytes >= self.shared.segment_bytes
                        || (seg.records > 0 && state.head >= state.next_seq)
                }
                _ => true,
            }
        };
        if rotate {
            self.rotate()?;
        }
        let time_ms = now_ms();
        let first_seq = self.shared.lock().next_seq;
        self.buf.clear();
        let mut offsets = Vec::with_capacity(payloads.len());
        for (i, payload) in payloads.iter().enumerate() {
            offsets.push(self.buf.len() as u64);
            segment::encode_record(&mut self.buf, first_seq + i as u64, time_ms, payload);
        }
        let Some((_, file)) = self.active.as_mut() else {
            return Err(io::Error::other("no active segment"));
        };
        if let Err(e) = file.write_all(&self.buf) {
            // The file may hold part of the batch: seal it at its last good length, and write
            // the retry into a new segment. Reads and recovery stop at that length.
            self.active = None;
            if let Some(seg) = self.shared.lock().segments.back_mut() {
                seg.sealed = true;
            }
            return Err(e);
        }
        self.data_dirty = true;
        let mut state = self.shared.lock();
        let n = payloads.len() as u64;
        let Some(seg) = state.segments.back_mut() else {
            return Err(io::Error::other("no active segment"));
        };
        let base = seg.bytes;
        for (i, offset) in offsets.iter().enumerate() {
            if (seg.records + i as u64).is_multiple_of(INDEX_EVERY) {
                seg.index
                    .push((first_seq + i as u64, base + offset, time_ms));
            }
        }
        seg.records += n;
        seg.end_seq = first_seq + n;
        seg.bytes += self.buf.len() as u64;
        state.disk_bytes += self.buf.len() as u64;
        state.next_seq = first_seq + n;
        let len = state.len();
        drop(state);
        self.shared.metrics.queue_depth(&self.shared.name, len);
        Ok((first_seq, time_ms))
    }

    /// Drops the oldest sealed segments that hold nothing in flight until `need` more bytes fit.
    fn make_room(&mut self, need: u64) {
        let quota = self.shared.options.quota_bytes;
        loop {
            let mut victims = Vec::new();
            let mut seal_active = false;
            {
                let mut state = self.shared.lock();
                while state.disk_bytes + need > quota {
                    let protected = state.protected();
                    let spared = |s: &SegMeta| protected.is_some_and(|(a, b)| s.overlaps(a, b));
                    let Some(i) = state.segments.iter().position(|s| s.sealed && !spared(s)) else {
                        let active_droppable = state
                            .segments
                            .back()
                            .is_some_and(|s| s.records > 0 && !spared(s));
                        seal_active = active_droppable && self.active.is_some();
                        break;
                    };
                    let Some(victim) = state.segments.remove(i) else {
                        break;
                    };
                    let dropped = if victim.end_seq <= state.head {
                        0
                    } else if victim.first_seq >= state.head {
                        victim.records
                    } else {
                        (victim.end_seq - state.head).min(victim.records)
                    };
                    state.disk_bytes -= victim.bytes;
                    state.add_lost(dropped);
                    state
                        .cache
                        .retain(|(seq, _, _)| *seq < victim.first_seq || *seq >= victim.end_seq);
                    state.normalize_head();
                    if dropped > 0 {
                        self.shared
                            .metrics
                            .dropped(&self.shared.name, dropped as usize);
                    }
                    victims.push(segment::path(&self.shared.dir, victim.first_seq));
                }
            }
            for path in &victims {
                self.remove_file(path);
            }
            if !seal_active {
                return;
            }
            self.seal_active();
        }
    }

    fn remove_file(&mut self, path: &Path) {
        match fs::remove_file(path) {
            Ok(()) => self.dir_dirty = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(lane = %self.shared.name, path = %path.display(), error = %e, "cannot delete an outbox segment")
            }
        }
    }

    fn seal_active(&mut self) {
        if let Some((_, file)) = self.active.take() {
            if self.data_dirty {
                if let Err(e) = file.sync_data() {
                    tracing::error!(lane = %self.shared.name, error = %e, "cannot sync an outbox segment");
                }
            }
            if let Some(seg) = self.shared.lock().segments.back_mut() {
                seg.sealed = true;
            }
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.seal_active();
        self.delete_confirmed();
        let first_seq = self.shared.lock().next_seq;
        let path = segment::path(&self.shared.dir, first_seq);
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        file.write_all(&segment::header())?;
        self.dir_dirty = true;
        self.data_dirty = true;
        let mut state = self.shared.lock();
        // An empty segment with the same first sequence (a failed earlier rotation) is replaced.
        if state
            .segments
            .back()
            .is_some_and(|s| s.first_seq == first_seq)
        {
            if let Some(old) = state.segments.pop_back() {
                state.disk_bytes -= old.bytes;
            }
        }
        state.segments.push_back(SegMeta {
            first_seq,
            end_seq: first_seq,
            records: 0,
            bytes: segment::HEADER_BYTES,
            index: Vec::new(),
            sealed: false,
            known_corrupt: false,
        });
        state.disk_bytes += segment::HEADER_BYTES;
        drop(state);
        self.active = Some((first_seq, file));
        Ok(())
    }

    /// Deletes the sealed segments wholly below the head; seals the active one when the lane is
    /// empty, so that it goes too.
    fn delete_confirmed(&mut self) {
        let empty = {
            let state = self.shared.lock();
            state.head >= state.next_seq && state.segments.back().is_some_and(|s| s.records > 0)
        };
        if empty {
            self.seal_active();
        }
        let victims: Vec<PathBuf> = {
            let mut state = self.shared.lock();
            let head = state.head;
            let mut victims = Vec::new();
            while state
                .segments
                .front()
                .is_some_and(|s| s.sealed && s.end_seq <= head)
            {
                if let Some(s) = state.segments.pop_front() {
                    state.disk_bytes -= s.bytes;
                    victims.push(segment::path(&self.shared.dir, s.first_seq));
                }
            }
            victims
        };
        for path in &victims {
            self.remove_file(path);
        }
        if !victims.is_empty() {
            self.shared.freed.notify_waiters();
        }
    }

    /// Syncs the segment and, when due or `all`, the ledger; then the directory if needed.
    fn sync(&mut self, all: bool) -> io::Result<()> {
        if self.data_dirty {
            if let Some((_, file)) = &self.active {
                file.sync_data()?;
            }
            self.data_dirty = false;
        }
        if self.ledger_dirty && (all || self.last_ledger_sync.elapsed() >= LEDGER_SYNC_EVERY) {
            ledger::sync(&self.shared.dir)?;
            self.ledger_dirty = false;
            self.dir_dirty = false;
            self.last_ledger_sync = Instant::now();
        }
        if self.dir_dirty {
            ledger::sync_dir(&self.shared.dir)?;
            self.dir_dirty = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    fn close(&mut self) -> Result<(), OutboxError> {
        let head = self.shared.lock().head;
        let dir = self.shared.dir.clone();
        ledger::replace(&dir, head).map_err(|e| self.shared.io("write the ledger in", &dir, e))?;
        self.ledger_dirty = true;
        self.data_dirty = true;
        self.sync(true)
            .map_err(|e| self.shared.io("sync", &dir, e))?;
        self.active = None;
        Ok(())
    }
}
