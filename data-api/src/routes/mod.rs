//! The HTTP surface: router assembly, shared state, the JSON extractor that
//! turns every rejection into our `{"error"}` shape, auth, and the helpers
//! that shape results (`time` strings, media links).

pub mod ingest;
pub mod media;
pub mod openapi;
pub mod search;

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use wayside_service::auth;

use crate::config::Config;
use crate::error::AppError;
use crate::metrics::{self, Metrics};
use crate::store::Store;
use crate::store::media::{MediaStore, is_media_name};

/// Handles shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub media: MediaStore,
    pub metrics: Arc<Metrics>,
}

/// `axum::Json` with rejections mapped to our errors: 400 for bad JSON or bad
/// field types, 415 for a missing JSON content type, 413 past the body limit.
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> AppError {
    match rej {
        JsonRejection::MissingJsonContentType(_) => {
            AppError::UnsupportedMediaType("Content-Type must be application/json".into())
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::PayloadTooLarge("request body too large".into())
        }
        other => AppError::BadRequest(other.body_text()),
    }
}

/// "mm:ss", or "h:mm:ss" past an hour, from milliseconds.
pub fn format_time(ms: u64) -> String {
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// The base URL for media links: the configured public URL, else the
/// request's `Host`.
pub fn base_url(cfg: &Config, headers: &HeaderMap) -> String {
    if let Some(u) = &cfg.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// A stored `pic` as a link: bare media names and `/media/...` paths get the
/// base URL; anything else (an absolute URL from the sender) is kept.
pub fn media_link(base: &str, pic: &str) -> String {
    if is_media_name(pic) {
        format!("{base}/media/{pic}")
    } else if pic.starts_with("/media/") {
        format!("{base}{pic}")
    } else {
        pic.to_string()
    }
}

/// Requires `Authorization: Bearer <token>` when tokens are configured.
async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer);
    if auth::allows(&state.cfg.auth_tokens, presented) {
        next.run(req).await
    } else {
        AppError::Unauthorized.into_response()
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    let backend = state.store.backend();
    match state.store.health().await {
        Ok(()) => Json(json!({"status": "ok", "backend": backend})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                Json(json!({"error": "store unavailable", "status": "unavailable", "backend": backend})),
            )
                .into_response()
        }
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    AppError::Internal("handler panicked".into()).into_response()
}

/// Builds the full router.
pub fn router(state: AppState) -> Router {
    let limits = &state.cfg.limits;
    let protected = Router::new()
        .route("/search-face", post(search::search_face))
        .route("/search-licence-plate", post(search::search_licence_plate))
        .route("/faces", post(ingest::ingest_faces))
        .route("/plates", post(ingest::ingest_plates))
        .route(
            "/media",
            post(media::upload).layer(DefaultBodyLimit::max(limits.media_body_bytes)),
        )
        .route("/media/{name}", get(media::download))
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(openapi::document))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .fallback(|| async { AppError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                Json(json!({"error": "method not allowed"})),
            )
        })
        .layer(DefaultBodyLimit::max(limits.json_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_strings() {
        assert_eq!(format_time(0), "00:00");
        assert_eq!(format_time(754_999), "12:34");
        assert_eq!(format_time(3_599_999), "59:59");
        assert_eq!(format_time(3_600_000), "1:00:00");
        assert_eq!(format_time(45_296_000), "12:34:56");
    }

    #[test]
    fn links() {
        let name = format!("{}.jpg", "0".repeat(64));
        assert_eq!(
            media_link("http://d", &name),
            format!("http://d/media/{name}")
        );
        assert_eq!(media_link("http://d", "https://x/y.jpg"), "https://x/y.jpg");
        assert_eq!(
            media_link("http://d", "/media/a.jpg"),
            "http://d/media/a.jpg"
        );
    }
}
