//! Telling an outage from a burst. A telemetry lane that is full drops its oldest entries only
//! during an outage; in a burst it makes the producer wait (backpressure: the MQTT
//! acknowledgements are held, so the broker keeps the input).
//!
//! An **outage** is a consumer that has made no progress for `outage_after` while entries wait:
//! no batch confirmed since the lane last went from empty to holding something, or since its
//! last confirm. A receiver that confirms, however slowly, is healthy, and the lane waits for
//! it. A receiver that is down, or answers only with errors, confirms nothing, and after
//! `outage_after` the lane starts dropping to keep its quota.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Progress {
    start: Instant,
    /// Milliseconds after `start` of the last progress.
    last_ms: AtomicU64,
    outage_after: Duration,
}

impl Progress {
    pub fn new(outage_after: Duration) -> Self {
        Progress {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            outage_after,
        }
    }

    /// The consumer confirmed entries, or the lane was empty (nothing to make progress on).
    pub fn mark(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// The consumer has been silent for `outage_after`: a full lane may drop.
    pub fn in_outage(&self) -> bool {
        self.silent_for() >= self.outage_after
    }

    /// How long a full lane waits for room before the silence becomes an outage.
    pub fn until_outage(&self) -> Duration {
        self.outage_after.saturating_sub(self.silent_for())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_becomes_an_outage_and_progress_ends_it() {
        let progress = Progress::new(Duration::from_millis(30));
        progress.mark();
        assert!(!progress.in_outage());
        assert!(progress.until_outage() > Duration::ZERO);
        std::thread::sleep(Duration::from_millis(40));
        assert!(progress.in_outage());
        assert_eq!(progress.until_outage(), Duration::ZERO);
        progress.mark();
        assert!(!progress.in_outage());
        assert!(Progress::new(Duration::ZERO).in_outage(), "0: drop at once");
    }
}
