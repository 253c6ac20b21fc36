//! The dashboard's HTTP side, called in process (the router as a tower
//! service), on both backends: who may look, the table a page shows being
//! `widesweep table --format json`'s, the learning curves, workers and
//! jobs, and the live event stream moving when a worker reports an epoch;
//! then HTTPS, and every page in a real browser.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::metrics;
use http_body_util::BodyExt;
use tower::ServiceExt;
use widesweep_coordinator::report::{Format, TableOptions, build, render};
use widesweep_coordinator::service::{Credentials, ServerConfig, serve};
use widesweep_coordinator::store::{ErrorClass, Failure, JobResult, Store};
use widesweep_coordinator::web::{WebConfig, router};
use widesweep_proto::client::ClientOptions;
use widesweep_proto::v1 as pb;

const LEASE: i64 = 60_000;
const VIEWER: &str = "viewer-token-0123456789";
const WORKER: &str = "worker-token-0123456789";

fn config() -> WebConfig {
    WebConfig {
        credentials: Credentials {
            shared: None,
            user: Some("user-token-0123456789".into()),
            worker: Some(WORKER.into()),
            viewer: Some(VIEWER.into()),
        },
        refresh: Duration::from_millis(50),
        stale_after: Duration::from_secs(60),
        ..WebConfig::default()
    }
}

/// Depth x width, two seeds each: a heatmap's worth of cells.
const SPEC: &str = "name = \"web\"\ndataset = \"cifar10\"\nseeds = [1, 2]\n[recipe]\nepochs = 3\n\
                    lr_milestones = [2]\n[grid]\ndepth = [10, 16]\nwidth = [1, 2]\n";

/// Four cells x two seeds, three finished with known errors, one left running
/// after its first epoch.
async fn fixture(store: &dyn Store) -> widesweep_coordinator::store::LeasedJob {
    let worker = finished_three(store).await;
    let running = store.lease_job(worker, "cpu", common::token(), LEASE, 3_000).await.unwrap().unwrap();
    store.report_epoch(running.fence(), &metrics(1, 0.3), LEASE, 3_100).await.unwrap();
    running
}

/// The fixture's sweep with three of its four jobs finished; the worker
/// that trained them.
async fn finished_three(store: &dyn Store) -> i64 {
    common::submit(store, SPEC, 0, 3).await;
    let worker = store.register_worker("h", &["cpu".into()], "t", 0).await.unwrap();
    for i in 0..3 {
        let job = store.lease_job(worker, "cpu", common::token(), LEASE, 1_000).await.unwrap().unwrap();
        let error = 0.10 + 0.01 * i as f64;
        for epoch in 1..=2 {
            store.report_epoch(job.fence(), &metrics(epoch, error + 0.1), LEASE, 1_500).await.unwrap();
        }
        let result = JobResult {
            final_metrics: metrics(3, error),
            best_test_error: error,
            train_seconds: 6.0,
            provenance: None,
        };
        store.complete_job(job.fence(), &result, 2_000).await.unwrap();
    }
    worker
}

