//! Simulated workers for `widesweep bench coordinator`: many concurrent
//! clients drive a real coordinator over gRPC through the full job cycle
//! (lease, a few epoch reports, complete) without training anything, and
//! measure round trips per second and lease latency.

use std::time::{Duration, Instant};

use serde::Serialize;
use tonic::Status;
use widesweep_proto::client::{ClientOptions, WorkerClient};
use widesweep_proto::v1 as pb;

#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Concurrent simulated workers, each with its own connection.
    pub workers: usize,
    /// Jobs in the submitted queue.
    pub jobs: usize,
    /// Epoch reports per job before it completes.
    pub epochs: u32,
    /// Stop after this long even if the queue is not empty.
    pub duration: Duration,
    /// A simulated epoch's length: each worker waits this long before each
    /// report and completion (zero: as fast as the coordinator answers).
    pub pace: Duration,
    /// The spec to submit (`None`: `jobs` identical cells differing by seed).
    pub spec: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub workers: usize,
    pub queue_jobs: usize,
    pub submit_seconds: f64,
    pub completed_jobs: u64,
    pub round_trips: u64,
    pub seconds: f64,
    pub round_trips_per_second: f64,
    pub jobs_per_second: f64,
    pub lease_p50_ms: f64,
    pub lease_p99_ms: f64,
}

impl LoadReport {
    pub fn to_text(&self) -> String {
        format!(
            "{} workers, queue of {} jobs (submitted in {:.2} s)\n\
             {} jobs completed, {} round trips in {:.2} s\n\
             {:.0} round trips/s, {:.0} jobs/s, lease latency p50 {:.2} ms, p99 {:.2} ms\n",
            self.workers,
            self.queue_jobs,
            self.submit_seconds,
            self.completed_jobs,
            self.round_trips,
            self.seconds,
            self.round_trips_per_second,
            self.jobs_per_second,
            self.lease_p50_ms,
            self.lease_p99_ms,
        )
    }
}

/// A spec of `jobs` identical tiny cells that differ by seed.
pub fn bench_spec(name: &str, jobs: usize, epochs: u32) -> String {
    let seeds: Vec<String> = (1..=jobs).map(|s| s.to_string()).collect();
    format!(
        "name = \"{name}\"\ndataset = \"cifar10\"\nseeds = [{}]\n[recipe]\nepochs = {epochs}\nlr_milestones = []\n[grid]\ndepth = [10]\nwidth = [1]\n",
        seeds.join(",")
    )
}

#[derive(Default)]
struct WorkerTally {
    completed: u64,
    round_trips: u64,
    lease_latencies: Vec<Duration>,
}

pub async fn run(target: &ClientOptions, config: &LoadConfig) -> Result<LoadReport, Status> {
    let mut clients = target.connect_lazy().map_err(|e| Status::invalid_argument(e.to_string()))?;
    let name = format!("bench-{}", crate::store::now_ms());
    let submit_started = Instant::now();
    clients
        .sweeps
        .submit_sweep(pb::SubmitSweepRequest {
            spec_toml: config.spec.clone().unwrap_or_else(|| bench_spec(&name, config.jobs, config.epochs)),
            allow_large: true,
            priority: 0,
            max_attempts: 1,
        })
        .await?;
    let submit_seconds = submit_started.elapsed().as_secs_f64();

    let started = Instant::now();
    let deadline = started + config.duration;
    let mut tasks = Vec::with_capacity(config.workers);
    for slot in 0..config.workers {
        let client = target.connect_lazy().map_err(|e| Status::invalid_argument(e.to_string()))?.workers;
        let (epochs, pace) = (config.epochs, config.pace);
        tasks.push(tokio::spawn(simulated_worker(client, slot, epochs, pace, deadline)));
    }
    let mut total = WorkerTally::default();
    for task in tasks {
        let tally = task.await.map_err(|e| Status::internal(format!("simulated worker panicked: {e}")))??;
        total.completed += tally.completed;
        total.round_trips += tally.round_trips;
        total.lease_latencies.extend(tally.lease_latencies);
    }
    let seconds = started.elapsed().as_secs_f64();
    total.lease_latencies.sort();
    let percentile = |p: f64| -> f64 {
        let v = &total.lease_latencies;
        if v.is_empty() {
            return 0.0;
        }
        let index = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        v[index].as_secs_f64() * 1e3
    };
    Ok(LoadReport {
        workers: config.workers,
        queue_jobs: config.jobs,
        submit_seconds,
        completed_jobs: total.completed,
        round_trips: total.round_trips,
        seconds,
        round_trips_per_second: total.round_trips as f64 / seconds,
        jobs_per_second: total.completed as f64 / seconds,
        lease_p50_ms: percentile(0.50),
        lease_p99_ms: percentile(0.99),
    })
}

async fn simulated_worker(
    mut client: WorkerClient,
    slot: usize,
    epochs: u32,
    pace: Duration,
    deadline: Instant,
) -> Result<WorkerTally, Status> {
    let registered = client
        .register_worker(pb::RegisterWorkerRequest {
            hostname: format!("loadgen-{slot}"),
            devices: vec!["sim".to_string()],
            version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .await?
        .into_inner();
    let worker_id = registered.worker_id;
    let mut tally = WorkerTally::default();
    while Instant::now() < deadline {
        let asked = Instant::now();
        let leased = client
            .lease_job(pb::LeaseJobRequest {
                worker_id,
                worker_secret: registered.worker_secret.clone(),
                device: "sim".to_string(),
                device_kind: "simulated".to_string(),
            })
            .await?
            .into_inner();
        tally.lease_latencies.push(asked.elapsed());
        tally.round_trips += 1;
        let Some(job) = leased.job else { break };
        // Errors that differ between jobs and fall with the epochs, so that
        // tables and curves have something to show.
        let spread = (job.job_id % 97) as f64 / 400.0;
        let metrics = |epoch: u32| pb::EpochMetrics {
            epoch,
            train_loss: 1.0 / epoch as f64,
            train_error: 0.5,
            test_loss: 1.0,
            test_error: 0.2 + spread + 0.3 / epoch as f64,
            lr: 0.1,
            epoch_seconds: 0.001,
            images_per_second: 1.0,
        };
        for epoch in 1..epochs {
            if Instant::now() >= deadline {
                break;
            }
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
            client
                .report_epoch(pb::ReportEpochRequest {
                    job_id: job.job_id,
                    attempt: job.attempt,
                    metrics: Some(metrics(epoch)),
                    lease_token: job.lease_token.clone(),
                })
                .await?;
            tally.round_trips += 1;
        }
        if Instant::now() >= deadline {
            break;
        }
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
        client
            .complete_job(pb::CompleteJobRequest {
                job_id: job.job_id,
                attempt: job.attempt,
                final_metrics: Some(metrics(epochs)),
                best_test_error: 0.2 + spread + 0.3 / epochs as f64,
                train_seconds: 0.001 * epochs as f64,
                lease_token: job.lease_token.clone(),
                provenance: None,
            })
            .await?;
        tally.round_trips += 1;
        tally.completed += 1;
    }
    Ok(tally)
}
