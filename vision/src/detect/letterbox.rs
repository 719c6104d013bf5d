//! Fit a frame into a model's input without distorting it: scale to fit,
//! pad the rest, normalise into an f32 tensor, and map boxes back afterwards.

use std::num::NonZeroU32;

use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::{U8, U8x3};
use fast_image_resize::{FilterType, PixelTrait, ResizeAlg, ResizeOptions, Resizer};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::BBox;
use crate::frame::{Picture, Plane, chroma_size, to_rgb_into};

#[derive(Debug, Error)]
pub enum PreprocessError {
    #[error("resize failed: {0}")]
    Resize(String),
    #[error("window {0:?} is not within the input its frame fits")]
    Window(Window),
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

    /// Where a `sw` × `sh` frame goes in the input: what [`Letterboxer::run`]
    /// will return for it, without resizing anything.
    pub fn letterbox(&self, sw: u32, sh: u32) -> Letterbox {
        self.fit(sw, sh).0
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

    /// The smallest window of this input that holds `region` (source
    /// pixels), with its corner on the `block` grid and its sides whole
    /// multiples of `step` (itself a multiple of `block`), or the input's own
    /// sides where those are less. For a fully convolutional model whose
    /// largest stride is `block`, every pixel of the window keeps its place
    /// on the stride grid, so the model sees there what it sees in the whole
    /// input, up to the context its receptive field loses at the window's
    /// edges. Each window size is another input shape to plan for: `step`
    /// bounds how many there are.
    pub fn window(&self, region: BBox, block: u32, step: u32) -> Window {
        let side = |lo: f32, hi: f32, pad: f32, full: u32| {
            let at = |v: f32| (v * self.scale + pad).clamp(0.0, full as f32);
            let start = (at(lo) / block as f32).floor() as u32 * block;
            let end = (at(hi) / block as f32).ceil() as u32 * block;
            let len = (end.saturating_sub(start).max(1))
                .div_ceil(step)
                .saturating_mul(step)
                .min(full);
            (start.min(full - len), len)
        };
        let (x, width) = side(region.x1, region.x2, self.pad_x, self.input_width);
        let (y, height) = side(region.y1, region.y2, self.pad_y, self.input_height);
        Window {
            x,
            y,
            width,
            height,
        }
    }

    /// The transform of the part of this input inside `w`: what a model run
    /// on the window alone reports is mapped back through it.
    fn within(&self, w: Window) -> Letterbox {
        Letterbox {
            input_width: w.width,
            input_height: w.height,
            pad_x: self.pad_x - w.x as f32,
            pad_y: self.pad_y - w.y as f32,
            ..*self
        }
    }
}

/// A rectangle of a model's input, in input pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Reusable buffers, so the hot path allocates nothing per frame.
pub struct Letterboxer {
    spec: Preprocess,
    resizer: Resizer,
    /// The frame scaled to fit, packed RGB.
    scaled: Vec<u8>,
    /// An I420 frame's planes scaled to fit, before conversion.
    planes: [Vec<u8>; 3],
}

impl Letterboxer {
    pub fn new(spec: Preprocess) -> Self {
        Self {
            spec,
            resizer: Resizer::new(),
            scaled: Vec::new(),
            planes: Default::default(),
        }
    }

    pub fn spec(&self) -> &Preprocess {
        &self.spec
    }

    /// Write the normalised input tensor for `frame` into `out` (resized to
    /// fit) and return the transform to map detections back.
    pub fn run<'f>(
        &mut self,
        frame: impl Into<Picture<'f>>,
        out: &mut Vec<f32>,
    ) -> Result<Letterbox, PreprocessError> {
        self.run_in(frame, None, out)
    }

