//! The daemon's local HTTP API (API.md, "Edge daemon"): routes, shared state,
//! and the server loop with graceful shutdown.

pub mod error;
mod jobs;
mod photo;
mod search;
mod stream;
mod ui;
mod upload;
mod video;

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use wayside_service::auth;

use crate::config::Config;
use crate::data_api::DataApi;
use crate::forward::Forwarder;
use crate::live::Live;
use crate::media::MediaStore;
use crate::pipeline::Engine;
use error::AppError;
use jobs::Jobs;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub engine: Arc<Engine>,
    pub media: MediaStore,
    pub forwarder: Forwarder,
    pub data_api: DataApi,
    jobs: Arc<Jobs>,
    /// Photos (`/face-detect`) being worked on at once.
    photo_slots: Arc<tokio::sync::Semaphore>,
    /// Cameras and MQTT, for `/healthz` and `/metrics`.
    pub live: Arc<Live>,
}

impl AppState {
    pub fn new(config: Config, engine: Engine, forwarder: Forwarder) -> Result<Self> {
        std::fs::create_dir_all(&config.server.spool_dir).with_context(|| {
            format!(
                "server.spool_dir: creating {}",
                config.server.spool_dir.display()
            )
        })?;
        upload::clear_spool(&config.server.spool_dir);
        let media = MediaStore::open(
            &config.media.dir,
            config.media.max_bytes,
            config.media.max_age_days,
        )?;
        let jobs = Arc::new(Jobs::new(config.server.max_jobs));
        let data_api = DataApi::new(&config.data_api)?;
        let photo_slots = Arc::new(tokio::sync::Semaphore::new(config.server.max_photo_jobs));
        Ok(Self {
            config: Arc::new(config),
            engine: Arc::new(engine),
            media,
            forwarder,
            data_api,
            jobs,
            photo_slots,
            live: Arc::default(),
        })
    }
}

pub fn router(state: AppState) -> Router {
    // Multipart framing adds a little to the file itself.
    let body_limit = state.config.server.max_upload_bytes.saturating_add(1 << 20);
    let protected = Router::new()
        .route("/video", post(video::video))
        .route("/video-streaming", post(video::video_streaming))
        .route("/jobs/{id}", get(video::job))
        .route("/face-detect", post(search::face_detect))
        .route("/licence-plate", post(search::licence_plate))
        .route("/metrics", get(metrics))
        .route("/cameras", get(cameras))
        .route("/cameras/{name}/preview.jpg", get(camera_preview))
        .route("/media/{name}", get(media))
        .route("/data-media/{name}", get(search::data_media))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    // The page holds no data: it loads without a token and asks for one.
    Router::new()
        .route("/", get(ui::index))
        .route("/ui/app.js", get(ui::script))
        .route("/ui/app.css", get(ui::style))
        .route("/healthz", get(healthz))
        .merge(protected)
        .fallback(|| async { AppError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(
            usize::try_from(body_limit).unwrap_or(usize::MAX),
        ))
        .with_state(state)
}

/// The web page's token travels as this cookie: `<img>` and `<video>`
/// cannot send an `Authorization` header.
pub const TOKEN_COOKIE: &str = "wayside_token";

/// With `server.auth_tokens` set, a request needs one of them, as
/// `Authorization: Bearer <token>` or in the page's cookie.
async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer);
    let cookie = || {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
    };
    if auth::allows(&state.config.server.auth_tokens, bearer.or_else(cookie)) {
        next.run(req).await
    } else {
        let mut res = AppError::new(StatusCode::UNAUTHORIZED, "missing or invalid bearer token")
            .into_response();
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        res
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    let mut body = json!({ "status": "ok", "jobs_running": state.jobs.running() });
    state.live.add_health(&mut body);
    axum::Json(body).into_response()
}

/// Prometheus text: jobs, the outbox's delivery counters, cameras and MQTT.
async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = format!(
        "# HELP wayside_jobs_running Video jobs running.\n\
         # TYPE wayside_jobs_running gauge\n\
         wayside_jobs_running {}\n",
        state.jobs.running()
    );
    state
        .forwarder
        .outbox()
        .metrics()
        .write_prometheus(&mut text);
    state.live.write_prometheus(&mut text);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response()
}

/// The live cameras as the web page shows them: health, the latest frame's
/// counts and the last closed window.
async fn cameras(State(state): State<AppState>) -> Response {
    axum::Json(json!({ "cameras": state.live.cameras() })).into_response()
}

/// A camera's latest annotated frame; never cached, it is a live view.
async fn camera_preview(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let preview = state.live.preview(&name).ok_or_else(|| {
        AppError::new(
            StatusCode::NOT_FOUND,
            format!("no picture of camera {name:?} (no such camera, or no frame yet)"),
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        preview.jpeg,
    )
        .into_response())
}

/// Annotated videos, with Range support for seeking in a browser.
async fn media(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, AppError> {
    let path = state
        .media
        .path(&name)
        .ok_or_else(|| AppError::new(StatusCode::NOT_FOUND, format!("no media {name:?}")))?;
    let res = ServeFile::new(path)
        .oneshot(req)
        .await
        .map_err(|e| AppError::internal("serving media", e))?;
    Ok(res.into_response())
}

pub async fn serve(state: AppState) -> Result<()> {
    let addr = state.config.server.listen.clone();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("server.listen: cannot bind {addr}"))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    wayside_service::ready();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(wayside_service::shutdown_signal())
        .await?;
    Ok(())
}
