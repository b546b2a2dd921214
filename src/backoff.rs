//! Exponential backoff with jitter, so a fleet of gateways does not retry in lockstep.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            current: min,
        }
    }

    /// The next wait: between half and all of the current step, which then doubles up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.current;
        self.current = (self.current * 2).min(self.max);
        let jitter = rand::rng().random_range(0.5..=1.0);
        step.mul_f64(jitter)
    }

    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let steps: Vec<Duration> = (0..4).map(|_| b.next_delay()).collect();
        for (got, full) in steps.iter().zip([100, 200, 400, 400]) {
            let full = Duration::from_millis(full);
            assert!(
                *got >= full / 2 && *got <= full,
                "{got:?} not within half of {full:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
