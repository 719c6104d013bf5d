//! Reading the multipart form of `/video` and `/video-streaming`: the video
//! is streamed to a spool file (never held in memory) and the fields are
//! checked, each problem a 4xx with words a person can act on.

use std::io::Write;
use std::path::Path;

use axum::extract::Multipart;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::http::StatusCode;
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use wayside_vision::count::CountingLine;

use super::error::AppError;

/// Names of the spool files (the upload and its `.annotated.mp4`): only
/// those are removed at start, whatever else shares the directory.
const SPOOL_PREFIX: &str = "upload-";

/// Removes what jobs of an earlier run left in the spool: a process killed
/// mid-job (power cut, SIGKILL) never ran the drops that remove its upload
/// and annotated video, and no job of this run can own them.
pub fn clear_spool(spool_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(spool_dir) else {
        return;
    };
    let mut removed = 0u32;
    for entry in entries.flatten() {
        let ours = entry
            .file_name()
            .to_string_lossy()
            .starts_with(SPOOL_PREFIX);
        if ours && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, spool = %spool_dir.display(), "spool: removed files of an interrupted run");
    }
}

pub struct VideoUpload {
    pub file: TempPath,
    /// Hex sha256 of the video: names its source in the data API, so the
    /// same video uploaded twice forwards the same records.
    pub sha256: String,
    pub interval_ms: u64,
    pub line: Option<CountingLine>,
}

fn multipart_error(e: MultipartError) -> AppError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::new(status, "upload is larger than server.max_upload_bytes")
    } else {
        AppError::new(
            status,
            format!("malformed multipart body: {}", e.body_text()),
        )
    }
}

/// A full disk is the box's condition, not a bug: say so (507) and keep
/// serving; anything else is ours (500).
fn spool_error(e: std::io::Error) -> AppError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        tracing::warn!("spooling an upload: {e}");
        AppError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "no space left on the box to spool the upload; retry later",
        )
    } else {
        AppError::internal("spooling the upload", e)
    }
}

pub async fn read(
    multipart: Result<Multipart, MultipartRejection>,
    spool_dir: &Path,
    max_bytes: u64,
) -> Result<VideoUpload, AppError> {
    let mut multipart = multipart.map_err(|e| {
        AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected multipart/form-data: {}", e.body_text()),
        )
    })?;
    let (mut file, mut interval, mut line) = (None, None, None);
    let mut hasher = Sha256::new();
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "video" => {
                let tmp = tempfile::Builder::new()
                    .prefix(SPOOL_PREFIX)
                    .tempfile_in(spool_dir)
                    .map_err(spool_error)?;
                let (mut handle, path) = tmp.into_parts();
                let mut written = 0u64;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    written += chunk.len() as u64;
                    if written > max_bytes {
                        return Err(AppError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("video is larger than the limit of {max_bytes} bytes"),
                        ));
                    }
                    hasher.update(&chunk);
                    handle.write_all(&chunk).map_err(spool_error)?;
                }
                handle.flush().map_err(spool_error)?;
                if written == 0 {
                    return Err(AppError::bad_request("video is empty"));
                }
                file = Some(path);
            }
            "interval" => interval = Some(field.text().await.map_err(multipart_error)?),
            "line" => line = Some(field.text().await.map_err(multipart_error)?),
            _ => {} // unknown fields are ignored, as browsers add their own
        }
    }
    let file = file
        .ok_or_else(|| AppError::bad_request("video is required (multipart file field `video`)"))?;
    let interval = interval
        .ok_or_else(|| AppError::bad_request("interval is required (milliseconds, > 0)"))?;
    let interval_ms = interval
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            AppError::bad_request(format!(
                "interval must be a positive integer of milliseconds, got {interval:?}"
            ))
        })?;
    let line = line
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.parse::<CountingLine>())
        .transpose()
        .map_err(|e| AppError::bad_request(format!("line: {e}")))?;
    Ok(VideoUpload {
        file,
        sha256: hex::encode(hasher.finalize()),
        interval_ms,
        line,
    })
}

/// The form of `/face-detect`: the photo, in memory (it is bounded by
/// `server.max_image_bytes`), and the optional search options.
pub struct ImageUpload {
    pub bytes: Vec<u8>,
    pub k: Option<u64>,
    pub min_score: Option<f64>,
}

pub async fn read_image(
    multipart: Result<Multipart, MultipartRejection>,
    max_bytes: u64,
) -> Result<ImageUpload, AppError> {
    let mut multipart = multipart.map_err(|e| {
        AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected multipart/form-data: {}", e.body_text()),
        )
    })?;
    let (mut bytes, mut k, mut min_score) = (None, None, None);
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "image" => {
                let mut buf = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if (buf.len() + chunk.len()) as u64 > max_bytes {
                        return Err(AppError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("image is larger than the limit of {max_bytes} bytes"),
                        ));
                    }
                    buf.extend_from_slice(&chunk);
                }
                if buf.is_empty() {
                    return Err(AppError::bad_request("image is empty"));
                }
                bytes = Some(buf);
            }
            "k" => k = Some(field.text().await.map_err(multipart_error)?),
            "min_score" => min_score = Some(field.text().await.map_err(multipart_error)?),
            _ => {}
        }
    }
    let bytes = bytes
        .ok_or_else(|| AppError::bad_request("image is required (multipart file field `image`)"))?;
    let k = k
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|k| *k > 0)
                .ok_or_else(|| {
                    AppError::bad_request(format!("k must be a positive integer, got {v:?}"))
                })
        })
        .transpose()?;
    let min_score = min_score
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|m| (-1.0..=1.0).contains(m))
                .ok_or_else(|| {
                    AppError::bad_request(format!(
                        "min_score must be a number from -1 to 1, got {v:?}"
                    ))
                })
        })
        .transpose()?;
    Ok(ImageUpload {
        bytes,
        k,
        min_score,
    })
}
