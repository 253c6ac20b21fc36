//! The dashboard's JSON API, read-only. Tables come from the report
//! module's own `build` and `render`, so every format a page offers is the
//! one `widesweep table --format F` prints.

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;

use super::AppState;
use super::query::query_param;
use crate::cpu;
use crate::report::axis::Axis;
use crate::report::table::parse_assignment;
use crate::report::{Agg, Format, Metric, ReportError, TableOptions, build, render};
use crate::store::{AttemptRow, EpochMetrics, StoreError, SweepSummary};

/// A sweep as the pages show it: the store's summary, with its total and,
/// while work remains, the time left.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub(super) struct SweepView {
    #[serde(flatten)]
    pub(super) summary: SweepSummary,
    total: u64,
    eta_seconds: Option<f64>,
}

impl From<&SweepSummary> for SweepView {
    fn from(s: &SweepSummary) -> Self {
        Self {
            summary: s.clone(),
            total: s.counts.total(),
            eta_seconds: s.eta_seconds().filter(|_| !s.counts.finished()),
        }
    }
}

/// A failed request's status and plain-text reason.
pub(super) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::SweepNotFound(_) | StoreError::JobNotFound(_) => Self(StatusCode::NOT_FOUND, error.to_string()),
            other => {
                tracing::error!(error = %other, "dashboard: database error");
                Self(StatusCode::INTERNAL_SERVER_ERROR, "database error (see the coordinator's log)".into())
            }
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(error: ReportError) -> Self {
        match error {
            ReportError::Store(store) => store.into(),
            other => Self(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

pub(super) async fn sweeps(State(state): State<AppState>) -> Result<Response, ApiError> {
    let sweeps = state.store.list_sweeps().await?;
    Ok(json(&sweeps.iter().map(SweepView::from).collect::<Vec<_>>()))
}

/// `?format=json|csv|markdown|latex|text&baseline=AXIS=VALUE&rows=&columns=&metric=&agg=&download=1`
pub(super) async fn table(
    State(state): State<AppState>,
    Path(sweep): Path<String>,
    uri: Uri,
    headers: header::HeaderMap,
) -> Result<Response, ApiError> {
    let format: Format = query_param(&uri, "format").as_deref().unwrap_or("json").parse()?;
    let mut options = TableOptions::default();
    if let Some(rows) = query_param(&uri, "rows").filter(|r| !r.is_empty()) {
        options.rows = Some(Axis::parse_list(&rows)?);
    }
    if let Some(columns) = query_param(&uri, "columns").filter(|c| !c.is_empty()) {
        options.cols = Some(Axis::parse_list(&columns)?);
    }
    if let Some(metric) = query_param(&uri, "metric") {
        options.metric = metric.parse::<Metric>()?;
    }
    if let Some(agg) = query_param(&uri, "agg") {
        options.agg = agg.parse::<Agg>()?;
    }
    if let Some(baseline) = query_param(&uri, "baseline").filter(|b| !b.is_empty()) {
        options.baseline = Some(parse_assignment(&baseline, "baseline")?);
    }
    if let Some(correction) = query_param(&uri, "correction").filter(|c| !c.is_empty()) {
        options.correction = correction
            .parse()
            .map_err(|e: crate::stats::UnknownCorrection| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    }
    options.strict = query_param(&uri, "strict").is_some_and(|s| s == "1" || s == "true");
    let data = state.sweep_data(&sweep).await?;
    // Every page asking for the same table of the same read shares one rendering.
    let key = format!("{format} {options:?}");
    // Building a 200,000-job sweep's table takes seconds: off the runtime.
    let shared = Arc::clone(&data);
    let body = cpu::run(move || {
        shared.rendered(&key, || Ok::<_, ReportError>(render(&build(&shared.rows, &options)?, format)))
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let (content_type, extension) = match format {
        Format::Json => ("application/json", "json"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Markdown => ("text/markdown; charset=utf-8", "md"),
        Format::Latex => ("application/x-latex; charset=utf-8", "tex"),
        Format::Text => ("text/plain; charset=utf-8", "txt"),
    };
    let gzip = accepts_gzip(&headers);
    let body = if gzip { body.gzip } else { body.plain };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let (name, value) = data.age_header();
    response.headers_mut().insert(name, value);
    response.headers_mut().insert(header::VARY, header::HeaderValue::from_static("accept-encoding"));
    if gzip {
        response.headers_mut().insert(header::CONTENT_ENCODING, header::HeaderValue::from_static("gzip"));
    }
    if query_param(&uri, "download").is_some() {
        let name: String =
            sweep.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
        let disposition = format!("attachment; filename=\"{name}.{extension}\"");
        if let Ok(value) = disposition.parse() {
            response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

/// Whether the client takes gzip (`Accept-Encoding: gzip`, not refused
/// with `q=0`); every browser does.
fn accepts_gzip(headers: &header::HeaderMap) -> bool {
    let codings = headers.get_all(header::ACCEPT_ENCODING).into_iter().filter_map(|value| value.to_str().ok());
    codings.flat_map(|value| value.split(',')).any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let refused = parts.any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f64>().ok()) == Some(0.0));
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

/// The metrics and aggregates a table may show: the CLI's own lists, so
/// the page offers every choice `widesweep table --metric/--agg` does.
pub(super) async fn table_choices() -> Response {
    let metrics: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let aggregates: Vec<&str> = Agg::ALL.iter().map(|a| a.name()).collect();
    json(&serde_json::json!({ "metrics": metrics, "aggregates": aggregates }))
}

/// The sweep's learning curves, summarised per cell (see [`super::curves`]).
pub(super) async fn curves(State(state): State<AppState>, Path(sweep): Path<String>) -> Result<Response, ApiError> {
    let data = state.sweep_data(&sweep).await?;
    let mut response = json(&data.curves);
    let (name, value) = data.age_header();
    response.headers_mut().insert(name, value);
    Ok(response)
}

#[derive(Serialize)]
struct JobErrorView {
    job_id: i64,
    seed: u64,
    status: &'static str,
    attempts_spent: u32,
    max_attempts: u32,
    error: String,
}

/// The latest errors of jobs that have not succeeded since.
pub(super) async fn errors(State(state): State<AppState>, Path(sweep): Path<String>) -> Result<Response, ApiError> {
    let data = state.sweep_data(&sweep).await?;
    let views: Vec<JobErrorView> = data
        .errors
        .iter()
        .map(|j| JobErrorView {
            job_id: j.job_id,
            seed: j.seed,
            status: j.status.as_str(),
            attempts_spent: j.attempts_spent,
            max_attempts: j.max_attempts,
            error: j.last_error.clone().unwrap_or_default(),
        })
        .collect();
    Ok(json(&views))
}

/// The sweep's failed attempts grouped by class and error, most first.
pub(super) async fn causes(State(state): State<AppState>, Path(sweep): Path<String>) -> Result<Response, ApiError> {
    let data = state.sweep_data(&sweep).await?;
    Ok(json(&data.causes))
}

/// A worker as the workers page shows it.
#[derive(Serialize)]
struct WorkerView {
    id: i64,
    hostname: String,
    devices: Vec<String>,
    version: String,
    registered_at_ms: i64,
    last_seen_at_ms: i64,
    /// Seconds since it was last heard from, by the database's clock.
    seen_seconds_ago: f64,
    /// Not heard from for longer than a lease: its jobs go back to the queue.
    stale: bool,
    /// Why the coordinator keeps it from leasing, while it does.
    quarantine: Option<String>,
    slots: Vec<SlotView>,
}

#[derive(Serialize)]
struct SlotView {
    job_id: i64,
    sweep: String,
    device: Option<String>,
    epochs_done: u32,
    epochs: u32,
    images_per_second: Option<f64>,
}

/// Workers heard from in the last day, and any holding a lease.
pub(super) async fn workers(State(state): State<AppState>) -> Result<Response, ApiError> {
    const DAY_MS: i64 = 24 * 3600 * 1000;
    let now = state.store.clock_ms().await?;
    let stale_ms = i64::try_from(state.stale_after.as_millis()).unwrap_or(i64::MAX);
    let views: Vec<WorkerView> = state
        .store
        .workers(now - DAY_MS)
        .await?
        .into_iter()
        .map(|w| WorkerView {
            id: w.worker_id,
            seen_seconds_ago: (now - w.last_seen_at_ms).max(0) as f64 / 1000.0,
            stale: now - w.last_seen_at_ms > stale_ms,
            quarantine: w.quarantine(now).map(|(reason, _)| reason),
            slots: w
                .slots
                .into_iter()
                .map(|s| SlotView {
                    job_id: s.job_id,
                    sweep: s.sweep,
                    device: s.device,
                    epochs_done: s.epochs_done,
                    epochs: s.epochs,
                    images_per_second: s.images_per_second,
                })
                .collect(),
            hostname: w.hostname,
            devices: w.devices,
            version: w.version,
            registered_at_ms: w.registered_at_ms,
            last_seen_at_ms: w.last_seen_at_ms,
        })
        .collect();
    Ok(json(&views))
}

#[derive(Serialize)]
struct JobView {
    job_id: i64,
    sweep: Option<String>,
    sweep_id: i64,
    cell_hash: String,
    status: &'static str,
    in_spec: bool,
    /// Still held in an adaptive sweep's reserve: not a job of the sweep yet.
    reserve: bool,
    /// The configuration, field by field, in the spec's words.
    config: Vec<(&'static str, serde_json::Value)>,
    params: Option<u64>,
    attempt: u32,
    attempts_spent: u32,
    max_attempts: u32,
    lost_leases: u32,
    worker_id: Option<i64>,
    lease_expires_at_ms: Option<i64>,
    created_at_ms: Option<i64>,
    started_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
    final_test_error: Option<f64>,
    best_test_error: Option<f64>,
    train_seconds: Option<f64>,
    last_error: Option<String>,
    epochs: Vec<EpochView>,
    checkpoints: Vec<CheckpointView>,
    attempts: Vec<AttemptRow>,
}

/// An epoch with the attempt that reported it.
#[derive(Serialize)]
struct EpochView {
    attempt: u32,
    #[serde(flatten)]
    metrics: EpochMetrics,
}

#[derive(Serialize)]
struct CheckpointView {
    id: i64,
    attempt: u32,
    epoch: u32,
    size_bytes: u64,
    sha256: String,
}

/// One job: configuration, every epoch, attempts, checkpoints, errors.
pub(super) async fn job(State(state): State<AppState>, Path(job_id): Path<String>) -> Result<Response, ApiError> {
    let job_id: i64 = job_id.parse().map_err(|_| {
        ApiError(StatusCode::BAD_REQUEST, format!("job id {job_id:?} is not a number: use the id `status` shows"))
    })?;
    let detail = state.store.job_detail(job_id).await?;
    let (row, result) = (detail.row, detail.result);
    let config = result.as_ref().map_or_else(Vec::new, |r| {
        let c = &r.config;
        vec![
            ("block", c.block.to_string().into()),
            ("l", c.deepening.into()),
            ("n", c.blocks_per_group.into()),
            ("depth", c.depth.into()),
            ("width", c.width.into()),
            ("dropout", c.dropout.into()),
            ("dataset", c.dataset.name().into()),
            ("seed", c.seed.into()),
            ("recipe", serde_json::to_value(&c.recipe).unwrap_or_default()),
        ]
    });
    let view = JobView {
        job_id,
        sweep: result.as_ref().map(|r| r.sweep.clone()),
        sweep_id: row.sweep_id,
        cell_hash: row.cell_hash,
        status: row.status.as_str(),
        in_spec: row.in_spec,
        reserve: result.is_none(),
        config,
        params: result.as_ref().map(|r| r.params),
        attempt: row.attempt,
        attempts_spent: row.attempts_spent,
        max_attempts: row.max_attempts,
        lost_leases: row.lost_leases,
        worker_id: row.worker_id,
        lease_expires_at_ms: row.lease_expires_at_ms,
        created_at_ms: result.as_ref().map(|r| r.created_at_ms),
        started_at_ms: result.as_ref().and_then(|r| r.started_at_ms),
        finished_at_ms: result.as_ref().and_then(|r| r.finished_at_ms),
        final_test_error: row.final_test_error,
        best_test_error: result.as_ref().and_then(|r| r.best_test_error),
        train_seconds: result.as_ref().and_then(|r| r.train_seconds),
        last_error: row.last_error,
        epochs: detail.epochs.into_iter().map(|(attempt, metrics)| EpochView { attempt, metrics }).collect(),
        checkpoints: detail
            .checkpoints
            .into_iter()
            .map(|c| CheckpointView {
                id: c.checkpoint_id,
                attempt: c.attempt,
                epoch: c.epoch,
                size_bytes: c.size_bytes,
                sha256: c.sha256,
            })
            .collect(),
        attempts: detail.attempts,
    };
    Ok(json(&view))
}
