//! Face alignment: the similarity transform (rotation, uniform scale,
//! translation) that best maps the five detected landmarks onto the
//! embedder's template, and a bilinear warp of the frame through it into the
//! embedder's input crop (ArcFace: 112 × 112).
//!
//! The transform is Umeyama's least-squares estimate, as insightface's
//! `norm_crop` computes it (scikit-image's `SimilarityTransform`). In 2-D the
//! best scaled rotation `[[a, −b], [b, a]]` is a linear least-squares problem
//! in `(a, b)` over the centred points, so it needs no SVD and can never
//! reflect the face.

use image::{Rgb, RgbImage};

use super::FaceError;
use super::decode::Landmarks;
use crate::RgbFrame;
use crate::detect::letterbox::{Preprocess, Resize};

/// `p ↦ (a·x − b·y + tx, b·x + a·y + ty)`: a rotation by `atan2(b, a)` and a
/// scale by `hypot(a, b)`, then a shift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Similarity {
    /// The least-squares similarity mapping `src[i]` onto `dst[i]`; `None`
    /// when the source points all coincide (no scale or angle to find).
    pub fn estimate(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Option<Self> {
        let n = src.len().min(dst.len());
        if n == 0 {
            return None;
        }
        let mean = |pts: &[[f32; 2]]| {
            let (sx, sy) = pts[..n].iter().fold((0.0, 0.0), |(sx, sy), p| {
                (sx + p[0] as f64, sy + p[1] as f64)
            });
            (sx / n as f64, sy / n as f64)
        };
        let (smx, smy) = mean(src);
        let (dmx, dmy) = mean(dst);
        let (mut dot, mut cross, mut var) = (0.0, 0.0, 0.0);
        for (p, q) in src[..n].iter().zip(&dst[..n]) {
            let (x, y) = (p[0] as f64 - smx, p[1] as f64 - smy);
            let (u, v) = (q[0] as f64 - dmx, q[1] as f64 - dmy);
            dot += x * u + y * v;
            cross += x * v - y * u;
            var += x * x + y * y;
        }
        if var < 1e-12 {
            return None;
        }
        let (a, b) = (dot / var, cross / var);
        Some(Self {
            a,
            b,
            tx: dmx - (a * smx - b * smy),
            ty: dmy - (b * smx + a * smy),
        })
    }

    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        (
            self.a * x - self.b * y + self.tx,
            self.b * x + self.a * y + self.ty,
        )
    }

    /// The inverse map; `None` for a zero scale.
    pub fn inverse(&self) -> Option<Self> {
        let det = self.a * self.a + self.b * self.b;
        if det < 1e-12 {
            return None;
        }
        let (a, b) = (self.a / det, -self.b / det);
        Some(Self {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }
}

/// Warps faces onto an embedder's template; built from its `[model.input]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Aligner {
    template: Landmarks,
    width: u32,
    height: u32,
}

impl Aligner {
    /// `spec` must say `resize = "align-arcface"` and give five template
    /// points (in input pixels).
    pub fn new(spec: &Preprocess) -> Result<Self, FaceError> {
        let template = match (&spec.resize, &spec.template) {
            (Resize::AlignArcface, Some(t)) => t.as_slice().try_into().ok(),
            _ => None,
        };
        let template = template.ok_or(FaceError::Template)?;
        Ok(Self {
            template,
            width: spec.width,
            height: spec.height,
        })
    }

    /// The crop of the face whose landmarks are `landmarks` (frame pixels).
    pub fn align(&self, frame: &RgbFrame, landmarks: &Landmarks) -> Result<RgbImage, FaceError> {
        let to_crop =
            Similarity::estimate(landmarks, &self.template).ok_or(FaceError::Degenerate)?;
        let to_frame = to_crop.inverse().ok_or(FaceError::Degenerate)?;
        Ok(warp(frame, &to_frame, self.width, self.height))
    }
}

