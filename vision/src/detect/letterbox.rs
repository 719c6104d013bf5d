//! Fit a frame into a model's input without distorting it: scale to fit,
//! pad the rest, normalise into an f32 tensor, and map boxes back afterwards.

use std::num::NonZeroU32;

use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::U8x3;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{BBox, RgbFrame};

#[derive(Debug, Error)]
pub enum PreprocessError {
    #[error("resize failed: {0}")]
    Resize(String),
    #[error(
        "[model.input] trim_padding = {multiple} must divide width {width} and height {height}"
    )]
    TrimPadding {
        multiple: u32,
        width: u32,
        height: u32,
    },
}

/// Memory order of the model input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// How a frame becomes a model input of fixed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resize {
    /// Keep the aspect ratio, scale to fit, pad the rest.
    #[default]
    Letterbox,
    /// Similarity transform of five face landmarks onto `template`.
    AlignArcface,
    /// Scale to the input height, pad on the right (text lines).
    FitHeight,
}

/// How a model wants its pixels: `(value - mean) / std` per channel, in RGB
/// or BGR order, after resizing into `width` × `height`. Mirrors a model's
/// `[model.input]` table in `models/manifest.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// The model's input name (documentation; inputs are bound by position).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub resize: Resize,
    /// Landmark template for [`Resize::AlignArcface`], in input pixels.
    #[serde(default)]
    pub template: Option<Vec<[f32; 2]>>,
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    #[serde(default)]
    pub bgr: bool,
    #[serde(default)]
    pub mean: [f32; 3],
    #[serde(default = "unit_std")]
    pub std: [f32; 3],
    /// Grey level of the padding, before normalisation.
    #[serde(default = "default_pad")]
    pub pad: f32,
    /// Centre the image in the padding (YOLOX, NanoDet pad bottom/right).
    #[serde(default)]
    pub center: bool,
    /// Cut the padding down in whole blocks of this many pixels, so a frame
    /// of another shape than the input's runs on a smaller input (16:9 in
    /// 416×416: 416×288, 0.69× the pixels). Every pixel keeps its place
    /// on the model's stride grid, so the detections are the full input's
    /// to rounding; padding only up to the next multiple (YOLOv5's
    /// "rectangular" inference) moves the frame on the grid, and NanoDet
    /// then loses people it finds in the full input (`bus.jpg`). Only for
    /// a fully convolutional model that takes any input whose sides are
    /// multiples of this (its largest stride), as `width` and `height` are.
    #[serde(default)]
    pub trim_padding: Option<NonZeroU32>,
}

fn unit_std() -> [f32; 3] {
    [1.0; 3]
}

fn default_pad() -> f32 {
    114.0
}

impl Preprocess {
    /// The tensor shape of the full `width` × `height` input.
    pub fn input_shape(&self) -> Vec<usize> {
        self.shape(self.width, self.height)
    }

    /// The tensor shape of a `width` × `height` input in this layout.
    pub fn shape(&self, width: u32, height: u32) -> Vec<usize> {
        let (w, h) = (width as usize, height as usize);
        match self.layout {
            Layout::Nchw => vec![1, 3, h, w],
            Layout::Nhwc => vec![1, h, w, 3],
        }
    }

