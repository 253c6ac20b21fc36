//! `SweepService`: submit, inspect and steer sweeps.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use widesweep_proto::v1 as pb;
use widesweep_proto::v1::sweep_service_server::SweepService;

use super::auth::{Permission, require};
use super::clock::DatabaseClock;
use super::convert::{error_group, job_epoch, job_error, result_row, sweep_status, worker_info};
use super::text::{MAX_ECHO_CHARS, escaped, printable};
use super::watch::{POLL_INTERVAL, StreamBudget, Watchers};
use crate::cpu;
use crate::spec::Spec;
use crate::store::{NewSweep, Store, SweepAction, group_errors};

/// Attempts per job when the submitter does not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Upper bound on attempts, so a typo cannot make a job retry forever.
const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// Jobs per `ListResults` page (a few hundred bytes each).
const RESULT_JOBS_PER_PAGE: u32 = 500;
/// Epochs per `ListResults` page (under a hundred bytes each).
const RESULT_EPOCHS_PER_PAGE: u32 = 5_000;
/// Largest spec text accepted.
const MAX_SPEC_BYTES: usize = 1024 * 1024;
/// Failed jobs listed by GetSweep.
const MAX_ERRORS_SHOWN: u32 = 20;
/// Failed attempts GetSweep groups by cause (the first ones of the sweep).
const MAX_FAILED_ATTEMPTS_READ: u32 = 10_000;
/// Error groups GetSweep returns.
const MAX_ERROR_GROUPS: usize = 10;

pub struct Sweeps {
    pub(super) store: Arc<dyn Store>,
    pub(super) watchers: Watchers,
    pub(super) streams: StreamBudget,
    pub(super) clock: DatabaseClock,
    /// The server's limit on one spec's jobs (`serve --max-sweep-jobs`):
    /// a client's `allow_large` confirms a large sweep, it cannot lift this.
    pub(super) max_sweep_jobs: u64,
}

/// A spec's error, as much of it as a message repeats (it may quote the spec).
fn invalid_spec(error: crate::spec::SpecError) -> Status {
    Status::invalid_argument(format!("invalid spec: {}", escaped(&error.to_string(), MAX_ECHO_CHARS)))
}

