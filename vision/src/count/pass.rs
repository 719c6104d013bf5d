//! The default pass-through rule (API.md): a confirmed track has passed once
//! it is at least `min_travel` box heights away from where it was first seen.
//!
//! The box height scales the distance so the rule means the same near and far
//! from the camera. The height used is the geometric mean of the first and the
//! current box heights: an object driving towards the camera grows and one
//! driving away shrinks, and the mean treats both alike, where the larger
//! height would rarely let an approaching car pass and the smaller would let
//! a parked car "pass" when a passer-by hides half of it.

use crate::track::{TrackSnapshot, TrackState};

/// Whether `track`, as of this frame, has travelled far enough to count.
/// Only a confirmed track matched in this frame can pass: a lost track's box
/// is a prediction, not an observation.
pub fn has_passed(track: &TrackSnapshot, min_travel: f32) -> bool {
    if track.state != TrackState::Confirmed {
        return false;
    }
    let (x0, y0) = track.first_center();
    let (x1, y1) = track.bbox.center();
    let scale = (track.first_bbox.height() * track.bbox.height()).sqrt();
    let travelled = (x1 - x0).hypot(y1 - y0);
    scale > 0.0 && travelled >= min_travel * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BBox, Kind};

    fn snapshot(first: BBox, now: BBox, state: TrackState) -> TrackSnapshot {
        TrackSnapshot {
            id: 1,
            state,
            bbox: now,
            kind: Kind::Pedestrian,
            class_id: 0,
            score: 0.9,
            first_bbox: first,
            first_seen_ms: 0,
            last_seen_ms: 0,
            age_ms: 0,
            hits: 5,
            detection: None,
        }
    }

    #[test]
    fn one_box_height_is_the_threshold() {
        let first = BBox::from_cxcywh(100.0, 100.0, 40.0, 80.0);
        let short = BBox::from_cxcywh(170.0, 100.0, 40.0, 80.0);
        let far = BBox::from_cxcywh(180.0, 100.0, 40.0, 80.0);
        assert!(!has_passed(
            &snapshot(first, short, TrackState::Confirmed),
            1.0
        ));
        assert!(has_passed(
            &snapshot(first, far, TrackState::Confirmed),
            1.0
        ));
        assert!(!has_passed(&snapshot(first, far, TrackState::Lost), 1.0));
        assert!(!has_passed(
            &snapshot(first, far, TrackState::Tentative),
            1.0
        ));
        assert!(!has_passed(
            &snapshot(first, far, TrackState::Confirmed),
            1.5
        ));
    }

    #[test]
    fn approaching_car_passes() {
        // Grows from 40 to 160 px tall while its centre moves down 100 px:
        // mean height 80, so it has travelled 1.25 box heights.
        let first = BBox::from_cxcywh(300.0, 200.0, 60.0, 40.0);
        let now = BBox::from_cxcywh(300.0, 300.0, 240.0, 160.0);
        assert!(has_passed(
            &snapshot(first, now, TrackState::Confirmed),
            1.0
        ));
    }
}
