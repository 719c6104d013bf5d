//! Fit a frame into a model's fixed input without distorting it: scale to fit,
//! pad the rest, normalise into an f32 tensor, and map boxes back afterwards.

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
}

fn unit_std() -> [f32; 3] {
    [1.0; 3]
}

fn default_pad() -> f32 {
    114.0
}

impl Preprocess {
    pub fn input_shape(&self) -> Vec<usize> {
        let (w, h) = (self.width as usize, self.height as usize);
        match self.layout {
            Layout::Nchw => vec![1, 3, h, w],
            Layout::Nhwc => vec![1, h, w, 3],
        }
    }
}

/// The transform one frame went through: source = (input - pad) / scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
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
        let scale = (s.width as f32 / sw as f32).min(s.height as f32 / sh as f32);
        let nw = ((sw as f32 * scale).round() as u32).clamp(1, s.width);
        let nh = ((sh as f32 * scale).round() as u32).clamp(1, s.height);
        let (pad_x, pad_y) = if s.center {
            ((s.width - nw) / 2, (s.height - nh) / 2)
        } else {
            (0, 0)
        };

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

        let (w, h) = (s.width as usize, s.height as usize);
        let plane = w * h;
        out.clear();
        out.resize(3 * plane, 0.0);
        // Channel c of the tensor reads source channel order[c].
        let order = if s.bgr { [2, 1, 0] } else { [0, 1, 2] };
        let norm: [(f32, f32); 3] = std::array::from_fn(|c| (s.mean[c], 1.0 / s.std[c]));
        let pad_px: [f32; 3] = std::array::from_fn(|c| (s.pad - norm[c].0) * norm[c].1);
        let (px, py, nw, nh) = (pad_x as usize, pad_y as usize, nw as usize, nh as usize);
        for y in 0..h {
            for x in 0..w {
                let inside = x >= px && x < px + nw && y >= py && y < py + nh;
                for c in 0..3 {
                    let v = if inside {
                        let i = ((y - py) * nw + (x - px)) * 3 + order[c];
                        (self.scaled[i] as f32 - norm[c].0) * norm[c].1
                    } else {
                        pad_px[c]
                    };
                    match s.layout {
                        Layout::Nchw => out[c * plane + y * w + x] = v,
                        Layout::Nhwc => out[(y * w + x) * 3 + c] = v,
                    }
                }
            }
        }
        Ok(Letterbox {
            scale,
            pad_x: pad_x as f32,
            pad_y: pad_y as f32,
            src_width: sw,
            src_height: sh,
        })
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