    /// A model that trims its padding must be able to: its full input's
    /// sides are whole blocks.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        match self.trim_padding {
            Some(m) if self.width % m != 0 || self.height % m != 0 => {
                Err(PreprocessError::TrimPadding {
                    multiple: m.get(),
                    width: self.width,
                    height: self.height,
                })
            }
            _ => Ok(()),
        }
    }

    /// Where a `sw` × `sh` frame goes: scaled to fit the full input, padded
    /// (centred or not), then the padding trimmed ([`Self::trim_padding`]).
    /// Returns the transform and the size the frame is scaled to.
    fn fit(&self, sw: u32, sh: u32) -> (Letterbox, [u32; 2]) {
        let (w, h) = (self.width, self.height);
        let scale = (w as f32 / sw as f32).min(h as f32 / sh as f32);
        let nw = ((sw as f32 * scale).round() as u32).clamp(1, w);
        let nh = ((sh as f32 * scale).round() as u32).clamp(1, h);
        let (left, top) = if self.center {
            ((w - nw) / 2, (h - nh) / 2)
        } else {
            (0, 0)
        };
        let (right, bottom) = (w - nw - left, h - nh - top);
        let trim = |pad: u32| self.trim_padding.map_or(pad, |m| pad % m);
        let transform = Letterbox {
            input_width: trim(left) + nw + trim(right),
            input_height: trim(top) + nh + trim(bottom),
            scale,
            pad_x: trim(left) as f32,
            pad_y: trim(top) as f32,
            src_width: sw,
            src_height: sh,
        };
        (transform, [nw, nh])
    }
}

/// The transform one frame went through: source = (input - pad) / scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// The model input the frame was fitted into, in pixels.
    pub input_width: u32,
    pub input_height: u32,
    pub scale: f32,
    pub pad_x: f32,
    pub pad_y: f32,
    pub src_width: u32,
    pub src_height: u32,
}

impl Letterbox {
    /// A box in model-input pixels mapped back to source pixels, clamped to the frame.
    pub fn to_source(&self, b: BBox) -> BBox {
        BBox::new(
            (b.x1 - self.pad_x) / self.scale,
            (b.y1 - self.pad_y) / self.scale,
            (b.x2 - self.pad_x) / self.scale,
            (b.y2 - self.pad_y) / self.scale,
        )
        .clamp(self.src_width as f32, self.src_height as f32)
    }

    /// A point in model-input pixels mapped back to source pixels, not
    /// clamped: landmarks and corners beyond the frame's edge stay where the
    /// model put them, so alignment and rectification follow the real outline.
    pub fn point_to_source(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        [(x - self.pad_x) / self.scale, (y - self.pad_y) / self.scale]
    }
}

/// Reusable buffers, so the hot path allocates nothing per frame.
pub struct Letterboxer {
    spec: Preprocess,
    resizer: Resizer,
    scaled: Vec<u8>,
}

impl Letterboxer {
    pub fn new(spec: Preprocess) -> Self {
        Self {
            spec,
            resizer: Resizer::new(),
            scaled: Vec::new(),
        }
    }

    pub fn spec(&self) -> &Preprocess {
        &self.spec
    }

