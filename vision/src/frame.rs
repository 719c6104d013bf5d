//! A borrowed view of a packed RGB8 frame, so decoded video buffers reach the
//! detector without a copy.

use thiserror::Error;

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
    pub fn packed(&self) -> std::borrow::Cow<'a, [u8]> {
        let row = 3 * self.width as usize;
        if self.stride == row {
            std::borrow::Cow::Borrowed(&self.data[..row * self.height as usize])
        } else {
            let mut out = Vec::with_capacity(row * self.height as usize);
            for y in 0..self.height as usize {
                out.extend_from_slice(&self.data[y * self.stride..y * self.stride + row]);
            }
            std::borrow::Cow::Owned(out)
        }
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

    #[test]
    fn packed_drops_row_padding() {
        let data: Vec<u8> = (0..16).collect();
        let f = RgbFrame::new(2, 2, 8, &data).unwrap();
        assert_eq!(&*f.packed(), &[0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]);
    }
}
