//! The one error type of the HTTP edge: every failure becomes
//! `{"error": "…"}` with the status API.md assigns to it.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::data_api::SearchError;
use crate::decode::DecodeError;
use crate::pipeline::PipelineError;

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after_s: Option<u64>,
}

impl AppError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn busy(message: impl Into<String>, retry_after_s: u64) -> Self {
        Self {
            retry_after_s: Some(retry_after_s),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// A failure of ours: logged in full, answered without internals.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {err}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {context}"),
        )
    }
}

impl From<PipelineError> for AppError {
    fn from(e: PipelineError) -> Self {
        use PipelineError as P;
        match &e {
            P::Decode(DecodeError::NotVideo(_)) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("not a video: {e}"),
            ),
            P::Decode(DecodeError::Corrupt(_)) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("video cannot be decoded: {e}"),
            ),
            P::TooLong { .. } | P::TooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            _ => Self::internal("processing the video", e),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(e: QueryRejection) -> Self {
        Self::bad_request(e.body_text())
    }
}

impl From<SearchError> for AppError {
    fn from(e: SearchError) -> Self {
        match &e {
            SearchError::Timeout(_) => Self::new(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
            // The data API's word on the question itself (a bad field):
            // the client's to fix, so it keeps its status.
            SearchError::Refused { status, message } if (400..500).contains(status) => Self::new(
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
                format!("data API: {message}"),
            ),
            _ => {
                tracing::warn!("search: {e}");
                Self::new(StatusCode::BAD_GATEWAY, e.to_string())
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(s) = self.retry_after_s {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res
    }
}
