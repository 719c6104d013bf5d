//! Is a detected face worth embedding and keeping, and which of a track's
//! faces is the best? Judged from what is cheap to know before the embedder
//! runs: the face's size in the frame, the detector's score, how frontal the
//! landmarks are, and how sharp the aligned crop is (variance of its
//! Laplacian: blur removes exactly the fine detail the Laplacian responds to).

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::decode::FaceDetection;

/// The gate's thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    /// Smallest face, as the shorter side of its box in frame pixels. Below
    /// ~40 px the aligned 112 px crop is mostly interpolation.
    pub min_face_px: f32,
    /// Smallest detector score.
    pub min_score: f32,
    /// Smallest [`Quality::frontal`]: 0 is a profile, 1 looks at the camera.
    pub min_frontal: f32,
    /// Smallest variance of the Laplacian of the aligned crop's grey levels.
    /// Blurring obama.jpg until its crop measures 21 drops its similarity
    /// to obama3.jpg from 0.81 to 0.71; at 12, to 0.61 (docs/FACES.md).
    pub min_sharpness: f32,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            min_face_px: 40.0,
            min_score: 0.8,
            min_frontal: 0.3,
            min_sharpness: 25.0,
        }
    }
}

/// Why the gate refused a face (the first failed check, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    TooSmall,
    LowScore,
    NotFrontal,
    Blurred,
}

/// A face's measured quality.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Shorter side of the face box, frame pixels.
    pub face_px: f32,
    pub score: f32,
    /// 1 − 2 × the nose's sideways offset from the face's midline, in eye
    /// distances along the eye line, clamped to 0..1.
    pub frontal: f32,
    /// Variance of the Laplacian of the aligned crop's centre.
    pub sharpness: f32,
    /// For choosing among faces of one track, 0..1, higher is better: the
    /// score times how frontal, how large and how sharp the face is (size
    /// and sharpness saturate at [`GOOD_FACE_PX`] and [`GOOD_SHARPNESS`]).
    pub value: f32,
    /// `None` when the face passed the gate.
    pub rejected: Option<Rejection>,
}

/// Beyond this size a face brings no more detail: the crop is 112 px.
pub const GOOD_FACE_PX: f32 = 112.0;
/// Beyond this sharpness the embedding no longer improves (docs/FACES.md:
/// in-focus faces measure 100–1600).
pub const GOOD_SHARPNESS: f32 = 100.0;

impl Quality {
    pub fn passed(&self) -> bool {
        self.rejected.is_none()
    }
}

impl QualityConfig {
    /// Measure `face` (its detection, and its aligned crop) and gate it.
    pub fn assess(&self, face: &FaceDetection, aligned: &RgbImage) -> Quality {
        let face_px = face.bbox.width().min(face.bbox.height());
        let frontal = frontal(face);
        let sharpness = sharpness(aligned);
        let rejected = if face_px < self.min_face_px {
            Some(Rejection::TooSmall)
        } else if face.score < self.min_score {
            Some(Rejection::LowScore)
        } else if frontal < self.min_frontal {
            Some(Rejection::NotFrontal)
        } else if sharpness < self.min_sharpness {
            Some(Rejection::Blurred)
        } else {
            None
        };
        let value = face.score
            * frontal
            * (face_px / GOOD_FACE_PX).min(1.0)
            * (sharpness / GOOD_SHARPNESS).min(1.0);
        Quality {
            face_px,
            score: face.score,
            frontal,
            sharpness,
            value,
            rejected,
        }
    }
}

/// How squarely the face looks at the camera, from its landmarks: turning
/// the head moves the nose tip off the line between the eyes' and the
/// mouth's midpoints. Measured along the eye line, so a tilted head is not
/// penalised.
fn frontal(face: &FaceDetection) -> f32 {
    let [re, le, nose, mr, ml] = face.landmarks;
    let (ex, ey) = (le[0] - re[0], le[1] - re[1]);
    let eye_dist = ex.hypot(ey);
    if eye_dist < 1e-3 {
        return 0.0;
    }
    let mid = [
        (re[0] + le[0] + mr[0] + ml[0]) / 4.0,
        (re[1] + le[1] + mr[1] + ml[1]) / 4.0,
    ];
    let offset = ((nose[0] - mid[0]) * ex + (nose[1] - mid[1]) * ey).abs() / (eye_dist * eye_dist);
    (1.0 - 2.0 * offset).clamp(0.0, 1.0)
}

