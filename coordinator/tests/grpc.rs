//! The gRPC services end to end over loopback: status codes, auth, the
//! watch stream and checkpoint transfers. Runs on SQLite and Postgres.

mod common;

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;
use tonic::Code;
use widesweep_coordinator::service::{Credentials, MAX_STREAMS_PER_CONNECTION, ServerConfig, serve};
use widesweep_coordinator::store::Store;
use widesweep_proto::client::{ClientOptions, Clients};
use widesweep_proto::v1 as pb;
use widesweep_proto::v1::checkpoint_chunk::Chunk;

/// The shared token (every role), and one token per role.
const TOKEN: &str = "test-token";
const USER: &str = "user-token";
const WORKER: &str = "worker-token";
const VIEWER: &str = "viewer-token";

struct Running {
    clients: Clients,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    _artifacts: tempfile::TempDir,
}

impl Running {
    async fn start(store: Arc<dyn Store>, max_checkpoint_bytes: u64) -> Self {
        Self::start_with(store, max_checkpoint_bytes, 1_000_000).await
    }

    async fn start_with(store: Arc<dyn Store>, max_checkpoint_bytes: u64, max_sweep_jobs: u64) -> Self {
        Self::start_in(store, tempfile::tempdir().unwrap(), |config| {
            config.max_checkpoint_bytes = max_checkpoint_bytes;
            config.max_sweep_jobs = max_sweep_jobs;
        })
        .await
    }

    /// Serves with its checkpoint files in `artifacts` and the config as
    /// `adjust` leaves it.
    async fn start_in(
        store: Arc<dyn Store>,
        artifacts: tempfile::TempDir,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut config = ServerConfig {
            artifacts_dir: artifacts.path().to_path_buf(),
            credentials: Credentials {
                shared: Some(TOKEN.to_string()),
                user: Some(USER.to_string()),
                worker: Some(WORKER.to_string()),
                viewer: Some(VIEWER.to_string()),
            },
            reap_interval: Duration::from_millis(100),
            ..ServerConfig::default()
        };
        adjust(&mut config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve(store, config, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let clients =
            ClientOptions { url: url.clone(), token: Some(TOKEN.to_string()), ca_pem: None }.connect_lazy().unwrap();
        Self { clients, url, stop: Some(stop), server, _artifacts: artifacts }
    }

    /// A client holding `token`.
    fn client(&self, token: &str) -> Clients {
        ClientOptions { url: self.url.clone(), token: Some(token.to_string()), ca_pem: None }.connect_lazy().unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server.await.unwrap();
    }

    /// Stops the server and hands back its checkpoint directory.
    async fn stop_keeping_artifacts(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.server).await.unwrap();
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self._artifacts, placeholder)
    }
}

fn submit_request(text: String) -> pb::SubmitSweepRequest {
    pb::SubmitSweepRequest { spec_toml: text, allow_large: false, priority: 0, max_attempts: 0 }
}

fn epoch(epoch: u32) -> pb::EpochMetrics {
    pb::EpochMetrics {
        epoch,
        train_loss: 1.0,
        train_error: 0.4,
        test_loss: 1.1,
        test_error: 0.45,
        lr: 0.1,
        epoch_seconds: 2.0,
        images_per_second: 500.0,
    }
}

fn lease_request(registered: &pb::RegisterWorkerResponse, device: &str) -> pb::LeaseJobRequest {
    pb::LeaseJobRequest {
        worker_id: registered.worker_id,
        worker_secret: registered.worker_secret.clone(),
        device: device.into(),
        device_kind: String::new(),
    }
}

async fn lease(clients: &mut Clients) -> pb::Job {
    let registered = clients
        .workers
        .register_worker(pb::RegisterWorkerRequest {
            hostname: "t".into(),
            devices: vec!["cpu".into()],
            version: "t".into(),
        })
        .await
        .unwrap()
        .into_inner();
    clients
        .workers
        .lease_job(lease_request(&registered, "cpu"))
        .await
        .unwrap()
        .into_inner()
        .job
        .expect("a job is pending")
}

/// Asserts the call was refused for its credential's role.
fn denied<T>(result: Result<tonic::Response<T>, tonic::Status>) {
    let status = result.map(|_| ()).unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
}

/// Asserts the call was refused as invalid, with `needle` in the message.
fn invalid<T>(result: Result<tonic::Response<T>, tonic::Status>, needle: &str) {
    let status = result.map(|_| ()).unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains(needle), "{needle:?} not in {:?}", status.message());
}

