//! The dashboard's JSON API, read-only. Tables come from the report
//! module's own `build` and `render`, so every format a page offers is the
//! one `widesweep table --format F` prints.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::query::query_param;
use crate::report::table::parse_assignment;
use crate::report::{Agg, Format, Metric, ReportError, TableOptions, build, render};
use crate::store::{StoreError, SweepSummary};

/// A sweep as the pages show it.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub(super) struct SweepView {
    id: i64,
    name: String,
    state: &'static str,
    priority: i32,
    dataset: String,
    pending: u64,
    running: u64,
    succeeded: u64,
    failed: u64,
    cancelled: u64,
    total: u64,
    epochs_done: u64,
    epochs_total: u64,
    eta_seconds: Option<f64>,
    reserve: u64,
    seeds_target_ci: Option<f64>,
}

impl From<&SweepSummary> for SweepView {
    fn from(s: &SweepSummary) -> Self {
        Self {
            id: s.id,
            name: s.name.clone(),
            state: s.state.name(),
            priority: s.priority,
            dataset: s.dataset.clone(),
            pending: s.counts.pending,
            running: s.counts.running,
            succeeded: s.counts.succeeded,
            failed: s.counts.failed,
            cancelled: s.counts.cancelled,
            total: s.counts.total(),
            epochs_done: s.epochs_done,
            epochs_total: s.epochs_total,
            eta_seconds: s.eta_seconds().filter(|_| !s.counts.finished()),
            reserve: s.reserve,
            seeds_target_ci: s.seeds_target_ci,
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
            StoreError::SweepNotFound(_) => Self(StatusCode::NOT_FOUND, error.to_string()),
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

/// `?format=json|csv|markdown|latex|text&baseline=AXIS=VALUE&metric=&agg=&download=1`
pub(super) async fn table(
    State(state): State<AppState>,
    Path(sweep): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let format: Format = query_param(&uri, "format").as_deref().unwrap_or("json").parse()?;
    let mut options = TableOptions::default();
    if let Some(metric) = query_param(&uri, "metric") {
        options.metric = metric.parse::<Metric>()?;
    }
    if let Some(agg) = query_param(&uri, "agg") {
        options.agg = agg.parse::<Agg>()?;
    }
    if let Some(baseline) = query_param(&uri, "baseline").filter(|b| !b.is_empty()) {
        options.baseline = Some(parse_assignment(&baseline, "baseline")?);
    }
    let rows = state.store.sweep_results(&sweep).await?;
    let body = render(&build(&rows, &options)?, format);
    let (content_type, extension) = match format {
        Format::Json => ("application/json", "json"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Markdown => ("text/markdown; charset=utf-8", "md"),
        Format::Latex => ("application/x-latex; charset=utf-8", "tex"),
        Format::Text => ("text/plain; charset=utf-8", "txt"),
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
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

/// One line of a learning-curve plot: a job's test error (%) per epoch.
#[derive(Serialize)]
struct Curve {
    job_id: i64,
    seed: u64,
    status: &'static str,
    /// (epoch, test error in percent)
    points: Vec<(u32, f64)>,
}

/// A cell's curves, one per seed, under one label.
#[derive(Serialize)]
struct CellCurves {
    label: String,
    curves: Vec<Curve>,
}

/// Every in-spec job's test error per epoch, grouped by cell.
pub(super) async fn curves(State(state): State<AppState>, Path(sweep): Path<String>) -> Result<Response, ApiError> {
    let rows = state.store.sweep_results(&sweep).await?;
    // One pass over the epochs and one index of cells: a 100,000-job sweep
    // must not cost jobs x epochs comparisons per page load.
    let mut points: HashMap<i64, Vec<(u32, f64)>> = HashMap::new();
    for e in state.store.sweep_epochs(&sweep).await? {
        points.entry(e.job_id).or_default().push((e.metrics.epoch, e.metrics.test_error * 100.0));
    }
    let mut cells: Vec<CellCurves> = Vec::new();
    let mut cell_of: HashMap<String, usize> = HashMap::new();
    for row in rows.iter().filter(|r| r.in_spec) {
        let c = &row.config;
        let label = format!("{} depth {} k={} dropout {}", c.block, c.depth, c.width, c.dropout);
        let points = points.remove(&row.job_id).unwrap_or_default();
        let curve = Curve { job_id: row.job_id, seed: c.seed, status: row.status.as_str(), points };
        let index = *cell_of.entry(label.clone()).or_insert_with(|| {
            cells.push(CellCurves { label, curves: Vec::new() });
            cells.len() - 1
        });
        cells[index].curves.push(curve);
    }
    Ok(json(&cells))
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
    let jobs = state.store.job_errors(&sweep, 50).await?;
    let views: Vec<JobErrorView> = jobs
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
