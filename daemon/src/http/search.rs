//! `POST /face-detect` and `POST /licence-plate` (API.md): turn the question
//! into a data API search, then stream its matches, best first, with the
//! seed's field names (`time` in ms, `similar_face` / `car_image`) and the
//! extensions (`score`, `source`, `captured_at`).
//!
//! The pictures are linked through this box (`GET /data-media/{name}`): a
//! browser on the box's network may not reach the central data API, and
//! when it does it has no data API token.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;
use wayside_vision::RgbFrame;
use wayside_vision::face::Face;

use super::error::AppError;
use super::{AppState, photo, stream, upload};
use crate::media;

/// How long a photo waits for an inference slot before the client is told
/// to come back (503): a queue longer than that helps nobody.
const SLOT_WAIT: Duration = Duration::from_secs(10);

async fn inference_slot(state: &AppState) -> Result<OwnedSemaphorePermit, AppError> {
    match tokio::time::timeout(SLOT_WAIT, state.photo_slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(AppError::busy("all photo slots are busy; retry later", 2)),
    }
}

pub async fn face_detect(
    State(state): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    // Taken before the upload is read, so waiting photos are not all held
    // in memory at once.
    let permit = inference_slot(&state).await?;
    let up = upload::read_image(multipart, state.config.server.max_image_bytes).await?;
    let max_pixels = state.config.server.max_image_pixels;
    let engine = state.engine.clone();
    let face: Face = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let img = photo::decode(&up.bytes, max_pixels)?;
        let frame = RgbFrame::from_image(&img).map_err(|e| AppError::internal("frame", e))?;
        engine
            .faces
            .as_ref()
            .ok_or_else(|| AppError::internal("finding the face", "face models not loaded"))?
            .session()
            .largest_face(&frame)
            .map_err(|e| AppError::internal("finding the face", e))?
            .ok_or_else(|| AppError::bad_request("no face found"))
    })
    .await
    .map_err(|e| AppError::internal("finding the face", e))??;
    let mut query = json!({ "face_vector": face.embedding });
    add_options(&mut query, up.k, up.min_score);
    let results = state.data_api.search("/search-face", &query).await?;
    Ok(respond(&state, &headers, results, "similar_face"))
}

#[derive(Deserialize)]
pub struct PlateRequest {
    licence_plate: Option<String>,
    k: Option<u64>,
    min_score: Option<f64>,
}

pub async fn licence_plate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<PlateRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(req) = body.map_err(|e| AppError::new(e.status(), e.body_text()))?;
    let plate = req
        .licence_plate
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| AppError::bad_request("Licence plate is required"))?;
    if req.k == Some(0) {
        return Err(AppError::bad_request("k must be a positive integer"));
    }
    if req.min_score.is_some_and(|m| !(-1.0..=1.0).contains(&m)) {
        return Err(AppError::bad_request(
            "min_score must be a number from -1 to 1",
        ));
    }
    let mut query = json!({ "licence_plate": plate });
    add_options(&mut query, req.k, req.min_score);
    let results = state
        .data_api
        .search("/search-licence-plate", &query)
        .await?;
    Ok(respond(&state, &headers, results, "car_image"))
}

/// The data API's results as the edge API's lines: `time` in ms (the data
/// API's `time` is "mm:ss"), the picture under the seed's name for it and
/// linked through this box, and the extensions as the data API gave them.
fn respond(state: &AppState, headers: &HeaderMap, results: Vec<Value>, picture: &str) -> Response {
    let picture = picture.to_string();
    let public = state
        .config
        .server
        .public_url
        .trim_end_matches('/')
        .to_string();
    let lines = results.into_iter().map(move |r| {
        let mut line = json!({
            "time": r["time_ms"],
            picture.as_str(): through_box(&r["pic"], &public),
            "score": r["score"],
            "source": r["source"],
            "captured_at": r["captured_at"],
        });
        if let Some(plate) = r.get("licence_plate") {
            line["licence_plate"] = plate.clone();
        }
        line
    });
    stream::respond(
        stream::wants_sse(headers),
        futures_util::stream::iter(lines),
    )
}

/// A data API media link (`…/media/<sha256>.jpg`) as this box's
/// `/data-media/` link; anything else (a sender's own URL) as it is.
fn through_box(pic: &Value, public: &str) -> Value {
    match pic.as_str().and_then(|p| p.rsplit_once("/media/")) {
        Some((_, name)) if media::valid_name(name) => json!(format!("{public}/data-media/{name}")),
        _ => pic.clone(),
    }
}

/// `GET /data-media/{name}`: a picture from the data API, fetched with the
/// box's token. Content-addressed, so it never changes: cached for a day.
pub async fn data_media(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    if !media::valid_name(&name) {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            format!("no media {name:?}"),
        ));
    }
    let res = state.data_api.media(&name).await?;
    let status = res.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            format!("the data API has no {name:?}"),
        ));
    }
    if !status.is_success() {
        tracing::warn!("data API /media/{name}: status {status}");
        return Err(AppError::new(
            StatusCode::BAD_GATEWAY,
            format!("data API answered {status} for the picture"),
        ));
    }
    let kind = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (
                header::CACHE_CONTROL,
                "private, max-age=86400, immutable".into(),
            ),
        ],
        Body::from_stream(res.bytes_stream()),
    )
        .into_response())
}

fn add_options(query: &mut Value, k: Option<u64>, min_score: Option<f64>) {
    if let Some(k) = k {
        query["k"] = json!(k);
    }
    if let Some(m) = min_score {
        query["min_score"] = json!(m);
    }
}
