//! The few Prometheus types the live side needs, written as text by
//! `/metrics`: a latency histogram with fixed buckets, and a frame-rate
//! meter. Lock-free on the recording side, as cameras record every frame.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bucket bounds in seconds: from a millisecond (tracking) to seconds (a
/// face-heavy frame on a slow board, or waiting for a slow camera).
const BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative; summed when
    /// written).
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BOUNDS.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// The `_bucket`, `_sum` and `_count` lines of `name{labels}`; `labels`
    /// is `key="value"` pairs without braces.
    pub fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in BOUNDS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Events per second over the last few seconds (a gauge: Prometheus' own
/// `rate()` needs two scrapes, a person looking at `/metrics` has one).
#[derive(Debug)]
pub struct RateMeter {
    state: Mutex<RateState>,
}

#[derive(Debug)]
struct RateState {
    since: Instant,
    events: u64,
    rate: f64,
}

/// How long events are gathered before the rate is updated.
const RATE_PERIOD: Duration = Duration::from_secs(5);

impl Default for RateMeter {
    fn default() -> Self {
        Self {
            state: Mutex::new(RateState {
                since: Instant::now(),
                events: 0,
                rate: 0.0,
            }),
        }
    }
}

impl RateMeter {
    pub fn tick(&self) {
        self.add(1);
    }

    /// `n` events at once.
    pub fn add(&self, n: u64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.events += n;
        let elapsed = s.since.elapsed();
        if elapsed >= RATE_PERIOD {
            s.rate = s.events as f64 / elapsed.as_secs_f64();
            s.events = 0;
            s.since = Instant::now();
        }
    }

    /// The last full period's rate; 0 once nothing has come for two periods.
    pub fn rate(&self) -> f64 {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.since.elapsed() >= 2 * RATE_PERIOD {
            0.0
        } else {
            s.rate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_lines_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(800));
        h.observe(Duration::from_millis(40));
        h.observe(Duration::from_secs(9));
        let mut out = String::new();
        h.write(&mut out, "x_seconds", "stage=\"detect\"");
        assert!(
            out.contains("x_seconds_bucket{stage=\"detect\",le=\"0.001\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{stage=\"detect\",le=\"0.05\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{stage=\"detect\",le=\"5\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{stage=\"detect\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_count{stage=\"detect\"} 3\n"),
            "{out}"
        );
    }
}
