//! The daemon's local HTTP API (API.md, "Edge daemon"): routes, shared state,
//! and the server loop with graceful shutdown.

pub mod error;
mod jobs;
mod photo;
mod search;
mod stream;
mod upload;
mod video;

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower::ServiceExt;
use tower_http::services::ServeFile;

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
    Router::new()
        .route("/healthz", get(healthz))
        .route("/video", post(video::video))
        .route("/video-streaming", post(video::video_streaming))
        .route("/jobs/{id}", get(video::job))
        .route("/face-detect", post(search::face_detect))
        .route("/licence-plate", post(search::licence_plate))
        .route("/metrics", get(metrics))
        .route("/media/{name}", get(media))
        .fallback(|| async { AppError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(
            usize::try_from(body_limit).unwrap_or(usize::MAX),
        ))
        .with_state(state)
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
