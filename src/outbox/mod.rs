//! Outbox lanes between the rules and the uplinks.
//!
//! This is the in-memory outbox; the durable disk outbox replaces its storage and keeps its
//! interface. A lane has one consumer, which peeks a batch, sends it, and confirms it; only a
//! confirmation removes entries.
//!
//! **Invariant:** an entry leaves a lane only when its receiver confirmed it, or when a
//! telemetry lane is full and drops its oldest entries, which is counted and logged.
//! **Invariant:** the incident lane never drops: when it is full, `push` waits, which holds back
//! the MQTT acknowledgements and so the broker keeps the input.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Telemetry: make room by dropping the oldest entries, counted.
    DropOldest,
    /// Incidents: wait for room.
    Wait,
}

pub struct Lane<T> {
    name: String,
    capacity: usize,
    overflow: Overflow,
    entries: Mutex<VecDeque<T>>,
    /// Entries that the consumer holds in a peeked batch; a drop must not remove them.
    in_flight: Mutex<usize>,
    added: Notify,
    freed: Notify,
    metrics: Arc<Metrics>,
}

impl<T: Clone> Lane<T> {
    pub fn new(
        name: impl Into<String>,
        capacity: usize,
        overflow: Overflow,
        metrics: Arc<Metrics>,
    ) -> Self {
        Lane {
            name: name.into(),
            capacity: capacity.max(1),
            overflow,
            entries: Mutex::new(VecDeque::new()),
            in_flight: Mutex::new(0),
            added: Notify::new(),
            freed: Notify::new(),
            metrics,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("lane lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends entries. A telemetry lane drops its oldest unsent entries to make room; an
    /// incident lane waits for room.
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
                        self.metrics.dropped(&self.name, 1);
                    } else {
                        return false;
                    }
                }
            }
        }
        entries.push_back(item.clone());
        self.metrics.queue_depth(&self.name, entries.len());
        true
    }

    /// Waits for at least one entry, then up to `linger` for `max` entries, and returns copies of
    /// the oldest ones (at most `max`). They stay in the lane until [`Lane::confirm`].
    /// Returns an empty batch when `shutdown` fires while the lane is empty.
    pub async fn peek_batch(
        &self,
        max: usize,
        linger: Duration,
        shutdown: &CancellationToken,
    ) -> Vec<T> {
        loop {
            let added = self.added.notified();
            if !self.is_empty() {
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
        let batch: Vec<T> = entries.iter().take(max).cloned().collect();
        *self.in_flight.lock().expect("lane lock") = batch.len();
        batch
    }

    /// The receiver confirmed the oldest `n` entries: remove them.
    pub fn confirm(&self, n: usize) {
        let mut entries = self.entries.lock().expect("lane lock");
        let n = n.min(entries.len());
        entries.drain(..n);
        *self.in_flight.lock().expect("lane lock") = 0;
        self.metrics.queue_depth(&self.name, entries.len());
        drop(entries);
        self.freed.notify_waiters();
    }

    /// The consumer gave up on its peeked batch without sending it; it stays queued.
    pub fn release(&self) {
        *self.in_flight.lock().expect("lane lock") = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(capacity: usize, overflow: Overflow) -> (Lane<u32>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        (
            Lane::new("test", capacity, overflow, metrics.clone()),
            metrics,
        )
    }

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest_and_counts_the_drop() {
        let (lane, metrics) = lane(3, Overflow::DropOldest);
        lane.push_all([1, 2, 3, 4, 5]).await;
        let batch = lane
            .peek_batch(10, Duration::ZERO, &CancellationToken::new())
            .await;
        assert_eq!(batch, vec![3, 4, 5]);
        assert_eq!(metrics.dropped_count("test"), 2);
    }

    #[tokio::test]
    async fn drop_oldest_spares_the_batch_being_sent() {
        let (lane, metrics) = lane(3, Overflow::DropOldest);
        lane.push_all([1, 2, 3]).await;
        let batch = lane
            .peek_batch(2, Duration::ZERO, &CancellationToken::new())
            .await;
        assert_eq!(batch, vec![1, 2]);
        lane.push_all([4]).await;
        lane.confirm(2);
        let rest = lane
            .peek_batch(10, Duration::ZERO, &CancellationToken::new())
            .await;
        assert_eq!(rest, vec![4]);
        assert_eq!(
            metrics.dropped_count("test"),
            1,
            "3 was dropped, not the in-flight 1 and 2"
        );
    }

    #[tokio::test]
    async fn entries_stay_until_confirmed() {
        let (lane, _) = lane(10, Overflow::Wait);
        lane.push_all([1, 2, 3]).await;
        let shutdown = CancellationToken::new();
        assert_eq!(
            lane.peek_batch(2, Duration::ZERO, &shutdown).await,
            vec![1, 2]
        );
        lane.release();
        assert_eq!(
            lane.peek_batch(2, Duration::ZERO, &shutdown).await,
            vec![1, 2]
        );
        lane.confirm(2);
        assert_eq!(lane.peek_batch(2, Duration::ZERO, &shutdown).await, vec![3]);
    }

    #[tokio::test]
    async fn a_full_wait_lane_blocks_until_confirmed() {
        let (lane, metrics) = lane(2, Overflow::Wait);
        let lane = Arc::new(lane);
        lane.push_all([1, 2]).await;
        let pusher = tokio::spawn({
            let lane = lane.clone();
            async move { lane.push_all([3]).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !pusher.is_finished(),
            "push must wait while the lane is full"
        );
        let shutdown = CancellationToken::new();
        lane.peek_batch(1, Duration::ZERO, &shutdown).await;
        lane.confirm(1);
        pusher.await.unwrap();
        assert_eq!(
            lane.peek_batch(10, Duration::ZERO, &shutdown).await,
            vec![2, 3]
        );
        assert_eq!(metrics.dropped_count("test"), 0);
    }
}
