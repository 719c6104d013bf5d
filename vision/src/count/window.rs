//! Per-window aggregation for API.md's arrays: sample *i* is the frame at
//! `i * interval`, window *i* is `[i * interval, (i + 1) * interval)`, and a
//! pass event belongs to window `floor(t / interval)`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CountError, PassEvent};
use crate::Kind;
use crate::classes::COCO;
use crate::count::line::Direction;

/// Objects detected in one sampled frame (riders are not pedestrians).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameCounts {
    pub pedestrians: u32,
    pub vehicles: u32,
}

/// What passed in one window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowTotals {
    pub pedestrians: u32,
    pub vehicles: u32,
    /// Passes by COCO class name.
    pub per_class: BTreeMap<String, u32>,
    /// Line crossings by direction (zero without a counting line).
    pub line_in: u32,
    pub line_out: u32,
}

/// Line crossings per window, split by direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineCrossings {
    pub in_per_interval: Vec<u32>,
    pub out_per_interval: Vec<u32>,
}

/// The `/video` counting fields, every array one entry per sample.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountsReport {
    pub pedestrian_counts: Vec<u32>,
    pub vehicle_counts: Vec<u32>,
    pub pedestrians_per_interval: Vec<u32>,
    pub vehicles_per_interval: Vec<u32>,
    /// Passes per window by COCO class name.
    pub per_class: BTreeMap<String, Vec<u32>>,
    /// Only when a counting line was used.
    pub line_crossings: Option<LineCrossings>,
}

/// Collects samples and pass events of one video or camera stream.
#[derive(Debug, Clone)]
pub struct WindowCounts {
    interval_ms: u64,
    samples: Vec<FrameCounts>,
    /// Sparse by window index, so a wild timestamp cannot allocate a huge
    /// array.
    windows: BTreeMap<u64, WindowTotals>,
}

impl WindowCounts {
    pub fn new(interval_ms: u64) -> Result<Self, CountError> {
        if interval_ms == 0 {
            return Err(CountError::ZeroInterval);
        }
        Ok(Self {
            interval_ms,
            samples: Vec::new(),
            windows: BTreeMap::new(),
        })
    }

    pub fn interval_ms(&self) -> u64 {
        self.interval_ms
    }

    /// Window a time falls in.
    pub fn window_of(&self, t_ms: u64) -> u64 {
        t_ms / self.interval_ms
    }

    /// Records the next sample (the first call is sample 0) and returns its
    /// index.
    pub fn record_sample(&mut self, counts: FrameCounts) -> usize {
        self.samples.push(counts);
        self.samples.len() - 1
    }

    pub fn samples(&self) -> &[FrameCounts] {
        &self.samples
    }

    /// Adds one pass event to its window.
    pub fn add(&mut self, event: &PassEvent) {
        let w = self.windows.entry(self.window_of(event.t_ms)).or_default();
        match event.kind {
            Kind::Pedestrian => w.pedestrians += 1,
            Kind::Vehicle => w.vehicles += 1,
        }
        *w.per_class.entry(class_name(event.class_id)).or_default() += 1;
        match event.direction {
            Some(Direction::In) => w.line_in += 1,
            Some(Direction::Out) => w.line_out += 1,
            None => {}
        }
    }

    /// Live streams: hands over window `index` and forgets it and every
    /// earlier one, so a camera counting for months keeps only the windows
    /// still open. (A live stream takes per-frame counts with
    /// [`Counter::frame_counts`](super::Counter::frame_counts), which records
    /// no sample, so `samples` does not grow either.)
    pub fn take_window(&mut self, index: u64) -> WindowTotals {
        let open = self.windows.split_off(&(index + 1));
        let mut closed = std::mem::replace(&mut self.windows, open);
        closed.remove(&index).unwrap_or_default()
    }

    /// Windows held (closed ones not yet taken, and open ones).
    pub fn held(&self) -> usize {
        self.windows.len()
    }

    /// Totals of window `index` so far (zeros when nothing passed).
    pub fn window(&self, index: u64) -> WindowTotals {
        self.windows.get(&index).cloned().unwrap_or_default()
    }