async fn get(
    app: &axum::Router,
    path: &str,
    auth: Option<(&str, &str)>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::get(path);
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

fn bearer(token: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {token}")))
}

async fn only_readers_may_look(store: Arc<dyn Store>) {
    fixture(&*store).await;
    let app = router(Arc::clone(&store), &config());
    let (status, _, _) = get(&app, "/api/sweeps", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, page) = get(&app, "/", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("<form") && page.contains("/login"), "the login page: {page}");
    let worker = bearer(WORKER);
    let (status, _, _) = get(&app, "/api/sweeps", worker.as_ref().map(|(n, v)| (*n, v.as_str()))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a worker token does not read");
    let viewer = bearer(VIEWER);
    let (status, _, body) = get(&app, "/api/sweeps", viewer.as_ref().map(|(n, v)| (*n, v.as_str()))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"name\":\"web\""), "{body}");

    // A browser logs in once; the cookie carries the credential after.
    let (status, headers, _) = get(&app, &format!("/login?token={VIEWER}"), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let (status, _, page) = get(&app, "/", Some(("cookie", &pair))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("/assets/app.js"));
    let (status, _, _) = get(&app, "/login?token=wrong", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Assets carry no data and load before login.
    let (status, _, script) = get(&app, "/assets/app.js", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(script.contains("EventSource"));
    // Hardened: no framing, no sniffing, no referrer, no foreign scripts.
    let (_, headers, _) = get(&app, "/", Some(("cookie", &pair))).await;
    assert_eq!(headers.get("x-frame-options").unwrap(), "DENY");
    assert!(headers.get("content-security-policy").unwrap().to_str().unwrap().contains("script-src 'self'"));
    assert_eq!(headers.get("referrer-policy").unwrap(), "no-referrer");
    // Nothing writes: the API has no other method than GET.
    let post = Request::post("/api/sweeps").header("authorization", format!("Bearer {VIEWER}")).body(Body::empty());
    let response = app.clone().oneshot(post.unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

async fn the_table_is_the_cli_s_and_curves_hold_every_epoch(store: Arc<dyn Store>) {
    fixture(&*store).await;
    let app = router(Arc::clone(&store), &config());
    let auth = bearer(VIEWER);
    let auth = auth.as_ref().map(|(n, v)| (*n, v.as_str()));
    let rows = store.sweep_results("web").await.unwrap();
    for format in [Format::Json, Format::Csv, Format::Markdown, Format::Latex, Format::Text] {
        let (status, _, body) = get(&app, &format!("/api/sweeps/web/table?format={format}"), auth).await;
        assert_eq!(status, StatusCode::OK, "{format}: {body}");
        assert_eq!(body, render(&build(&rows, &TableOptions::default()).unwrap(), format), "{format}");
    }
    // Browsers take the table gzip-compressed; it unpacks to the same text.
    let mut request = Request::get("/api/sweeps/web/table?format=json").header("accept-encoding", "br;q=1, gzip");
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.headers().get(header::CONTENT_ENCODING).unwrap(), "gzip");
    let packed = response.into_body().collect().await.unwrap().to_bytes();
    let mut unpacked = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&packed[..]), &mut unpacked).unwrap();
    assert_eq!(unpacked, render(&build(&rows, &TableOptions::default()).unwrap(), Format::Json));
    let (_, headers, _) = get(&app, "/api/sweeps/web/table?format=json", auth).await;
    assert!(headers.get(header::CONTENT_ENCODING).is_none(), "plain without Accept-Encoding");
    let age: u64 = headers.get("x-data-age-ms").unwrap().to_str().unwrap().parse().unwrap();
    assert!(age < 60_000, "the shared read's age, in ms: {age}");
    let (_, headers, _) = get(&app, "/api/sweeps/web/table?format=csv&download=1", auth).await;
    assert_eq!(headers.get(header::CONTENT_DISPOSITION).unwrap(), "attachment; filename=\"web.csv\"");
    let (status, _, body) = get(&app, "/api/sweeps/web/table?format=json&baseline=width%3D1", auth).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"p_value\""), "a baseline adds the comparison: {body}");
    let (status, _, body) = get(&app, "/api/sweeps/web/table?format=pdf", auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("json"), "the error names the valid formats: {body}");
    let (status, _, _) = get(&app, "/api/sweeps/nope/table", auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _, body) = get(&app, "/api/sweeps/web/curves", auth).await;
    assert_eq!(status, StatusCode::OK);
    let curves: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cells = curves["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2, "two cells: {body}");
    assert_eq!(curves["more"], 0);
    let seeds: u64 =
        cells.iter().flat_map(|c| c["points"].as_array().unwrap()).map(|p| p["seeds"].as_u64().unwrap()).sum();
    assert_eq!(seeds, 3 * 3 + 1, "every recorded epoch counts once: {body}");
    // The cell with both seeds finished: the median of their last epochs,
    // the band from the better to the worse.
    let last = cells
        .iter()
        .flat_map(|c| c["points"].as_array().unwrap())
        .find(|p| p["epoch"] == 3 && p["seeds"] == 2)
        .unwrap_or_else(|| panic!("a cell with both seeds at epoch 3: {body}"));
    assert!((last["median"].as_f64().unwrap() - 10.5).abs() < 1e-9, "{last}");
    assert!(
        (last["best"].as_f64().unwrap() - 10.0).abs() < 1e-9 && (last["worst"].as_f64().unwrap() - 11.0).abs() < 1e-9
    );

    // The heatmap's and the CLI's axes choices: rows and columns by name.
    let (status, _, body) = get(&app, "/api/sweeps/web/table?format=json&rows=depth,width&columns=seed", auth).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["rows"], serde_json::json!(["depth", "width"]), "{body}");
    assert_eq!(doc["columns"], serde_json::json!(["seed"]), "{body}");
    // The page offers the CLI's metrics and aggregates, and they apply.
    let (_, _, body) = get(&app, "/api/table-choices", auth).await;
    let choices: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(choices["metrics"].as_array().unwrap().contains(&"best_test_error".into()), "{body}");
    assert!(choices["aggregates"].as_array().unwrap().contains(&"mean".into()), "{body}");
    let (status, _, body) = get(&app, "/api/sweeps/web/table?format=json&metric=best_test_error&agg=mean", auth).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mean = TableOptions {
        metric: "best_test_error".parse().unwrap(),
        agg: "mean".parse().unwrap(),
        ..TableOptions::default()
    };
    assert_eq!(body, render(&build(&rows, &mean).unwrap(), Format::Json));
    let (status, _, body) = get(&app, "/api/sweeps/web/table?rows=colour", auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("colour") && body.contains("width"), "names the axis and the valid ones: {body}");
}

async fn workers_and_jobs_are_shown(store: Arc<dyn Store>) {
    let running = fixture(&*store).await;
    // A heartbeat later than the last sighting by more than the
    // resolution: the worker's last sighting moves.
    store.heartbeat(running.fence(), LEASE, 20_000).await.unwrap();
    let app = router(Arc::clone(&store), &config());
    let auth = bearer(VIEWER);
    let auth = auth.as_ref().map(|(n, v)| (*n, v.as_str()));
    let (status, _, body) = get(&app, "/api/workers", auth).await;
    assert_eq!(status, StatusCode::OK);
    let workers: serde_json::Value = serde_json::from_str(&body).unwrap();
    // Heard from in 1970 (the fixture's clock) but holding a lease: shown, stale.
    assert_eq!(workers.as_array().unwrap().len(), 1, "{body}");
    let worker = &workers[0];
    assert_eq!(worker["last_seen_at_ms"], 20_000, "{body}");
    assert_eq!(worker["stale"], true);
    assert_eq!(worker["devices"], serde_json::json!(["cpu"]));
    let slot = &worker["slots"][0];
    assert_eq!(slot["job_id"], running.job_id);
    assert_eq!(slot["sweep"], "web");
    assert_eq!((slot["epochs_done"].as_u64(), slot["epochs"].as_u64()), (Some(1), Some(3)));
    assert!(slot["images_per_second"].as_f64().unwrap() > 0.0, "{slot}");
    // One registered now is fresh and idle.
    let now = store.clock_ms().await.unwrap();
    store.register_worker("fresh", &["cuda:0".into()], "t", now).await.unwrap();
    let (_, _, body) = get(&app, "/api/workers", auth).await;
    let workers: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(workers[0]["hostname"], "fresh", "most recently seen first: {body}");
    assert_eq!((workers[0]["stale"].as_bool(), workers[0]["slots"].as_array().unwrap().len()), (Some(false), 0));

    let (status, _, body) = get(&app, &format!("/api/jobs/{}", running.job_id), auth).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(job["status"], "running");
    assert_eq!(job["sweep"], "web");
    assert_eq!((job["attempt"].as_u64(), job["max_attempts"].as_u64()), (Some(1), Some(3)));
    assert_eq!(job["epochs"].as_array().unwrap().len(), 1);
    assert_eq!(job["epochs"][0]["attempt"], 1);
    let config: Vec<&str> = job["config"].as_array().unwrap().iter().map(|kv| kv[0].as_str().unwrap()).collect();
    assert_eq!(config, ["block", "l", "n", "depth", "width", "dropout", "dataset", "seed", "recipe"]);
    let finished =
        store.sweep_results("web").await.unwrap().into_iter().find(|r| r.final_test_error.is_some()).unwrap();
    let (_, _, body) = get(&app, &format!("/api/jobs/{}", finished.job_id), auth).await;
    let job: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["epochs"].as_array().unwrap().len(), 3, "{body}");
    let attempts = job["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{body}");
    assert_eq!((attempts[0]["outcome"].as_str(), attempts[0]["hostname"].as_str()), (Some("succeeded"), Some("h")));
    assert!((job["final_test_error"].as_f64().unwrap() - finished.final_test_error.unwrap()).abs() < 1e-12, "{body}");
    // The running job fails with a machine's error: its page lists the
    // attempt, and the sweep's causes group it with its worker.
    let disk = Failure { error: "No space left on device", retryable: true, class: ErrorClass::Machine };
    store.fail_attempt(running.fence(), &disk, 21_000).await.unwrap();
    let (_, _, body) = get(&app, &format!("/api/jobs/{}", running.job_id), auth).await;
    let job: serde_json::Value = serde_json::from_str(&body).unwrap();
    let attempt = &job["attempts"][0];
    assert_eq!((attempt["outcome"].as_str(), attempt["error_class"].as_str()), (Some("failed"), Some("machine")));
    assert_eq!(attempt["error"], "No space left on device", "{body}");
    let (status, _, body) = get(&app, "/api/sweeps/web/causes", auth).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let causes: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(causes.as_array().unwrap().len(), 1, "{body}");
    assert_eq!((causes[0]["error_class"].as_str(), causes[0]["attempts"].as_u64()), (Some("machine"), Some(1)));
    assert_eq!(causes[0]["workers"][0], "h (worker 1)", "{body}");
    let (status, _, body) = get(&app, "/api/jobs/999999", auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, body) = get(&app, "/api/jobs/seven", auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("\"seven\""), "{body}");
}