/// Variance of the 4-neighbour Laplacian of the grey levels over the crop's
/// central half: the border holds hair, background and, for faces at the
/// frame's edge, black fill, whose edges say nothing about focus.
pub fn sharpness(crop: &RgbImage) -> f32 {
    let (w, h) = (crop.width() as usize, crop.height() as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let grey: Vec<f32> = crop
        .pixels()
        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
        .collect();
    let (x0, x1) = ((w / 4).max(1), (3 * w / 4).min(w - 1));
    let (y0, y1) = ((h / 4).max(1), (3 * h / 4).min(h - 1));
    let (mut n, mut sum, mut sum2) = (0.0f64, 0.0f64, 0.0f64);
    for y in y0..y1 {
        for x in x0..x1 {
            let i = y * w + x;
            let lap = grey[i - 1] + grey[i + 1] + grey[i - w] + grey[i + w] - 4.0 * grey[i];
            n += 1.0;
            sum += lap as f64;
            sum2 += (lap as f64).powi(2);
        }
    }
    if n == 0.0 {
        return 0.0;
    }
    (sum2 / n - (sum / n).powi(2)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BBox;
    use image::Rgb;

    fn face(landmarks: [[f32; 2]; 5], side: f32, score: f32) -> FaceDetection {
        FaceDetection {
            bbox: BBox::new(0.0, 0.0, side, side),
            score,
            landmarks,
        }
    }

    const FRONTAL: [[f32; 2]; 5] = [
        [38.0, 52.0],
        [74.0, 52.0],
        [56.0, 72.0],
        [42.0, 92.0],
        [70.0, 92.0],
    ];

    fn checkerboard(cell: u32) -> RgbImage {
        RgbImage::from_fn(112, 112, |x, y| {
            if (x / cell + y / cell).is_multiple_of(2) {
                Rgb([200, 200, 200])
            } else {
                Rgb([50, 50, 50])
            }
        })
    }

    /// A 3x3 box blur, as a stand-in for defocus.
    fn blurred(img: &RgbImage) -> RgbImage {
        RgbImage::from_fn(img.width(), img.height(), |x, y| {
            let (mut s, mut n) = ([0u32; 3], 0);
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (xx, yy) = (x as i64 + dx, y as i64 + dy);
                    if xx >= 0 && yy >= 0 && xx < img.width() as i64 && yy < img.height() as i64 {
                        let p = img.get_pixel(xx as u32, yy as u32);
                        (0..3).for_each(|c| s[c] += p[c] as u32);
                        n += 1;
                    }
                }
            }
            Rgb(s.map(|v| (v / n) as u8))
        })
    }

    #[test]
    fn blur_lowers_sharpness() {
        let flat = RgbImage::from_pixel(112, 112, Rgb([90, 90, 90]));
        assert_eq!(sharpness(&flat), 0.0);
        let sharp = checkerboard(4);
        let soft = blurred(&sharp);
        let softer = blurred(&soft);
        let (a, b, c) = (sharpness(&sharp), sharpness(&soft), sharpness(&softer));
        assert!(a > b && b > c && c > 0.0, "{a} {b} {c}");
    }

    #[test]
    fn frontal_faces_score_higher_than_turned_ones() {
        assert!((frontal(&face(FRONTAL, 100.0, 0.9)) - 1.0).abs() < 1e-6);
        // Nose moved a third of the eye distance sideways: a turned head.
        let mut turned = FRONTAL;
        turned[2][0] += 12.0;
        let f = frontal(&face(turned, 100.0, 0.9));
        assert!((f - 1.0 / 3.0).abs() < 1e-3, "{f}");
        // Rolling the whole face by 90° changes nothing.
        let rolled = FRONTAL.map(|[x, y]| [-y, x]);
        assert!((frontal(&face(rolled, 100.0, 0.9)) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn the_gate_names_the_first_failed_check() {
        let cfg = QualityConfig::default();
        let crop = checkerboard(4);
        let q = cfg.assess(&face(FRONTAL, 100.0, 0.95), &crop);
        assert!(q.passed(), "{q:?}");
        assert!(q.value > 0.5);
        let small = cfg.assess(&face(FRONTAL, 20.0, 0.95), &crop);
        assert_eq!(small.rejected, Some(Rejection::TooSmall));
        assert!(small.value < q.value);
        let weak = cfg.assess(&face(FRONTAL, 100.0, 0.5), &crop);
        assert_eq!(weak.rejected, Some(Rejection::LowScore));
        let mut turned = FRONTAL;
        turned[2][0] += 14.0;
        let side = cfg.assess(&face(turned, 100.0, 0.95), &crop);
        assert_eq!(side.rejected, Some(Rejection::NotFrontal));
        let flat = RgbImage::from_pixel(112, 112, Rgb([90, 90, 90]));
        let blur = cfg.assess(&face(FRONTAL, 100.0, 0.95), &flat);
        assert_eq!(blur.rejected, Some(Rejection::Blurred));
    }
}
