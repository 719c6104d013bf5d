//! `POST /video`, `POST /video-streaming` and `GET /jobs/{id}` (API.md).

use std::time::SystemTime;

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::AppState;
use super::error::AppError;
use super::jobs::JobStatus;
use super::stream;
use super::upload;
use crate::pipeline::{Job, JobSpec, PipelineError, Sample, Summary};

#[derive(Deserialize)]
pub struct VideoQuery {
    #[serde(default = "yes")]
    wait: bool,
}

/// `/video-streaming?summary=true` (an extension the web page uses): the
/// annotated video is written too, and the stream ends with one
/// `{"summary": …}` line holding `/video`'s answer.
#[derive(Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    summary: bool,
}

/// The status a streamed job ends with when its reader went away (nginx's
/// "client closed request"; no standard code says it).
const CLIENT_CLOSED: u16 = 499;

fn yes() -> bool {
    true
}

/// The `/video` answer: the seed's five fields, then the extensions.
#[derive(Serialize)]
struct VideoResponse {
    processed_video_url: String,
    #[serde(flatten)]
    summary: Summary,
    job_id: String,
}

/// A job admitted and opened, with what must live as long as it runs.
struct Started {
    job: Job,
    permit: tokio::sync::OwnedSemaphorePermit,
    /// The spooled upload, removed when dropped.
    upload: tempfile::TempPath,
    /// Where the annotated MP4 is written, when one was asked for.
    annotated: Option<std::path::PathBuf>,
}

/// Admit, spool and open: everything that can refuse the upload with a
/// status code, before any work or response stream starts. `annotate`
/// writes the annotated MP4, `jpegs` attaches a JPEG to each sample.
async fn start(
    state: &AppState,
    multipart: Result<Multipart, MultipartRejection>,
    annotate: bool,
    jpegs: bool,
) -> Result<Started, AppError> {
    let permit = state.jobs.admit()?;
    let up = upload::read(
        multipart,
        &state.config.server.spool_dir,
        state.config.server.max_upload_bytes,
    )
    .await?;
    let annotated = annotate.then(|| up.file.with_extension("annotated.mp4"));
    let spec = JobSpec {
        interval_ms: up.interval_ms,
        line: up.line,
        annotated_video: annotated.clone(),
        sample_jpegs: jpegs,
        sightings: Some(
            state
                .forwarder
                .for_source(format!("upload-{}", &up.sha256[..16]), SystemTime::now()),
        ),
    };
    let engine = state.engine.clone();
    let path = up.file.to_path_buf();
    let job = tokio::task::spawn_blocking(move || Job::open(engine, &path, spec))
        .await
        .map_err(|e| AppError::internal("opening the video", e))??;
    Ok(Started {
        job,
        permit,
        upload: up.file,
        annotated,
    })
}

pub async fn video(
    State(state): State<AppState>,
    query: Result<Query<VideoQuery>, QueryRejection>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    let Query(q) = query?;
    let Started {
        job,
        permit,
        upload,
        annotated,
    } = start(&state, multipart, true, false).await?;
    let annotated = annotated.expect("annotation was asked for");
    let (id, tx) = state.jobs.register();
    let duration = job.info().duration_ms.unwrap_or(0).max(1) as f32;
    let st = state.clone();
    let job_id = id.clone();
    tokio::task::spawn_blocking(move || {
        let outcome = job.run(|s| {
            tx.send_replace(JobStatus::Running {
                progress: (s.timestamp as f32 / duration).min(1.0),
            });
            true
        });
        // The slot and the spooled upload go before the answer does, so a
        // client that posts again as soon as it has it finds a free slot.
        drop((permit, upload));
        let status = match answer(&st, outcome, &annotated, job_id) {
            Ok(result) => JobStatus::Done { result },
            Err(e) => failed(e),
        };
        tx.send_replace(status);
    });
    if !q.wait {
        let status_url = format!("/jobs/{id}");
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "job_id": id, "status_url": status_url })),
        )
            .into_response());
    }
    let rx = state
        .jobs
        .get(&id)
        .ok_or_else(|| AppError::internal("job", "vanished"))?;
    finished(rx).await
}

