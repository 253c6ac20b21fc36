//! Hostile and careless input through the real gRPC services, as a client
//! generated from proto/widesweep/v1 in another language could send it:
//! spec text with arbitrary values in every field, and every worker rpc
//! with arbitrary ids, attempts, tokens and metrics. Properties: nothing
//! panics, bad input is never INTERNAL (it is INVALID_ARGUMENT or another
//! precise code, with a message), and an accepted spec is stored as the
//! cells it says: no value turns into another one on the way.

mod common;

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tokio_stream::StreamExt;
use tonic::Code;
use widesweep_coordinator::service::{ServerConfig, serve};
use widesweep_proto::client::{ClientOptions, Clients};
use widesweep_proto::v1 as pb;

/// A coordinator on a fresh SQLite database, for the whole test.
struct Server {
    runtime: tokio::runtime::Runtime,
    clients: Clients,
    _db: common::TestDb,
    _artifacts: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (db, artifacts, clients) = runtime.block_on(async {
            let db = common::TestDb::sqlite().await;
            let artifacts = tempfile::tempdir().unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let config = ServerConfig {
                artifacts_dir: artifacts.path().to_path_buf(),
                max_checkpoint_bytes: 1 << 16,
                max_sweep_jobs: 2_000,
                reap_interval: Duration::from_secs(3600),
                ..ServerConfig::default()
            };
            let store = Arc::clone(&db.store);
            tokio::spawn(async move { serve(store, config, listener, std::future::pending()).await.unwrap() });
            let clients = ClientOptions { url, token: None, ca_pem: None }.connect_lazy().unwrap();
            (db, artifacts, clients)
        });
        Self { runtime, clients, _db: db, _artifacts: artifacts }
    }
}

/// Bad input gets a precise refusal with a message, never INTERNAL.
fn refused_precisely(status: &tonic::Status) -> Result<(), TestCaseError> {
    prop_assert!(
        !matches!(status.code(), Code::Internal | Code::Unknown | Code::Unavailable),
        "{:?}: {}",
        status.code(),
        status.message()
    );
    prop_assert!(!status.message().is_empty());
    Ok(())
}

/// A TOML value of any kind a careless user might type for an integer.
fn integer_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100).prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        (0u64..64).prop_map(|shift| (1u64 << shift).wrapping_add(16).to_string()),
        Just("25769803792".to_string()),
        Just("4294967297".to_string()),
        Just("-1".to_string()),
        Just("1.5".to_string()),
        Just("\"16\"".to_string()),
    ]
}

/// A valid spec with one field given a wild value (or two values), so
/// that many cases are accepted and the property about stored cells bites.
fn spec_text() -> impl Strategy<Value = (String, Option<(u64, u64)>)> {
    (0..7usize, prop::collection::vec(integer_value(), 1..3), "[a-z]{1,8}").prop_map(|(field, wild, name)| {
        let wild_list = wild.join(", ");
        let one = wild[0].clone();
        let pick = |index: usize, default: &str, value: &str| {
            if field == index { value.to_string() } else { default.to_string() }
        };
        let depths = pick(0, "10", &wild_list);
        let widths = pick(1, "2", &wild_list);
        let text = format!(
            "name = \"{name}\"\ndataset = \"cifar10\"\nseeds = [{}]\n[recipe]\nepochs = {}\nbatch_size = {}\n\
             lr_milestones = [{}]\ntrain_subset = {}\n[grid]\ndepth = [{depths}]\nwidth = [{widths}]\n",
            pick(2, "1", &one),
            pick(3, "300", &one),
            pick(4, "16", &one),
            pick(5, "100", &one),
            pick(6, "0", &one),
        );
        // The one cell it stands for, when the grid has exactly one.
        let single = match (
            depths.split(", ").collect::<Vec<_>>().as_slice(),
            widths.split(", ").collect::<Vec<_>>().as_slice(),
        ) {
            ([d], [w]) => d.parse().ok().zip(w.parse().ok()),
            _ => None,
        };
        (text, single)
    })
}

#[test]
fn any_spec_is_refused_precisely_or_stored_as_written() {
    let server = Server::start();
    let config = ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |((text, single) in spec_text())| {
        let mut clients = server.clients.clone();
        let request = pb::SubmitSweepRequest { spec_toml: text.clone(), allow_large: true, priority: 0, max_attempts: 0 };
        let answer = server.runtime.block_on(clients.sweeps.submit_sweep(request));
        match answer {
            Err(status) => refused_precisely(&status)?,
            Ok(submitted) => {
                let name = submitted.into_inner().name;
                let rows = server.runtime.block_on(async {
                    let request = pb::ListResultsRequest { sweep: name, include_epochs: false };
                    let mut pages = clients.sweeps.list_results(request).await.unwrap().into_inner();
                    let mut rows = Vec::new();
                    while let Some(page) = pages.next().await {
                        rows.extend(page.unwrap().jobs);
                    }
                    rows
                });
                prop_assert!(!rows.is_empty());
                if let Some((depth, width)) = single {
                    // Two cases may draw the same sweep name: the earlier
                    // case's jobs stay listed, out of the spec.
                    for row in rows.iter().filter(|row| row.in_spec) {
                        let cell = row.config.as_ref().unwrap();
                        prop_assert_eq!((u64::from(cell.depth), u64::from(cell.width)), (depth, width), "{}", text);
                    }
                }
            }
        }
    });
}

