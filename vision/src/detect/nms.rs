//! Greedy, class-aware non-maximum suppression, for object detections and
//! faces alike (anything that is a scored box: [`Scored`]).

use super::Detection;
use crate::BBox;

/// What suppression needs to know of a candidate.
pub trait Scored {
    fn bbox(&self) -> BBox;
    fn score(&self) -> f32;
    /// Whether the two may suppress each other (object detections: the same
    /// class; single-class detectors: always).
    fn same_class(&self, other: &Self) -> bool;
}

impl Scored for Detection {
    fn bbox(&self) -> BBox {
        self.bbox
    }

    fn score(&self) -> f32 {
        self.score
    }

    fn same_class(&self, other: &Self) -> bool {
        self.class_id == other.class_id
    }
}

/// Keep the highest-scoring box of each cluster: a box is dropped when it
/// overlaps an already kept box of the same class by more than `iou_threshold`.
/// The result is sorted by score, best first.
pub fn nms<T: Scored>(mut candidates: Vec<T>, iou_threshold: f32) -> Vec<T> {
    // Descending: keeping the strongest box is the point (tract's own examples
    // sort ascending and keep the weakest).
    candidates.sort_by(|a, b| b.score().total_cmp(&a.score()));
    let mut kept: Vec<T> = Vec::with_capacity(candidates.len().min(64));
    for c in candidates {
        let suppressed = kept
            .iter()
            .any(|k| k.same_class(&c) && k.bbox().iou(&c.bbox()) > iou_threshold);
        if !suppressed {
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BBox, Kind};
    use proptest::prelude::*;

    fn det(x: f32, y: f32, w: f32, h: f32, score: f32, class_id: usize) -> Detection {
        Detection {
            bbox: BBox::new(x, y, x + w, y + h),
            score,
            class_id,
            kind: Kind::Vehicle,
        }
    }

    #[test]
    fn keeps_the_strongest_of_a_cluster() {
        let out = nms(
            vec![det(0., 0., 10., 10., 0.6, 2), det(1., 1., 10., 10., 0.9, 2)],
            0.5,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.9);
    }

    #[test]
    fn classes_do_not_suppress_each_other() {
        let out = nms(
            vec![det(0., 0., 10., 10., 0.6, 0), det(0., 0., 10., 10., 0.9, 2)],
            0.5,
        );
        assert_eq!(out.len(), 2);
    }

    fn arb_det() -> impl Strategy<Value = Detection> {
        (
            0f32..100.,
            0f32..100.,
            1f32..50.,
            1f32..50.,
            0f32..1.,
            0usize..3,
        )
            .prop_map(|(x, y, w, h, s, c)| det(x, y, w, h, s, c))
    }

    proptest! {
        #[test]
        fn suppressed_boxes_are_covered_and_kept_boxes_are_apart(
            dets in prop::collection::vec(arb_det(), 0..40),
            thr in 0.1f32..0.9,
        ) {
            let kept = nms(dets.clone(), thr);
            // Best first.
            prop_assert!(kept.windows(2).all(|w| w[0].score >= w[1].score));
            // No two kept boxes of one class overlap past the threshold.
            for (i, a) in kept.iter().enumerate() {
                for b in &kept[i + 1..] {
                    prop_assert!(a.class_id != b.class_id || a.bbox.iou(&b.bbox) <= thr);
                }
            }
            // Every dropped box is covered by a kept box of its class with a
            // score at least as high.
            for d in &dets {
                if !kept.contains(d) {
                    prop_assert!(kept.iter().any(|k| k.class_id == d.class_id
                        && k.score >= d.score && k.bbox.iou(&d.bbox) > thr));
                }
            }
        }
    }
}