    /// The arrays for the response. They have one entry per recorded sample;
    /// events after the last sample's window (the tail of a video whose
    /// last frame is not a sample) are added to the last window, so the sum
    /// of `*_per_interval` is still every object that passed.
    pub fn report(&self, with_line: bool) -> CountsReport {
        let n = self.samples.len();
        let mut r = CountsReport {
            pedestrian_counts: self.samples.iter().map(|s| s.pedestrians).collect(),
            vehicle_counts: self.samples.iter().map(|s| s.vehicles).collect(),
            pedestrians_per_interval: vec![0; n],
            vehicles_per_interval: vec![0; n],
            per_class: BTreeMap::new(),
            line_crossings: None,
        };
        let mut line = LineCrossings {
            in_per_interval: vec![0; n],
            out_per_interval: vec![0; n],
        };
        if n > 0 {
            for (&index, w) in &self.windows {
                let i = usize::try_from(index).map_or(n - 1, |i| i.min(n - 1));
                r.pedestrians_per_interval[i] += w.pedestrians;
                r.vehicles_per_interval[i] += w.vehicles;
                line.in_per_interval[i] += w.line_in;
                line.out_per_interval[i] += w.line_out;
                for (name, &count) in &w.per_class {
                    r.per_class
                        .entry(name.clone())
                        .or_insert_with(|| vec![0; n])[i] += count;
                }
            }
        }
        if with_line {
            r.line_crossings = Some(line);
        }
        r
    }
}

fn class_name(class_id: usize) -> String {
    COCO.get(class_id)
        .map_or_else(|| format!("class_{class_id}"), |s| (*s).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t_ms: u64, kind: Kind, class_id: usize, direction: Option<Direction>) -> PassEvent {
        PassEvent {
            track_id: t_ms,
            t_ms,
            kind,
            class_id,
            direction,
        }
    }

    #[test]
    fn arrays_have_the_sample_length_and_events_land_in_their_window() {
        let mut w = WindowCounts::new(1000).expect("non-zero interval");
        for i in 0..3 {
            w.record_sample(FrameCounts {
                pedestrians: i,
                vehicles: 10 + i,
            });
        }
        w.add(&event(999, Kind::Pedestrian, 0, None));
        w.add(&event(1000, Kind::Vehicle, 2, Some(Direction::In)));
        w.add(&event(1500, Kind::Vehicle, 7, Some(Direction::Out)));
        // After the last sample's window: folded into the last one.
        w.add(&event(5000, Kind::Pedestrian, 0, None));
        let r = w.report(true);
        assert_eq!(r.pedestrian_counts, vec![0, 1, 2]);
        assert_eq!(r.vehicle_counts, vec![10, 11, 12]);
        assert_eq!(r.pedestrians_per_interval, vec![1, 0, 1]);
        assert_eq!(r.vehicles_per_interval, vec![0, 2, 0]);
        assert_eq!(r.per_class["car"], vec![0, 1, 0]);
        assert_eq!(r.per_class["truck"], vec![0, 1, 0]);
        assert_eq!(r.per_class["person"], vec![1, 0, 1]);
        let line = r.line_crossings.expect("line requested");
        assert_eq!(
            (line.in_per_interval, line.out_per_interval),
            (vec![0, 1, 0], vec![0, 1, 0])
        );
        for v in r.per_class.values() {
            assert_eq!(v.len(), 3);
        }
        assert_eq!(w.window(1).vehicles, 2);
        assert_eq!(w.window(7), WindowTotals::default());
    }

    #[test]
    fn taking_windows_keeps_the_state_bounded() {
        let mut w = WindowCounts::new(1000).expect("non-zero interval");
        // A month of one-second windows with a pass in each.
        for i in 0..(31 * 24 * 3600u64) {
            w.add(&event(i * 1000 + 500, Kind::Pedestrian, 0, None));
            if i > 0 {
                assert_eq!(w.take_window(i - 1).pedestrians, 1);
            }
            assert!(w.held() <= 1);
        }
        // An event past the window being taken stays.
        w.add(&event(5_000_000_000, Kind::Vehicle, 2, None));
        assert_eq!(w.take_window(31 * 24 * 3600 - 1).pedestrians, 1);
        assert_eq!(w.held(), 1);
        assert_eq!(w.take_window(5_000_000).vehicles, 1);
        assert_eq!(w.held(), 0);
    }

    #[test]
    fn zero_interval_is_an_error() {
        assert!(matches!(
            WindowCounts::new(0),
            Err(CountError::ZeroInterval)
        ));
    }

    #[test]
    fn no_samples_no_arrays() {
        let mut w = WindowCounts::new(500).expect("non-zero interval");
        w.add(&event(u64::MAX, Kind::Vehicle, 2, None));
        let r = w.report(false);
        assert!(r.vehicles_per_interval.is_empty() && r.line_crossings.is_none());
    }
}