    /// Write the normalised input tensor for `frame` into `out` (resized to
    /// fit) and return the transform to map detections back.
    pub fn run(
        &mut self,
        frame: &RgbFrame,
        out: &mut Vec<f32>,
    ) -> Result<Letterbox, PreprocessError> {
        let s = &self.spec;
        let (sw, sh) = (frame.width(), frame.height());
        let (transform, [nw, nh]) = s.fit(sw, sh);

        let packed = frame.packed();
        // Typed views, not `Image`/`ImageRef`: `Resizer::resize` dispatches on
        // the pixel type at run time and so links the resizer for all 13 of
        // them (1.8 MB of the aarch64 daemon, docs/DEPLOY.md); only RGB8
        // comes here, and `resize` would call this same `resize_typed`.
        let src = TypedImageRef::<U8x3>::from_buffer(sw, sh, &packed)
            .map_err(|e| PreprocessError::Resize(e.to_string()))?;
        self.scaled.resize((nw * nh * 3) as usize, 0);
        let mut dst = TypedImage::<U8x3>::from_buffer(nw, nh, &mut self.scaled)
            .map_err(|e| PreprocessError::Resize(e.to_string()))?;
        let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        self.resizer
            .resize_typed(&src, &mut dst, &opts)
            .map_err(|e| PreprocessError::Resize(e.to_string()))?;

        let w = transform.input_width as usize;
        let plane = w * transform.input_height as usize;
        out.clear();
        out.resize(3 * plane, 0.0);
        // Channel c of the tensor reads source channel order[c].
        let order = if s.bgr { [2, 1, 0] } else { [0, 1, 2] };
        let norm: [(f32, f32); 3] = std::array::from_fn(|c| (s.mean[c], 1.0 / s.std[c]));
        let pad_px: [f32; 3] = std::array::from_fn(|c| (s.pad - norm[c].0) * norm[c].1);
        let (px, py) = (transform.pad_x as usize, transform.pad_y as usize);
        let (nw, nh) = (nw as usize, nh as usize);
        // Row by row: padding is a fill, and a row of the frame one pass over
        // its scaled pixels, with no test per value: 0.2 ms for 720p into
        // 416×288 against 1.1 with a test per value (docs/BENCHMARKS.md).
        let frame_row = |y: usize| {
            (py..py + nh)
                .contains(&y)
                .then(|| &self.scaled[(y - py) * nw * 3..(y - py + 1) * nw * 3])
        };
        match s.layout {
            Layout::Nchw => {
                for (c, channel) in out.chunks_exact_mut(plane).enumerate() {
                    let (mean, inv_std) = norm[c];
                    for (y, row) in channel.chunks_exact_mut(w).enumerate() {
                        let Some(src) = frame_row(y) else {
                            row.fill(pad_px[c]);
                            continue;
                        };
                        let (left, rest) = row.split_at_mut(px);
                        let (inside, right) = rest.split_at_mut(nw);
                        left.fill(pad_px[c]);
                        right.fill(pad_px[c]);
                        for (v, p) in inside.iter_mut().zip(src.chunks_exact(3)) {
                            *v = (p[order[c]] as f32 - mean) * inv_std;
                        }
                    }
                }
            }
            Layout::Nhwc => {
                let pad = |pixels: &mut [f32]| {
                    pixels
                        .chunks_exact_mut(3)
                        .for_each(|v| v.copy_from_slice(&pad_px))
                };
                for (y, row) in out.chunks_exact_mut(w * 3).enumerate() {
                    let Some(src) = frame_row(y) else {
                        pad(row);
                        continue;
                    };
                    let (left, rest) = row.split_at_mut(px * 3);
                    let (inside, right) = rest.split_at_mut(nw * 3);
                    pad(left);
                    pad(right);
                    for (v, p) in inside.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
                        for c in 0..3 {
                            v[c] = (p[order[c]] as f32 - norm[c].0) * norm[c].1;
                        }
                    }
                }
            }
        }
        Ok(transform)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(center: bool) -> Preprocess {
        Preprocess {
            name: None,
            resize: Resize::Letterbox,
            template: None,
            width: 64,
            height: 64,
            layout: Layout::Nchw,
            bgr: false,
            mean: [0.0; 3],
            std: [1.0; 3],
            pad: 114.0,
            center,
            trim_padding: None,
        }
    }

    #[test]
    fn wide_frame_is_padded_below_and_maps_back() {
        // 128x64 red frame -> scale 0.5, content 64x32 at the top.
        let img = image::RgbImage::from_pixel(128, 64, image::Rgb([200, 10, 20]));
        let frame = RgbFrame::from_image(&img).unwrap();
        let mut lb = Letterboxer::new(spec(false));
        let mut out = Vec::new();
        let t = lb.run(&frame, &mut out).unwrap();
        assert_eq!(t.scale, 0.5);
        assert_eq!((t.pad_x, t.pad_y), (0.0, 0.0));
        assert_eq!(out.len(), 3 * 64 * 64);
        assert_eq!(out[10 * 64 + 10], 200.0); // R plane inside
        assert_eq!(out[64 * 64 + 10 * 64 + 10], 10.0); // G plane inside
        assert_eq!(out[40 * 64 + 10], 114.0); // padding
        let b = t.to_source(BBox::new(8.0, 4.0, 32.0, 20.0));
        assert_eq!(b, BBox::new(16.0, 8.0, 64.0, 40.0));
    }

