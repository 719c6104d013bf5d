//! YuNet's raw outputs to scored face boxes with five landmarks, in
//! model-input pixels, exactly as OpenCV's `FaceDetectorYN` decodes them.
//!
//! Per stride `s` the model predicts, for every cell `(x, y)` of the
//! `⌈W/s⌉ × ⌈H/s⌉` grid (row-major), with no anchors:
//! - class and objectness scores; the face score is `sqrt(cls · obj)`, each
//!   clamped to 0..1 first;
//! - the box: centre `((x + dx) s, (y + dy) s)`, size `(e^lw s, e^lh s)`;
//! - landmark k at `((x + kx) s, (y + ky) s)`: right eye, left eye (as the
//!   person sees them, so image-left first), nose tip, right and left mouth
//!   corner — the order of the ArcFace template.

use serde::{Deserialize, Serialize};

use crate::BBox;
use crate::detect::decode::{DecodeError, Output};
use crate::detect::nms::Scored;

/// Five face landmarks in pixels: eyes, nose tip, mouth corners, image-left
/// first in each pair.
pub type Landmarks = [[f32; 2]; 5];

/// One face as the detector saw it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceDetection {
    pub bbox: BBox,
    /// `sqrt(cls · obj)`, 0..1.
    pub score: f32,
    pub landmarks: Landmarks,
}

impl Scored for FaceDetection {
    fn bbox(&self) -> BBox {
        self.bbox
    }

    fn score(&self) -> f32 {
        self.score
    }

    fn same_class(&self, _: &Self) -> bool {
        true
    }
}

/// All faces scoring at least `min_score` in the outputs of a YuNet model run
/// at `width` × `height`, before NMS.
pub fn decode_yunet(
    strides: &[u32],
    outputs: &[Output],
    width: u32,
    height: u32,
    min_score: f32,
) -> Result<Vec<FaceDetection>, DecodeError> {
    let mut faces = Vec::new();
    for &stride in strides {
        let gw = (width as usize).div_ceil(stride as usize);
        let gh = (height as usize).div_ceil(stride as usize);
        let cells = gw * gh;
        let heads = |w: usize| {
            outputs
                .iter()
                .filter(move |o| o.shape.len() == 3 && o.shape[1] == cells && o.shape[2] == w)
        };
        let missing = |w: usize| DecodeError::MissingHead {
            stride,
            cells,
            width: w,
        };
        // Class and objectness have the same shape and cannot be told apart
        // by it; they need not be, since the score is their symmetric product.
        let mut scores = heads(1);
        let (cls, obj) = match (scores.next(), scores.next()) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(missing(1)),
        };
        let boxes = heads(4).next().ok_or_else(|| missing(4))?;
        let kps = heads(10).next().ok_or_else(|| missing(10))?;
        let s = stride as f32;
        for cell in 0..cells {
            let score = (cls.data[cell].clamp(0.0, 1.0) * obj.data[cell].clamp(0.0, 1.0)).sqrt();
            if score < min_score {
                continue;
            }
            let (x, y) = ((cell % gw) as f32, (cell / gw) as f32);
            let b = &boxes.data[cell * 4..cell * 4 + 4];
            let k = &kps.data[cell * 10..cell * 10 + 10];
            faces.push(FaceDetection {
                bbox: BBox::from_cxcywh(
                    (x + b[0]) * s,
                    (y + b[1]) * s,
                    b[2].exp() * s,
                    b[3].exp() * s,
                ),
                score,
                landmarks: std::array::from_fn(|i| [(x + k[2 * i]) * s, (y + k[2 * i + 1]) * s]),
            });
        }
    }
    Ok(faces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cell_decodes_to_box_and_landmarks() {
        // Stride 8 on a 16x16 input: 2x2 cells; a face in cell (1, 0).
        let mut cls = vec![0.0; 4];
        let mut obj = vec![0.0; 4];
        cls[1] = 0.81;
        obj[1] = 1.5; // clamped to 1
        cls[2] = 0.5; // obj 0 there: score 0
        let mut boxes = vec![0.0; 16];
        boxes[4..8].copy_from_slice(&[0.5, 0.25, 2f32.ln(), 0.0]);
        let mut kps = vec![0.0; 40];
        kps[10..20].copy_from_slice(&[0.0, 0.0, 1.0, 0.0, 0.5, 0.5, 0.0, 1.0, 1.0, 1.0]);
        let outs = [
            Output {
                shape: &[1, 4, 10],
                data: &kps,
            },
            Output {
                shape: &[1, 4, 1],
                data: &obj,
            },
            Output {
                shape: &[1, 4, 4],
                data: &boxes,
            },
            Output {
                shape: &[1, 4, 1],
                data: &cls,
            },
        ];
        let faces = decode_yunet(&[8], &outs, 16, 16, 0.5).unwrap();
        assert_eq!(faces.len(), 1);
        let f = faces[0];
        assert!((f.score - 0.9).abs() < 1e-6);
        // centre ((1 + 0.5) * 8, (0 + 0.25) * 8) = (12, 2), size 16 x 8.
        assert_eq!(f.bbox, BBox::new(4.0, -2.0, 20.0, 6.0));
        assert_eq!(f.landmarks[0], [8.0, 0.0]);
        assert_eq!(f.landmarks[2], [12.0, 4.0]);
        assert_eq!(f.landmarks[4], [16.0, 8.0]);
    }

    #[test]
    fn a_missing_score_head_is_an_error() {
        let one = vec![0.0; 4];
        let outs = [Output {
            shape: &[1, 4, 1],
            data: &one,
        }];
        assert_eq!(
            decode_yunet(&[8], &outs, 16, 16, 0.5).unwrap_err(),
            DecodeError::MissingHead {
                stride: 8,
                cells: 4,
                width: 1
            }
        );
    }
}
