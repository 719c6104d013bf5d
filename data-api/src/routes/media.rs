//! `POST /media` (multipart field `file`) and `GET /media/{sha256}.{ext}`
//! with HTTP Range support (via `tower_http::services::ServeFile`). Only
//! content-addressed names are served; anything else is refused before the
//! filesystem is touched.

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::{AppState, base_url};
use crate::error::AppError;

fn multipart_error(e: axum::extract::multipart::MultipartError) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge("upload too large".into())
    } else {
        AppError::bad(format!("bad multipart body: {}", e.body_text()))
    }
}

pub async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let mut multipart = multipart.map_err(|_| {
        AppError::UnsupportedMediaType("Content-Type must be multipart/form-data".into())
    })?;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        let filename = field.file_name().map(str::to_string);
        let mut up = state.media.begin().await.map_err(AppError::io)?;
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            up.write(&chunk).await.map_err(AppError::io)?;
        }
        let (name, size) = up.finish(filename.as_deref()).await.map_err(AppError::io)?;
        let url = format!("{}/media/{name}", base_url(&state.cfg, &headers));
        return Ok((
            StatusCode::OK,
            Json(json!({"url": url, "name": name, "size": size})),
        ));
    }
    Err(AppError::bad("file is required"))
}

pub async fn download(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, AppError> {
    let path = state
        .media
        .path_of(&name)
        .ok_or_else(|| AppError::bad("invalid media name (want <sha256>.<ext>)"))?;
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Err(AppError::NotFound("no such media".into()));
    }
    let resp = ServeFile::new(&path)
        .oneshot(req)
        .await
        .map_err(AppError::internal)?;
    let mut resp = resp.map(Body::new).into_response();
    if resp.status().is_success() {
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    }
    Ok(resp)
}
