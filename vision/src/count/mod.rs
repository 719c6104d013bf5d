//! Counting: per-frame counts of what is detected, and pass-through counts of
//! distinct tracked objects per time window (API.md, `POST /video`).
//!
//! A pipeline feeds one [`Counter`] per stream:
//! - every tracked frame: [`Counter::observe`] with the tracker's output,
//!   which turns tracks into at most one [`PassEvent`] each, by the travel
//!   rule ([`pass`]) or, with a counting line, by crossing it ([`line`]);
//! - at each sample time: [`Counter::sample`] with that frame's detections
//!   (per-frame counts, riders removed by [`rider`]);
//! - at the end: [`Counter::report`] for the response arrays ([`window`]).
//!
//! Riders are removed twice on purpose: from the per-frame counts by the
//! frame's detections, and from pass counts by the tracks, where a person
//! track counts as a rider if it rode a two-wheeler track in most of the
//! frames it was seen in (one frame without the bicycle detected must not turn
//! its rider into a pedestrian).

pub mod line;
pub mod pass;
pub mod rider;
pub mod window;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::classes::ResolvedClassMap;
use crate::track::{TrackSnapshot, TrackState};
use crate::{Detection, Kind};
pub use line::{CountingLine, Direction, LineError, PixelLine};
pub use window::{CountsReport, FrameCounts, LineCrossings, WindowCounts, WindowTotals};

/// Counting settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CountConfig {
    /// Distance, in box heights, a track must move from where it was first
    /// seen to pass (travel rule, used when there is no counting line).
    pub min_travel: f32,
    /// Fraction of a person's box inside a two-wheeler's box that makes the
    /// person its rider.
    pub rider_min_cover: f32,
    /// Dead band on each side of a counting line, in box heights, that a
    /// track must leave before its side of the line changes.
    pub line_hysteresis: f32,
    /// Detections below this score are not in the per-frame counts (the
    /// tracker sees lower scores than are worth reporting).
    pub min_score: f32,
}

impl Default for CountConfig {
    fn default() -> Self {
        Self {
            min_travel: 1.0,
            rider_min_cover: 0.5,
            line_hysteresis: 0.1,
            // Matches the tracker's high-score threshold.
            min_score: 0.45,
        }
    }
}

/// Why counting cannot start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CountError {
    #[error("count config: `{field}` {reason}")]
    Config {
        field: &'static str,
        reason: &'static str,
    },
    #[error("interval must be greater than 0 ms")]
    ZeroInterval,
}

impl CountConfig {
    pub fn validate(&self) -> Result<(), CountError> {
        let err = |field, reason| Err(CountError::Config { field, reason });
        if !(self.min_travel.is_finite() && self.min_travel > 0.0) {
            return err("min_travel", "must be a positive number");
        }
        if !(self.rider_min_cover > 0.0 && self.rider_min_cover <= 1.0) {
            return err("rider_min_cover", "must be in (0, 1]");
        }
        if !(self.line_hysteresis.is_finite() && self.line_hysteresis >= 0.0) {
            return err("line_hysteresis", "must be a non-negative number");
        }
        if !(0.0..=1.0).contains(&self.min_score) {
            return err("min_score", "must be between 0 and 1");
        }
        Ok(())
    }
}

/// One distinct object passing (or crossing the line), reported once per
/// track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassEvent {
    pub track_id: u64,
    /// Time of the frame in which it passed.
    pub t_ms: u64,
    pub kind: Kind,
    pub class_id: usize,
    /// Set when counted by a counting line.
    pub direction: Option<Direction>,
}

/// What the counter remembers about one live track.
#[derive(Debug, Default)]
struct Book {
    seen: u32,
    riding: u32,
    /// Counted (or ruled out as a rider): never looked at again.
    done: bool,
    line: line::LineTrack,
    /// A crossing made while the track was still tentative, reported once
    /// it is confirmed.
    pending: Option<Direction>,
}

