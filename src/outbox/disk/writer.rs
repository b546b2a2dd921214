//! The writer thread: appends, group commit, fsync, rotation and deletion of segments.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{now_ms, segment, Command, SegMeta, Shared, INDEX_EVERY, LEDGER_SYNC_EVERY};
use crate::outbox::{ledger, FsyncPolicy, OutboxError, Overflow};

/// The writer thread: owns the segment being written.
pub(super) struct Writer<T> {
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
    pub(super) fn new(shared: Arc<Shared<T>>) -> Self {
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

    pub(super) fn run(mut self, commands: mpsc::Receiver<Command<T>>) {
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
