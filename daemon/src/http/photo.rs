//! A photo from a client, decoded safely: the format is sniffed from the
//! bytes (not the file name), the declared size is checked before any pixel
//! is decoded (a small file can declare a huge image), and the EXIF
//! orientation is applied, since phone photos are often stored sideways and
//! the face detector does not find sideways faces.

use std::io::Cursor;

use axum::http::StatusCode;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, RgbImage};

use super::error::AppError;

pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, AppError> {
    let not_image = || {
        AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not an image: expected a JPEG or PNG file",
        )
    };
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| AppError::internal("reading the image", e))?;
    if reader.format().is_none() {
        return Err(not_image());
    }
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        ImageError::Unsupported(_) => not_image(),
        e => undecodable(e),
    })?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("image is {w}x{h}; the limit is {max_pixels} pixels"),
        ));
    }
    let orientation = decoder.orientation().map_err(undecodable)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

fn undecodable(e: ImageError) -> AppError {
    AppError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("image cannot be decoded: {e}"),
    )
}