/// Counts of one stream. See the module docs for how a pipeline drives it.
#[derive(Debug)]
pub struct Counter {
    config: CountConfig,
    classes: ResolvedClassMap,
    line: Option<PixelLine>,
    windows: WindowCounts,
    books: HashMap<u64, Book>,
}

impl Counter {
    pub fn new(
        config: CountConfig,
        classes: ResolvedClassMap,
        interval_ms: u64,
    ) -> Result<Self, CountError> {
        config.validate()?;
        let windows = WindowCounts::new(interval_ms)?;
        Ok(Self {
            config,
            classes,
            line: None,
            windows,
            books: HashMap::new(),
        })
    }

    /// Counts crossings of `line` instead of applying the travel rule.
    pub fn with_line(mut self, line: PixelLine) -> Self {
        self.line = Some(line);
        self
    }

    /// Per-frame counts of `detections` (scores below `min_score` ignored,
    /// riders not pedestrians), without recording them.
    pub fn frame_counts(&self, detections: &[Detection]) -> FrameCounts {
        let kept: Vec<Detection> = detections
            .iter()
            .filter(|d| d.score >= self.config.min_score)
            .copied()
            .collect();
        let (pedestrians, vehicles) =
            rider::count_kinds(&kept, &self.classes, self.config.rider_min_cover);
        FrameCounts {
            pedestrians,
            vehicles,
        }
    }

    /// Records the next sample (sample *i* is the *i*-th call, the frame at
    /// `i * interval`) and returns its counts.
    pub fn sample(&mut self, detections: &[Detection]) -> FrameCounts {
        let counts = self.frame_counts(detections);
        self.windows.record_sample(counts);
        counts
    }

    /// Feeds the tracker's full output for the frame at `t_ms` and returns
    /// the objects that passed in it. Tracks missing from `tracks` are taken
    /// as ended and forgotten.
    pub fn observe(&mut self, t_ms: u64, tracks: &[TrackSnapshot]) -> Vec<PassEvent> {
        let riders = rider::rider_mask(tracks, &self.classes, self.config.rider_min_cover);
        let mut events = Vec::new();
        for (track, rider) in tracks.iter().zip(riders) {
            let book = self.books.entry(track.id).or_default();
            if track.state == TrackState::Lost || book.done {
                continue;
            }
            book.seen += 1;
            book.riding += u32::from(rider);
            let passed = match &self.line {
                Some(line) => {
                    if let Some(d) =
                        book.line
                            .observe(line, &track.bbox, self.config.line_hysteresis)
                    {
                        book.pending = Some(d);
                    }
                    match track.state {
                        TrackState::Confirmed => book.pending.take().map(Some),
                        _ => None,
                    }
                }
                None => pass::has_passed(track, self.config.min_travel).then_some(None),
            };
            let Some(direction) = passed else { continue };
            book.done = true;
            if track.kind == Kind::Pedestrian && book.riding * 2 > book.seen {
                continue;
            }
            let event = PassEvent {
                track_id: track.id,
                t_ms,
                kind: track.kind,
                class_id: track.class_id,
                direction,
            };
            self.windows.add(&event);
            events.push(event);
        }
        let live: HashSet<u64> = tracks.iter().map(|t| t.id).collect();
        self.books.retain(|id, _| live.contains(id));
        events
    }

    pub fn windows(&self) -> &WindowCounts {
        &self.windows
    }

    /// Live streams: the totals of a closed window, forgotten afterwards
    /// (see [`WindowCounts::take_window`]).
    pub fn take_window(&mut self, index: u64) -> WindowTotals {
        self.windows.take_window(index)
    }

    /// The response arrays so far (see [`WindowCounts::report`]).
    pub fn report(&self) -> CountsReport {
        self.windows.report(self.line.is_some())
    }
}

#[cfg(test)]
mod tests;