#[tonic::async_trait]
impl SweepService for Sweeps {
    #[tracing::instrument(skip_all)]
    async fn submit_sweep(
        &self,
        request: Request<pb::SubmitSweepRequest>,
    ) -> Result<Response<pb::SubmitSweepResponse>, Status> {
        require(&request, Permission::Steer)?;
        let request = request.into_inner();
        if request.spec_toml.len() > MAX_SPEC_BYTES {
            return Err(Status::invalid_argument(format!("spec_toml is larger than {MAX_SPEC_BYTES} bytes")));
        }
        let max_attempts = match request.max_attempts {
            0 => DEFAULT_MAX_ATTEMPTS,
            n if n > MAX_ATTEMPTS_LIMIT => {
                return Err(Status::invalid_argument(format!(
                    "max_attempts = {n} is invalid: use 1 to {MAX_ATTEMPTS_LIMIT}"
                )));
            }
            n => n,
        };
        // Parsing and validating a spec up to the size limit is CPU work
        // too: off the async workers, like the expansion below.
        let text = request.spec_toml.clone();
        let (spec, jobs) = cpu::run(move || {
            let spec = Spec::parse(&text)?;
            let (_, jobs) = spec.count()?;
            Ok((spec, jobs))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(invalid_spec)?;
        if jobs > self.max_sweep_jobs {
            return Err(Status::resource_exhausted(format!(
                "the spec expands to {jobs} jobs and this coordinator accepts at most {} per sweep \
                 (its operator sets that with `serve --max-sweep-jobs`): split the sweep",
                self.max_sweep_jobs
            )));
        }
        // Expansion hashes every job: CPU work kept off the async workers.
        let allow_large = request.allow_large;
        let spec_for_expansion = spec.clone();
        let expansion = cpu::run(move || spec_for_expansion.expand(allow_large))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(invalid_spec)?;
        let outcome = self
            .store
            .submit_sweep(
                &NewSweep {
                    name: &spec.name,
                    dataset: spec.dataset,
                    spec_toml: &request.spec_toml,
                    engines: &spec.engines.defined,
                    priority: request.priority,
                    max_attempts,
                    jobs: &expansion.jobs,
                    reserve: &expansion.reserve,
                    seeds_target_ci: spec.adaptive.map(|a| a.target_ci),
                    max_failed_fraction: spec.max_failed_fraction,
                },
                self.clock.now(),
            )
            .await?;
        tracing::info!(sweep = ?spec.name, new = outcome.new, existing = outcome.existing, dropped = outcome.dropped, reserve = outcome.reserve, "sweep submitted");
        Ok(Response::new(pb::SubmitSweepResponse {
            sweep_id: outcome.sweep_id,
            name: spec.name,
            new_cells: outcome.new,
            existing_cells: outcome.existing,
            dropped_cells: outcome.dropped,
            total_cells: outcome.new + outcome.existing,
            reserve_cells: outcome.reserve,
            added_cells: outcome.added,
        }))
    }

    async fn get_sweep(&self, request: Request<pb::GetSweepRequest>) -> Result<Response<pb::SweepStatus>, Status> {
        require(&request, Permission::Read)?;
        let sweep = request.into_inner().sweep;
        let summary = self.store.sweep(printable("sweep", &sweep)?).await?;
        let mut status = sweep_status(&summary);
        let failed = self.store.failed_attempts(&sweep, MAX_FAILED_ATTEMPTS_READ).await?;
        status.errors = self
            .store
            .job_errors(&sweep, MAX_ERRORS_SHOWN)
            .await?
            .iter()
            .map(|job| {
                let mut shown = job_error(job);
                // The host and class of the job's latest failed attempt.
                if let Some(last) = failed.iter().rev().find(|a| a.job_id == job.job_id) {
                    shown.hostname = last.hostname.clone();
                    shown.worker_id = last.worker_id.unwrap_or(0);
                    shown.error_class = last.error_class.clone();
                }
                shown
            })
            .collect();
        status.error_groups = group_errors(&failed).iter().take(MAX_ERROR_GROUPS).map(error_group).collect();
        Ok(Response::new(status))
    }

    async fn get_version(&self, _request: Request<pb::GetVersionRequest>) -> Result<Response<pb::VersionInfo>, Status> {
        // Any caller the token check admitted: a worker or a client checks
        // that it speaks this API before anything else.
        Ok(Response::new(pb::VersionInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            proto_sha256: widesweep_proto::PROTO_SHA256.to_string(),
        }))
    }

    async fn list_sweeps(
        &self,
        request: Request<pb::ListSweepsRequest>,
    ) -> Result<Response<pb::ListSweepsResponse>, Status> {
        require(&request, Permission::Read)?;
        let sweeps = self.store.list_sweeps().await?;
        Ok(Response::new(pb::ListSweepsResponse { sweeps: sweeps.iter().map(sweep_status).collect() }))
    }

    async fn cancel_sweep(&self, request: Request<pb::SweepRef>) -> Result<Response<pb::SweepStatus>, Status> {
        require(&request, Permission::Steer)?;
        self.steer(request, SweepAction::Cancel).await
    }

    async fn pause_sweep(&self, request: Request<pb::SweepRef>) -> Result<Response<pb::SweepStatus>, Status> {
        require(&request, Permission::Steer)?;
        self.steer(request, SweepAction::Pause).await
    }

    async fn resume_sweep(&self, request: Request<pb::SweepRef>) -> Result<Response<pb::SweepStatus>, Status> {
        require(&request, Permission::Steer)?;
        self.steer(request, SweepAction::Resume).await
    }

    async fn list_workers(
        &self,
        request: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        require(&request, Permission::Read)?;
        const HOUR_MS: i64 = 3600 * 1000;
        let now = self.clock.now();
        let workers = self.store.workers(now - HOUR_MS).await?;
        Ok(Response::new(pb::ListWorkersResponse { workers: workers.iter().map(|w| worker_info(w, now)).collect() }))
    }

    async fn rerun_jobs(&self, request: Request<pb::JobsRef>) -> Result<Response<pb::RerunJobsResponse>, Status> {
        require(&request, Permission::Steer)?;
        let request = request.into_inner();
        check_job_list(&request.job_ids)?;
        // Checkpoint files no job refers to any more are removed by the
        // coordinator's hourly orphan sweep.
        let (job_ids, _orphans) =
            self.store.rerun_jobs(printable("sweep", &request.sweep)?, &request.job_ids, self.clock.now()).await?;
        Ok(Response::new(pb::RerunJobsResponse { job_ids }))
    }

    async fn copy_jobs(&self, request: Request<pb::JobsRef>) -> Result<Response<pb::SweepStatus>, Status> {
        require(&request, Permission::Steer)?;
        let request = request.into_inner();
        check_job_list(&request.job_ids)?;
        if !crate::spec::valid_name(&request.new_sweep) {
            return Err(Status::invalid_argument(format!(
                "new_sweep {:?} is not a sweep name: use {}",
                super::text::escaped(&request.new_sweep, 200),
                crate::spec::NAME_RULE
            )));
        }
        let sweep = printable("sweep", &request.sweep)?;
        let summary = self.store.copy_jobs(sweep, &request.job_ids, &request.new_sweep, self.clock.now()).await?;
        tracing::info!(from = sweep, sweep = %summary.name, jobs = summary.counts.total(), "jobs copied into a new sweep");
        Ok(Response::new(sweep_status(&summary)))
    }

    async fn release_worker(&self, request: Request<pb::WorkerRef>) -> Result<Response<pb::WorkerInfo>, Status> {
        require(&request, Permission::Steer)?;
        let worker_id = request.into_inner().worker_id;
        self.store.release_worker(worker_id).await?;
        tracing::info!(worker_id, "worker released from quarantine");
        let now = self.clock.now();
        let workers = self.store.workers(i64::MIN).await?;
        let worker = workers
            .iter()
            .find(|w| w.worker_id == worker_id)
            .ok_or_else(|| Status::not_found(format!("worker {worker_id} was released but is no longer listed")))?;
        Ok(Response::new(worker_info(worker, now)))
    }

    type WatchSweepStream = Pin<Box<dyn Stream<Item = Result<pb::SweepStatus, Status>> + Send>>;

    async fn watch_sweep(
        &self,
        request: Request<pb::WatchSweepRequest>,
    ) -> Result<Response<Self::WatchSweepStream>, Status> {
        let role = require(&request, Permission::Read)?;
        let request = request.into_inner();
        let interval = match request.interval_ms {
            0 => Duration::from_secs(1),
            ms => Duration::from_millis(u64::from(ms)).clamp(POLL_INTERVAL, Duration::from_secs(60)),
        };
        let ticket = self.streams.open(role)?;
        let finished = |s: &pb::SweepStatus| s.pending == 0 && s.running == 0 && s.total > 0;
        // Every watcher of this sweep reads the same poll (see `watch`).
        let mut polls = self.watchers.subscribe(printable("sweep", &request.sweep)?);
        // A small buffer: a slow client makes its sender wait, not pile up.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let _ticket = ticket;
            let mut last: Option<pb::SweepStatus> = None;
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    changed = polls.changed() => if changed.is_err() { return },
                }
                let polled = polls.borrow_and_update().clone();
                match polled {
                    None => continue,
                    Some(Ok(next)) if last.as_ref() == Some(&next) => {}
                    Some(Ok(next)) => {
                        let done = finished(&next);
                        if tx.send(Ok(next.clone())).await.is_err() || done {
                            return;
                        }
                        last = Some(next);
                    }
                    Some(Err(status)) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ListResultsStream = ResultsStream;

    #[tracing::instrument(skip_all)]
    async fn list_results(
        &self,
        request: Request<pb::ListResultsRequest>,
    ) -> Result<Response<Self::ListResultsStream>, Status> {
        let role = require(&request, Permission::Read)?;
        let request = request.into_inner();
        let ticket = self.streams.open(role)?;
        let sweep_id = self.store.sweep(printable("sweep", &request.sweep)?).await?.id;
        let store = Arc::clone(&self.store);
        // Pages are read from the database one at a time as the client
        // takes them (the channel holds two), so the coordinator's memory
        // stays flat however large the sweep.
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tokio::spawn(async move {
            let _ticket = ticket;
            let result = stream_results(store.as_ref(), sweep_id, request.include_epochs, &tx).await;
            if let Err(status) = result {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

type ResultsStream = Pin<Box<dyn Stream<Item = Result<pb::ResultsPage, Status>> + Send>>;

/// Sends a sweep's jobs, then (when asked) its epochs, page by page; stops
/// early when the client goes away.
async fn stream_results(
    store: &dyn Store,
    sweep_id: i64,
    include_epochs: bool,
    tx: &tokio::sync::mpsc::Sender<Result<pb::ResultsPage, Status>>,
) -> Result<(), Status> {
    let mut after = 0;
    loop {
        let rows = store.sweep_results_page(sweep_id, after, RESULT_JOBS_PER_PAGE).await?;
        let Some(last) = rows.last() else { break };
        after = last.job_id;
        let full = rows.len() == RESULT_JOBS_PER_PAGE as usize;
        let page = pb::ResultsPage { jobs: rows.iter().map(result_row).collect(), epochs: Vec::new() };
        if tx.send(Ok(page)).await.is_err() {
            return Ok(());
        }
        if !full {
            break;
        }
    }
    if !include_epochs {
        return Ok(());
    }
    let mut after = (0, 0);
    loop {
        let epochs = store.sweep_epochs_page(sweep_id, after, RESULT_EPOCHS_PER_PAGE).await?;
        let Some(last) = epochs.last() else { break };
        after = (last.job_id, last.metrics.epoch);
        let full = epochs.len() == RESULT_EPOCHS_PER_PAGE as usize;
        let page = pb::ResultsPage { jobs: Vec::new(), epochs: epochs.iter().map(job_epoch).collect() };
        if tx.send(Ok(page)).await.is_err() {
            return Ok(());
        }
        if !full {
            break;
        }
    }
    Ok(())
}

impl Sweeps {
    async fn steer(
        &self,
        request: Request<pb::SweepRef>,
        action: SweepAction,
    ) -> Result<Response<pb::SweepStatus>, Status> {
        let sweep = request.into_inner().sweep;
        let summary = self.store.steer_sweep(printable("sweep", &sweep)?, action, self.clock.now()).await?;
        tracing::info!(sweep = ?summary.name, ?action, "sweep steered");
        Ok(Response::new(sweep_status(&summary)))
    }
}

/// The most jobs one RerunJobs or CopyJobs names: a whole 100,000-job
/// sweep, in one transaction.
const MAX_JOBS_PER_CALL: usize = 100_000;

fn check_job_list(job_ids: &[i64]) -> Result<(), Status> {
    if job_ids.is_empty() {
        return Err(Status::invalid_argument("job_ids is empty: name at least one finished job"));
    }
    if job_ids.len() > MAX_JOBS_PER_CALL {
        return Err(Status::invalid_argument(format!(
            "job_ids names {} jobs; at most {MAX_JOBS_PER_CALL} per call",
            job_ids.len()
        )));
    }
    Ok(())
}