/// Reads the event stream until an `event: sweeps` whose data satisfies `want`.
async fn next_event(
    body: &mut axum::body::BodyDataStream,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    use futures::StreamExt;
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let chunk =
            tokio::time::timeout_at(deadline, body.next()).await.expect("an event within 10 s").unwrap().unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: "))
                && event.contains("event: sweeps")
            {
                let value: serde_json::Value = serde_json::from_str(data).unwrap();
                if want(&value) {
                    return value;
                }
            }
        }
    }
}

async fn the_event_stream_moves_when_a_worker_reports(store: Arc<dyn Store>) {
    let running = fixture(&*store).await;
    // A refresh long enough that the report lands within one period of the
    // curves' last read: the page that the event sends must still get the
    // new epoch, not the data read before it.
    let app = router(Arc::clone(&store), &WebConfig { refresh: Duration::from_secs(1), ..config() });
    let request = Request::get("/api/events").header("authorization", format!("Bearer {VIEWER}")).body(Body::empty());
    let response = app.clone().oneshot(request.unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get(header::CONTENT_TYPE).unwrap(), "text/event-stream");
    let mut body = response.into_body().into_data_stream();
    let epochs = |v: &serde_json::Value| v[0]["epochs_done"].as_u64();
    let first = next_event(&mut body, |v| epochs(v).is_some()).await;
    let before = epochs(&first).unwrap();
    assert_eq!(first[0]["running"], 1);
    let auth = bearer(VIEWER);
    let auth = auth.as_ref().map(|(n, v)| (*n, v.as_str()));
    let seeds = |body: &str| -> u64 {
        let curves: serde_json::Value = serde_json::from_str(body).unwrap();
        let cells = curves["cells"].as_array().unwrap();
        cells.iter().flat_map(|c| c["points"].as_array().unwrap()).map(|p| p["seeds"].as_u64().unwrap()).sum()
    };
    let (_, _, read) = get(&app, "/api/sweeps/web/curves", auth).await;
    store.report_epoch(running.fence(), &metrics(2, 0.25), LEASE, 4_000).await.unwrap();
    let next = next_event(&mut body, |v| epochs(v) == Some(before + 1)).await;
    assert_eq!(next[0]["name"], "web");
    let (_, _, after) = get(&app, "/api/sweeps/web/curves", auth).await;
    assert_eq!(seeds(&after), seeds(&read) + 1, "the epoch the event announced is in the curves: {after}");
}

