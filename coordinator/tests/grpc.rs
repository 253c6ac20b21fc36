//! The gRPC services end to end over loopback: status codes, auth, the
//! watch stream and checkpoint transfers. Runs on SQLite and Postgres.

mod common;

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;
use tonic::Code;
use widesweep_coordinator::service::{ServerConfig, serve};
use widesweep_coordinator::store::Store;
use widesweep_proto::client::{ClientOptions, Clients};
use widesweep_proto::v1 as pb;
use widesweep_proto::v1::checkpoint_chunk::Chunk;

const TOKEN: &str = "test-token";

struct Running {
    clients: Clients,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    _artifacts: tempfile::TempDir,
}

impl Running {
    async fn start(store: Arc<dyn Store>, max_checkpoint_bytes: u64) -> Self {
        let artifacts = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let config = ServerConfig {
            artifacts_dir: artifacts.path().to_path_buf(),
            max_checkpoint_bytes,
            token: Some(TOKEN.to_string()),
            reap_interval: Duration::from_millis(100),
            ..ServerConfig::default()
        };
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

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server.await.unwrap();
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

async fn lease(clients: &mut Clients) -> pb::Job {
    let worker_id = clients
        .workers
        .register_worker(pb::RegisterWorkerRequest {
            hostname: "t".into(),
            devices: vec!["cpu".into()],
            version: "t".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    clients
        .workers
        .lease_job(pb::LeaseJobRequest { worker_id, device: "cpu".into() })
        .await
        .unwrap()
        .into_inner()
        .job
        .expect("a job is pending")
}

async fn calls_without_the_token_are_refused(store: Arc<dyn Store>) {
    let running = Running::start(store, 1 << 20).await;
    let mut anonymous = ClientOptions { url: running.url.clone(), token: None, ca_pem: None }.connect_lazy().unwrap();
    let refused = anonymous.sweeps.list_sweeps(pb::ListSweepsRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let mut wrong =
        ClientOptions { url: running.url.clone(), token: Some("nope".into()), ca_pem: None }.connect_lazy().unwrap();
    let refused =
        wrong.workers.lease_job(pb::LeaseJobRequest { worker_id: 1, device: "cpu".into() }).await.unwrap_err();
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
    let report = |attempt: u32, job_id: i64| pb::ReportEpochRequest { job_id, attempt, metrics: Some(epoch(1)) };
    c.workers.report_epoch(report(1, job.job_id)).await.unwrap();
    let stale = c.workers.report_epoch(report(7, job.job_id)).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    let unknown = c.workers.report_epoch(report(1, 987_654)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let mut bad_metrics = report(1, job.job_id);
    bad_metrics.metrics.as_mut().unwrap().test_error = 7.0;
    assert_eq!(c.workers.report_epoch(bad_metrics).await.unwrap_err().code(), Code::InvalidArgument);
    let missing = pb::ReportEpochRequest { job_id: job.job_id, attempt: 1, metrics: None };
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
        })),
    }
}

async fn checkpoints_round_trip_and_respect_the_size_limit(store: Arc<dyn Store>) {
    let mut running = Running::start(store, 3 * 1024 * 1024).await;
    let c = &mut running.clients;
    c.sweeps.submit_sweep(submit_request(common::spec("ckpt", &[1], &[1]))).await.unwrap();
    let job = lease(c).await;
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
    c.workers
        .complete_job(pb::CompleteJobRequest {
            job_id: job.job_id,
            attempt: job.attempt,
            final_metrics: Some(epoch(3)),
            best_test_error: 0.4,
            train_seconds: 6.0,
        })
        .await
        .unwrap();
    let mut last = first;
    while let Some(update) = tokio::time::timeout(Duration::from_secs(10), updates.next()).await.unwrap() {
        last = update.unwrap();
    }
    assert_eq!(last.succeeded, 1, "the stream ends after the final state");
    running.stop().await;
}

contract_tests!(
    calls_without_the_token_are_refused,
    an_invalid_spec_is_refused_and_writes_nothing,
    fencing_and_cancellation_have_precise_status_codes,
    checkpoints_round_trip_and_respect_the_size_limit,
    watch_streams_progress_until_the_sweep_finishes,
);
