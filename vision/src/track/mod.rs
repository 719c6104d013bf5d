//! Multi-object tracking, ByteTrack-style: detections of one frame in, tracks
//! with stable ids out. Counting ([`crate::count`]) works on these tracks.
//!
//! Per frame ([`Tracker::update`]):
//! 1. every track's Kalman filter ([`kalman`]) predicts to the frame's time;
//! 2. high-score detections are matched to established tracks, tracked or
//!    lost, by IoU ([`assign`]);
//! 3. low-score detections are matched to the established tracks still left
//!    that were tracked in the previous frame: this is ByteTrack's point, a
//!    partly occluded object whose score dips keeps its track;
//! 4. remaining high-score detections are matched to tentative tracks;
//!    tentative tracks that missed are dropped, established ones become lost;
//! 5. remaining high-score detections are offered to lost tracks once more,
//!    by distance instead of IoU ("recovery"): a walker who stops or turns
//!    behind a lamppost reappears where the filter did not predict, and
//!    without this stage would start a second track and be counted twice;
//! 6. remaining detections scoring at least `new_track_thresh` start
//!    tentative tracks; lost tracks unseen for `track_buffer_ms` are removed.
//!
//! Detections only ever match tracks of the same [`crate::Kind`] (and, if
//! configured, the same class id).

pub mod assign;
pub mod kalman;
mod tracklet;

use serde::{Deserialize, Serialize};

pub use tracklet::{TrackSnapshot, TrackState};

use crate::{BBox, Detection};
use assign::{CostMatrix, FORBIDDEN, assign};
use kalman::KalmanBox;
use tracklet::Track;

/// Tracker settings. Defaults are ByteTrack's, with time in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// Detections scoring at least this are "high" (first association).
    pub track_thresh: f32,
    /// Detections between this and `track_thresh` are "low" (second
    /// association only); lower ones are ignored.
    pub low_thresh: f32,
    /// An unmatched high detection must score at least this to start a track.
    pub new_track_thresh: f32,
    /// Largest `1 - IoU` for a high detection to match a track (0.8: IoU ≥ 0.2).
    pub match_thresh: f32,
    /// Largest `1 - IoU` for a low detection to match a track (0.5: IoU ≥ 0.5).
    pub low_match_thresh: f32,
    /// Largest `1 - IoU` for a detection to match a tentative track (0.8).
    pub tentative_match_thresh: f32,
    /// Consecutive matches before a track is confirmed. Tracks born in the
    /// first frame of a stream are confirmed at once.
    pub min_hits: u32,
    /// How long a lost track is kept for re-identification.
    pub track_buffer_ms: u64,
    /// Recovery gate at the moment a track is lost: how far (in heights of
    /// the track's box) a detection's centre may be from the track's last
    /// seen or predicted centre to take the track over. 0 turns recovery off.
    pub recover_radius: f32,
    /// How fast the recovery gate widens while the track stays lost, in box
    /// heights per second (a walker covers about 0.8 of their height per s).
    pub recover_speed: f32,
    /// Also require the same class id, not only the same kind. Off by default:
    /// detectors flip between car/truck/bus on the same vehicle.
    pub match_class_id: bool,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            // ByteTrack's 0.5/0.6 assume YOLOX's scores; NanoDet scores the
            // same objects ~0.1 lower (a clear truck at 0.59), so both drop.
            track_thresh: 0.45,
            low_thresh: 0.1,
            new_track_thresh: 0.5,
            match_thresh: 0.8,
            low_match_thresh: 0.5,
            // ByteTrack's 0.7 assumes 30 fps; tracking at 5 fps, a cyclist
            // near the camera moves so far between frames that its new track
            // never overlapped enough to be confirmed.
            tentative_match_thresh: 0.8,
            min_hits: 3,
            // Walkers in a group hide each other for seconds; with recovery
            // (below) 3 s brought the vtest.avi count to the hand count, where
            // 1 s counted 20 % too many (docs/BENCHMARKS.md).
            track_buffer_ms: 3000,
            recover_radius: 0.5,
            recover_speed: 0.8,
            match_class_id: false,
        }
    }
}

