//! `WorkerService`: leases, progress reports, results and checkpoints.
//! Every call about a job is fenced by its attempt in the store.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::io::AsyncReadExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use widesweep_proto::v1 as pb;
use widesweep_proto::v1::checkpoint_chunk::Chunk;
use widesweep_proto::v1::worker_service_server::WorkerService;

use super::artifacts::{ArtifactError, ArtifactStore};
use super::auth::{Permission, constant_time_eq, require};
use super::clock::DatabaseClock;
use super::convert::{checkpoint_ref, epoch_metrics, leased_job};
use super::error::missing;
use super::text::{escaped, printable};
use crate::store::{DeviceRate, ErrorClass, Failure, Fence, JobResult, LeaseToken, NewCheckpoint, Store};

/// Size of the pieces a checkpoint is streamed in.
const CHUNK_BYTES: usize = 1024 * 1024;
/// How long an idle worker waits before asking again.
const EMPTY_QUEUE_RETRY_MS: u32 = 1000;
/// Longest device name a slot may give.
const MAX_DEVICE_CHARS: usize = 64;
/// Longest error text stored for a failed attempt.
const MAX_ERROR_CHARS: usize = 4000;
/// How long a worker that left in quarantine is kept from leasing.
const LEFT_QUARANTINE_MS: i64 = 15 * 60 * 1000;

pub struct Workers {
    pub(super) store: Arc<dyn Store>,
    /// Workers' secret digests (hex) by id, as checked once against the
    /// store: a secret never changes, so later leases cost no read.
    pub(super) secrets: Mutex<HashMap<i64, String>>,
    /// Lease times are stamped on the database's clock.
    pub(super) clock: DatabaseClock,
    pub(super) artifacts: ArtifactStore,
    pub(super) lease: Duration,
}

impl Workers {
    fn lease_ms(&self) -> i64 {
        self.lease.as_millis() as i64
    }

    /// Refuses a lease under `worker_id` unless `secret` is the one
    /// RegisterWorker gave that worker.
    async fn check_worker_secret(&self, worker_id: i64, secret: &str) -> Result<(), Status> {
        if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Status::invalid_argument(if secret.is_empty() {
                "worker_secret is missing: send the secret RegisterWorker returned with worker_id \
                 (a worker older than this coordinator must be upgraded)"
            } else {
                "worker_secret is malformed: expected the 64 hex digits RegisterWorker returned"
            }));
        }
        let given = LeaseToken::from_wire(secret).digest().hex();
        let known = self.secrets.lock().unwrap_or_else(|p| p.into_inner()).get(&worker_id).cloned();
        let expected = match known {
            Some(expected) => expected,
            None => match self.store.worker_secret(worker_id).await? {
                Some(expected) => {
                    let mut secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
                    secrets.insert(worker_id, expected.clone());
                    expected
                }
                None => {
                    return Err(Status::permission_denied(format!(
                        "worker {worker_id} was registered without a secret (by an older coordinator): \
                         restart the worker so that it registers again"
                    )));
                }
            },
        };
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return Err(Status::permission_denied(format!(
                "worker_secret is not worker {worker_id}'s: a worker leases only under the id and secret \
                 RegisterWorker gave it"
            )));
        }
        Ok(())
    }
}

/// The fence a call presents: its job, its attempt and its lease token. A
/// token of the wrong shape is refused here; a well-formed wrong one by the
/// store (PERMISSION_DENIED).
fn fence(job_id: i64, attempt: u32, lease_token: &str) -> Result<Fence, Status> {
    if lease_token.is_empty() {
        return Err(Status::invalid_argument(
            "lease_token is missing: repeat the token LeaseJob returned with the job in every call about it",
        ));
    }
    if lease_token.len() != 64 || !lease_token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Status::invalid_argument("lease_token is malformed: expected the 64 hex digits LeaseJob returned"));
    }
    Ok(Fence { job_id, attempt, token: LeaseToken::from_wire(lease_token).digest() })
}

fn artifact_status(error: ArtifactError) -> Status {
    match error {
        ArtifactError::TooLarge { .. } => Status::resource_exhausted(error.to_string()),
        ArtifactError::Io { .. } => {
            tracing::error!(%error, "artifact storage failed");
            Status::internal("checkpoint storage failed (see the coordinator's log)")
        }
        _ => Status::invalid_argument(error.to_string()),
    }
}

