//! The rider rule (API.md): a person whose box is mostly inside a bicycle's
//! or motorcycle's box is riding it. The two-wheeler is the vehicle; the
//! person is not a pedestrian. Works on anything with a box and a class, so
//! the same rule filters a frame's detections and a frame's tracks.

use crate::classes::ResolvedClassMap;
use crate::track::{TrackSnapshot, TrackState};
use crate::{BBox, Detection, Kind};

/// Something in a frame the rider rule can look at.
pub trait Boxed {
    fn bbox(&self) -> BBox;
    fn kind(&self) -> Kind;
    fn class_id(&self) -> usize;
    /// Whether the object is actually seen in this frame (a lost track's
    /// predicted box must not make anyone a rider).
    fn visible(&self) -> bool {
        true
    }
}

impl Boxed for Detection {
    fn bbox(&self) -> BBox {
        self.bbox
    }
    fn kind(&self) -> Kind {
        self.kind
    }
    fn class_id(&self) -> usize {
        self.class_id
    }
}

impl Boxed for TrackSnapshot {
    fn bbox(&self) -> BBox {
        self.bbox
    }
    fn kind(&self) -> Kind {
        self.kind
    }
    fn class_id(&self) -> usize {
        self.class_id
    }
    fn visible(&self) -> bool {
        self.state != TrackState::Lost
    }
}

/// `mask[i]` is true when `objects[i]` is a pedestrian riding one of the
/// visible two-wheelers in `objects` (at least `min_cover` of the person's
/// box inside the two-wheeler's box).
pub fn rider_mask<T: Boxed>(
    objects: &[T],
    classes: &ResolvedClassMap,
    min_cover: f32,
) -> Vec<bool> {
    let wheels: Vec<BBox> = objects
        .iter()
        .filter(|o| o.visible() && classes.is_two_wheeler(o.class_id()))
        .map(Boxed::bbox)
        .collect();
    objects
        .iter()
        .map(|o| {
            o.visible()
                && o.kind() == Kind::Pedestrian
                && wheels.iter().any(|w| o.bbox().covered_by(w) >= min_cover)
        })
        .collect()
}

/// Pedestrians (riders excluded) and vehicles among a frame's objects.
pub fn count_kinds<T: Boxed>(
    objects: &[T],
    classes: &ResolvedClassMap,
    min_cover: f32,
) -> (u32, u32) {
    let riders = rider_mask(objects, classes, min_cover);
    let (mut pedestrians, mut vehicles) = (0u32, 0u32);
    for (o, rider) in objects.iter().zip(riders) {
        match o.kind() {
            Kind::Pedestrian if !rider => pedestrians += 1,
            Kind::Pedestrian => {}
            Kind::Vehicle => vehicles += 1,
        }
    }
    (pedestrians, vehicles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(bbox: BBox, class_id: usize, kind: Kind) -> Detection {
        Detection {
            bbox,
            score: 0.9,
            class_id,
            kind,
        }
    }

    #[test]
    fn a_rider_on_a_bicycle_is_not_a_pedestrian() {
        let classes = ResolvedClassMap::default();
        let frame = [
            // Rider: upper body sticks out above the bicycle box, 2/3 inside.
            det(BBox::new(110.0, 40.0, 150.0, 160.0), 0, Kind::Pedestrian),
            det(BBox::new(100.0, 80.0, 170.0, 200.0), 1, Kind::Vehicle),
            // Someone walking past on the pavement.
            det(BBox::new(400.0, 40.0, 440.0, 160.0), 0, Kind::Pedestrian),
        ];
        assert_eq!(rider_mask(&frame, &classes, 0.5), vec![true, false, false]);
        assert_eq!(count_kinds(&frame, &classes, 0.5), (1, 1));
        // Stricter coverage: the rider counts as a pedestrian again.
        assert_eq!(count_kinds(&frame, &classes, 0.9), (2, 1));
    }

    #[test]
    fn a_person_next_to_a_car_is_still_a_pedestrian() {
        let classes = ResolvedClassMap::default();
        let frame = [
            det(BBox::new(110.0, 40.0, 150.0, 160.0), 0, Kind::Pedestrian),
            det(BBox::new(100.0, 80.0, 300.0, 200.0), 2, Kind::Vehicle),
        ];
        assert_eq!(count_kinds(&frame, &classes, 0.5), (1, 1));
    }
}