fn report_request(job: &pb::Job, metrics: pb::EpochMetrics) -> pb::ReportEpochRequest {
    pb::ReportEpochRequest {
        job_id: job.job_id,
        attempt: job.attempt,
        metrics: Some(metrics),
        lease_token: job.lease_token.clone(),
    }
}

fn complete_request(job: &pb::Job, last: pb::EpochMetrics) -> pb::CompleteJobRequest {
    pb::CompleteJobRequest {
        job_id: job.job_id,
        attempt: job.attempt,
        best_test_error: last.test_error,
        final_metrics: Some(last),
        train_seconds: 6.0,
        lease_token: job.lease_token.clone(),
        provenance: None,
    }
}

async fn calls_without_the_token_are_refused(store: Arc<dyn Store>) {
    let running = Running::start(store, 1 << 20).await;
    let mut anonymous = ClientOptions { url: running.url.clone(), token: None, ca_pem: None }.connect_lazy().unwrap();
    let refused = anonymous.sweeps.list_sweeps(pb::ListSweepsRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let mut wrong =
        ClientOptions { url: running.url.clone(), token: Some("nope".into()), ca_pem: None }.connect_lazy().unwrap();
    let refused = wrong
        .workers
        .lease_job(pb::LeaseJobRequest { worker_id: 1, device: "cpu".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    running.stop().await;
}

async fn an_invalid_spec_is_refused_and_writes_nothing(store: Arc<dyn Store>) {
    let mut running = Running::start(Arc::clone(&store), 1 << 20).await;
    let bad = common::spec("bad", &[0], &[1]);
    let refused = running.clients.sweeps.submit_sweep(submit_request(bad)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("grid.width"), "{}", refused.message());
    let sweeps = running.clients.sweeps.list_sweeps(pb::ListSweepsRequest {}).await.unwrap().into_inner();
    assert!(sweeps.sweeps.is_empty());
    assert_eq!(store.list_sweeps().await.unwrap().len(), 0);
    running.stop().await;
}

async fn fencing_and_cancellation_have_precise_status_codes(store: Arc<dyn Store>) {
    let mut running = Running::start(store, 1 << 20).await;
    let c = &mut running.clients;
    let submitted =
        c.sweeps.submit_sweep(submit_request(common::spec("codes", &[1], &[1, 2]))).await.unwrap().into_inner();
    assert_eq!((submitted.new_cells, submitted.total_cells), (2, 2));
    let again = c.sweeps.submit_sweep(submit_request(common::spec("codes", &[1], &[1, 2]))).await.unwrap().into_inner();
    assert_eq!((again.new_cells, again.existing_cells), (0, 2));
    let job = lease(c).await;
    assert_eq!(job.attempt, 1);
    let report = |attempt: u32, job_id: i64| pb::ReportEpochRequest {
        job_id,
        attempt,
        metrics: Some(epoch(1)),
        lease_token: job.lease_token.clone(),
    };
    c.workers.report_epoch(report(1, job.job_id)).await.unwrap();
    let stale = c.workers.report_epoch(report(7, job.job_id)).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    let unknown = c.workers.report_epoch(report(1, 987_654)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let mut bad_metrics = report(1, job.job_id);
    bad_metrics.metrics.as_mut().unwrap().test_error = 7.0;
    assert_eq!(c.workers.report_epoch(bad_metrics).await.unwrap_err().code(), Code::InvalidArgument);
    let missing =
        pb::ReportEpochRequest { job_id: job.job_id, attempt: 1, metrics: None, lease_token: job.lease_token.clone() };
    assert_eq!(c.workers.report_epoch(missing).await.unwrap_err().code(), Code::InvalidArgument);
    c.sweeps.cancel_sweep(pb::SweepRef { sweep: "codes".into() }).await.unwrap();
    let cancelled = c.workers.report_epoch(report(1, job.job_id)).await.unwrap_err();
    assert_eq!(cancelled.code(), Code::FailedPrecondition);
    let missing_sweep = c.sweeps.get_sweep(pb::GetSweepRequest { sweep: "nope".into() }).await.unwrap_err();
    assert_eq!(missing_sweep.code(), Code::NotFound);
    running.stop().await;
}

fn header(job: &pb::Job, data: &[u8]) -> pb::CheckpointChunk {
    pb::CheckpointChunk {
        chunk: Some(Chunk::Header(pb::CheckpointHeader {
            job_id: job.job_id,
            attempt: job.attempt,
            epoch: 1,
            size_bytes: data.len() as u64,
            sha256: hex::encode(Sha256::digest(data)),
            lease_token: job.lease_token.clone(),
        })),
    }
}

async fn checkpoints_round_trip_and_respect_the_size_limit(store: Arc<dyn Store>) {
    let mut running = Running::start(store, 3 * 1024 * 1024).await;
    let c = &mut running.clients;
    c.sweeps.submit_sweep(submit_request(common::spec("ckpt", &[1], &[1]))).await.unwrap();
    let job = lease(c).await;
    c.workers.report_epoch(report_request(&job, epoch(1))).await.unwrap();
    // 2.5 MiB: several chunks each way.
    let data: Vec<u8> = (0..2_621_440u32).map(|i| (i * 7 % 251) as u8).collect();
    let chunks = vec![
        header(&job, &data),
        pb::CheckpointChunk { chunk: Some(Chunk::Data(data[..1_000_000].to_vec())) },
        pb::CheckpointChunk { chunk: Some(Chunk::Data(data[1_000_000..].to_vec())) },
    ];
    let stored = c.workers.upload_checkpoint(tokio_stream::iter(chunks)).await.unwrap().into_inner();
    assert_eq!(stored.size_bytes, data.len() as u64);
    let mut stream = c
        .workers
        .download_checkpoint(pb::DownloadCheckpointRequest {
            job_id: job.job_id,
            attempt: job.attempt,
            checkpoint_id: stored.checkpoint_id,
            lease_token: job.lease_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut received = Vec::new();
    let mut saw_header = false;
    while let Some(chunk) = stream.next().await {
        match chunk.unwrap().chunk.unwrap() {
            Chunk::Header(h) => {
                saw_header = true;
                assert_eq!(h.sha256, stored.sha256);
            }
            Chunk::Data(d) => received.extend(d),
        }
    }
    assert!(saw_header);
    assert_eq!(received, data);

    // A checkpoint of an epoch not yet reported is refused before its bytes
    // are taken: no file is left behind.
    let files = || std::fs::read_dir(running._artifacts.path()).unwrap().count();
    let before = files();
    let ahead = b"state after epoch 2".to_vec();
    let mut early = header(&job, &ahead);
    if let Some(Chunk::Header(h)) = early.chunk.as_mut() {
        h.epoch = 2;
    }
    let chunks = vec![early, pb::CheckpointChunk { chunk: Some(Chunk::Data(ahead)) }];
    let refused = c.workers.upload_checkpoint(tokio_stream::iter(chunks)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("not among the epochs"), "{refused:?}");
    assert_eq!(files(), before, "a refused upload stored a file");

    // A corrupted upload (digest mismatch) and an oversized one are refused.
    let mut corrupt = data.clone();
    corrupt[5] ^= 1;
    let chunks = vec![header(&job, &data), pb::CheckpointChunk { chunk: Some(Chunk::Data(corrupt)) }];
    let refused = c.workers.upload_checkpoint(tokio_stream::iter(chunks)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let big = vec![1u8; 4 * 1024 * 1024];
    let refused = c.workers.upload_checkpoint(tokio_stream::iter(vec![header(&job, &big)])).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    running.stop().await;
}

async fn watch_streams_progress_until_the_sweep_finishes(store: Arc<dyn Store>) {
    let mut running = Running::start(store, 1 << 20).await;
    let c = &mut running.clients;
    c.sweeps.submit_sweep(submit_request(common::spec("watch", &[1], &[1]))).await.unwrap();
    let mut updates = c
        .sweeps
        .watch_sweep(pb::WatchSweepRequest { sweep: "watch".into(), interval_ms: 100 })
        .await
        .unwrap()
        .into_inner();
    let first = updates.next().await.unwrap().unwrap();
    assert_eq!((first.pending, first.total), (1, 1));
    let job = lease(c).await;
    for n in 1..=2 {
        c.workers.report_epoch(report_request(&job, epoch(n))).await.unwrap();
    }
    c.workers.complete_job(complete_request(&job, epoch(3))).await.unwrap();
    let mut last = first;
    while let Some(update) = tokio::time::timeout(Duration::from_secs(10), updates.next()).await.unwrap() {
        last = update.unwrap();
    }
    assert_eq!(last.succeeded, 1, "the stream ends after the final state");
    running.stop().await;
}

/// Regression: a process that never leased a job completed it with
/// invented metrics (the fence was the public attempt number alone). Now
/// every fenced call needs the lease's token, which only LeaseJob returned.
async fn only_the_lease_holder_can_write_a_job(store: Arc<dyn Store>) {
    let mut running = Running::start(Arc::clone(&store), 1 << 20).await;
    running.clients.sweeps.submit_sweep(submit_request(common::spec("secret", &[1], &[1]))).await.unwrap();
    let job = lease(&mut running.clients).await;
    assert_eq!(job.lease_token.len(), 64, "256 bits as hex");
    // The intruder knows everything public (job id, attempt) and holds a
    // worker credential, but not the lease's token.
    let mut intruder = running.client(WORKER);
    let guessed = pb::Job { lease_token: "0".repeat(64), ..job.clone() };
    let missing = pb::Job { lease_token: String::new(), ..job.clone() };
    let invented = pb::EpochMetrics { test_error: 0.001, ..epoch(3) };
    for (forged, code) in [(&guessed, Code::PermissionDenied), (&missing, Code::InvalidArgument)] {
        let w = &mut intruder.workers;
        let refused = [
            w.complete_job(complete_request(forged, invented)).await.unwrap_err(),
            w.report_epoch(report_request(forged, epoch(1))).await.unwrap_err(),
            w.heartbeat(pb::HeartbeatRequest {
                job_id: forged.job_id,
                attempt: forged.attempt,
                lease_token: forged.lease_token.clone(),
            })
            .await
            .unwrap_err(),
            w.fail_job(pb::FailJobRequest {
                job_id: forged.job_id,
                attempt: forged.attempt,
                error: "sabotage".into(),
                retryable: false,
                lease_token: forged.lease_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
            w.release_job(pb::ReleaseJobRequest {
                job_id: forged.job_id,
                attempt: forged.attempt,
                lease_token: forged.lease_token.clone(),
            })
            .await
            .unwrap_err(),
            w.upload_checkpoint(tokio_stream::iter(vec![header(forged, b"forged")])).await.unwrap_err(),
            w.download_checkpoint(pb::DownloadCheckpointRequest {
                job_id: forged.job_id,
                attempt: forged.attempt,
                checkpoint_id: 1,
                lease_token: forged.lease_token.clone(),
            })
            .await
            .map(|_| ())
            .unwrap_err(),
        ];
        for status in refused {
            assert_eq!(status.code(), code, "{status:?}");
        }
    }
    let row = store.job(job.job_id).await.unwrap();
    assert_eq!((row.status.as_str(), row.final_test_error, row.epochs_done), ("running", None, 0));
    // The holder's own calls still work, and its result stands.
    let c = &mut running.clients;
    for n in 1..=2 {
        c.workers.report_epoch(report_request(&job, epoch(n))).await.unwrap();
    }
    c.workers.complete_job(complete_request(&job, epoch(3))).await.unwrap();
    let row = store.job(job.job_id).await.unwrap();
    assert_eq!((row.status.as_str(), row.final_test_error), ("succeeded", Some(0.45)));
    running.stop().await;
}

/// Workers lease and report; users submit, steer and read; viewers read.
async fn each_role_may_do_only_its_part(store: Arc<dyn Store>) {
    let running = Running::start(Arc::clone(&store), 1 << 20).await;
    let (mut user, mut worker, mut viewer) = (running.client(USER), running.client(WORKER), running.client(VIEWER));
    let spec = || submit_request(common::spec("roles", &[1], &[1, 2]));
    // Neither a worker nor a viewer can submit, cancel, pause or resume.
    for client in [&mut worker, &mut viewer] {
        denied(client.sweeps.submit_sweep(spec()).await);
    }
    user.sweeps.submit_sweep(spec()).await.unwrap();
    let sweep = || pb::SweepRef { sweep: "roles".into() };
    for client in [&mut worker, &mut viewer] {
        denied(client.sweeps.cancel_sweep(sweep()).await);
        denied(client.sweeps.pause_sweep(sweep()).await);
        denied(client.sweeps.resume_sweep(sweep()).await);
    }
    // A worker cannot read results either; a viewer and a user can.
    denied(worker.sweeps.list_sweeps(pb::ListSweepsRequest {}).await);
    for client in [&mut viewer, &mut user] {
        assert_eq!(client.sweeps.list_sweeps(pb::ListSweepsRequest {}).await.unwrap().into_inner().sweeps.len(), 1);
        let status = client.sweeps.get_sweep(pb::GetSweepRequest { sweep: "roles".into() }).await.unwrap();
        assert_eq!(status.into_inner().total, 2);
        let mut pages = client
            .sweeps
            .list_results(pb::ListResultsRequest { sweep: "roles".into(), include_epochs: true })
            .await
            .unwrap()
            .into_inner();
        let mut jobs = 0;
        while let Some(page) = pages.next().await {
            jobs += page.unwrap().jobs.len();
        }
        assert_eq!(jobs, 2);
    }
    // Only a worker leases; users and viewers cannot register or lease.
    for client in [&mut user, &mut viewer] {
        let register =
            pb::RegisterWorkerRequest { hostname: "h".into(), devices: vec!["cpu".into()], version: "t".into() };
        denied(client.workers.register_worker(register).await);
        denied(
            client
                .workers
                .lease_job(pb::LeaseJobRequest { worker_id: 1, device: "cpu".into(), ..Default::default() })
                .await,
        );
    }
    let job = lease(&mut worker).await;
    worker.workers.report_epoch(report_request(&job, epoch(1))).await.unwrap();
    user.sweeps.cancel_sweep(sweep()).await.unwrap();
    assert_eq!(store.sweep("roles").await.unwrap().counts.cancelled, 2);
    running.stop().await;
}

/// Regression: ReportEpoch for epoch 999999 of a short job answered OK.
async fn epochs_and_final_metrics_are_checked_against_the_job(store: Arc<dyn Store>) {
    let mut running = Running::start(Arc::clone(&store), 1 << 20).await;
    let c = &mut running.clients;
    c.sweeps.submit_sweep(submit_request(common::spec("epochs", &[1], &[1]))).await.unwrap();
    let job = lease(c).await;
    invalid(c.workers.report_epoch(report_request(&job, epoch(999_999))).await, "epoch 999999 is out of range");
    invalid(c.workers.report_epoch(report_request(&job, epoch(0))).await, "epochs count from 1");
    // Epochs come in order: 2 before 1 would leave a gap in the curve.
    invalid(c.workers.report_epoch(report_request(&job, epoch(2))).await, "the next epoch is at most 1");
    c.workers.report_epoch(report_request(&job, epoch(1))).await.unwrap();
    // Completing before the last epoch, or skipping epochs, is refused.
    invalid(c.workers.complete_job(complete_request(&job, epoch(2))).await, "the job trains 3 epochs");
    invalid(c.workers.complete_job(complete_request(&job, epoch(3))).await, "report every epoch");
    c.workers.report_epoch(report_request(&job, epoch(2))).await.unwrap();
    c.workers.report_epoch(report_request(&job, epoch(3))).await.unwrap();
    // The final metrics must be the last epoch as reported.
    let doctored = pb::EpochMetrics { test_error: 0.01, ..epoch(3) };
    invalid(c.workers.complete_job(complete_request(&job, doctored)).await, "differ from epoch 3");
    let mut lying = complete_request(&job, epoch(3));
    lying.best_test_error = 0.0001;
    c.workers.complete_job(lying).await.unwrap();
    let rows = store.sweep_results("epochs").await.unwrap();
    assert_eq!(rows[0].best_test_error, Some(0.45), "the best error is the recorded curve's, not the caller's");
    assert_eq!(store.job_epochs(job.job_id).await.unwrap().len(), 3);
    running.stop().await;
}

/// The coordinator's operator, not the client, bounds a sweep's size.
async fn the_server_sets_the_largest_sweep(store: Arc<dyn Store>) {
    let mut running = Running::start_with(Arc::clone(&store), 1 << 20, 4).await;
    let mut request = submit_request(common::spec("big", &[1], &[1, 2, 3, 4, 5]));
    request.allow_large = true;
    let refused = running.clients.sweeps.submit_sweep(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("at most 4"), "{}", refused.message());
    assert!(store.list_sweeps().await.unwrap().is_empty(), "nothing written");
    running.clients.sweeps.submit_sweep(submit_request(common::spec("big", &[1], &[1, 2, 3, 4]))).await.unwrap();
    running.stop().await;
}

/// ListResults pages through the database: every job once, in order, in
/// pages of at most 500, then every epoch.
async fn results_stream_in_pages(store: Arc<dyn Store>) {
    let mut running = Running::start(Arc::clone(&store), 1 << 20).await;
    let seeds: Vec<u64> = (1..=1_201).collect();
    let mut request = submit_request(common::spec("paged", &[1], &seeds));
    request.allow_large = true;
    running.clients.sweeps.submit_sweep(request).await.unwrap();
    // Two jobs with epochs, on either side of a page boundary.
    let worker = store.register_worker("h", &[], "t", 0).await.unwrap();
    // On the real clock: the running server's reaper would return a lease
    // stamped at time 0 at once.
    let now = widesweep_coordinator::store::now_ms();
    let first = store.lease_job(worker, "cpu", common::token(), 60_000, now).await.unwrap().unwrap();
    store.report_epoch(first.fence(), &common::epoch_metrics(1), 60_000, now + 1).await.unwrap();
    store.report_epoch(first.fence(), &common::epoch_metrics(2), 60_000, now + 2).await.unwrap();
    let mut pages = running
        .clients
        .sweeps
        .list_results(pb::ListResultsRequest { sweep: "paged".into(), include_epochs: true })
        .await
        .unwrap()
        .into_inner();
    let (mut sizes, mut ids, mut epochs) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        if !page.jobs.is_empty() {
            sizes.push(page.jobs.len());
            ids.extend(page.jobs.iter().map(|j| j.job_id));
        }
        epochs.extend(page.epochs.iter().map(|e| (e.job_id, e.metrics.unwrap().epoch)));
    }
    assert_eq!(sizes, [500, 500, 201]);
    let expected: Vec<i64> = store.sweep_results("paged").await.unwrap().iter().map(|r| r.job_id).collect();
    assert_eq!(ids, expected, "every job once, in job order");
    assert_eq!(epochs, [(first.job_id, 1), (first.job_id, 2)]);
    running.stop().await;
}

/// One connection holds at most MAX_STREAMS_PER_CONNECTION open streams:
/// the next call on it waits until one closes, while another connection is
/// served at once.
async fn a_connection_holds_a_bounded_number_of_streams(store: Arc<dyn Store>) {
    let running = Running::start(store, 1 << 20).await;
    let mut c = running.client(TOKEN);
    c.sweeps.submit_sweep(submit_request(common::spec("watched", &[1], &[1]))).await.unwrap();
    let request = || pb::WatchSweepRequest { sweep: "watched".into(), interval_ms: 60_000 };
    let mut open = Vec::new();
    for _ in 0..MAX_STREAMS_PER_CONNECTION {
        let mut stream = c.sweeps.watch_sweep(request()).await.unwrap().into_inner();
        stream.next().await.unwrap().unwrap();
        open.push(stream);
    }
    let mut sweeps = c.sweeps.clone();
    let waiting = tokio::spawn(async move {
        let mut stream = sweeps.watch_sweep(request()).await.unwrap().into_inner();
        stream.next().await.unwrap().unwrap()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a stream beyond the limit waits");
    let mut other = running.client(TOKEN);
    let mut elsewhere = other.sweeps.watch_sweep(request()).await.unwrap().into_inner();
    assert_eq!(elsewhere.next().await.unwrap().unwrap().total, 1, "another connection is served");
    open.pop();
    let update = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("served once a stream closes");
    assert_eq!(update.unwrap().total, 1);
    // A graceful stop waits for open streams: close them first.
    drop((open, elsewhere));
    running.stop().await;
}

/// Adaptive seeds travel through the API: the reserve a submission holds
/// back, and the reserve and target a sweep's status shows.
async fn adaptive_seeds_are_reported_by_submit_and_status(store: Arc<dyn Store>) {
    let mut running = Running::start(store, 1 << 20).await;
    let c = &mut running.clients;
    let text = "name = \"adaptive\"\ndataset = \"cifar10\"\n[seeds]\nstart = 2\nmax = 5\ntarget_ci = 0.5\n\
                [recipe]\nepochs = 3\n[grid]\ndepth = [10]\nwidth = [1, 2]\n";
    let submitted = c.sweeps.submit_sweep(submit_request(text.to_string())).await.unwrap().into_inner();
    assert_eq!((submitted.new_cells, submitted.reserve_cells, submitted.added_cells), (4, 6, 0));
    let status = c.sweeps.get_sweep(pb::GetSweepRequest { sweep: "adaptive".into() }).await.unwrap().into_inner();
    assert_eq!((status.total, status.pending, status.reserve, status.seeds_target_ci), (4, 4, 6, Some(0.5)));
    let fixed = c.sweeps.submit_sweep(submit_request(common::spec("fixed", &[1], &[1]))).await.unwrap().into_inner();
    assert_eq!(fixed.reserve_cells, 0);
    let status = c.sweeps.get_sweep(pb::GetSweepRequest { sweep: "fixed".into() }).await.unwrap().into_inner();
    assert_eq!((status.reserve, status.seeds_target_ci), (0, None));
    running.stop().await;
}

/// A NUL in a failure's text cannot be stored in PostgreSQL text: it is
/// kept escaped, and the job's attempt fails as it should (the worker
/// once retried that call forever). Names holding control characters are
/// refused as invalid, with the field named, on both backends.
async fn control_characters_never_reach_the_database(store: Arc<dyn Store>) {
    let mut running = Running::start(Arc::clone(&store), 1 << 20).await;
    let c = &mut running.clients;
    c.sweeps.submit_sweep(submit_request(common::spec("nul", &[1], &[1]))).await.unwrap();
    let job = lease(c).await;
    let failed = pb::FailJobRequest {
        job_id: job.job_id,
        attempt: job.attempt,
        error: "loss is NaN\0 at epoch 2\n\x1b[2J".into(),
        retryable: true,
        lease_token: job.lease_token.clone(),
        ..Default::default()
    };
    assert!(c.workers.fail_job(failed).await.unwrap().into_inner().requeued);
    let row = store.job(job.job_id).await.unwrap();
    assert_eq!(row.last_error.as_deref(), Some("loss is NaN\\u{0} at epoch 2\n\\u{1b}[2J"));
    let register = |hostname: &str| pb::RegisterWorkerRequest {
        hostname: hostname.into(),
        devices: vec!["cpu".into()],
        version: "t".into(),
    };
    invalid(c.workers.register_worker(register("gpu\0-01")).await, "hostname");
    let registered = c.workers.register_worker(register("gpu-01")).await.unwrap().into_inner();
    let lease_on = |device: &str| lease_request(&registered, device);
    invalid(c.workers.lease_job(lease_on("cuda:0\0")).await, "device");
    invalid(c.sweeps.get_sweep(pb::GetSweepRequest { sweep: "nul\0".into() }).await, "sweep");
    invalid(c.sweeps.pause_sweep(pb::SweepRef { sweep: "nul\0".into() }).await, "sweep");
    running.stop().await;
}

async fn a_worker_leases_only_under_its_own_id(store: Arc<dyn Store>) {
    let mut running = Running::start(Arc::clone(&store), 1 << 20).await;
    let c = &mut running.clients;
    c.sweeps.submit_sweep(submit_request(common::spec("ids", &[1], &[1, 2]))).await.unwrap();
    let register = pb::RegisterWorkerRequest { hostname: "h".into(), devices: vec!["cpu".into()], version: "t".into() };
    let mine = c.workers.register_worker(register.clone()).await.unwrap().into_inner();
    let theirs = c.workers.register_worker(register).await.unwrap().into_inner();
    assert_eq!(mine.worker_secret.len(), 64);
    assert_ne!(mine.worker_secret, theirs.worker_secret);
    // Their id with my secret, no secret, a malformed one: all refused.
    let forged = pb::LeaseJobRequest { worker_secret: mine.worker_secret.clone(), ..lease_request(&theirs, "cpu") };
    denied(c.workers.lease_job(forged).await);
    let bare = pb::LeaseJobRequest { worker_secret: String::new(), ..lease_request(&theirs, "cpu") };
    invalid(c.workers.lease_job(bare).await, "worker_secret is missing");
    let short = pb::LeaseJobRequest { worker_secret: "abc".into(), ..lease_request(&theirs, "cpu") };
    invalid(c.workers.lease_job(short).await, "worker_secret is malformed");
    let nobody = pb::LeaseJobRequest { worker_id: 987_654, ..lease_request(&mine, "cpu") };
    assert_eq!(c.workers.lease_job(nobody).await.unwrap_err().code(), Code::NotFound);
    // Each under its own id: both lease (the second from the secret's cache).
    for registered in [&mine, &theirs, &mine] {
        c.workers.lease_job(lease_request(registered, "cpu")).await.unwrap();
    }
    let jobs = store.sweep_results("ids").await.unwrap();
    assert!(jobs.iter().all(|job| job.status.as_str() == "running"), "both jobs leased");
    running.stop().await;
}

/// Checkpoint files that no row references (an upload refused after its
/// transfer, a crash between a prune's row and its file) go at start-up,
/// once they are old enough not to be an upload in flight.
async fn unreferenced_checkpoint_files_are_swept_at_start(store: Arc<dyn Store>) {
    let mut running = Running::start(Arc::clone(&store), 1 << 20).await;
    let c = &mut running.clients;
    c.sweeps.submit_sweep(submit_request(common::spec("orphans", &[1], &[1]))).await.unwrap();
    let job = lease(c).await;
    c.workers.report_epoch(report_request(&job, epoch(1))).await.unwrap();
    let data = b"a stored checkpoint".to_vec();
    let chunks = vec![header(&job, &data), pb::CheckpointChunk { chunk: Some(Chunk::Data(data.clone())) }];
    c.workers.upload_checkpoint(tokio_stream::iter(chunks)).await.unwrap();
    let artifacts = running.stop_keeping_artifacts().await;
    let path_of = |sha: &str| artifacts.path().join(&sha[..2]).join(sha);
    let kept = path_of(&hex::encode(Sha256::digest(&data)));
    let orphan_sha = hex::encode(Sha256::digest(b"refused after its transfer"));
    let (orphan, young) = (path_of(&orphan_sha), path_of(&hex::encode(Sha256::digest(b"in flight"))));
    for path in [&orphan, &young] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(3 * 3600);
    for path in [&kept, &orphan] {
        std::fs::File::options().write(true).open(path).unwrap().set_modified(long_ago).unwrap();
    }
    let running = Running::start_in(Arc::clone(&store), artifacts, |_| {}).await;
    // The sweep runs before the server takes calls: one call waits for it.
    running.client(VIEWER).sweeps.list_sweeps(pb::ListSweepsRequest {}).await.unwrap();
    assert!(kept.exists(), "a referenced checkpoint stays");
    assert!(!orphan.exists(), "an old unreferenced file goes");
    assert!(young.exists(), "a young file may be an upload between its commit and its row");
    running.stop().await;
}

/// A connection that sends half a request and falls silent, or none at
/// all, is closed after the idle timeout; a client that keeps talking is not.
async fn silent_and_half_sent_connections_are_closed(store: Arc<dyn Store>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let idle = Duration::from_millis(800);
    let running = Running::start_in(store, tempfile::tempdir().unwrap(), |config| {
        config.connections.idle_timeout = idle;
    })
    .await;
    let address = running.url.trim_start_matches("http://").to_string();
    let mut half = tokio::net::TcpStream::connect(&address).await.unwrap();
    half.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    for mut stream in [half, silent] {
        let mut rest = Vec::new();
        // Closed (EOF or reset) well before this generous bound.
        let closed = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the connection was still open after 20 s");
    }
    // A real client's calls spaced wider than the timeout still succeed:
    // it reconnects, or its connection's pings kept it open.
    let mut viewer = running.client(VIEWER);
    for _ in 0..2 {
        viewer.sweeps.list_sweeps(pb::ListSweepsRequest {}).await.unwrap();
        tokio::time::sleep(idle * 2).await;
    }
    running.stop().await;
}

/// ListWorkers for any reader; ReleaseWorker for users only, NOT_FOUND for
/// an unknown worker.
async fn workers_are_listed_and_released_by_their_roles(store: Arc<dyn Store>) {
    let running = Running::start(store, 1 << 20).await;
    let (mut viewer, mut user, mut worker) = (running.client(VIEWER), running.client(USER), running.client(WORKER));
    let register =
        pb::RegisterWorkerRequest { hostname: "node-9".into(), devices: vec!["cuda:0".into()], version: "t".into() };
    let id = worker.workers.register_worker(register).await.unwrap().into_inner().worker_id;
    let listed = viewer.sweeps.list_workers(pb::ListWorkersRequest {}).await.unwrap().into_inner().workers;
    let shown = listed.iter().find(|w| w.worker_id == id).expect("the new worker is listed");
    assert_eq!((shown.hostname.as_str(), shown.devices.clone()), ("node-9", vec!["cuda:0".to_string()]));
    assert_eq!(shown.quarantine_reason, "");
    denied(viewer.sweeps.release_worker(pb::WorkerRef { worker_id: id }).await);
    let released = user.sweeps.release_worker(pb::WorkerRef { worker_id: id }).await.unwrap().into_inner();
    assert_eq!(released.worker_id, id);
    let unknown = user.sweeps.release_worker(pb::WorkerRef { worker_id: 987_654 }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    running.stop().await;
}

contract_tests!(
    workers_are_listed_and_released_by_their_roles,
    a_worker_leases_only_under_its_own_id,
    unreferenced_checkpoint_files_are_swept_at_start,
    silent_and_half_sent_connections_are_closed,
    control_characters_never_reach_the_database,
    adaptive_seeds_are_reported_by_submit_and_status,
    a_connection_holds_a_bounded_number_of_streams,
    only_the_lease_holder_can_write_a_job,
    each_role_may_do_only_its_part,
    epochs_and_final_metrics_are_checked_against_the_job,
    the_server_sets_the_largest_sweep,
    results_stream_in_pages,
    calls_without_the_token_are_refused,
    an_invalid_spec_is_refused_and_writes_nothing,
    fencing_and_cancellation_have_precise_status_codes,
    checkpoints_round_trip_and_respect_the_size_limit,
    watch_streams_progress_until_the_sweep_finishes,
);