/// `/video`'s answer for a job that ran: the annotated MP4 moved into the
/// media store, its URL and the summary.
fn answer(
    state: &AppState,
    outcome: Result<Summary, PipelineError>,
    annotated: &std::path::Path,
    job_id: String,
) -> Result<serde_json::Value, AppError> {
    let summary = match outcome {
        Ok(summary) if summary.sightings_not_kept > 0 => {
            // The counts are right, but faces or plates the job found will
            // never reach the data API: answering 200 would say the upload
            // is done with. A retry once space is back stores nothing twice
            // (record ids come from the video).
            let _ = std::fs::remove_file(annotated);
            let n = summary.sightings_not_kept;
            tracing::warn!(
                job_id,
                not_kept = n,
                "job done, but the outbox could not store its sightings"
            );
            return Err(AppError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                format!(
                    "no space left on the box to keep {n} face or plate records for forwarding; \
                     retry the upload later"
                ),
            ));
        }
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_file(annotated);
            return Err(AppError::from(e));
        }
    };
    let name = state
        .media
        .put(annotated, "mp4")
        .map_err(|e| AppError::internal("storing the annotated video", e))?;
    let body = VideoResponse {
        processed_video_url: format!(
            "{}/media/{name}",
            state.config.server.public_url.trim_end_matches('/')
        ),
        summary,
        job_id,
    };
    Ok(serde_json::to_value(body).unwrap_or_default())
}

fn failed(e: AppError) -> JobStatus {
    JobStatus::Failed {
        code: e.status.as_u16(),
        error: e.message,
    }
}

/// Wait for a job to end and answer as `/video` would have.
async fn finished(mut rx: watch::Receiver<JobStatus>) -> Result<Response, AppError> {
    let status = rx
        .wait_for(|s| !matches!(s, JobStatus::Running { .. }))
        .await
        .map_err(|e| AppError::internal("waiting for the job", e))?
        .clone();
    match status {
        JobStatus::Done { result } => Ok(Json(result).into_response()),
        JobStatus::Failed { code, error } => Err(AppError::new(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error,
        )),
        JobStatus::Running { .. } => unreachable!("waited for the end"),
    }
}

pub async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let rx = state
        .jobs
        .get(&id)
        .ok_or_else(|| AppError::new(StatusCode::NOT_FOUND, format!("no job {id:?}")))?;
    let status = rx.borrow().clone();
    Ok(Json(status).into_response())
}

/// One streamed object, with the seed's field names.
#[derive(Serialize)]
struct StreamedSample {
    timestamp: u64,
    frame_base64: String,
    people_count: u32,
    vehicle_count: u32,
    pedestrians_per_interval: u32,
    vehicles_per_interval: u32,
}

impl From<Sample> for StreamedSample {
    fn from(s: Sample) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD.encode(s.jpeg.unwrap_or_default());
        Self {
            timestamp: s.timestamp,
            frame_base64: format!("data:image/jpeg;base64,{b64}"),
            people_count: s.counts.pedestrians,
            vehicle_count: s.counts.vehicles,
            pedestrians_per_interval: s.pedestrians_per_interval,
            vehicles_per_interval: s.vehicles_per_interval,
        }
    }
}

pub async fn video_streaming(
    State(state): State<AppState>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    let Query(q) = query?;
    let Started {
        job,
        permit,
        upload,
        annotated,
    } = start(&state, multipart, q.summary, true).await?;
    let sse = stream::wants_sse(&headers);
    // With a summary (and so an annotated video) the job is also kept for
    // `GET /jobs/{id}`, as `/video`'s are.
    let kept = annotated.map(|path| (path, state.jobs.register()));
    // Two lines in flight: a slow reader blocks the pipeline, not memory.
    let (tx, rx) = mpsc::channel::<serde_json::Value>(2);
    tokio::task::spawn_blocking(move || {
        let outcome = job.run(|s| {
            let line = serde_json::to_value(StreamedSample::from(s)).unwrap_or_default();
            tx.blocking_send(line).is_ok()
        });
        drop((permit, upload));
        let last = match (outcome, kept) {
            (Err(PipelineError::Cancelled), kept) => {
                if let Some((path, (_, status))) = kept {
                    let _ = std::fs::remove_file(path);
                    status.send_replace(JobStatus::Failed {
                        code: CLIENT_CLOSED,
                        error: "cancelled: the client closed the stream".into(),
                    });
                }
                None
            }
            (outcome, Some((annotated, (id, status)))) => {
                let (line, end) = match answer(&state, outcome, &annotated, id) {
                    Ok(summary) => (
                        json!({ "summary": summary }),
                        JobStatus::Done { result: summary },
                    ),
                    Err(e) => (json!({ "error": e.message }), failed(e)),
                };
                status.send_replace(end);
                Some(line)
            }
            (Ok(_), None) => None,
            (Err(e), None) => Some(json!({ "error": AppError::from(e).message })),
        };
        if let Some(line) = last {
            let _ = tx.blocking_send(line);
        }
    });
    let lines =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) });
    Ok(stream::respond(sse, lines))
}
