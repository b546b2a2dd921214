//! The in-memory lane: the same interface as the durable one, bounded by a number of entries.
//! Not durable; for tests and for a gateway configured without `[outbox]`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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
    metrics: Arc<Metrics>,
}

impl<T: Clone> MemoryLane<T> {
    pub fn new(name: String, capacity: usize, overflow: Overflow, metrics: Arc<Metrics>) -> Self {
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
        for item in items {
            loop {
                let freed = self.freed.notified();
                if self.try_push(&item) {
                    break;
                }
                freed.await;
            }
        }
        self.added.notify_one();
    }

    /// Returns false when the lane waits for room (incident lane full).
    fn try_push(&self, item: &T) -> bool {
        let mut entries = self.entries.lock().expect("lane lock");
        if entries.len() >= self.capacity {
            match self.overflow {
                Overflow::Wait => return false,
                Overflow::DropOldest => {
                    let in_flight = *self.in_flight.lock().expect("lane lock");
                    if entries.len() > in_flight {
                        entries.remove(in_flight);
                        self.lost.fetch_add(1, Ordering::Relaxed);
                        self.lost_total.fetch_add(1, Ordering::Relaxed);
                        self.metrics.dropped(&self.name, 1);
                    } else {
                        return false;
                    }
                }
            }
        }
        entries.push_back((Instant::now(), item.clone()));
        self.metrics.queue_depth(&self.name, entries.len());
        true
    }

    pub async fn peek_batch(
        &self,
        max: usize,
        linger: Duration,
        shutdown: &CancellationToken,
    ) -> Vec<T> {
        loop {
            let added = self.added.notified();
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
            let added = self.added.notified();
            if self.len() >= max || shutdown.is_cancelled() {
                break;
            }
            tokio::select! {
                _ = added => {}
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.cancelled() => break,
            }
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
        *self.in_flight.lock().expect("lane lock") = 0;
        self.metrics.queue_depth(&self.name, entries.len());
        drop(entries);
        self.freed.notify_waiters();
    }

    pub fn release(&self) {
        *self.in_flight.lock().expect("lane lock") = 0;
    }
}