/// Compares a number or string shown on the page with the JSON value
/// `widesweep table --format json` has for it.
fn same_cell(shown: &str, expected: &serde_json::Value) -> bool {
    match expected {
        serde_json::Value::Null => shown.is_empty(),
        serde_json::Value::String(text) => shown == text,
        serde_json::Value::Number(number) => shown
            .parse::<f64>()
            .is_ok_and(|value| (value - number.as_f64().unwrap()).abs() <= 1e-9 * value.abs().max(1.0)),
        // A list (the provenance fields a cell's seeds differ in) as "a, b".
        serde_json::Value::Array(items) => {
            shown
                == items.iter().map(|i| i.as_str().map_or(i.to_string(), str::to_string)).collect::<Vec<_>>().join(", ")
        }
        other => other.as_bool().is_some_and(|b| shown == if b { "true" } else { "false" }),
    }
}

/// The pages in a real headless Chromium (Debian's, driven by
/// playwright-core from tests/browser/dashboard.cjs): no console errors,
/// the sweep page's table equal to `table --format json` cell for cell, an
/// epoch reported while the page is open moving its progress and curves
/// within seconds, a request without the credential refused. Screenshots
/// of each page land in target/tmp/dashboard/.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pages_work_in_a_real_browser() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let db = common::TestDb::sqlite().await;
    let store = db.store.clone();
    finished_three(&*store).await;
    // The running job is a real worker's, over the coordinator's gRPC API.
    let artifacts = tempfile::tempdir().unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_url = format!("http://{}", grpc.local_addr().unwrap());
    let server = ServerConfig {
        artifacts_dir: artifacts.path().to_path_buf(),
        credentials: config().credentials,
        ..ServerConfig::default()
    };
    tokio::spawn(serve(Arc::clone(&store), server, grpc, std::future::pending()));
    let mut worker =
        ClientOptions { url: grpc_url, token: Some(WORKER.into()), ca_pem: None }.connect_lazy().unwrap().workers;
    let registration = pb::RegisterWorkerRequest {
        hostname: "gpu-node-7".into(),
        devices: vec!["cuda:0".into()],
        version: "t".into(),
    };
    let registered = worker.register_worker(registration).await.unwrap().into_inner();
    let lease = pb::LeaseJobRequest {
        worker_id: registered.worker_id,
        worker_secret: registered.worker_secret,
        device: "cuda:0".into(),
        device_kind: "NVIDIA H100".into(),
    };
    let job = worker.lease_job(lease).await.unwrap().into_inner().job.expect("a pending job");
    let report = |epoch: u32, test_error: f64| pb::ReportEpochRequest {
        job_id: job.job_id,
        attempt: job.attempt,
        lease_token: job.lease_token.clone(),
        metrics: Some(pb::EpochMetrics {
            epoch,
            train_loss: 1.0,
            train_error: 0.3,
            test_loss: 1.1,
            test_error,
            lr: 0.1,
            epoch_seconds: 10.0,
            images_per_second: 5_000.0,
        }),
    };
    worker.report_epoch(report(1, 0.3)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(widesweep_coordinator::web::serve_web(Arc::clone(&store), config(), listener, std::future::pending()));
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/dashboard.cjs");
    let modules = std::env::var("WIDESWEEP_TEST_NODE_MODULES")
        .unwrap_or_else(|_| "/opt/widesweep-test-tools/node/node_modules".to_string());
    let mut node = tokio::process::Command::new("node")
        .arg(script)
        .args([base.as_str(), VIEWER, "web"])
        .arg(&shots)
        .env("NODE_PATH", &modules)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is needed for the browser test (run `bash scripts/setup.sh --tests`)");
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut next = async || -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the browser script answers within 60 s")
            .unwrap()
            .expect("the browser script ended early");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(value.get("fatal").is_none(), "the browser script failed: {}", value["fatal"]);
        value
    };

    assert_eq!(next().await["unauthorized"], 401, "a request without the credential is refused");
    let shown = next().await["table"].clone();
    let rows = store.sweep_results("web").await.unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&render(&build(&rows, &TableOptions::default()).unwrap(), Format::Json)).unwrap();
    let cells = expected["cells"].as_array().unwrap();
    let headers: Vec<&str> = shown["headers"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    let shown_rows = shown["rows"].as_array().unwrap();
    assert_eq!(shown_rows.len(), cells.len(), "a row per cell");
    assert!(headers.contains(&"value") && headers.contains(&"ci95_lo") && headers.contains(&"width"), "{headers:?}");
    let texts = shown["shown"].as_array().unwrap();
    for ((row, text), cell) in shown_rows.iter().zip(texts).zip(cells) {
        for ((header, value), text) in headers.iter().zip(row.as_array().unwrap()).zip(text.as_array().unwrap()) {
            let (value, text) = (value.as_str().unwrap(), text.as_str().unwrap());
            assert!(same_cell(value, &cell[*header]), "{header}: the page holds {value:?}, the CLI {}", cell[*header]);
            // What a reader sees is the same number, rounded to two decimals.
            match (value.parse::<f64>(), text.parse::<f64>()) {
                (Ok(exact), Ok(shown)) => {
                    assert!((exact - shown).abs() <= 0.005 + 1e-9, "{header}: {text} for {exact}")
                }
                _ => assert_eq!(value, text, "{header}"),
            }
        }
    }

    let ready = next().await;
    assert!(ready["ready"].as_str().unwrap().contains("epochs 10/24"), "{ready}");
    worker.report_epoch(report(2, 0.25)).await.unwrap();
    stdin.write_all(b"go\n").await.unwrap();
    stdin.flush().await.unwrap();
    let updated = next().await;
    assert!(updated["updated"].as_str().unwrap().contains("epochs 11/24"), "{updated}");
    assert!(updated["ms"].as_u64().unwrap() < 5_000, "the page followed within seconds: {updated}");

    let views = next().await["views"].clone();
    let mut states: Vec<&str> = views["grid"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    states.sort();
    assert_eq!(states, ["pending", "pending", "running", "succeeded"], "a square per cell: {views}");
    // The heatmap is depth x width: a number per finished cell, the table's.
    assert!(views["heatmapAxes"].as_str().unwrap().ends_with("depth by width"), "{views}");
    let heat: Vec<f64> = views["heatmap"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let finished: Vec<f64> = cells.iter().filter_map(|c| c["value"].as_f64()).collect();
    assert_eq!(heat.len(), finished.len(), "{views}");
    assert!(finished.iter().all(|v| heat.contains(v)), "heatmap {heat:?}, table {finished:?}");
    assert_eq!(views["unlabelled"], serde_json::json!([]), "every control has a label");
    let workers = views["workers"].as_array().unwrap();
    let host = workers.iter().map(|w| w.as_str().unwrap()).find(|w| w.contains("gpu-node-7")).expect("the worker");
    assert!(
        host.contains(&format!("job {}", job.job_id)) && host.contains("epoch 2/3") && host.contains("5000 img/s"),
        "{host}"
    );
    assert_eq!(views["job"]["title"], format!("Job {}", job.job_id));
    assert_eq!(views["job"]["epochs"], serde_json::json!([1, 2]), "every epoch on the job page");
    assert!(views["phoneOverflow"].as_i64().unwrap() <= 0, "the sweep page fits a phone: {views}");
    assert_ne!(views["darkBackground"], "rgb(255, 255, 255)", "a dark page in dark mode: {views}");
    let errors = next().await;
    assert_eq!(errors["errors"], serde_json::json!([]), "console errors on the pages");
    for shot in [
        "sweeps.png",
        "sweep.png",
        "sweep-updated.png",
        "workers.png",
        "job.png",
        "sweep-phone.png",
        "sweeps-dark-phone.png",
    ] {
        assert!(shots.join(shot).metadata().unwrap().len() > 10_000, "{shot} is a real screenshot");
    }
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), node.wait()).await.expect("node exits").unwrap();
    assert!(status.success());
    db.finish().await;
}