/// A [`TrackerConfig`] field with a value the tracker cannot work with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("tracker config: `{field}` {reason}")]
pub struct TrackerConfigError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl TrackerConfig {
    pub fn validate(&self) -> Result<(), TrackerConfigError> {
        let err = |field, reason| Err(TrackerConfigError { field, reason });
        let unit = [
            ("track_thresh", self.track_thresh),
            ("low_thresh", self.low_thresh),
            ("new_track_thresh", self.new_track_thresh),
            ("match_thresh", self.match_thresh),
            ("low_match_thresh", self.low_match_thresh),
            ("tentative_match_thresh", self.tentative_match_thresh),
        ];
        for (field, v) in unit {
            if !(0.0..=1.0).contains(&v) {
                return err(field, "must be between 0 and 1");
            }
        }
        if self.low_thresh > self.track_thresh {
            return err("low_thresh", "must not exceed track_thresh");
        }
        if self.new_track_thresh < self.track_thresh {
            return err("new_track_thresh", "must be at least track_thresh");
        }
        for (field, v) in [
            ("recover_radius", self.recover_radius),
            ("recover_speed", self.recover_speed),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return err(field, "must be a finite number >= 0");
            }
        }
        if self.min_hits == 0 {
            return err("min_hits", "must be at least 1");
        }
        Ok(())
    }
}

