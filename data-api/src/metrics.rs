//! Prometheus text metrics without a metrics framework: request counts by
//! route/method/status, a latency histogram by route, and store sizes read
//! at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

use crate::routes::AppState;

/// Latency bucket upper bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        let mut lat = self.latency.lock();
        let h = lat.entry(route.to_string()).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    fn write_requests(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP wayside_data_requests_total HTTP requests by route, method and status.\n# TYPE wayside_data_requests_total counter"
        );
        for ((route, method, status), n) in self.requests.lock().iter() {
            let _ = writeln!(
                out,
                "wayside_data_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP wayside_data_request_duration_seconds HTTP request latency by route.\n# TYPE wayside_data_request_duration_seconds histogram"
        );
        for (route, h) in self.latency.lock().iter() {
            for (b, c) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "wayside_data_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {c}"
                );
            }
            let _ = writeln!(
                out,
                "wayside_data_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\nwayside_data_request_duration_seconds_sum{{route=\"{route}\"}} {}\nwayside_data_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count, h.sum, h.count
            );
        }
    }
}

/// Middleware: times every request under its route template (not its path,
/// so `/media/{name}` is one series).
pub async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    m.observe(
        &route,
        &method,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    state.metrics.write_requests(&mut out);
    let backend = state.store.backend();
    match state.store.stats().await {
        Ok(s) => {
            let _ = writeln!(
                out,
                "# HELP wayside_data_store_records Records in the store.\n# TYPE wayside_data_store_records gauge\nwayside_data_store_records{{backend=\"{backend}\",kind=\"faces\"}} {}\nwayside_data_store_records{{backend=\"{backend}\",kind=\"plates\"}} {}",
                s.faces, s.plates
            );
            let _ = writeln!(out, "wayside_data_store_up 1");
        }
        Err(e) => {
            tracing::warn!(error = %e, "store stats failed");
            let _ = writeln!(out, "wayside_data_store_up 0");
        }
    }
    let media = state.media.clone();
    let bytes = tokio::task::spawn_blocking(move || media.disk_usage())
        .await
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "# HELP wayside_data_media_bytes Bytes of stored media blobs.\n# TYPE wayside_data_media_bytes gauge\nwayside_data_media_bytes {bytes}"
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
