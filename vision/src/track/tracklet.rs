//! One tracked object: its filter, its life cycle and what it has been seen
//! as. [`TrackSnapshot`] is the read-only copy the tracker hands out per frame.

use serde::{Deserialize, Serialize};

use super::kalman::KalmanBox;
use crate::{BBox, Detection, Kind};

/// Where a track is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackState {
    /// Matched in every frame since it was born, but not yet `min_hits` times.
    /// Dropped on its first miss.
    Tentative,
    /// Established and matched in this frame.
    Confirmed,
    /// Established but not matched in this frame; its box is the prediction.
    /// Removed after `track_buffer_ms` without a match.
    Lost,
}

/// A track as of one [`super::Tracker::update`] call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackSnapshot {
    /// Unique within a tracker, increasing, never reused.
    pub id: u64,
    pub state: TrackState,
    /// The filtered box (the prediction when [`TrackState::Lost`]).
    pub bbox: BBox,
    pub kind: Kind,
    /// The class the track has most often been detected as (score-weighted),
    /// so one frame's car/truck flip does not relabel it.
    pub class_id: usize,
    /// Score of the last matched detection.
    pub score: f32,
    /// The detection box the track was born from.
    pub first_bbox: BBox,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// Time since birth.
    pub age_ms: u64,
    /// Number of frames the track was matched in.
    pub hits: u32,
    /// Index into this update's `detections` of the detection matched to the
    /// track, `None` when it was not matched in this frame.
    pub detection: Option<usize>,
}

impl TrackSnapshot {
    /// Centre of the box the track was first seen at.
    pub fn first_center(&self) -> (f32, f32) {
        self.first_bbox.center()
    }
}

/// Tracker-internal state of one track.
#[derive(Debug, Clone)]
pub(super) struct Track {
    pub id: u64,
    pub state: TrackState,
    pub kf: KalmanBox,
    pub kind: Kind,
    /// Score-weighted votes per class id.
    class_votes: Vec<(usize, f32)>,
    pub score: f32,
    pub first_bbox: BBox,
    /// The detection box of the last match.
    pub last_bbox: BBox,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub hits: u32,
    /// Matched detection index in the current update, reset every frame.
    pub detection: Option<usize>,
}

impl Track {
    pub fn new(id: u64, det: &Detection, index: usize, t_ms: u64, confirmed: bool) -> Self {
        Self {
            id,
            state: if confirmed {
                TrackState::Confirmed
            } else {
                TrackState::Tentative
            },
            kf: KalmanBox::new(&det.bbox),
            kind: det.kind,
            class_votes: vec![(det.class_id, det.score)],
            score: det.score,
            first_bbox: det.bbox,
            last_bbox: det.bbox,
            first_seen_ms: t_ms,
            last_seen_ms: t_ms,
            hits: 1,
            detection: Some(index),
        }
    }

    /// The class with the most score-weighted votes (ties: the earliest seen).
    pub fn class_id(&self) -> usize {
        let mut best = self.class_votes[0];
        for &v in &self.class_votes[1..] {
            if v.1 > best.1 {
                best = v;
            }
        }
        best.0
    }

    pub fn matched(&mut self, det: &Detection, index: usize, t_ms: u64, min_hits: u32) {
        self.kf.update(&det.bbox);
        self.last_bbox = det.bbox;
        self.score = det.score;
        self.last_seen_ms = t_ms;
        self.hits = self.hits.saturating_add(1);
        self.detection = Some(index);
        match self.class_votes.iter_mut().find(|v| v.0 == det.class_id) {
            Some(v) => v.1 += det.score,
            None => self.class_votes.push((det.class_id, det.score)),
        }
        self.state = match self.state {
            TrackState::Tentative if self.hits < min_hits => TrackState::Tentative,
            _ => TrackState::Confirmed,
        };
    }

    pub fn snapshot(&self, t_ms: u64) -> TrackSnapshot {
        TrackSnapshot {
            id: self.id,
            state: self.state,
            bbox: self.kf.bbox(),
            kind: self.kind,
            class_id: self.class_id(),
            score: self.score,
            first_bbox: self.first_bbox,
            first_seen_ms: self.first_seen_ms,
            last_seen_ms: self.last_seen_ms,
            age_ms: t_ms.saturating_sub(self.first_seen_ms),
            hits: self.hits,
            detection: self.detection,
        }
    }
}