/// The tracker of one video stream. Create one per stream: ids and the
/// "first frame" rule are per stream.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
    last_t_ms: Option<u64>,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Result<Self, TrackerConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            tracks: Vec::new(),
            next_id: 1,
            last_t_ms: None,
        })
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Advances to the frame at `t_ms` (stream time; frames may be unevenly
    /// spaced, a timestamp earlier than the previous one counts as no time
    /// passing) and returns every live track, ordered by id. Detections with
    /// non-finite or empty boxes are ignored.
    pub fn update(&mut self, detections: &[Detection], t_ms: u64) -> Vec<TrackSnapshot> {
        let first_frame = self.last_t_ms.is_none();
        let dt_ms = self.last_t_ms.map_or(0, |last| t_ms.saturating_sub(last));
        self.last_t_ms = Some(self.last_t_ms.map_or(t_ms, |last| last.max(t_ms)));
        let dt_s = dt_ms as f64 / 1000.0;
        let cfg = self.config.clone();

        for track in &mut self.tracks {
            track.detection = None;
            if track.state == TrackState::Lost {
                track.kf.freeze_height();
            }
            track.kf.predict(dt_s);
        }
        let predicted: Vec<BBox> = self.tracks.iter().map(|t| t.kf.bbox()).collect();

        let usable = |d: &Detection| {
            let b = d.bbox;
            [b.x1, b.y1, b.x2, b.y2, d.score]
                .iter()
                .all(|v| v.is_finite())
                && b.width() > 0.0
                && b.height() > 0.0
        };
        let (mut high, mut low) = (Vec::new(), Vec::new());
        for (i, d) in detections.iter().enumerate().filter(|(_, d)| usable(d)) {
            if d.score >= cfg.track_thresh {
                high.push(i);
            } else if d.score >= cfg.low_thresh {
                low.push(i);
            }
        }

        // Stage 1: high detections to established (tracked or lost) tracks.
        let (established, tentative): (Vec<usize>, Vec<usize>) =
            (0..self.tracks.len()).partition(|&i| self.tracks[i].state != TrackState::Tentative);
        let (left_tracks, left_high) = self.associate(
            &established,
            &high,
            &predicted,
            detections,
            cfg.match_thresh,
            t_ms,
        );

        // Stage 2: low detections to tracks that were being tracked until now.
        let tracked: Vec<usize> = left_tracks
            .iter()
            .copied()
            .filter(|&i| self.tracks[i].state == TrackState::Confirmed)
            .collect();
        let (unmatched_tracked, _) = self.associate(
            &tracked,
            &low,
            &predicted,
            detections,
            cfg.low_match_thresh,
            t_ms,
        );
        for i in unmatched_tracked {
            self.tracks[i].state = TrackState::Lost;
        }

        // Stage 3: the high detections left to tentative tracks.
        let (missed_tentative, new_dets) = self.associate(
            &tentative,
            &left_high,
            &predicted,
            detections,
            cfg.tentative_match_thresh,
            t_ms,
        );

        // Stage 4: recovery of lost tracks by distance.
        let lost: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| self.tracks[i].state == TrackState::Lost)
            .collect();
        let new_dets = self.recover(&lost, &new_dets, &predicted, detections, t_ms);

        let mut remove = vec![false; self.tracks.len()];
        for i in missed_tentative {
            remove[i] = true;
        }
        for (i, t) in self.tracks.iter().enumerate() {
            if t.state == TrackState::Lost
                && t_ms.saturating_sub(t.last_seen_ms) > cfg.track_buffer_ms
            {
                remove[i] = true;
            }
        }
        let mut flags = remove.into_iter();
        self.tracks.retain(|_| !flags.next().unwrap_or(false));

        for d in new_dets {
            let det = &detections[d];
            if det.score >= cfg.new_track_thresh {
                let confirmed = first_frame || cfg.min_hits <= 1;
                self.tracks
                    .push(Track::new(self.next_id, det, d, t_ms, confirmed));
                self.next_id += 1;
            }
        }

        self.tracks.iter().map(|t| t.snapshot(t_ms)).collect()
    }

    /// Matches lost `tracks` to `dets` by the distance between centres, in
    /// heights of the track's box, from whichever of the last seen and the
    /// predicted box is nearer; the gate widens with the time lost. A match
    /// restarts the track's filter at the detection: its old velocity is what
    /// lost it. Returns the detections left.
    fn recover(
        &mut self,
        tracks: &[usize],
        dets: &[usize],
        predicted: &[BBox],
        detections: &[Detection],
        t_ms: u64,
    ) -> Vec<usize> {
        let cfg = &self.config;
        if cfg.recover_radius <= 0.0 || tracks.is_empty() || dets.is_empty() {
            return dets.to_vec();
        }
        let costs = CostMatrix::from_fn(tracks.len(), dets.len(), |r, c| {
            let track = &self.tracks[tracks[r]];
            let det = &detections[dets[c]];
            let h = track.last_bbox.height();
            let ratio = det.bbox.height() / h;
            if det.kind != track.kind || !(1.0 / 1.5..=1.5).contains(&ratio) {
                return FORBIDDEN;
            }
            let lost_s = t_ms.saturating_sub(track.last_seen_ms) as f32 / 1000.0;
            let gate = h * (cfg.recover_radius + cfg.recover_speed * lost_s);
            let dist = |b: &BBox| {
                let ((ax, ay), (bx, by)) = (b.center(), det.bbox.center());
                (ax - bx).hypot(ay - by)
            };
            let d = dist(&track.last_bbox).min(dist(&predicted[tracks[r]]));
            if d <= gate { d / gate } else { FORBIDDEN }
        });
        let result = assign(&costs, 1.0);
        for &(r, c) in &result.matches {
            let d = dets[c];
            let track = &mut self.tracks[tracks[r]];
            track.kf = KalmanBox::new(&detections[d].bbox);
            track.matched(&detections[d], d, t_ms, self.config.min_hits);
        }
        result.unmatched_cols.iter().map(|&c| dets[c]).collect()
    }

    /// Matches `dets` (indices into `detections`) to `tracks` (indices into
    /// `self.tracks`), updates the matched tracks and returns the unmatched
    /// tracks and detections.
    fn associate(
        &mut self,
        tracks: &[usize],
        dets: &[usize],
        predicted: &[BBox],
        detections: &[Detection],
        limit: f32,
        t_ms: u64,
    ) -> (Vec<usize>, Vec<usize>) {
        let match_class = self.config.match_class_id;
        let costs = CostMatrix::from_fn(tracks.len(), dets.len(), |r, c| {
            let track = &self.tracks[tracks[r]];
            let det = &detections[dets[c]];
            let same = det.kind == track.kind && (!match_class || det.class_id == track.class_id());
            if same {
                1.0 - predicted[tracks[r]].iou(&det.bbox)
            } else {
                FORBIDDEN
            }
        });
        let result = assign(&costs, limit);
        for &(r, c) in &result.matches {
            let d = dets[c];
            self.tracks[tracks[r]].matched(&detections[d], d, t_ms, self.config.min_hits);
        }
        (
            result.unmatched_rows.iter().map(|&r| tracks[r]).collect(),
            result.unmatched_cols.iter().map(|&c| dets[c]).collect(),
        )
    }
}

#[cfg(test)]
mod tests;
