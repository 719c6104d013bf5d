//! The face detector: letterbox the frame into YuNet's input, run it, decode
//! ([`super::decode`]), suppress duplicates and map faces back to frame pixels.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::FaceError;
use super::decode::{FaceDetection, decode_yunet};
use crate::detect::decode::{DecodeError, DecodeSpec};
use crate::detect::letterbox::{Letterbox, Preprocess, Window};
use crate::detect::letterboxed::{LetterboxedModel, LetterboxedSession};
use crate::detect::nms::nms;
use crate::frame::Picture;
use crate::{BBox, Detection, Kind};

/// Thresholds applied after decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaceDetectorConfig {
    /// Faces below this score are dropped. OpenCV's default is 0.9, but
    /// YuNet scores a clear face in zidane.jpg 0.90: 0.7 keeps it while the
    /// false faces seen on the test photos (hands, 0.5–0.6) stay out. The
    /// quality gate ([`super::quality`]) decides what is good enough to keep.
    pub min_score: f32,
    /// Faces overlapping more than this are duplicates (OpenCV: 0.3).
    pub nms_iou: f32,
}

impl Default for FaceDetectorConfig {
    fn default() -> Self {
        Self {
            min_score: 0.7,
            nms_iou: 0.3,
        }
    }
}

/// A loaded YuNet model with its pre- and post-processing; shared read-only,
/// each inference thread takes its own [`FaceDetectorSession`].
#[derive(Debug, Clone)]
pub struct FaceDetector {
    model: LetterboxedModel,
    strides: Vec<u32>,
    config: FaceDetectorConfig,
}

impl FaceDetector {
    /// `preprocess` and `decode` are the manifest's `[model.input]` and
    /// `[model.output]`; `decode` must be `yunet`.
    pub fn load(
        path: &Path,
        preprocess: Preprocess,
        decode: DecodeSpec,
        config: FaceDetectorConfig,
    ) -> Result<Self, FaceError> {
        let DecodeSpec::Yunet { strides } = decode else {
            return Err(DecodeError::Mismatch {
                expected: "a face detector (yunet)",
                got: decode.name(),
            }
            .into());
        };
        Ok(Self {
            model: LetterboxedModel::load(path, preprocess)?,
            strides,
            config,
        })
    }

    pub fn session(&self) -> FaceDetectorSession<'_> {
        FaceDetectorSession {
            detector: self,
            session: self.model.session(),
        }
    }
}

/// Per-thread state: tract's run state and the letterbox buffers.
pub struct FaceDetectorSession<'a> {
    detector: &'a FaceDetector,
    session: LetterboxedSession,
}

/// The sides of a window ([`FaceDetectorSession::detect_near`]) are whole
/// multiples of this many input pixels. Each size is a plan of its own (50
/// ms to make; [`crate::runtime::Plans`] keeps YuNet's last few), so a
/// stream's windows must come in few sizes: at most 15 in a 16:9 frame's
/// 640×384.
const WINDOW_STEP: u32 = 128;

/// Within this many input pixels of a window's edge inside the frame, the
/// detector lacks the context it has in the whole frame: a face there, cut
/// by the edge or close to it, comes out with a box that shrinks towards
/// the window (an IoU of 0.78–0.84 with the whole frame's on zidane.jpg).
/// A window holds its region with this much to spare, and what is found
/// this close to its edge is dropped.
const CONTEXT_PX: f32 = 8.0;

impl FaceDetectorSession<'_> {
    /// The faces in `frame`, best first, in frame pixels.
    pub fn detect<'f>(
        &mut self,
        frame: impl Into<Picture<'f>>,
    ) -> Result<Vec<FaceDetection>, FaceError> {
        self.detect_in(frame.into(), None, |_| false)
    }

    /// The faces in and around `region` of `frame` (frame pixels), best
    /// first. The detector runs on the part of its input that holds the
    /// region only, at the whole frame's scale and on the same stride grid,
    /// so a face well inside is found as in the whole frame, at a fraction
    /// of the cost. Faces the window's edges cut are dropped: the detector
    /// saw part of them. When the window would be more than half the input,
    /// the whole frame is run.
    pub fn detect_near<'f>(
        &mut self,
        frame: impl Into<Picture<'f>>,
        region: BBox,
    ) -> Result<Vec<FaceDetection>, FaceError> {
        let frame = frame.into();
        let d = self.detector;
        let spec = d.model.preprocess();
        let full = spec.letterbox(frame.width(), frame.height());
        let window = match (spec.trim_padding, d.strides.iter().max()) {
            (Some(_), Some(&block)) => {
                let step = WINDOW_STEP.div_ceil(block) * block;
                Some(full.window(region.grown(CONTEXT_PX / full.scale), block, step))
            }
            // A model that cannot run on less than its whole input.
            _ => None,
        };
        let (width, height) = (full.input_width, full.input_height);
        match window.filter(|w| w.width * w.height <= width * height / 2) {
            Some(w) => self.detect_in(frame, Some(w), cut_by(w, width, height)),
            None => self.detect_in(frame, None, |_| false),
        }
    }

    /// Run on `window` of the input (all of it when `None`), dropping the
    /// faces `cut` says the window's edges cut (input pixels of the window).
    fn detect_in(
        &mut self,
        frame: Picture,
        window: Option<Window>,
        cut: impl Fn(&BBox) -> bool,
    ) -> Result<Vec<FaceDetection>, FaceError> {
        let d = self.detector;
        let ran = self.session.run_in(frame, window)?;
        let t = ran.transform;
        let faces = decode_yunet(
            &d.strides,
            &ran.views()?,
            t.input_width,
            t.input_height,
            d.config.min_score,
        )?;
        let faces = faces
            .into_iter()
            .filter(|f| !cut(&f.bbox))
            .map(|f| to_source(&t, f))
            .filter(|f| f.bbox.area() > 0.0)
            .collect();
        Ok(nms(faces, d.config.nms_iou))
    }
}

