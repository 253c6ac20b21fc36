//! The pages and their assets, compiled into the binary.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

const INDEX: &str = include_str!("assets/index.html");
const SWEEP: &str = include_str!("assets/sweep.html");
const WORKERS: &str = include_str!("assets/workers.html");
const JOB: &str = include_str!("assets/job.html");
const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");
const ICON: &str = include_str!("assets/favicon.svg");

pub(super) async fn index() -> Html<&'static str> {
    Html(INDEX)
}

/// The sweep page; its script reads the sweep's name from the URL.
pub(super) async fn sweep_page(Path(_sweep): Path<String>) -> Html<&'static str> {
    Html(SWEEP)
}

pub(super) async fn workers_page() -> Html<&'static str> {
    Html(WORKERS)
}

/// The job page; its script reads the job's id from the URL.
pub(super) async fn job_page(Path(_job): Path<String>) -> Html<&'static str> {
    Html(JOB)
}

pub(super) async fn asset(Path(file): Path<String>) -> Response {
    let (content_type, body) = match file.as_str() {
        "style.css" => ("text/css; charset=utf-8", STYLE),
        "app.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "favicon.svg" => ("image/svg+xml", ICON),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// Browsers ask for it on their own.
pub(super) async fn favicon() -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], ICON).into_response()
}
