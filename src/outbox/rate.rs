//! The drain-rate token bucket: at most `rate` entries per second, bursts up to one second.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// Starts full, so a lane with a backlog sends one second's worth at once and then paces.
    pub fn new(rate_per_s: u32) -> Self {
        let rate = f64::from(rate_per_s.max(1));
        TokenBucket {
            rate,
            tokens: rate,
            updated: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.updated = now;
    }

    /// How many whole tokens are available now.
    pub fn available(&mut self, now: Instant) -> usize {
        self.refill(now);
        self.tokens.max(0.0) as usize
    }

    pub fn take(&mut self, n: usize, now: Instant) {
        self.refill(now);
        self.tokens -= n as f64;
    }

    /// Gives back tokens for entries handed out but not sent (`release`).
    pub fn give_back(&mut self, n: usize, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + n as f64).min(self.rate);
    }

    /// How long until `n` tokens (capped at one second's worth) are available.
    pub fn wait_for(&mut self, n: usize, now: Instant) -> Duration {
        self.refill(now);
        let want = (n as f64).min(self.rate);
        if self.tokens >= want {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((want - self.tokens) / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_at_the_rate_after_a_one_second_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket {
            rate: 1000.0,
            tokens: 1000.0,
            updated: start,
        };
        assert_eq!(bucket.available(start), 1000);
        bucket.take(1000, start);
        assert_eq!(bucket.available(start), 0);
        assert_eq!(bucket.wait_for(250, start), Duration::from_millis(250));
        let later = start + Duration::from_millis(500);
        assert_eq!(bucket.available(later), 500);
        assert_eq!(bucket.available(later + Duration::from_secs(10)), 1000);
    }
}
