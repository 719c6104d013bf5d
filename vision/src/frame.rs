//! Borrowed views of decoded frames, so video buffers reach the detector
//! without a copy: packed RGB8, or planar YUV 4:2:0 as decoders output it.

use std::borrow::Cow;

use thiserror::Error;
use yuv::{YuvPlanarImage, YuvRange, YuvStandardMatrix};

#[derive(Debug, Error, PartialEq)]
pub enum FrameError {
    #[error("frame of {width}x{height} with stride {stride} needs {needed} bytes, got {got}")]
    TooShort {
        width: u32,
        height: u32,
        stride: usize,
        needed: usize,
        got: usize,
    },
    #[error("frame has zero width or height")]
    Empty,
    #[error(
        "{plane} plane of {width}x{height} with stride {stride} needs {needed} bytes, got {got}"
    )]
    PlaneTooShort {
        plane: &'static str,
        width: u32,
        height: u32,
        stride: usize,
        needed: usize,
        got: usize,
    },
    #[error("YUV to RGB: {0}")]
    Convert(String),
}

/// Packed RGB, 3 bytes a pixel, rows `stride` bytes apart (GStreamer pads rows
/// to 4 bytes, so stride can exceed `3 * width`).
#[derive(Debug, Clone, Copy)]
pub struct RgbFrame<'a> {
    width: u32,
    height: u32,
    stride: usize,
    data: &'a [u8],
}

impl<'a> RgbFrame<'a> {
    pub fn new(width: u32, height: u32, stride: usize, data: &'a [u8]) -> Result<Self, FrameError> {
        if width == 0 || height == 0 {
            return Err(FrameError::Empty);
        }
        let needed = stride * (height as usize - 1) + 3 * width as usize;
        if stride < 3 * width as usize || data.len() < needed {
            return Err(FrameError::TooShort {
                width,
                height,
                stride,
                needed,
                got: data.len(),
            });
        }
        Ok(Self {
            width,
            height,
            stride,
            data,
        })
    }

    /// A view of a tightly packed `image::RgbImage`.
    pub fn from_image(img: &'a image::RgbImage) -> Result<Self, FrameError> {
        Self::new(
            img.width(),
            img.height(),
            3 * img.width() as usize,
            img.as_raw(),
        )
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Rows without padding, as one contiguous buffer (copies only when the
    /// stride is padded).
    pub fn packed(&self) -> Cow<'a, [u8]> {
        packed_rows(self.data, self.stride, 3 * self.width as usize, self.height)
    }
}

/// `rows` rows of `row` bytes, `stride` bytes apart, as one contiguous buffer.
fn packed_rows(data: &[u8], stride: usize, row: usize, rows: u32) -> Cow<'_, [u8]> {
    if stride == row {
        Cow::Borrowed(&data[..row * rows as usize])
    } else {
        let mut out = Vec::with_capacity(row * rows as usize);
        for y in 0..rows as usize {
            out.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        Cow::Owned(out)
    }
}

/// One plane of a planar frame: rows `stride` bytes apart.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
}

/// The YUV → RGB matrix a stream declares (its colorimetry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Matrix {
    Bt601,
    #[default]
    Bt709,
    Bt2020,
}

/// How a frame's YUV values map to RGB: the matrix, and whether luma spans
/// 0–255 (JPEG, some cameras) or the broadcast 16–235.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Colour {
    pub matrix: Matrix,
    pub full_range: bool,
}

/// Planar YUV 4:2:0 (I420): a full-size luma plane, then U and V at half the
/// width and height, rounded up. What software and hardware decoders hand
/// out; converting it to RGB after scaling it down, as the letterbox does,
/// costs a fraction of converting every decoded pixel first.
#[derive(Debug, Clone, Copy)]
pub struct I420Frame<'a> {
    width: u32,
    height: u32,
    planes: [Plane<'a>; 3],
    colour: Colour,
}