/// Each crop pixel `(u, v)` sampled bilinearly at `to_frame(u, v)`; outside
/// the frame is black. Pixel centres sit at integer coordinates, as in
/// OpenCV's `warpAffine`, the Python reference's warp.
pub fn warp(frame: &RgbFrame, to_frame: &Similarity, width: u32, height: u32) -> RgbImage {
    let (fw, fh) = (frame.width() as i64, frame.height() as i64);
    let (data, stride) = (frame.data(), frame.stride());
    let pixel = |x: i64, y: i64| -> [f64; 3] {
        if x < 0 || y < 0 || x >= fw || y >= fh {
            return [0.0; 3];
        }
        let i = y as usize * stride + 3 * x as usize;
        [data[i] as f64, data[i + 1] as f64, data[i + 2] as f64]
    };
    RgbImage::from_fn(width, height, |u, v| {
        let (x, y) = to_frame.apply(u as f64, v as f64);
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let (p00, p10) = (pixel(x0, y0), pixel(x0 + 1, y0));
        let (p01, p11) = (pixel(x0, y0 + 1), pixel(x0 + 1, y0 + 1));
        Rgb(std::array::from_fn(|c| {
            let top = p00[c] * (1.0 - fx) + p10[c] * fx;
            let bottom = p01[c] * (1.0 - fx) + p11[c] * fx;
            (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEMPLATE: Landmarks = [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ];

    proptest! {
        #[test]
        fn recovers_a_known_similarity(
            angle in -3.1f64..3.1,
            scale in 0.2f64..5.0,
            tx in -500f64..500.0,
            ty in -500f64..500.0,
        ) {
            let truth = Similarity { a: scale * angle.cos(), b: scale * angle.sin(), tx, ty };
            let moved: Vec<[f32; 2]> = TEMPLATE
                .iter()
                .map(|p| {
                    let (x, y) = truth.apply(p[0] as f64, p[1] as f64);
                    [x as f32, y as f32]
                })
                .collect();
            let got = Similarity::estimate(&TEMPLATE, &moved).unwrap();
            // f32 inputs up to ~1000 px: errors of ~1e-4 px are rounding.
            prop_assert!((got.a - truth.a).abs() < 1e-5 * scale.max(1.0));
            prop_assert!((got.b - truth.b).abs() < 1e-5 * scale.max(1.0));
            prop_assert!((got.tx - truth.tx).abs() < 1e-2);
            prop_assert!((got.ty - truth.ty).abs() < 1e-2);
            // And the inverse undoes it.
            let back = got.inverse().unwrap();
            let (x, y) = back.apply(moved[2][0] as f64, moved[2][1] as f64);
            prop_assert!((x - TEMPLATE[2][0] as f64).abs() < 1e-2);
            prop_assert!((y - TEMPLATE[2][1] as f64).abs() < 1e-2);
        }
    }

    #[test]
    fn noisy_points_give_the_least_squares_fit_not_an_exact_one() {
        // A square stretched along x only: no similarity fits exactly; the
        // best one scales both axes by a compromise and does not rotate.
        let src = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]];
        let dst = [[-1.0, 0.0], [11.0, 0.0], [-1.0, 10.0], [11.0, 10.0]];
        let s = Similarity::estimate(&src, &dst).unwrap();
        assert!(s.b.abs() < 1e-12);
        // Σ (x·u + y·v) / Σ |p|² over centred points: (4·5·6 + 4·5·5) / (4·50).
        assert!((s.a - 1.1).abs() < 1e-12);
    }

    #[test]
    fn coincident_points_have_no_transform() {
        assert!(Similarity::estimate(&[[3.0, 4.0]; 5], &TEMPLATE).is_none());
        assert!(Similarity::estimate(&[], &[]).is_none());
    }

    #[test]
    fn warp_moves_a_marker_where_the_transform_says() {
        // A 200x100 black frame with one white 3x3 block centred on (150, 40).
        let mut img = RgbImage::new(200, 100);
        for y in 39..=41 {
            for x in 149..=151 {
                img.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        let frame = RgbFrame::from_image(&img).unwrap();
        // Crop (u, v) = frame (2u + 100, 2v + 20) after a half-size, so the
        // marker lands at crop (25, 10); crop (63, 63) maps to (226, 146),
        // outside the frame, and is black.
        let to_frame = Similarity {
            a: 2.0,
            b: 0.0,
            tx: 100.0,
            ty: 20.0,
        };
        let crop = warp(&frame, &to_frame, 64, 64);
        assert_eq!(crop.get_pixel(25, 10), &Rgb([255, 255, 255]));
        assert_eq!(crop.get_pixel(26, 10), &Rgb([0, 0, 0]));
        assert_eq!(crop.get_pixel(63, 63), &Rgb([0, 0, 0]));
        // Rotated by 90°: crop (u, v) = frame (-v + 160, u + 30); the marker
        // is at u = 10, v = 10.
        let rotated = Similarity {
            a: 0.0,
            b: 1.0,
            tx: 160.0,
            ty: 30.0,
        };
        let crop = warp(&frame, &rotated, 64, 64);
        assert_eq!(crop.get_pixel(10, 10), &Rgb([255, 255, 255]));
        assert_eq!(crop.get_pixel(10, 12), &Rgb([0, 0, 0]));
    }

    #[test]
    fn aligner_needs_a_five_point_template() {
        let mut spec = Preprocess {
            name: None,
            resize: Resize::AlignArcface,
            template: Some(TEMPLATE.to_vec()),
            width: 112,
            height: 112,
            layout: crate::detect::letterbox::Layout::Nchw,
            bgr: true,
            mean: [127.5; 3],
            std: [128.0; 3],
            pad: 0.0,
            center: false,
            trim_padding: None,
        };
        assert!(Aligner::new(&spec).is_ok());
        spec.template = Some(TEMPLATE[..4].to_vec());
        assert!(matches!(Aligner::new(&spec), Err(FaceError::Template)));
        spec.template = Some(TEMPLATE.to_vec());
        spec.resize = Resize::Letterbox;
        assert!(matches!(Aligner::new(&spec), Err(FaceError::Template)));
    }
}