    #[test]
    fn centred_tall_frame_maps_back_through_the_offset() {
        let img = image::RgbImage::from_pixel(30, 60, image::Rgb([1, 2, 3]));
        let frame = RgbFrame::from_image(&img).unwrap();
        let mut s = spec(true);
        s.bgr = true;
        s.layout = Layout::Nhwc;
        let mut lb = Letterboxer::new(s);
        let mut out = Vec::new();
        let t = lb.run(&frame, &mut out).unwrap();
        assert!((t.scale - 64.0 / 60.0).abs() < 1e-6);
        assert_eq!(t.pad_x, 16.0); // (64 - 32) / 2
        let centre = (32 * 64 + 32) * 3;
        assert_eq!(&out[centre..centre + 3], &[3.0, 2.0, 1.0]); // BGR
        assert_eq!(out[0], 114.0);
        let b = t.to_source(BBox::new(16.0, 0.0, 48.0, 64.0));
        assert!((b.x1).abs() < 1e-4 && (b.x2 - 30.0).abs() < 1e-4 && (b.y2 - 60.0).abs() < 1e-4);
    }

    #[test]
    fn trimmed_padding_shrinks_the_input_and_keeps_the_grid() {
        // 128x60 -> scale 0.5, content 64x30, 17 rows of padding above and
        // below; trimmed in blocks of 16: one row each, a 64x32 input.
        let img = image::RgbImage::from_pixel(128, 60, image::Rgb([7, 8, 9]));
        let frame = RgbFrame::from_image(&img).unwrap();
        let mut s = spec(true);
        s.trim_padding = NonZeroU32::new(16);
        let mut lb = Letterboxer::new(s.clone());
        let mut out = Vec::new();
        let t = lb.run(&frame, &mut out).unwrap();
        assert_eq!((t.input_width, t.input_height), (64, 32));
        assert_eq!(s.shape(t.input_width, t.input_height), [1, 3, 32, 64]);
        assert_eq!(out.len(), 3 * 64 * 32);
        assert_eq!((t.pad_x, t.pad_y), (0.0, 1.0));
        assert_eq!(out[0], 114.0); // the padding row
        assert_eq!(out[64 + 5], 7.0); // the first row of the frame
        assert_eq!(out[31 * 64 + 5], 114.0); // the last row is padding again
        let b = t.to_source(BBox::new(0.0, 1.0, 64.0, 31.0));
        assert_eq!(b, BBox::new(0.0, 0.0, 128.0, 60.0));

        // A frame of the input's own shape has no padding to trim.
        let img = image::RgbImage::from_pixel(64, 64, image::Rgb([7, 8, 9]));
        let t = lb
            .run(&RgbFrame::from_image(&img).unwrap(), &mut out)
            .unwrap();
        assert_eq!((t.input_width, t.input_height), (64, 64));

        // Not centred: 34 rows below, trimmed in blocks of 32 to 2.
        s.center = false;
        s.trim_padding = NonZeroU32::new(32);
        assert!(s.validate().is_ok());
        let t = Letterboxer::new(s.clone()).run(&frame, &mut out).unwrap();
        assert_eq!((t.pad_y, t.input_height), (0.0, 32));

        s.trim_padding = NonZeroU32::new(48);
        assert!(matches!(
            s.validate(),
            Err(PreprocessError::TrimPadding { multiple: 48, .. })
        ));
    }

    #[test]
    fn normalisation_applies_mean_and_std() {
        let img = image::RgbImage::from_pixel(64, 64, image::Rgb([100, 100, 100]));
        let frame = RgbFrame::from_image(&img).unwrap();
        let mut s = spec(false);
        s.mean = [50.0; 3];
        s.std = [2.0; 3];
        let mut lb = Letterboxer::new(s);
        let mut out = Vec::new();
        lb.run(&frame, &mut out).unwrap();
        assert!(out.iter().all(|v| (*v - 25.0).abs() < 1e-6));
    }
}
