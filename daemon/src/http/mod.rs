//! The daemon's local HTTP API (API.md, "Edge daemon"): routes, shared state,
//! and the server loop with graceful shutdown.

pub mod error;
mod jobs;
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
use crate::media::MediaStore;
use crate::pipeline::Engine;
use error::AppError;
use jobs::Jobs;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub engine: Arc<Engine>,
    pub media: MediaStore,
    jobs: Arc<Jobs>,
}

impl AppState {
    pub fn new(config: Config, engine: Engine) -> Result<Self> {
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
        Ok(Self {
            config: Arc::new(config),
            engine: Arc::new(engine),
            media,
            jobs,
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
        .route("/media/{name}", get(media))
        .fallback(|| async { AppError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(
            usize::try_from(body_limit).unwrap_or(usize::MAX),
        ))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    axum::Json(json!({ "status": "ok", "jobs_running": state.jobs.running() })).into_response()
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
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: no new work, finishing requests");
}