#[tonic::async_trait]
impl WorkerService for Workers {
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerResponse>, Status> {
        require(&request, Permission::Work)?;
        let request = request.into_inner();
        if request.hostname.is_empty() || request.hostname.len() > 255 {
            return Err(Status::invalid_argument("hostname must be 1 to 255 characters"));
        }
        if request.devices.len() > 1024 || request.devices.iter().any(|d| d.len() > MAX_DEVICE_CHARS) {
            return Err(Status::invalid_argument(format!(
                "devices: give at most 1024 device names of at most {MAX_DEVICE_CHARS} bytes each"
            )));
        }
        if request.version.len() > 64 {
            return Err(Status::invalid_argument("version must be at most 64 bytes"));
        }
        printable("hostname", &request.hostname)?;
        printable("version", &request.version)?;
        for device in &request.devices {
            printable("devices", device)?;
        }
        let worker_id =
            self.store.register_worker(&request.hostname, &request.devices, &request.version, self.clock.now()).await?;
        // A worker whose secret could not be stored is never answered, and
        // without the secret its row can lease nothing.
        let secret = LeaseToken::generate();
        self.store.set_worker_secret(worker_id, secret.digest()).await?;
        tracing::info!(worker_id, hostname = %request.hostname, devices = ?request.devices, "worker registered");
        Ok(Response::new(pb::RegisterWorkerResponse {
            worker_id,
            lease_seconds: self.lease.as_secs() as u32,
            worker_secret: secret.as_str().to_string(),
        }))
    }

    #[tracing::instrument(skip_all, fields(worker_id = request.get_ref().worker_id))]
    async fn lease_job(&self, request: Request<pb::LeaseJobRequest>) -> Result<Response<pb::LeaseJobResponse>, Status> {
        require(&request, Permission::Work)?;
        let request = request.into_inner();
        if request.device.len() > MAX_DEVICE_CHARS {
            return Err(Status::invalid_argument(format!(
                "device is {} bytes long: name a device in at most {MAX_DEVICE_CHARS} (e.g. cuda:0, cpu)",
                request.device.len()
            )));
        }
        if request.device_kind.len() > MAX_DEVICE_CHARS {
            return Err(Status::invalid_argument(format!(
                "device_kind is {} bytes long: describe the device in at most {MAX_DEVICE_CHARS} \
                 (e.g. NVIDIA H100 80GB HBM3)",
                request.device_kind.len()
            )));
        }
        printable("device", &request.device)?;
        printable("device_kind", &request.device_kind)?;
        self.check_worker_secret(request.worker_id, &request.worker_secret).await?;
        let device = DeviceRate::label(&request.device, &request.device_kind);
        let token = LeaseToken::generate();
        let job =
            self.store.lease_job(request.worker_id, &device, token.digest(), self.lease_ms(), self.clock.now()).await?;
        if let Some(job) = &job {
            tracing::debug!(job_id = job.job_id, attempt = job.attempt, "job leased");
        }
        Ok(Response::new(pb::LeaseJobResponse {
            job: job.as_ref().map(|job| leased_job(job, &token)),
            retry_after_ms: if job.is_some() { 0 } else { EMPTY_QUEUE_RETRY_MS },
        }))
    }

    async fn report_epoch(
        &self,
        request: Request<pb::ReportEpochRequest>,
    ) -> Result<Response<pb::LeaseRenewal>, Status> {
        require(&request, Permission::Work)?;
        let request = request.into_inner();
        let fence = fence(request.job_id, request.attempt, &request.lease_token)?;
        let metrics = epoch_metrics(request.metrics, "metrics")?;
        let expires = self.store.report_epoch(fence, &metrics, self.lease_ms(), self.clock.now()).await?;
        Ok(Response::new(pb::LeaseRenewal { lease_expires_at_ms: expires }))
    }

    async fn heartbeat(&self, request: Request<pb::HeartbeatRequest>) -> Result<Response<pb::LeaseRenewal>, Status> {
        require(&request, Permission::Work)?;
        let request = request.into_inner();
        let fence = fence(request.job_id, request.attempt, &request.lease_token)?;
        let expires = self.store.heartbeat(fence, self.lease_ms(), self.clock.now()).await?;
        Ok(Response::new(pb::LeaseRenewal { lease_expires_at_ms: expires }))
    }

