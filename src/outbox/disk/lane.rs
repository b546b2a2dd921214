//! The lane's face: what the pipeline and the uplinks call.

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

use super::read::{read_plan, ReadOutcome, SegRead};
use super::recovery::{lock_dir, recover};
use super::writer::Writer;
use super::{now_ms, segment, Command, Shared, State, MIN_SEGMENT_BYTES};
use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::outbox::batch_wait::wait_for_batch;
use crate::outbox::outage::Progress;
use crate::outbox::rate::TokenBucket;
use crate::outbox::{ledger, LaneOptions, OutboxError, Overflow, Recovery};

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
        let dir = root.join(crate::outbox::lane_dir_name(&name));
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
            .name(format!("outbox-{}", crate::outbox::lane_dir_name(&name)))
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
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
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
            let retry = backoff.next_delay();
            tracing::error!(lane = %shared.name, error = %failure, retry_in_ms = retry.as_millis() as u64, "outbox write failed; the input is held back until it succeeds");
            tokio::time::sleep(retry).await;
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
            if !wait_for_batch(&shared.added, || self.len(), max, linger, shutdown).await {
                return Vec::new();
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
        // Bounds what is decoded at once (the cache and one read), whatever the consumer asks.
        let from_disk = n.min(shared.options.disk_read_entries.max(1));
        // One record more than asked for, to know the age of the oldest entry after this batch.
        let ahead = from_disk.saturating_add(1);
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
        if entries.len() > from_disk {
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
        // The read reached the cache: the rest of the batch comes from there.
        if batch.len() < from_disk && read.errors.is_empty() {
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
