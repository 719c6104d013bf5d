//! Object detection: letterbox the frame to the model's input, run it, decode
//! the raw outputs into boxes in source pixels, and suppress duplicates.

pub mod decode;
pub mod letterbox;
pub mod letterboxed;
pub mod nms;

use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::classes::ResolvedClassMap;
use crate::frame::Picture;
use crate::runtime::RuntimeError;
use crate::{BBox, Kind};
use decode::{DecodeError, DecodeSpec};
use letterbox::{Preprocess, PreprocessError};
use letterboxed::{LetterboxedModel, LetterboxedSession};

/// One detected object in source-frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
    /// COCO class id (index into [`crate::classes::COCO`]).
    pub class_id: usize,
    pub kind: Kind,
}

#[derive(Debug, Error)]
pub enum DetectError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error("building input tensor: {0}")]
    Tensor(String),
}

/// Thresholds applied after decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Candidates below this score are dropped before NMS. Low on purpose:
    /// the tracker's second association stage feeds on weak boxes.
    pub min_score: f32,
    /// Boxes of one class overlapping more than this are duplicates.
    pub nms_iou: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            min_score: 0.25,
            nms_iou: 0.5,
        }
    }
}

/// A loaded detector model with its pre- and post-processing. Shared
/// read-only; each inference thread takes its own [`DetectorSession`].
#[derive(Debug, Clone)]
pub struct Detector {
    model: LetterboxedModel,
    decode: DecodeSpec,
    classes: ResolvedClassMap,
    config: DetectorConfig,
}

impl Detector {
    pub fn load(
        path: &Path,
        preprocess: Preprocess,
        decode: DecodeSpec,
        classes: ResolvedClassMap,
        config: DetectorConfig,
    ) -> Result<Self, DetectError> {
        // A face model named as the detector fails here, at start, rather
        // than on the first frame.
        if !matches!(decode, DecodeSpec::NanodetGfl { .. }) {
            return Err(DecodeError::Mismatch {
                expected: "an object detector",
                got: decode.name(),
            }
            .into());
        }
        Ok(Self {
            model: LetterboxedModel::load(path, preprocess)?,
            decode,
            classes,
            config,
        })
    }

    pub fn session(&self) -> DetectorSession<'_> {
        DetectorSession {
            detector: self,
            session: self.model.session(),
        }
    }
}

/// Per-thread state: tract's run state and the letterbox buffers.
pub struct DetectorSession<'a> {
    detector: &'a Detector,
    session: LetterboxedSession,
}

impl DetectorSession<'_> {
    /// See [`LetterboxedSession::input_size`].
    pub fn input_size(&self) -> Option<[u32; 2]> {
        self.session.input_size()
    }

    /// Pedestrian and vehicle candidates of `frame`, best first, in frame pixels.
    pub fn detect<'f>(
        &mut self,
        frame: impl Into<Picture<'f>>,
    ) -> Result<Vec<Detection>, DetectError> {
        let d = self.detector;
        let ran = self.session.run(frame)?;
        let candidates = d.decode.decode(
            &ran.views()?,
            ran.transform.input_width,
            ran.transform.input_height,
            d.config.min_score,
            |c| d.classes.kind(c).is_some(),
        )?;
        let detections = candidates
            .into_iter()
            .filter_map(|c| {
                Some(Detection {
                    bbox: ran.transform.to_source(c.bbox),
                    score: c.score,
                    class_id: c.class_id,
                    kind: d.classes.kind(c.class_id)?,
                })
            })
            .filter(|det| det.bbox.area() > 0.0)
            .collect();
        Ok(nms::nms(detections, d.config.nms_iou))
    }
}