    #[tracing::instrument(skip_all, fields(job_id = request.get_ref().job_id, attempt = request.get_ref().attempt))]
    async fn complete_job(
        &self,
        request: Request<pb::CompleteJobRequest>,
    ) -> Result<Response<pb::CompleteJobResponse>, Status> {
        require(&request, Permission::Work)?;
        let request = request.into_inner();
        let fence = fence(request.job_id, request.attempt, &request.lease_token)?;
        let final_metrics = epoch_metrics(request.final_metrics, "final_metrics")?;
        if !(0.0..=1.0).contains(&request.best_test_error) {
            return Err(Status::invalid_argument(format!(
                "best_test_error = {} is out of range: errors are fractions in [0, 1]",
                request.best_test_error
            )));
        }
        if !request.train_seconds.is_finite() || request.train_seconds < 0.0 {
            return Err(Status::invalid_argument("train_seconds must be a finite value >= 0"));
        }
        let provenance = request.provenance.as_ref().map(super::convert::provenance_from_proto).transpose()?;
        let result = JobResult {
            final_metrics,
            best_test_error: request.best_test_error,
            train_seconds: request.train_seconds,
            provenance,
        };
        let orphans = self.store.complete_job(fence, &result, self.clock.now()).await?;
        for sha in orphans {
            self.artifacts.remove(&sha).await;
        }
        tracing::info!("job succeeded");
        Ok(Response::new(pb::CompleteJobResponse {}))
    }

    #[tracing::instrument(skip_all, fields(job_id = request.get_ref().job_id, attempt = request.get_ref().attempt))]
    async fn fail_job(&self, request: Request<pb::FailJobRequest>) -> Result<Response<pb::FailJobResponse>, Status> {
        require(&request, Permission::Work)?;
        let request = request.into_inner();
        let fence = fence(request.job_id, request.attempt, &request.lease_token)?;
        let error = escaped(&request.error, MAX_ERROR_CHARS);
        let class = match pb::ErrorClass::try_from(request.error_class) {
            Ok(pb::ErrorClass::Job) => ErrorClass::Job,
            Ok(pb::ErrorClass::Machine) => ErrorClass::Machine,
            // An unknown number from a newer worker is no claim either way.
            Ok(pb::ErrorClass::Unknown) | Err(_) => ErrorClass::Unknown,
        };
        let failure = Failure { error: &error, retryable: request.retryable, class };
        let requeued = self.store.fail_attempt(fence, &failure, self.clock.now()).await?;
        // Debug-formatted: the worker's text cannot start a forged log line.
        tracing::warn!(?error, class = class.as_str(), requeued, "job attempt failed");
        Ok(Response::new(pb::FailJobResponse { requeued }))
    }

    async fn release_job(
        &self,
        request: Request<pb::ReleaseJobRequest>,
    ) -> Result<Response<pb::ReleaseJobResponse>, Status> {
        require(&request, Permission::Work)?;
        let request = request.into_inner();
        let fence = fence(request.job_id, request.attempt, &request.lease_token)?;
        self.store.release_job(fence, self.clock.now()).await?;
        tracing::info!(job_id = fence.job_id, attempt = fence.attempt, "job released");
        Ok(Response::new(pb::ReleaseJobResponse {}))
    }

