//! Straighten a plate: the perspective transform (homography) that takes
//! the plate's four corners to an upright rectangle, and a bilinear warp of
//! the image through it into the recogniser's input, PaddleOCR-style: the
//! height fixed (32 px), the width from the plate's aspect ratio
//! (`min(max width, ⌈32 · w / h⌉)`); the recogniser pads the rest on the
//! right.
//!
//! The homography comes from imageproc's `Projection::from_control_points`
//! (a maintained 8 × 8 solve), the sampling from its `warp_into_with`; both
//! are already in the build for drawing. A plate much taller than 32 px is
//! warped at its own size first and then shrunk with an antialiasing filter
//! (the letterbox's resizer): sampling a 100 px plate straight down to 32
//! px would skip pixels and alias the strokes.

use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::U8x3;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{Rgb, RgbImage};
use imageproc::geometric_transformations::{Border, Interpolation, Projection, warp_into_with};

use serde::{Deserialize, Serialize};

use super::decode::Corners;
use super::{PlateConfigError, PlateError};
use crate::RgbFrame;
use crate::detect::letterbox::{Preprocess, Resize};

/// Beyond this many times the output height, the warp samples at this
/// multiple rather than at the plate's full size: enough for the filter,
/// bounded in cost.
const MAX_OVERSAMPLE: f32 = 4.0;

/// What part of the detected quadrilateral the recogniser is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RectifyConfig {
    /// Fraction of the plate's width trimmed from its left and from its
    /// right end (negative: widened).
    pub inset_x: f32,
    /// Fraction of the plate's height trimmed from its top and from its
    /// bottom. The plate detector's corners lie about 8 % of the plate's
    /// height outside its edges, top and bottom, and a text recogniser is
    /// trained on lines cropped close around the characters (90 of the
    /// plate's 140 mm). On the 60 synthetic blue test plates (PP-OCRv4
    /// recogniser), trimming 0.06–0.09 read 48–49 exactly with 2–4 wrong;
    /// untrimmed read 46 with 7 wrong, 0.14 read 45, 0.22 read 38
    /// (docs/PLATES.md).
    pub inset_y: f32,
}

impl Default for RectifyConfig {
    fn default() -> Self {
        Self {
            inset_x: 0.0,
            inset_y: 0.08,
        }
    }
}

impl RectifyConfig {
    pub fn validate(&self) -> Result<(), PlateConfigError> {
        for (field, v) in [("inset_x", self.inset_x), ("inset_y", self.inset_y)] {
            if !(-0.25..=0.35).contains(&v) {
                return Err(PlateConfigError {
                    field,
                    reason: "must be between -0.25 and 0.35",
                });
            }
        }
        Ok(())
    }
}

/// Warps plates into a recogniser's input; built from its `[model.input]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rectifier {
    height: u32,
    max_width: u32,
    config: RectifyConfig,
}

impl Rectifier {
    /// `spec` must say `resize = "fit-height"`.
    pub fn new(spec: &Preprocess, config: RectifyConfig) -> Result<Self, PlateError> {
        if spec.resize != Resize::FitHeight || spec.width == 0 || spec.height == 0 {
            return Err(PlateError::NotFitHeight);
        }
        config.validate()?;
        Ok(Self {
            height: spec.height,
            max_width: spec.width,
            config,
        })
    }

    /// The part of the plate the recogniser reads: `corners` trimmed by the
    /// insets, in the plate's own (perspective) coordinates.
    pub fn trimmed(&self, corners: &Corners) -> Result<Corners, PlateError> {
        let (ix, iy) = (self.config.inset_x, self.config.inset_y);
        if ix == 0.0 && iy == 0.0 {
            return Ok(*corners);
        }
        let unit = to_image(corners, 1, 1).ok_or(PlateError::Degenerate)?;
        let at = |x: f32, y: f32| {
            let (u, v) = unit * (x, y);
            [u, v]
        };
        let trimmed = [
            at(ix, iy),
            at(1.0 - ix, iy),
            at(1.0 - ix, 1.0 - iy),
            at(ix, 1.0 - iy),
        ];
        if trimmed.iter().flatten().all(|v| v.is_finite()) {
            Ok(trimmed)
        } else {
            Err(PlateError::Degenerate)
        }
    }

    /// The output's width for a plate with these corners (trimmed): its
    /// aspect ratio (mean of opposite sides, which evens out a corner placed
    /// a little off) at the output height, capped at the input width.
    pub fn output_width(&self, corners: &Corners) -> Result<u32, PlateError> {
        width_at(&self.trimmed(corners)?, self.height, self.max_width)
    }

