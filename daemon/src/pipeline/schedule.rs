//! Which decoded frames are analysed. Sample *i* is the frame at video time
//! `i * interval`; between samples the tracker still needs `min_track_fps`
//! frames a second, so those frames are detected and tracked but not
//! reported. Every other frame is decoded and dropped, before its
//! conversion to RGB: a frame given an empty slot leaves the schedule as it
//! was, so a copy of it asked about every frame at the decoder gives the
//! job's schedule the same answers on the frames that pass
//! (`Decoder::skip_unused`).

use std::ops::Range;

/// What to do with one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The samples this frame stands for (several when `interval` is shorter
    /// than a frame), often none.
    pub samples: Range<usize>,
    /// Detect and track this frame.
    pub track: bool,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    interval_ms: u64,
    track_period_ms: u64,
    /// A frame stands for the instants within half a frame of its timestamp.
    half_frame_ms: u64,
    next_sample: usize,
    next_track_ms: u64,
}

impl Schedule {
    pub fn new(interval_ms: u64, min_track_fps: f64, fps: Option<f64>) -> Self {
        let track_period_ms =
            ((1000.0 / min_track_fps).floor() as u64).clamp(1, interval_ms.max(1));
        let half_frame_ms = fps
            .filter(|f| *f > 0.0)
            .map_or(0, |f| (500.0 / f).floor() as u64);
        Self {
            interval_ms: interval_ms.max(1),
            track_period_ms,
            half_frame_ms,
            next_sample: 0,
            next_track_ms: 0,
        }
    }

    pub fn slot(&mut self, t_ms: u64) -> Slot {
        let reach = t_ms + self.half_frame_ms;
        let first = self.next_sample;
        while (self.next_sample as u64) * self.interval_ms <= reach {
            self.next_sample += 1;
        }
        let samples = first..self.next_sample;
        let track = !samples.is_empty() || reach >= self.next_track_ms;
        if track {
            self.next_track_ms = t_ms + self.track_period_ms;
        }
        Slot { samples, track }
    }

    /// The earliest time the next frame could be tracked at: a frame at
    /// `t` is tracked exactly when `t` is at least this. A camera drops the
    /// frames before it unconverted (`camera::gate`).
    pub fn next_due_ms(&self) -> u64 {
        let next_sample_ms = self.next_sample as u64 * self.interval_ms;
        next_sample_ms
            .min(self.next_track_ms)
            .saturating_sub(self.half_frame_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames of a `fps` video lasting `seconds`, through a schedule.
    fn run(interval: u64, min_fps: f64, fps: f64, seconds: f64) -> (Vec<u64>, Vec<(usize, u64)>) {
        let mut s = Schedule::new(interval, min_fps, Some(fps));
        let (mut tracked, mut samples) = (Vec::new(), Vec::new());
        let frames = (seconds * fps) as u64;
        for n in 0..frames {
            let t = (n as f64 * 1000.0 / fps).round() as u64;
            let slot = s.slot(t);
            if slot.track {
                tracked.push(t);
            }
            samples.extend(slot.samples.map(|i| (i, t)));
        }
        (tracked, samples)
    }

    #[test]
    fn samples_are_the_frames_at_multiples_of_the_interval() {
        let (_, samples) = run(1000, 5.0, 25.0, 10.0);
        let want: Vec<(usize, u64)> = (0..10).map(|i| (i, i as u64 * 1000)).collect();
        assert_eq!(samples, want);
    }

    #[test]
    fn long_intervals_still_track_at_min_track_fps() {
        let (tracked, samples) = run(2000, 5.0, 30.0, 10.0);
        assert_eq!(samples.len(), 5);
        // 5 per second over 10 s, give or take the frame grid.
        assert!(
            (48..=52).contains(&tracked.len()),
            "{} tracked frames",
            tracked.len()
        );
        assert!(
            tracked.windows(2).all(|w| w[1] - w[0] <= 234),
            "gaps: {tracked:?}"
        );
    }

    #[test]
    fn short_intervals_track_every_sample() {
        let (tracked, samples) = run(200, 5.0, 10.0, 4.0);
        assert_eq!(samples.len(), 20);
        assert_eq!(tracked.len(), 20);
    }

    #[test]
    fn intervals_shorter_than_a_frame_repeat_the_frame() {
        let (_, samples) = run(40, 5.0, 10.0, 1.0);
        // 10 frames 100 ms apart cover samples at 0, 40, 80, … 920 (+ half a frame).
        assert_eq!(samples.len(), 24);
        assert_eq!(samples[2], (2, 100)); // 80 ms is nearest the frame at 100 ms
        assert!(samples.windows(2).all(|w| w[1].0 == w[0].0 + 1));
    }

    #[test]
    fn the_frames_kept_alone_get_the_same_slots() {
        // (interval ms, min_track_fps, fps, frames kept of 20 s)
        for (interval, min_fps, fps, want) in [
            (200, 5.0, 25.0, 100),
            (1000, 5.0, 30.0, 100),
            (40, 5.0, 10.0, 200),
            (2000, 1.0, 29.97, 20),
        ] {
            let mut all = Schedule::new(interval, min_fps, Some(fps));
            let mut kept_only = all.clone();
            let mut kept = 0;
            for n in 0..(20.0 * fps) as u64 {
                let t = (n as f64 * 1000.0 / fps).round() as u64;
                let slot = all.slot(t);
                if slot.track {
                    kept += 1;
                    assert_eq!(
                        kept_only.slot(t),
                        slot,
                        "frame at {t} ms, interval {interval}"
                    );
                }
            }
            assert_eq!(kept, want, "interval {interval} at {fps} fps");
        }
    }

    #[test]
    fn a_frame_is_tracked_exactly_when_it_is_due() {
        // Irregular arrivals, as a camera's frames reach its thread.
        for (interval, min_fps, fps) in [
            (60_000, 5.0, None),
            (1000, 2.0, None),
            (200, 5.0, Some(25.0)),
        ] {
            let mut s = Schedule::new(interval, min_fps, fps);
            let (mut t, mut seed, mut tracked) = (0u64, 7u64, 0);
            for _ in 0..2000 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                t += 10 + (seed >> 33) % 60;
                let due = s.next_due_ms();
                let slot = s.slot(t);
                assert_eq!(slot.track, t >= due, "frame at {t} ms, due at {due} ms");
                tracked += usize::from(slot.track);
            }
            assert!(tracked > 100, "{tracked} tracked, interval {interval}");
        }
    }

    #[test]
    fn frames_off_the_grid_pick_the_nearest() {
        let mut s = Schedule::new(500, 5.0, Some(30.0));
        assert_eq!(s.slot(0).samples, 0..1);
        assert!(s.slot(467).samples.is_empty());
        assert_eq!(s.slot(484).samples, 1..2); // within half a frame of 500
        assert!(s.slot(517).samples.is_empty());
    }
}