    async fn upload_checkpoint(
        &self,
        request: Request<Streaming<pb::CheckpointChunk>>,
    ) -> Result<Response<pb::CheckpointRef>, Status> {
        require(&request, Permission::Work)?;
        let mut stream = request.into_inner();
        let header = match stream.next().await {
            Some(Ok(pb::CheckpointChunk { chunk: Some(Chunk::Header(header)) })) => header,
            Some(Err(status)) => return Err(status),
            _ => return Err(missing("header (the first message of an upload)")),
        };
        let fence = fence(header.job_id, header.attempt, &header.lease_token)?;
        // Refuse a stale attempt, or an epoch it has not reported, before
        // receiving megabytes from it: a refused call stores nothing.
        self.store.heartbeat(fence, self.lease_ms(), self.clock.now()).await?;
        self.store.check_checkpoint(fence, header.epoch).await?;
        let mut upload = self.artifacts.begin(header.size_bytes, &header.sha256).await.map_err(artifact_status)?;
        while let Some(message) = stream.next().await {
            let chunk = match message {
                Ok(pb::CheckpointChunk { chunk: Some(Chunk::Data(data)) }) => data,
                // Returning drops the upload, which removes its file.
                Ok(_) => return Err(Status::invalid_argument("only data may follow the header of an upload")),
                Err(status) => return Err(status),
            };
            upload.write(&chunk).await.map_err(artifact_status)?;
        }
        self.artifacts.commit(upload).await.map_err(artifact_status)?;
        let new = NewCheckpoint { epoch: header.epoch, sha256: header.sha256.clone(), size_bytes: header.size_bytes };
        let (stored, orphans) = match self.store.add_checkpoint(fence, &new, self.clock.now()).await {
            Ok(done) => done,
            Err(error) => {
                // The attempt lost its lease while uploading: its file goes,
                // unless a stored checkpoint shares the digest.
                tracing::warn!(%error, "checkpoint upload refused after transfer");
                if !self.store.checkpoint_file_used(&header.sha256).await.unwrap_or(true) {
                    self.artifacts.remove(&header.sha256).await;
                }
                return Err(error.into());
            }
        };
        for sha in orphans.iter().filter(|sha| **sha != stored.sha256) {
            self.artifacts.remove(sha).await;
        }
        tracing::info!(job_id = fence.job_id, epoch = header.epoch, bytes = header.size_bytes, "checkpoint stored");
        Ok(Response::new(checkpoint_ref(&stored)))
    }

    async fn report_quarantine(
        &self,
        request: Request<pb::QuarantineReport>,
    ) -> Result<Response<pb::QuarantineAck>, Status> {
        require(&request, Permission::Work)?;
        let request = request.into_inner();
        self.check_worker_secret(request.worker_id, &request.worker_secret).await?;
        let reason = format!("a slot quarantined itself: {}", escaped(&request.reason, MAX_ERROR_CHARS));
        // A worker that leaves is kept out for the longest wait: its next
        // allocation may land on the same broken machine.
        let wait_ms = match request.wait_seconds {
            0 => LEFT_QUARANTINE_MS,
            seconds => i64::from(seconds.min(24 * 3600)) * 1000,
        };
        self.store.report_quarantine(request.worker_id, &reason, self.clock.now() + wait_ms).await?;
        tracing::warn!(worker_id = request.worker_id, reason = ?reason, wait_ms, "worker quarantined itself");
        Ok(Response::new(pb::QuarantineAck {}))
    }

    type DownloadCheckpointStream = Pin<Box<dyn Stream<Item = Result<pb::CheckpointChunk, Status>> + Send>>;

    async fn download_checkpoint(
        &self,
        request: Request<pb::DownloadCheckpointRequest>,
    ) -> Result<Response<Self::DownloadCheckpointStream>, Status> {
        require(&request, Permission::Work)?;
        let request = request.into_inner();
        let fence = fence(request.job_id, request.attempt, &request.lease_token)?;
        let checkpoint = self.store.checkpoint(fence, request.checkpoint_id).await?;
        let path = self.artifacts.path_of(&checkpoint.sha256).map_err(artifact_status)?;
        let mut file = tokio::fs::File::open(&path).await.map_err(|error| {
            tracing::error!(path = %path.display(), %error, "stored checkpoint is missing");
            Status::data_loss(format!("checkpoint {} is recorded but its file is missing", checkpoint.checkpoint_id))
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tokio::spawn(async move {
            let header = pb::CheckpointHeader {
                job_id: checkpoint.job_id,
                attempt: checkpoint.attempt,
                epoch: checkpoint.epoch,
                size_bytes: checkpoint.size_bytes,
                sha256: checkpoint.sha256.clone(),
                lease_token: String::new(),
            };
            if tx.send(Ok(pb::CheckpointChunk { chunk: Some(Chunk::Header(header)) })).await.is_err() {
                return;
            }
            let mut buffer = vec![0u8; CHUNK_BYTES];
            loop {
                match file.read(&mut buffer).await {
                    Ok(0) => return,
                    Ok(n) => {
                        let chunk = pb::CheckpointChunk { chunk: Some(Chunk::Data(buffer[..n].to_vec())) };
                        if tx.send(Ok(chunk)).await.is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "reading a checkpoint failed");
                        let _ = tx.send(Err(Status::data_loss("reading the checkpoint failed"))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
