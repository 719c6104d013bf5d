//! The web page at `/` (plain HTML, CSS and JS compiled into the binary:
//! the box is offline, so nothing comes from a CDN). It only calls the
//! four endpoints of API.md; `ui/app.js` says how.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page may load its own files, the annotated frames (`data:` URLs),
/// the downloads it makes itself (`blob:`) and the pictures the data API
/// serves, which live on another host.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob: http: https:; \
                   media-src 'self' blob:; connect-src 'self' blob:; object-src 'none'; \
                   frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", include_str!("ui/index.html"))
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("ui/app.js"))
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("ui/app.css"))
}
