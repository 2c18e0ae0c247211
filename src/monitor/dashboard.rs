//! `/`: a live dashboard. One self-contained page (no build step, no external assets) that
//! polls the JSON endpoints every second; see `dashboard.html`.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("dashboard.html");

pub async fn dashboard() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], PAGE)
        .into_response()
}
