//! The face detector: letterbox the frame into YuNet's input, run it, decode
//! ([`super::decode`]), suppress duplicates and map faces back to frame pixels.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::FaceError;
use super::decode::{FaceDetection, decode_yunet};
use crate::detect::decode::{DecodeError, DecodeSpec};
use crate::detect::letterbox::{Letterbox, Preprocess};
use crate::detect::letterboxed::{LetterboxedModel, LetterboxedSession};
use crate::detect::nms::nms;
use crate::{Detection, Kind, RgbFrame};

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

impl FaceDetectorSession<'_> {
    /// The faces in `frame`, best first, in frame pixels.
    pub fn detect(&mut self, frame: &RgbFrame) -> Result<Vec<FaceDetection>, FaceError> {
        let d = self.detector;
        let ran = self.session.run(frame)?;
        let faces = decode_yunet(
            &d.strides,
            &ran.views()?,
            ran.transform.input_width,
            ran.transform.input_height,
            d.config.min_score,
        )?;
        let faces = faces
            .into_iter()
            .map(|f| to_source(&ran.transform, f))
            .filter(|f| f.bbox.area() > 0.0)
            .collect();
        Ok(nms(faces, d.config.nms_iou))
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
