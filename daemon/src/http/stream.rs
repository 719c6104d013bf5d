//! Streamed answers (API.md, "Common rules"): one JSON object per line as
//! NDJSON, or the same objects as Server-Sent Events when the client sends
//! `Accept: text/event-stream`.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

/// Whether the client asked for Server-Sent Events.
pub fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// Frames each object as it comes and flushes it at once.
pub fn respond(sse: bool, objects: impl Stream<Item = Value> + Send + 'static) -> Response {
    let body = objects.map(move |v| {
        let text = if sse {
            format!("data: {v}\n\n")
        } else {
            format!("{v}\n")
        };
        Ok::<_, Infallible>(Bytes::from(text))
    });
    let content_type = if sse {
        "text/event-stream"
    } else {
        "application/x-ndjson"
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