#[test]
fn arbitrary_spec_text_is_refused_precisely() {
    let server = Server::start();
    let config = ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(text in ".{0,200}")| {
        let mut clients = server.clients.clone();
        let request = pb::SubmitSweepRequest { spec_toml: text, allow_large: false, priority: 0, max_attempts: 0 };
        if let Err(status) = server.runtime.block_on(clients.sweeps.submit_sweep(request)) {
            refused_precisely(&status)?;
        }
    });
}

fn metrics() -> impl Strategy<Value = Option<pb::EpochMetrics>> {
    let float = prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), Just(-0.0), 0.0..1.0f64,];
    let fields = (any::<u32>(), float.clone(), float.clone(), float.clone(), float.clone(), float.clone(), float);
    prop_oneof![
        Just(None),
        fields.prop_map(|(epoch, train_loss, train_error, test_loss, test_error, lr, seconds)| Some(
            pb::EpochMetrics {
                epoch,
                train_loss,
                train_error,
                test_loss,
                test_error,
                lr,
                epoch_seconds: seconds,
                images_per_second: 1.0,
            }
        )),
    ]
}

/// A lease token: missing, malformed, guessed, or the real one.
fn token() -> impl Strategy<Value = Option<String>> {
    prop_oneof![Just(None), Just(Some(String::new())), "[0-9a-f]{64}".prop_map(Some), ".{0,80}".prop_map(Some),]
}

#[test]
fn worker_calls_with_arbitrary_fields_are_refused_precisely() {
    let server = Server::start();
    let mut clients = server.clients.clone();
    let job = server.runtime.block_on(async {
        let spec = common::spec("fuzzed", &[1], &[1, 2, 3]);
        let request = pb::SubmitSweepRequest { spec_toml: spec, allow_large: false, priority: 0, max_attempts: 0 };
        clients.sweeps.submit_sweep(request).await.unwrap();
        let register = pb::RegisterWorkerRequest { hostname: "f".into(), devices: vec![], version: "t".into() };
        let registered = clients.workers.register_worker(register).await.unwrap().into_inner();
        let lease = pb::LeaseJobRequest {
            worker_id: registered.worker_id,
            worker_secret: registered.worker_secret,
            device: "cpu".into(),
            device_kind: String::new(),
        };
        clients.workers.lease_job(lease).await.unwrap().into_inner().job.unwrap()
    });
    let config = ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() };
    let ids = prop_oneof![Just(job.job_id), any::<i64>()];
    let attempts = prop_oneof![Just(job.attempt), any::<u32>()];
    proptest!(config, |(job_id in ids, attempt in attempts, token in token(), metrics in metrics(), call in 0..7u8)| {
        let mut w = server.clients.workers.clone();
        let lease_token = token.unwrap_or_else(|| job.lease_token.clone());
        let result = server.runtime.block_on(async {
            match call {
                0 => w.report_epoch(pb::ReportEpochRequest { job_id, attempt, metrics, lease_token }).await.map(|_| ()),
                1 => w.heartbeat(pb::HeartbeatRequest { job_id, attempt, lease_token }).await.map(|_| ()),
                2 => w
                    .complete_job(pb::CompleteJobRequest {
                        job_id,
                        attempt,
                        final_metrics: metrics,
                        best_test_error: 0.5,
                        train_seconds: 1.0,
                        lease_token,
                        provenance: None,
                    })
                    .await
                    .map(|_| ()),
                3 => w
                    .download_checkpoint(pb::DownloadCheckpointRequest { job_id, attempt, checkpoint_id: job_id, lease_token })
                    .await
                    .map(|_| ()),
                4 => w
                    .lease_job(pb::LeaseJobRequest { worker_id: job_id, worker_secret: lease_token.clone(), device: lease_token, device_kind: String::new() })
                    .await
                    .map(|_| ()),
                5 => w
                    .register_worker(pb::RegisterWorkerRequest { hostname: lease_token, devices: vec![], version: String::new() })
                    .await
                    .map(|_| ()),
                _ => {
                    let header = pb::CheckpointHeader {
                        job_id,
                        attempt,
                        epoch: metrics.map_or(0, |m| m.epoch),
                        size_bytes: u64::from(attempt),
                        sha256: "0".repeat(64),
                        lease_token,
                    };
                    let chunk = pb::CheckpointChunk { chunk: Some(pb::checkpoint_chunk::Chunk::Header(header)) };
                    w.upload_checkpoint(tokio_stream::iter(vec![chunk])).await.map(|_| ())
                }
            }
        });
        if let Err(status) = result {
            refused_precisely(&status)?;
        }
    });
    // Whatever was thrown at it, the job's record is one the real worker
    // could have written: within its epochs, and not completed by a guess.
    let row = server.runtime.block_on(server._db.store.job(job.job_id)).unwrap();
    assert!(row.epochs_done <= 3, "{row:?}");
}
