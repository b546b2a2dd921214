//! The in-memory lane: the same interface as the durable one, bounded by a number of entries.
//! Not durable; for tests and for a gateway configured with `[outbox] kind = "memory"`.
//! When full, a telemetry lane makes the producer wait, and drops its oldest entries only during
//! an outage (`outage.rs`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::batch_wait::wait_for_batch;
use super::outage::Progress;
use super::Overflow;
use crate::metrics::Metrics;

pub struct MemoryLane<T> {
    name: String,
    capacity: usize,
    overflow: Overflow,
    entries: Mutex<VecDeque<(Instant, T)>>,
    /// Entries that the consumer holds in a peeked batch; a drop must not remove them.
    in_flight: Mutex<usize>,
    /// Entries dropped since the last `take_lost`, and since the lane was made.
    lost: AtomicU64,
    lost_total: AtomicU64,
    added: Notify,
    freed: Notify,
    progress: Progress,
    metrics: Arc<Metrics>,
}

impl<T: Clone> MemoryLane<T> {
    pub fn new(
        name: String,
        capacity: usize,
        overflow: Overflow,
        outage_after: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        MemoryLane {
            name,
            capacity: capacity.max(1),
            overflow,
            entries: Mutex::new(VecDeque::new()),
            in_flight: Mutex::new(0),
            lost: AtomicU64::new(0),
            lost_total: AtomicU64::new(0),
            added: Notify::new(),
            freed: Notify::new(),
            progress: Progress::new(outage_after),
            metrics,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("lane lock").len()
    }

    pub fn oldest_age(&self) -> Option<Duration> {
        let entries = self.entries.lock().expect("lane lock");
        entries.front().map(|(at, _)| at.elapsed())
    }

    pub fn take_lost(&self) -> u64 {
        self.lost.swap(0, Ordering::Relaxed)
    }

    pub fn lost_total(&self) -> u64 {
        self.lost_total.load(Ordering::Relaxed)
    }

    pub async fn push_all(&self, items: impl IntoIterator<Item = T>) {
        if self.len() == 0 {
            self.progress.mark();
        }
        let mut items = items.into_iter();
        // The next item to push, held while the lane waits for room.
        let mut next = items.next();
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            // As many as fit, under one lock.
            let done = {
                let mut entries = self.entries.lock().expect("lane lock");
                let now = Instant::now();
                let done = loop {
                    let Some(item) = next.take() else {
                        break true;
                    };
                    if entries.len() >= self.capacity && !self.drop_oldest(&mut entries) {
                        next = Some(item);
                        break false;
                    }
                    entries.push_back((now, item));
                    next = items.next();
                };
                self.metrics.queue_depth(&self.name, entries.len());
                done
            };
            // Wake the consumer before waiting: what is in the lane is its to take.
            self.added.notify_one();
            if done {
                return;
            }
            match self.overflow {
                Overflow::Wait => freed.await,
                // Backpressure until the consumer's silence becomes an outage.
                Overflow::DropOldest => match self.progress.until_outage() {
                    // In an outage with every entry in flight: only a confirm makes room.
                    wait if wait.is_zero() => freed.await,
                    wait => {
                        let _ = tokio::time::timeout(wait, freed).await;
                    }
                },
            }
        }
    }

    /// Makes room in a full lane by dropping its oldest entry not in flight: only a telemetry
    /// lane, and only while its consumer is in an outage. False when the push must wait.
    fn drop_oldest(&self, entries: &mut VecDeque<(Instant, T)>) -> bool {
        if self.overflow == Overflow::Wait || !self.progress.in_outage() {
            return false;
        }
        let in_flight = *self.in_flight.lock().expect("lane lock");
        if entries.len() <= in_flight {
            return false;
        }
        entries.remove(in_flight);
        self.lost.fetch_add(1, Ordering::Relaxed);
        self.lost_total.fetch_add(1, Ordering::Relaxed);
        self.metrics.dropped(&self.name, 1);
        true
    }

    pub async fn peek_batch(
        &self,
        max: usize,
        linger: Duration,
        shutdown: &CancellationToken,
    ) -> Vec<T> {
        if !wait_for_batch(&self.added, || self.len(), max, linger, shutdown).await {
            return Vec::new();
        }
        let entries = self.entries.lock().expect("lane lock");
        let batch: Vec<T> = entries.iter().take(max).map(|(_, t)| t.clone()).collect();
        *self.in_flight.lock().expect("lane lock") = batch.len();
        batch
    }

    pub fn confirm(&self, n: usize) {
        let mut entries = self.entries.lock().expect("lane lock");
        let n = n.min(entries.len());
        entries.drain(..n);
        if n > 0 {
            self.progress.mark();
        }
        *self.in_flight.lock().expect("lane lock") = 0;
        self.metrics.queue_depth(&self.name, entries.len());
        drop(entries);
        self.freed.notify_waiters();
    }

    pub fn release(&self) {
        *self.in_flight.lock().expect("lane lock") = 0;
    }
}
