//! The one rate-limited logger of every role: a warning that can repeat (a refused message, a
//! failing uplink) is logged at most once per period per key, saying how many were suppressed
//! since the last one, so a flood never drowns the log and never goes silent either. The
//! counters beside it (`metrics.rs`, central's metrics) count every occurrence.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one key may log.
pub const LOG_PERIOD: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct LogLimiter {
    /// Per key: when it last logged, and how many were suppressed since.
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogLimiter {
    /// Calls `log` with the number suppressed since the last call for `key`, unless `key`
    /// logged less than [`LOG_PERIOD`] ago (then it only counts one more suppressed).
    pub fn log(&self, key: &'static str, log: impl FnOnce(u64)) {
        let mut last = self.last.lock().expect("log limiter lock");
        let now = Instant::now();
        let suppressed = match last.get_mut(key) {
            Some((at, n)) if now.duration_since(*at) < LOG_PERIOD => {
                *n += 1;
                return;
            }
            Some((_, n)) => *n,
            None => 0,
        };
        last.insert(key, (now, 0));
        drop(last);
        log(suppressed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_logs_once_per_period_and_counts_the_rest() {
        let limiter = LogLimiter::default();
        let mut logged = Vec::new();
        for _ in 0..3 {
            limiter.log("a", |n| logged.push(("a", n)));
        }
        limiter.log("b", |n| logged.push(("b", n)));
        assert_eq!(logged, [("a", 0), ("b", 0)]);
        // A period later, "a" logs again with the two it held back.
        let earlier = Instant::now() - LOG_PERIOD;
        limiter.last.lock().unwrap().get_mut("a").unwrap().0 = earlier;
        limiter.log("a", |n| logged.push(("a", n)));
        assert_eq!(logged, [("a", 0), ("b", 0), ("a", 2)]);
    }
}