    /// [`run`](Self::run), but write only `window` of the input (all of it
    /// when `None`): the tensor holds what those pixels of the whole input
    /// would hold, value for value.
    pub fn run_in<'f>(
        &mut self,
        frame: impl Into<Picture<'f>>,
        window: Option<Window>,
        out: &mut Vec<f32>,
    ) -> Result<Letterbox, PreprocessError> {
        let frame = frame.into();
        let (full, [nw, nh]) = self.spec.fit(frame.width(), frame.height());
        let window = window.unwrap_or(Window {
            x: 0,
            y: 0,
            width: full.input_width,
            height: full.input_height,
        });
        if window.width == 0
            || window.height == 0
            || window.x + window.width > full.input_width
            || window.y + window.height > full.input_height
        {
            return Err(PreprocessError::Window(window));
        }
        let transform = full.within(window);

        self.scale(frame, nw, nh)?;

        let s = &self.spec;
        let w = window.width as usize;
        let plane = w * window.height as usize;
        out.clear();
        out.resize(3 * plane, 0.0);
        // Channel c of the tensor reads source channel order[c].
        let order = if s.bgr { [2, 1, 0] } else { [0, 1, 2] };
        let norm: [(f32, f32); 3] = std::array::from_fn(|c| (s.mean[c], 1.0 / s.std[c]));
        let pad_px: [f32; 3] = std::array::from_fn(|c| (s.pad - norm[c].0) * norm[c].1);
        // Where the scaled frame lies in the window: rows and columns from
        // the window's corner, clipped to the window.
        let (wx, wy) = (window.x as usize, window.y as usize);
        let (fx, fy) = (full.pad_x as usize, full.pad_y as usize);
        let (nw, nh) = (nw as usize, nh as usize);
        let px = fx.saturating_sub(wx).min(w);
        let span = (fx + nw).saturating_sub(wx).min(w).saturating_sub(px);
        let first = (wx + px).saturating_sub(fx);
        // Row by row: padding is a fill, and a row of the frame one pass over
        // its scaled pixels, with no test per value: 0.2 ms for 720p into
        // 416×288 against 1.1 with a test per value (docs/BENCHMARKS.md).
        let frame_row = |y: usize| {
            (fy..fy + nh).contains(&(y + wy)).then(|| {
                let row = (y + wy - fy) * nw;
                &self.scaled[(row + first) * 3..(row + first + span) * 3]
            })
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
                        let (inside, right) = rest.split_at_mut(span);
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
                    let (inside, right) = rest.split_at_mut(span * 3);
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

    /// `frame` scaled to `nw` × `nh` as packed RGB in `self.scaled`. I420 is
    /// scaled plane by plane and converted after: a 720p frame into a
    /// 416-wide input converts a ninth of its pixels, and only its luma is
    /// scaled at full size.
    fn scale(&mut self, frame: Picture, nw: u32, nh: u32) -> Result<(), PreprocessError> {
        self.scaled.resize((nw * nh * 3) as usize, 0);
        match frame {
            Picture::Rgb(f) => scale_plane::<U8x3>(
                &mut self.resizer,
                (&f.packed(), f.width(), f.height()),
                (&mut self.scaled, nw, nh),
            ),
            Picture::I420(f) => {
                let (cw, ch) = chroma_size(nw, nh);
                for (i, plane) in self.planes.iter_mut().enumerate() {
                    let (w, h) = if i == 0 { (nw, nh) } else { (cw, ch) };
                    plane.resize((w * h) as usize, 0);
                    let (src, sw, sh) = f.packed_plane(i);
                    scale_plane::<U8>(&mut self.resizer, (&src, sw, sh), (plane, w, h))?;
                }
                let [y, u, v] = &self.planes;
                let planes = [(y, nw), (u, cw), (v, cw)].map(|(data, stride)| Plane {
                    data,
                    stride: stride as usize,
                });
                to_rgb_into(planes, nw, nh, f.colour(), &mut self.scaled)
                    .map_err(|e| PreprocessError::Resize(e.to_string()))
            }
        }
    }
}

/// Bilinear scaling of one packed image of pixel type `P` into another.
/// Typed views, not `Image`/`ImageRef`: `Resizer::resize` dispatches on the
/// pixel type at run time and so links the resizer for all 13 of them (1.8
/// MB of the aarch64 daemon, docs/DEPLOY.md); only the types named here are
/// linked, and `resize` would call this same `resize_typed`.
fn scale_plane<P: PixelTrait>(
    resizer: &mut Resizer,
    (src, sw, sh): (&[u8], u32, u32),
    (dst, dw, dh): (&mut [u8], u32, u32),
) -> Result<(), PreprocessError> {
    let err = |e: &dyn std::fmt::Display| PreprocessError::Resize(e.to_string());
    let src = TypedImageRef::<P>::from_buffer(sw, sh, src).map_err(|e| err(&e))?;
    let mut dst = TypedImage::<P>::from_buffer(dw, dh, dst).map_err(|e| err(&e))?;
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    resizer
        .resize_typed(&src, &mut dst, &opts)
        .map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RgbFrame;

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
        let t = lb.run(frame, &mut out).unwrap();
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
        let t = lb.run(frame, &mut out).unwrap();
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
        let t = lb.run(frame, &mut out).unwrap();
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
            .run(RgbFrame::from_image(&img).unwrap(), &mut out)
            .unwrap();
        assert_eq!((t.input_width, t.input_height), (64, 64));

        // Not centred: 34 rows below, trimmed in blocks of 32 to 2.
        s.center = false;
        s.trim_padding = NonZeroU32::new(32);
        assert!(s.validate().is_ok());
        let t = Letterboxer::new(s.clone()).run(frame, &mut out).unwrap();
        assert_eq!((t.pad_y, t.input_height), (0.0, 32));

        s.trim_padding = NonZeroU32::new(48);
        assert!(matches!(
            s.validate(),
            Err(PreprocessError::TrimPadding { multiple: 48, .. })
        ));
    }

    /// A frame whose every pixel differs from its neighbours, so a window
    /// read one pixel off shows.
    fn gradient(w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 7 % 251) as u8,
                (y * 5 % 241) as u8,
                ((x + y) % 256) as u8,
            ])
        })
    }

    #[test]
    fn a_window_holds_what_the_whole_input_holds_there() {
        // 200x90 into 64x64 with blocks of 16: scale 0.32, 64x29 centred
        // with 17 rows of padding above and 18 below, trimmed to a 64x32
        // input with the frame on rows 1 to 29.
        let img = gradient(200, 90);
        let frame = RgbFrame::from_image(&img).unwrap();
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let mut s = spec(true);
            s.layout = layout;
            s.trim_padding = NonZeroU32::new(16);
            let mut lb = Letterboxer::new(s.clone());
            let (mut whole, mut part) = (Vec::new(), Vec::new());
            let full = lb.run(frame, &mut whole).unwrap();
            assert_eq!((full.input_width, full.input_height), (64, 32));
            assert_eq!(s.letterbox(200, 90), full);
            // Windows on the padding's edge, across the frame, and inside.
            for (x, y, width, height) in [(0, 0, 64, 32), (16, 0, 32, 16), (48, 16, 16, 16)] {
                let win = Window {
                    x,
                    y,
                    width,
                    height,
                };
                let t = lb.run_in(frame, Some(win), &mut part).unwrap();
                assert_eq!((t.input_width, t.input_height), (width, height));
                let (x, y, width, height) =
                    (x as usize, y as usize, width as usize, height as usize);
                let at = |c: usize, row: usize, col: usize| match layout {
                    Layout::Nchw => (c * 32 + row) * 64 + col,
                    Layout::Nhwc => (row * 64 + col) * 3 + c,
                };
                let at_window = |c: usize, row: usize, col: usize| match layout {
                    Layout::Nchw => (c * height + row) * width + col,
                    Layout::Nhwc => (row * width + col) * 3 + c,
                };
                for c in 0..3 {
                    for row in 0..height {
                        for col in 0..width {
                            assert_eq!(
                                part[at_window(c, row, col)],
                                whole[at(c, y + row, x + col)],
                                "{layout:?} {win:?} channel {c} at {row},{col}"
                            );
                        }
                    }
                }
                // A box the model reports in the window maps back where the
                // same box, offset into the whole input, does.
                let b = BBox::new(3.0, 4.0, 9.0, 12.0);
                let offset = BBox::new(
                    b.x1 + x as f32,
                    b.y1 + y as f32,
                    b.x2 + x as f32,
                    b.y2 + y as f32,
                );
                assert_eq!(t.to_source(b), full.to_source(offset));
                assert_eq!(
                    t.point_to_source([5.0, 6.0]),
                    full.point_to_source([5.0 + x as f32, 6.0 + y as f32])
                );
            }
            let beyond = Window {
                x: 16,
                y: 16,
                width: 16,
                height: 32,
            };
            assert!(matches!(
                lb.run_in(frame, Some(beyond), &mut part),
                Err(PreprocessError::Window(w)) if w == beyond
            ));
        }
    }

    #[test]
    fn a_window_is_the_smallest_on_the_grid_that_holds_the_region() {
        // A 1280x720 frame in a 640x384 input (YuNet's, trimmed): scale 0.5.
        let full = Letterbox {
            input_width: 640,
            input_height: 384,
            scale: 0.5,
            pad_x: 0.0,
            pad_y: 0.0,
            src_width: 1280,
            src_height: 720,
        };
        let win = |x1, y1, x2, y2| full.window(BBox::new(x1, y1, x2, y2), 32, 128);
        let w = |x, y, width, height| Window {
            x,
            y,
            width,
            height,
        };
        // Input 150..250 x 50..110: corner down to the grid, sides up to 128.
        assert_eq!(win(300.0, 100.0, 500.0, 220.0), w(128, 32, 128, 128));
        // Wider than one step: two.
        assert_eq!(win(300.0, 100.0, 600.0, 220.0), w(128, 32, 256, 128));
        // Against the right and bottom edges: moved in, still on the grid.
        assert_eq!(win(1200.0, 700.0, 1280.0, 720.0), w(512, 256, 128, 128));
        // Past the edges: clipped first.
        assert_eq!(win(-50.0, -50.0, 40.0, 40.0), w(0, 0, 128, 128));
        // Taller than the input can be: the input's own height.
        assert_eq!(win(0.0, 0.0, 10.0, 720.0), w(0, 0, 128, 384));
        // The whole frame: the whole input.
        assert_eq!(win(0.0, 0.0, 1280.0, 720.0), w(0, 0, 640, 384));
        // A region of no size still has a window.
        assert_eq!(win(400.0, 400.0, 400.0, 400.0), w(192, 192, 128, 128));
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
        lb.run(frame, &mut out).unwrap();
        assert!(out.iter().all(|v| (*v - 25.0).abs() < 1e-6));
    }
}