/// With the coordinator's certificate the dashboard speaks HTTPS only, and
/// its login cookie is never sent in clear.
#[tokio::test]
async fn https_with_the_coordinator_s_certificate() {
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let db = common::TestDb::sqlite().await;
    fixture(&*db.store).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let web = WebConfig { tls: Some((cert.pem().into_bytes(), key.serialize_pem().into_bytes())), ..config() };
    tokio::spawn(widesweep_coordinator::web::serve_web(Arc::clone(&db.store), web, listener, std::future::pending()));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let https = async |request: String| -> String {
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tls.read_to_string(&mut response).await.unwrap();
        response
    };
    let response = https(format!(
        "GET /api/sweeps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {VIEWER}\r\nConnection: close\r\n\r\n"
    ))
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"name\":\"web\""), "{response}");
    let response =
        https(format!("GET /login?token={VIEWER} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")).await;
    let cookie = response.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("{response}");
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(address).await.unwrap();
    plain.write_all(b"GET /api/sweeps HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));

    // A key file that is not one is named as such.
    let error = widesweep_coordinator::web::tls_acceptor(cert.pem().as_bytes(), b"not a key").err().unwrap();
    assert!(error.to_string().contains("TLS key"), "{error}");
    db.finish().await;
}

contract_tests!(
    only_readers_may_look,
    the_table_is_the_cli_s_and_curves_hold_every_epoch,
    workers_and_jobs_are_shown,
    the_event_stream_moves_when_a_worker_reports,
);