    /// The upright plate (trimmed), `output_width(corners)` × the input
    /// height.
    pub fn rectify(&self, image: &RgbFrame, corners: &Corners) -> Result<RgbImage, PlateError> {
        let corners = &self.trimmed(corners)?;
        let width = width_at(corners, self.height, self.max_width)?;
        let (_, plate_h) = plate_size(corners);
        let oversample = (plate_h / self.height as f32).clamp(1.0, MAX_OVERSAMPLE);
        if oversample < 1.5 {
            return warp(image, corners, width, self.height);
        }
        let (ww, wh) = (
            (width as f32 * oversample).round() as u32,
            (self.height as f32 * oversample).round() as u32,
        );
        let big = warp(image, corners, ww, wh)?;
        let mut out = RgbImage::new(width, self.height);
        // Typed, as in the letterbox: only the RGB8 resizer is linked.
        let src = TypedImageRef::<U8x3>::from_buffer(ww, wh, big.as_raw())
            .map_err(|e| PlateError::Tensor(e.to_string()))?;
        let mut dst = TypedImage::<U8x3>::from_buffer(width, self.height, &mut out)
            .map_err(|e| PlateError::Tensor(e.to_string()))?;
        Resizer::new()
            .resize_typed(
                &src,
                &mut dst,
                &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
            )
            .map_err(|e| PlateError::Tensor(e.to_string()))?;
        Ok(out)
    }
}

fn width_at(corners: &Corners, height: u32, max_width: u32) -> Result<u32, PlateError> {
    let (w, h) = plate_size(corners);
    if !(w >= 1.0 && h >= 1.0) {
        return Err(PlateError::Degenerate);
    }
    let width = (height as f32 * w / h).ceil() as u32;
    Ok(width.clamp(1, max_width))
}

/// Mean lengths of the plate's horizontal and vertical sides.
fn plate_size(c: &Corners) -> (f32, f32) {
    let d = |a: [f32; 2], b: [f32; 2]| (a[0] - b[0]).hypot(a[1] - b[1]);
    let [tl, tr, br, bl] = *c;
    ((d(tl, tr) + d(bl, br)) / 2.0, (d(tl, bl) + d(tr, br)) / 2.0)
}

/// The homography taking a `width` × `height` rectangle (continuous
/// coordinates: pixel `(x, y)` covers `[x, x+1) × [y, y+1)`) onto the plate:
/// its corners go to `corners` in reading order. `None` when three corners
/// are in line.
pub fn to_image(corners: &Corners, width: u32, height: u32) -> Option<Projection> {
    // imageproc solves the 8 × 8 system on the coordinates as given; with
    // frame coordinates in the thousands it is ill-conditioned (corners land
    // 0.02 px off). Solving between both shapes centred and scaled to about
    // unit size (Hartley's normalisation) and undoing that after is exact
    // to f32 rounding.
    let (w, h) = (width as f32, height as f32);
    let (mx, my) = (
        corners.iter().map(|c| c[0]).sum::<f32>() / 4.0,
        corners.iter().map(|c| c[1]).sum::<f32>() / 4.0,
    );
    let (pw, ph) = plate_size(corners);
    let s = pw.max(ph).max(1e-3);
    let rect = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)].map(|(x, y)| (x / w, y / w));
    let plate = corners.map(|[x, y]| ((x - mx) / s, (y - my) / s));
    let unit = Projection::from_control_points(rect, plate)?;
    Some(
        Projection::translate(mx, my)
            * Projection::scale(s, s)
            * unit
            * Projection::scale(1.0 / w, 1.0 / w),
    )
}