impl<'a> I420Frame<'a> {
    pub fn new(
        width: u32,
        height: u32,
        planes: [Plane<'a>; 3],
        colour: Colour,
    ) -> Result<Self, FrameError> {
        if width == 0 || height == 0 {
            return Err(FrameError::Empty);
        }
        let chroma = chroma_size(width, height);
        let sizes = [(width, height), chroma, chroma];
        for ((plane, (w, h)), name) in planes.iter().zip(sizes).zip(["Y", "U", "V"]) {
            let needed = plane.stride * (h as usize - 1) + w as usize;
            if plane.stride < w as usize || plane.data.len() < needed {
                return Err(FrameError::PlaneTooShort {
                    plane: name,
                    width: w,
                    height: h,
                    stride: plane.stride,
                    needed,
                    got: plane.data.len(),
                });
            }
        }
        Ok(Self {
            width,
            height,
            planes,
            colour,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn colour(&self) -> Colour {
        self.colour
    }

    /// Plane `i` (0: Y, 1: U, 2: V) without row padding, with its size.
    pub fn packed_plane(&self, i: usize) -> (Cow<'a, [u8]>, u32, u32) {
        let (w, h) = match i {
            0 => (self.width, self.height),
            _ => chroma_size(self.width, self.height),
        };
        let p = self.planes[i];
        (packed_rows(p.data, p.stride, w as usize, h), w, h)
    }

    /// The whole frame as packed RGB.
    pub fn to_rgb(&self) -> Result<Vec<u8>, FrameError> {
        let mut rgb = vec![0; 3 * self.width as usize * self.height as usize];
        to_rgb_into(self.planes, self.width, self.height, self.colour, &mut rgb)?;
        Ok(rgb)
    }
}

/// Width and height of a 4:2:0 frame's chroma planes.
pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
    (width.div_ceil(2), height.div_ceil(2))
}

/// Converts I420 `planes` of a `width` × `height` frame into packed RGB.
/// The `yuv` crate's SIMD conversion (SSE/AVX2, NEON), checked against
/// GStreamer's `videoconvert` in the daemon's decoder tests.
pub fn to_rgb_into(
    planes: [Plane; 3],
    width: u32,
    height: u32,
    colour: Colour,
    rgb: &mut [u8],
) -> Result<(), FrameError> {
    let image = YuvPlanarImage {
        y_plane: planes[0].data,
        y_stride: planes[0].stride as u32,
        u_plane: planes[1].data,
        u_stride: planes[1].stride as u32,
        v_plane: planes[2].data,
        v_stride: planes[2].stride as u32,
        width,
        height,
    };
    let range = if colour.full_range {
        YuvRange::Full
    } else {
        YuvRange::Limited
    };
    let matrix = match colour.matrix {
        Matrix::Bt601 => YuvStandardMatrix::Bt601,
        Matrix::Bt709 => YuvStandardMatrix::Bt709,
        Matrix::Bt2020 => YuvStandardMatrix::Bt2020,
    };
    yuv::yuv420_to_rgb(&image, rgb, 3 * width, range, matrix)
        .map_err(|e| FrameError::Convert(e.to_string()))
}

/// A frame as the letterbox takes it.
#[derive(Debug, Clone, Copy)]
pub enum Picture<'a> {
    Rgb(RgbFrame<'a>),
    I420(I420Frame<'a>),
}

impl Picture<'_> {
    pub fn width(&self) -> u32 {
        match self {
            Picture::Rgb(f) => f.width(),
            Picture::I420(f) => f.width(),
        }
    }

    pub fn height(&self) -> u32 {
        match self {
            Picture::Rgb(f) => f.height(),
            Picture::I420(f) => f.height(),
        }
    }
}

impl<'a> From<RgbFrame<'a>> for Picture<'a> {
    fn from(f: RgbFrame<'a>) -> Self {
        Picture::Rgb(f)
    }
}

impl<'a> From<&RgbFrame<'a>> for Picture<'a> {
    fn from(f: &RgbFrame<'a>) -> Self {
        Picture::Rgb(*f)
    }
}

impl<'a> From<I420Frame<'a>> for Picture<'a> {
    fn from(f: I420Frame<'a>) -> Self {
        Picture::I420(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_buffers() {
        assert!(matches!(
            RgbFrame::new(4, 2, 12, &[0; 23]),
            Err(FrameError::TooShort { .. })
        ));
        assert_eq!(
            RgbFrame::new(0, 2, 12, &[0; 24]).unwrap_err(),
            FrameError::Empty
        );
        assert!(RgbFrame::new(4, 2, 12, &[0; 24]).is_ok());
    }

    /// `img` as I420 planes (Y, U, V), BT.709 limited range.
    pub(crate) fn i420_of(img: &image::RgbImage) -> [Vec<u8>; 3] {
        let (w, h) = img.dimensions();
        let mut planar =
            yuv::YuvPlanarImageMut::<u8>::alloc(w, h, yuv::YuvChromaSubsampling::Yuv420);
        yuv::rgb_to_yuv420(
            &mut planar,
            img.as_raw(),
            3 * w,
            YuvRange::Limited,
            YuvStandardMatrix::Bt709,
            yuv::YuvConversionMode::Balanced,
        )
        .unwrap();
        [
            planar.y_plane.borrow().to_vec(),
            planar.u_plane.borrow().to_vec(),
            planar.v_plane.borrow().to_vec(),
        ]
    }

    fn gradient(w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
        })
    }