/// Whether a box in `w`'s pixels reaches one of its edges that lie inside
/// the `input_width` × `input_height` input.
fn cut_by(w: Window, input_width: u32, input_height: u32) -> impl Fn(&BBox) -> bool {
    let (ww, wh) = (w.width as f32, w.height as f32);
    let left = w.x > 0;
    let top = w.y > 0;
    let right = w.x + w.width < input_width;
    let bottom = w.y + w.height < input_height;
    move |b| {
        (left && b.x1 < CONTEXT_PX)
            || (top && b.y1 < CONTEXT_PX)
            || (right && b.x2 > ww - CONTEXT_PX)
            || (bottom && b.y2 > wh - CONTEXT_PX)
    }
}

/// Back to frame pixels. The box is clamped to the frame; landmarks are not,
/// so a face cut by the frame edge still aligns where its eyes really are.
fn to_source(t: &Letterbox, f: FaceDetection) -> FaceDetection {
    FaceDetection {
        bbox: t.to_source(f.bbox),
        score: f.score,
        landmarks: f.landmarks.map(|q| t.point_to_source(q)),
    }
}

/// A face box is about a seventh of a standing person's height, and about
/// a quarter of the box of someone cut off at the waist by the frame's edge.
/// Below four face heights, no person box can hold a face of `min_face_px`.
const PERSON_TO_FACE: f32 = 4.0;

/// Where in the frame the faces of the people in `objects` can be, for
/// those tall enough to show a face of at least `min_face_px`: the top half
/// of each such person's box, widened by half the largest face it could
/// hold, all in one box. `None` when nobody is that tall. On the pedestrian
/// clip (people 80–180 px tall in a 576 px frame, faces of 10–25 px) that
/// is nearly every frame.
pub fn head_region(objects: &[Detection], min_face_px: f32) -> Option<BBox> {
    objects
        .iter()
        .filter(|d| d.kind == Kind::Pedestrian && d.bbox.height() >= min_face_px * PERSON_TO_FACE)
        .map(|d| {
            let (b, h) = (d.bbox, d.bbox.height());
            BBox::new(b.x1, b.y1, b.x2, b.y1 + h / 2.0).grown(h / PERSON_TO_FACE / 2.0)
        })
        .reduce(|a, b| a.union(&b))
}

/// Faces as detections for a [`crate::track::Tracker`] of their own (one per
/// stream, never shared with the object tracker): class `person` and kind
/// pedestrian, since a face is part of one. The tracker's
/// [`crate::track::TrackSnapshot::detection`] indexes back into `faces`.
pub fn as_detections(faces: &[FaceDetection]) -> Vec<Detection> {
    faces
        .iter()
        .map(|f| Detection {
            bbox: f.bbox,
            score: f.score,
            class_id: 0,
            kind: Kind::Pedestrian,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: Kind, x1: f32, y1: f32, height: f32) -> Detection {
        Detection {
            bbox: BBox::new(x1, y1, x1 + height / 3.0, y1 + height),
            score: 0.9,
            class_id: 0,
            kind,
        }
    }

    #[test]
    fn faces_are_looked_for_around_the_heads_of_people_near_the_camera() {
        let person = |x, y, h| object(Kind::Pedestrian, x, y, h);
        assert_eq!(head_region(&[], 40.0), None);
        assert_eq!(
            head_region(&[person(0.0, 0.0, 120.0), person(50.0, 50.0, 159.0)], 40.0),
            None
        );
        assert_eq!(
            head_region(&[object(Kind::Vehicle, 0.0, 0.0, 400.0)], 40.0),
            None
        );
        // 160 tall, 53 wide: the top 80 rows, and 20 around.
        let near = person(100.0, 200.0, 160.0);
        assert_eq!(
            head_region(&[person(0.0, 0.0, 120.0), near], 40.0),
            Some(BBox::new(80.0, 180.0, 100.0 + 160.0 / 3.0 + 20.0, 300.0))
        );
        // Two: one box around both heads.
        let far_right = person(900.0, 100.0, 320.0);
        let both = head_region(&[near, far_right], 40.0).unwrap();
        assert_eq!((both.x1, both.y1, both.y2), (80.0, 60.0, 300.0));
        assert!((both.x2 - (900.0 + 320.0 / 3.0 + 40.0)).abs() < 1e-3);
    }
}