/// Sample the plate bilinearly into a `width` × `height` image. Beyond the
/// image's edge the edge pixels repeat: a corner a little outside a vehicle
/// crop then costs a smear, not a black wedge the recogniser could read as
/// a character.
fn warp(
    image: &RgbFrame,
    corners: &Corners,
    width: u32,
    height: u32,
) -> Result<RgbImage, PlateError> {
    let to_image = to_image(corners, width, height).ok_or(PlateError::Degenerate)?;
    // Only the plate's surroundings are copied out of the frame (imageproc
    // samples from an owned image; a plate is a few thousand pixels).
    let (fw, fh) = (image.width() as f32, image.height() as f32);
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for [x, y] in corners {
        (x0, y0, x1, y1) = (x0.min(*x), y0.min(*y), x1.max(*x), y1.max(*y));
    }
    if !(x0.is_finite() && y0.is_finite() && x1.is_finite() && y1.is_finite()) {
        return Err(PlateError::Degenerate);
    }
    let left = (x0 - 2.0).floor().clamp(0.0, fw - 1.0) as u32;
    let top = (y0 - 2.0).floor().clamp(0.0, fh - 1.0) as u32;
    let right = (x1 + 2.0).ceil().clamp(left as f32 + 1.0, fw) as u32;
    let bottom = (y1 + 2.0).ceil().clamp(top as f32 + 1.0, fh) as u32;
    let (data, stride) = (image.data(), image.stride());
    let region = RgbImage::from_fn(right - left, bottom - top, |x, y| {
        let i = (top + y) as usize * stride + 3 * (left + x) as usize;
        Rgb([data[i], data[i + 1], data[i + 2]])
    });
    let mut out = RgbImage::new(width, height);
    // Output pixel (x, y) is the point (x + ½, y + ½) of the rectangle; its
    // image point (u, v) lies between the pixels whose centres are at
    // integer (u − ½, v − ½), which is how imageproc interpolates.
    let (ox, oy) = (left as f32 + 0.5, top as f32 + 0.5);
    warp_into_with(
        &region,
        move |x, y| {
            let (u, v) = to_image * (x + 0.5, y + 0.5);
            (u - ox, v - oy)
        },
        Interpolation::Bilinear,
        Border::Replicate,
        &mut out,
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::letterbox::Layout;
    use proptest::prelude::*;

    fn untrimmed() -> RectifyConfig {
        RectifyConfig {
            inset_x: 0.0,
            inset_y: 0.0,
        }
    }

    fn spec() -> Preprocess {
        Preprocess {
            name: None,
            resize: Resize::FitHeight,
            template: None,
            width: 160,
            height: 32,
            layout: Layout::Nchw,
            bgr: true,
            mean: [127.5; 3],
            std: [127.5; 3],
            pad: 127.5,
            center: false,
            trim_padding: None,
        }
    }

    proptest! {
        /// The rectangle's corners land exactly on the plate's corners, and
        /// its centre on the quadrilateral's "perspective centre" (where the
        /// diagonals cross), for any convex quadrilateral.
        #[test]
        fn homography_maps_corners_exactly(
            x in 0f32..1500.0,
            y in 0f32..1000.0,
            w in 20f32..400.0,
            h in 8f32..120.0,
            jitter in prop::array::uniform8(-0.2f32..0.2),
        ) {
            let corners: Corners = [
                [x + jitter[0] * w, y + jitter[1] * h],
                [x + w + jitter[2] * w, y + jitter[3] * h],
                [x + w + jitter[4] * w, y + h + jitter[5] * h],
                [x + jitter[6] * w, y + h + jitter[7] * h],
            ];
            let p = to_image(&corners, 101, 32).unwrap();
            let rect = [(0.0, 0.0), (101.0, 0.0), (101.0, 32.0), (0.0, 32.0)];
            for (r, c) in rect.iter().zip(&corners) {
                let (u, v) = p * *r;
                prop_assert!((u - c[0]).abs() < 0.01 && (v - c[1]).abs() < 0.01,
                    "{r:?} -> ({u}, {v}), corner {c:?}");
            }
            // Diagonals TL-BR and TR-BL cross at the image of the centre.
            let [a, b, c, d] = corners;
            let (e, f) = ([c[0] - a[0], c[1] - a[1]], [d[0] - b[0], d[1] - b[1]]);
            let den = e[0] * f[1] - e[1] * f[0];
            let t = ((b[0] - a[0]) * f[1] - (b[1] - a[1]) * f[0]) / den;
            let cross = [a[0] + t * e[0], a[1] + t * e[1]];
            let (u, v) = p * (50.5, 16.0);
            prop_assert!((u - cross[0]).abs() < 0.05 && (v - cross[1]).abs() < 0.05,
                "centre -> ({u}, {v}), diagonals cross at {cross:?}");
        }
    }

    /// A 300 × 200 frame, grey, with a "plate" drawn as a parallelogram:
    /// left half red, right half blue, on a sheared outline.
    fn sheared_plate() -> (RgbImage, Corners) {
        let corners: Corners = [[60.0, 50.0], [240.0, 80.0], [240.0, 140.0], [60.0, 110.0]];
        let img = RgbImage::from_fn(300, 200, |x, y| {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let top = 50.0 + (px - 60.0) * 30.0 / 180.0;
            if (60.0..240.0).contains(&px) && py >= top && py < top + 60.0 {
                if px < 150.0 {
                    Rgb([220, 0, 0])
                } else {
                    Rgb([0, 0, 220])
                }
            } else {
                Rgb([128, 128, 128])
            }
        });
        (img, corners)
    }

    #[test]
    fn a_sheared_plate_comes_out_upright_at_the_input_height() {
        let (img, corners) = sheared_plate();
        let frame = RgbFrame::from_image(&img).unwrap();
        let r = Rectifier::new(&spec(), untrimmed()).unwrap();
        // Sides: 182.5 (slanted) wide, 60 high → ⌈32 · 182.5 / 60⌉ = 98.
        assert_eq!(r.output_width(&corners).unwrap(), 98);
        let out = r.rectify(&frame, &corners).unwrap();
        assert_eq!(out.dimensions(), (98, 32));
        // Left half red, right half blue, all the way up and down: the slant
        // is gone. Pixels next to the seam and the top and bottom edges are
        // blended.
        for y in 2..30 {
            for x in 0..98 {
                let p = out.get_pixel(x, y);
                if x < 47 {
                    assert!(p[0] > 200 && p[2] < 20, "({x}, {y}) {p:?}");
                } else if x > 50 {
                    assert!(p[2] > 200 && p[0] < 20, "({x}, {y}) {p:?}");
                }
            }
        }
    }

    #[test]
    fn a_small_plate_is_warped_directly_and_a_large_one_is_filtered() {
        let (img, corners) = sheared_plate();
        let r = Rectifier::new(&spec(), untrimmed()).unwrap();
        // The same plate at a quarter of the size: 15 px high, upsampled.
        let small_img = image::imageops::resize(&img, 75, 50, image::imageops::Triangle);
        let small: Corners = corners.map(|[x, y]| [x / 4.0, y / 4.0]);
        let out = r
            .rectify(&RgbFrame::from_image(&small_img).unwrap(), &small)
            .unwrap();
        assert_eq!(out.dimensions(), (98, 32));
        assert!(out.get_pixel(10, 16)[0] > 150 && out.get_pixel(90, 16)[2] > 150);
    }

    #[test]
    fn insets_trim_the_plate_in_its_own_perspective() {
        let r = Rectifier::new(
            &spec(),
            RectifyConfig {
                inset_x: 0.1,
                inset_y: 0.25,
            },
        )
        .unwrap();
        // An upright 200 x 40 plate: 20 px off each end, 10 px off top and
        // bottom.
        let flat: Corners = [[0.0, 0.0], [200.0, 0.0], [200.0, 40.0], [0.0, 40.0]];
        let t = r.trimmed(&flat).unwrap();
        let want = [[20.0, 10.0], [180.0, 10.0], [180.0, 30.0], [20.0, 30.0]];
        for (a, b) in t.iter().zip(want) {
            assert!(
                (a[0] - b[0]).abs() < 0.01 && (a[1] - b[1]).abs() < 0.01,
                "{t:?}"
            );
        }
        // 160 x 20 at height 32: 256, capped at 160.
        assert_eq!(r.output_width(&flat).unwrap(), 160);
        // Sheared: the trimmed corners stay on the plate's edges' lines.
        let (_, corners) = sheared_plate();
        let t = r.trimmed(&corners).unwrap();
        // The top-left corner moved 10 % along the top edge and 25 % down
        // the left one: (60 + 18, 50 + 3 + 15).
        assert!(
            (t[0][0] - 78.0).abs() < 0.01 && (t[0][1] - 68.0).abs() < 0.01,
            "{t:?}"
        );
        let bad = RectifyConfig {
            inset_x: 0.0,
            inset_y: 0.5,
        };
        assert_eq!(bad.validate().unwrap_err().field, "inset_y");
    }

    #[test]
    fn corners_outside_the_frame_repeat_its_edge() {
        let img = RgbImage::from_pixel(50, 20, Rgb([10, 200, 30]));
        let frame = RgbFrame::from_image(&img).unwrap();
        let corners: Corners = [[-10.0, -5.0], [60.0, -5.0], [60.0, 25.0], [-10.0, 25.0]];
        let out = Rectifier::new(&spec(), untrimmed())
            .unwrap()
            .rectify(&frame, &corners)
            .unwrap();
        assert!(out.pixels().all(|p| *p == Rgb([10, 200, 30])));
    }

    #[test]
    fn degenerate_corners_and_wrong_specs_are_errors() {
        let r = Rectifier::new(&spec(), untrimmed()).unwrap();
        let flat: Corners = [[0.0, 0.0], [10.0, 0.0], [10.0, 0.0], [0.0, 0.0]];
        assert!(matches!(r.output_width(&flat), Err(PlateError::Degenerate)));
        let nan: Corners = [[f32::NAN, 0.0], [10.0, 0.0], [10.0, 5.0], [0.0, 5.0]];
        let img = RgbImage::new(20, 20);
        assert!(
            r.rectify(&RgbFrame::from_image(&img).unwrap(), &nan)
                .is_err()
        );
        let mut s = spec();
        s.resize = Resize::Letterbox;
        assert!(matches!(
            Rectifier::new(&s, untrimmed()),
            Err(PlateError::NotFitHeight)
        ));
        // Very long plates are squeezed into the input width.
        let long: Corners = [[0.0, 0.0], [400.0, 0.0], [400.0, 10.0], [0.0, 10.0]];
        assert_eq!(r.output_width(&long).unwrap(), 160);
    }
}