    fn planes_of(p: &[Vec<u8>; 3], w: u32) -> [Plane<'_>; 3] {
        let cw = w.div_ceil(2) as usize;
        [(&p[0], w as usize), (&p[1], cw), (&p[2], cw)].map(|(d, stride)| Plane { data: d, stride })
    }

    #[test]
    fn i420_converts_back_to_the_rgb_it_came_from() {
        // Odd sizes: the chroma planes round up. A gradient gentle enough
        // that halving the chroma loses little; swapped or misplaced planes
        // would be off by tens.
        let img = gradient(301, 201);
        let p = i420_of(&img);
        let frame = I420Frame::new(301, 201, planes_of(&p, 301), Colour::default()).unwrap();
        let rgb = frame.to_rgb().unwrap();
        let err = rgb
            .iter()
            .zip(img.as_raw())
            .map(|(&a, &b)| (a as f64 - b as f64).abs())
            .sum::<f64>()
            / rgb.len() as f64;
        assert!(err < 1.5, "mean abs diff {err}");
    }

    #[test]
    fn padded_planes_read_as_packed_ones() {
        let img = gradient(20, 10);
        let p = i420_of(&img);
        let packed = I420Frame::new(20, 10, planes_of(&p, 20), Colour::default()).unwrap();
        // The same planes with 12 bytes of padding after every row.
        let pad = |plane: &[u8], w: usize| -> Vec<u8> {
            plane
                .chunks(w)
                .flat_map(|r| r.iter().copied().chain([7; 12]))
                .collect()
        };
        let padded = [pad(&p[0], 20), pad(&p[1], 10), pad(&p[2], 10)];
        let planes = [(&padded[0], 32), (&padded[1], 22), (&padded[2], 22)]
            .map(|(d, stride)| Plane { data: d, stride });
        let strided = I420Frame::new(20, 10, planes, Colour::default()).unwrap();
        assert_eq!(strided.to_rgb().unwrap(), packed.to_rgb().unwrap());
        for i in 0..3 {
            assert_eq!(strided.packed_plane(i).0, packed.packed_plane(i).0);
        }
    }

    #[test]
    fn short_planes_are_named() {
        let p = i420_of(&gradient(8, 4));
        let mut planes = planes_of(&p, 8);
        planes[2].data = &p[2][..3];
        let err = I420Frame::new(8, 4, planes, Colour::default()).unwrap_err();
        assert!(matches!(
            err,
            FrameError::PlaneTooShort {
                plane: "V",
                needed: 8,
                got: 3,
                ..
            }
        ));
    }

    #[test]
    fn packed_drops_row_padding() {
        let data: Vec<u8> = (0..16).collect();
        let f = RgbFrame::new(2, 2, 8, &data).unwrap();
        assert_eq!(&*f.packed(), &[0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]);
    }
}
