//! Reconnect delays for the long-lived connections (cameras, the MQTT
//! broker): exponential from `min` to `max`, with up to 25% jitter so that
//! boxes restarted together by a power cut do not reconnect in step.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    /// Seeded per process by the standard library; jitter needs no better.
    random: RandomState,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            attempt: 0,
            random: RandomState::new(),
        }
    }

    /// The delay before the next attempt; each call doubles the base.
    pub fn next_delay(&mut self) -> Duration {
        let base = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = self.random.hash_one(self.attempt) % 1000;
        (base + base.mul_f64(jitter as f64 / 4000.0)).min(self.max)
    }

    /// After a connection that worked: the next failure starts from `min`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_bounded_jitter_and_resets() {
        let (min, max) = (Duration::from_millis(500), Duration::from_secs(30));
        let mut b = Backoff::new(min, max);
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let base = (min * (1 << i)).min(max);
            assert!(
                *d >= base && *d <= (base.mul_f64(1.25)).min(max),
                "{i}: {d:?}"
            );
        }
        assert_eq!(delays[11], max);
        b.reset();
        assert!(b.next_delay() <= min.mul_f64(1.25));
    }
}
