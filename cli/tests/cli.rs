//! The `widesweep` binary as a user runs it: exit codes, messages, and the
//! coordinator commands end to end over loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn widesweep() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_widesweep"));
    command.current_dir(repo_root()).env_remove("WIDESWEEP_TOKEN").env_remove("WIDESWEEP_COORDINATOR");
    command
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn run(args: &[&str]) -> Output {
    widesweep().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn plan_params(spec: &str) -> Vec<u64> {
    let out = run(&["plan", spec, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["cells"].as_array().unwrap().iter().map(|c| c["params"].as_u64().unwrap()).collect()
}

#[test]
fn plan_reproduces_the_papers_parameter_counts() {
    assert_eq!(
        plan_params("examples/block-types.toml"),
        [1_429_082, 1_211_354, 1_297_370, 1_343_066, 1_467_610, 1_145_498]
    );
    assert_eq!(plan_params("examples/deepening.toml"), [2_243_546; 4]);
    let depth_width = plan_params("examples/depth-width.toml");
    for expected in [2_748_890, 36_479_194, 8_949_210, 35_748_314] {
        assert!(depth_width.contains(&expected), "{expected} missing from {depth_width:?}");
    }
    let out = run(&["plan", "examples/depth-width.toml"]);
    let table = text(&out.stdout);
    assert!(table.contains("36,479,194") && table.contains("30 jobs"), "{table}");
}

fn write_spec(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

#[test]
fn bad_specs_exit_non_zero_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let head = "name = \"bad\"\ndataset = \"cifar10\"\nseeds = [1]\n[recipe]\nepochs = 2\nlr_milestones = []\n";
    let many_seeds: Vec<String> = (0..50_001).map(|s| s.to_string()).collect();
    let cases = [
        (format!("{head}[grid]\nblock = [\"B(3,4)\"]\ndepth = [16]\nwidth = [4]\n"), vec!["grid.block", "B(3,4)"]),
        (format!("{head}[grid]\ndepth = [30]\nwidth = [4]\n"), vec!["grid.depth", "28", "34"]),
        (format!("{head}[grid]\ndepth = [16]\nwidth = [0]\n"), vec!["grid.width"]),
        (format!("{head}[grid]\ndepth = [16]\nwidth = [4]\ndropout = [1.5]\n"), vec!["grid.dropout", "[0, 1)"]),
        (format!("{head}[grid]\ndepth = []\nwidth = [4]\n"), vec!["grid.depth", "empty"]),
        (format!("{head}[grid]\ndepth = [16]\ndepth = [22]\nwidth = [4]\n"), vec!["depth"]),
        (head.replace("cifar10", "imagenet") + "[grid]\ndepth = [16]\nwidth = [4]\n", vec!["dataset", "imagenet"]),
        (
            format!(
                "name = \"big\"\ndataset = \"cifar10\"\nseeds = [{}]\n[grid]\ndepth = [16]\nwidth = [1, 2]\n",
                many_seeds.join(",")
            ),
            vec!["--allow-large"],
        ),
    ];
    for (i, (body, needles)) in cases.iter().enumerate() {
        let path = write_spec(dir.path(), &format!("bad{i}.toml"), body);
        let out = run(&["plan", &path]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "case {i} accepted");
        assert!(stderr.contains(&format!("bad{i}.toml")), "case {i} names the file: {stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "case {i}: {needle:?} not in {stderr}");
        }
    }
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let out = run(&["serve", "--listen", "0.0.0.0:0", "--db", &format!("sqlite://{}", db.display())]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("without a token"), "{}", text(&out.stderr));
    assert!(!db.exists(), "nothing is written when serve refuses to start");
}

/// `serve --db-file`: the URL from a file (a mounted Secret), and errors
/// that name the file, not the URL, which may hold a password.
#[test]
fn serve_reads_its_database_url_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.url");
    std::fs::write(&empty, "\n").unwrap();
    let out = run(&["serve", "--db-file", empty.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("empty.url is empty"), "{}", text(&out.stderr));

    let unreachable = dir.path().join("pg.url");
    std::fs::write(&unreachable, "postgres://widesweep:hunter2@127.0.0.1:1/nowhere\n").unwrap();
    let out = run(&["serve", "--db-file", unreachable.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("named in") && stderr.contains("pg.url"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");

    let db = dir.path().join("from-file.db");
    let url = dir.path().join("sqlite.url");
    std::fs::write(&url, format!("sqlite://{}\n", db.display())).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = widesweep()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--token", "t0123456789"])
        .arg("--db-file")
        .arg(&url)
        .arg("--artifacts")
        .arg(dir.path().join("artifacts"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _coordinator = Coordinator { child, url: String::new() };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "the coordinator did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(db.exists(), "the database named in the file was created");
}

struct Coordinator {
    child: Child,
    url: String,
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_coordinator(dir: &Path, token: &str) -> Coordinator {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = widesweep()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--token", token])
        .arg("--db")
        .arg(format!("sqlite://{}", dir.join("widesweep.db").display()))
        .arg("--artifacts")
        .arg(dir.join("artifacts"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let coordinator = Coordinator { child, url: format!("http://127.0.0.1:{port}") };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "the coordinator did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    coordinator
}

#[test]
fn submit_status_pause_and_cancel_against_a_running_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = start_coordinator(dir.path(), "t0ken");
    let client = |args: &[&str]| {
        widesweep().args(args).args(["--coordinator", &coordinator.url, "--token", "t0ken"]).output().unwrap()
    };
    let first = client(&["submit", "examples/quickstart.toml"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stdout).contains("8 new jobs"), "{}", text(&first.stdout));
    let again = client(&["submit", "examples/quickstart.toml"]);
    assert!(text(&again.stdout).contains("0 new jobs, 8 already queued"), "{}", text(&again.stdout));

    let bad = write_spec(
        dir.path(),
        "bad.toml",
        &std::fs::read_to_string(repo_root().join("examples/quickstart.toml"))
            .unwrap()
            .replace("width = [1, 2]", "width = [1, 0]"),
    );
    let refused = client(&["submit", &bad]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("grid.width"), "{}", text(&refused.stderr));

    let status = client(&["status", "quickstart"]);
    let line = text(&status.stdout);
    assert!(line.contains("8 jobs: 8 pending"), "the refused spec changed nothing: {line}");
    let listed = client(&["status"]);
    assert!(text(&listed.stdout).contains("quickstart"));
    let paused = client(&["pause", "quickstart"]);
    assert!(text(&paused.stdout).contains("paused"), "{}", text(&paused.stdout));
    let cancelled = client(&["cancel", "quickstart"]);
    assert!(text(&cancelled.stdout).contains("8 cancelled"), "{}", text(&cancelled.stdout));
    let resumed = client(&["resume", "quickstart"]);
    assert!(!resumed.status.success(), "a cancelled sweep stays cancelled");

    let anonymous = widesweep().args(["status", "--coordinator", &coordinator.url]).output().unwrap();
    assert!(!anonymous.status.success());
    assert!(text(&anonymous.stderr).contains("token"), "{}", text(&anonymous.stderr));
    let unknown = client(&["status", "nope"]);
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("\"nope\" not found"), "{}", text(&unknown.stderr));
}

#[test]
fn paper_specs_reproduce_the_papers_parameter_counts() {
    // The paper's networks' exact parameter counts, in each spec's cell order.
    assert_eq!(
        plan_params("examples/paper/table2-block-types.toml"),
        [1_429_082, 1_211_354, 1_297_370, 1_343_066, 1_467_610, 1_145_498]
    );
    assert_eq!(plan_params("examples/paper/table3-deepening.toml"), [2_243_546; 4]);
    assert_eq!(
        plan_params("examples/paper/table4-depth-width-cifar10.toml"),
        [
            563_930, 2_243_546, 8_949_210, 35_748_314, 36_479_194, 52_517_850, 17_158_106, 26_797_914, 10_961_370,
            17_116_634
        ]
    );
    assert_eq!(
        plan_params("examples/paper/table4-depth-width-cifar100.toml"),
        [569_780, 2_255_156, 8_972_340, 36_536_884, 52_587_060, 17_204_276, 26_855_604, 11_007_540, 17_174_324]
    );
    let dropout = plan_params("examples/paper/table6-dropout-cifar10.toml");
    assert_eq!(dropout, [2_748_890, 2_748_890, 36_479_194, 36_479_194, 758_362, 758_362]);
    let dropout = plan_params("examples/paper/table6-dropout-cifar100.toml");
    assert_eq!(dropout[..4], [2_772_020, 2_772_020, 36_536_884, 36_536_884]);
    for spec in std::fs::read_dir(repo_root().join("examples/paper")).unwrap() {
        let path = spec.unwrap().path();
        let out = run(&["plan", path.to_str().unwrap(), "--format", "json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["seeds"], serde_json::json!([1, 2, 3, 4, 5]), "{}", path.display());
        assert_eq!(report["epochs"], 200, "{}", path.display());
    }
}

/// Plays the workers of a sweep over gRPC: every pending job gets two
/// epochs and a known final test error (seed 2 worse than seed 1 by 1 point).
fn finish_every_job(url: &str, token: &str) -> usize {
    use widesweep_proto::client::ClientOptions;
    use widesweep_proto::v1 as pb;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut clients = ClientOptions { url: url.to_string(), token: Some(token.to_string()), ca_pem: None }
            .connect_lazy()
            .unwrap();
        let registered = clients
            .workers
            .register_worker(pb::RegisterWorkerRequest {
                hostname: "test".into(),
                devices: vec!["cpu".into()],
                version: "test".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let mut done = 0;
        loop {
            let lease = pb::LeaseJobRequest {
                worker_id: registered.worker_id,
                worker_secret: registered.worker_secret.clone(),
                device: "cpu".into(),
                device_kind: String::new(),
            };
            let Some(job) = clients.workers.lease_job(lease).await.unwrap().into_inner().job else { break };
            let config = job.config.unwrap();
            let error = 0.10 + 0.01 * f64::from(config.width) + 0.01 * (config.seed as f64 - 1.0);
            let metrics = |epoch: u32, test_error: f64| pb::EpochMetrics {
                epoch,
                train_loss: 1.0 / f64::from(epoch),
                train_error: test_error - 0.02,
                test_loss: 1.2 / f64::from(epoch),
                test_error,
                lr: 0.05,
                epoch_seconds: 2.0 * f64::from(config.width),
                images_per_second: 2048.0 / f64::from(config.width),
            };
            let report = pb::ReportEpochRequest {
                job_id: job.job_id,
                attempt: job.attempt,
                metrics: Some(metrics(1, error + 0.1)),
                lease_token: job.lease_token.clone(),
            };
            clients.workers.report_epoch(report).await.unwrap();
            let complete = pb::CompleteJobRequest {
                job_id: job.job_id,
                attempt: job.attempt,
                final_metrics: Some(metrics(2, error)),
                best_test_error: error,
                train_seconds: 4.0 * f64::from(config.width),
                lease_token: job.lease_token.clone(),
                provenance: None,
            };
            clients.workers.complete_job(complete).await.unwrap();
            done += 1;
        }
        done
    })
}

#[test]
fn a_finished_sweep_reads_as_tables_sql_exports_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = start_coordinator(dir.path(), "t0ken");
    let db = format!("sqlite://{}", dir.path().join("widesweep.db").display());
    let remote = ["--coordinator", coordinator.url.as_str(), "--token", "t0ken"];
    let client = |args: &[&str]| widesweep().args(args).args(remote).output().unwrap();
    let submitted = client(&["submit", "examples/quickstart.toml"]);
    assert!(submitted.status.success(), "{}", text(&submitted.stderr));
    assert_eq!(finish_every_job(&coordinator.url, "t0ken"), 8);

    // The same table from the coordinator and from the database.
    let table = client(&["table", "quickstart"]);
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    assert!(
        table.contains(
            "│ B(3,3)   ┆ 10    ┆ 11.50 ±0.71 (n=2) ┆  77.6k ┆     2.0 ┆ 12.50 ±0.71 (n=2) ┆ 303.4k ┆     4.0 │"
        ),
        "{table}"
    );
    let direct = run(&["table", "quickstart", "--db", &db]);
    assert_eq!(text(&direct.stdout), table, "{}", text(&direct.stderr));
    for (format, needle) in [
        ("markdown", "| B(1,3,1) | 13 | 11.50 ±0.71 (n=2) | 60.6k | 2.0 | 12.50 ±0.71 (n=2) | 239.4k | 4.0 |"),
        (
            "csv",
            "\"B(1,3,1)\",2,13,test_error,median,12.5,0.707106781187,6.14689763191,18.8531023681,false,2,2,2,0,0,0,0,239354,4.0,\"[7,8]\",[]",
        ),
        ("json", "\"title\": \"quickstart on fashion-mnist: test error (%), median over seeds\""),
        ("latex", "B(3,3) & 10 & 11.50 $\\pm$0.71 (n=2) & 77.6k & 2.0 & 12.50 $\\pm$0.71 (n=2) & 303.4k & 4.0 \\\\"),
    ] {
        let out = client(&["table", "quickstart", "--format", format]);
        assert!(text(&out.stdout).contains(needle), "{format}: {}{}", text(&out.stdout), text(&out.stderr));
    }
    let delta = client(&["table", "quickstart", "--baseline", "width=1", "--bare", "--format", "markdown"]);
    assert!(text(&delta.stdout).contains("| 12.50 ±0.71 (n=2) | +1.00 |"), "{}", text(&delta.stdout));
    let typo = client(&["table", "quickstart", "--rows", "depht"]);
    assert!(!typo.status.success());
    assert!(
        text(&typo.stderr).contains(
            "unknown axis depht: valid axes are block, l, depth, blocks_per_group, width, dropout, dataset, seed"
        ),
        "{}",
        text(&typo.stderr)
    );
    // A finished sweep's watch ends at once, with its table.
    let watch = client(&["status", "quickstart", "--watch"]);
    let watched = text(&watch.stdout);
    assert!(watched.contains("8 succeeded") && watched.contains(table.lines().nth(5).unwrap()), "{watched}");
    let unknown = client(&["table", "nope"]);
    assert!(text(&unknown.stderr).contains("\"nope\" not found"), "{}", text(&unknown.stderr));

    // SQL reads the documented schema, and refuses to write.
    let sql = run(&[
        "sql",
        "SELECT block, width, COUNT(*) AS jobs FROM results GROUP BY block, width ORDER BY 1, 2",
        "--db",
        &db,
        "--format",
        "csv",
    ]);
    assert_eq!(
        text(&sql.stdout),
        "block,width,jobs\n\"B(1,3,1)\",1,2\n\"B(1,3,1)\",2,2\n\"B(3,3)\",1,2\n\"B(3,3)\",2,2\n",
        "{}",
        text(&sql.stderr)
    );
    for statement in ["DELETE FROM jobs", "SELECT 1; DROP TABLE jobs", "ATTACH 'x.db' AS x", "PRAGMA user_version = 3"]
    {
        let refused = run(&["sql", statement, "--db", &db]);
        assert!(!refused.status.success(), "{statement} accepted");
    }
    let still = run(&["sql", "SELECT COUNT(*) AS n FROM jobs", "--db", &db, "--format", "json"]);
    assert_eq!(text(&still.stdout), "[\n  {\n    \"n\": 8\n  }\n]\n");
    // SQLite's parser, not ours, finds the second statement.
    let two = run(&["sql", "SELECT '--'; DELETE FROM jobs", "--db", &db]);
    assert!(
        !two.status.success() && text(&two.stderr).contains("only one statement is accepted"),
        "{}",
        text(&two.stderr)
    );
    // --max-rows: the grid formats say the result was cut; CSV and JSON stay
    // data only, and the note goes to standard error.
    let ids = "SELECT id FROM jobs ORDER BY id";
    let note = "cut at 3 rows: the result has more; raise --max-rows or page with LIMIT and OFFSET";
    for format in ["text", "markdown", "latex"] {
        let cut = run(&["sql", ids, "--db", &db, "--max-rows", "3", "--format", format]);
        assert!(cut.status.success(), "{}", text(&cut.stderr));
        assert!(text(&cut.stdout).contains(note), "{format}: {}", text(&cut.stdout));
    }
    let csv = run(&["sql", ids, "--db", &db, "--max-rows", "3", "--format", "csv"]);
    assert_eq!(text(&csv.stdout), "id\n1\n2\n3\n");
    assert!(text(&csv.stderr).contains(note), "{}", text(&csv.stderr));
    let json = run(&["sql", ids, "--db", &db, "--max-rows", "3", "--format", "json"]);
    assert_eq!(text(&json.stdout).matches("\"id\"").count(), 3, "{}", text(&json.stdout));
    assert!(text(&json.stdout).ends_with("}\n]\n") && text(&json.stderr).contains(note));
    let whole = run(&["sql", ids, "--db", &db, "--max-rows", "8", "--format", "csv"]);
    assert_eq!((text(&whole.stdout).lines().count(), text(&whole.stderr)), (9, String::new()));

    // Exports for pandas, and both kinds of plot.
    let csv = client(&["export", "quickstart", "--format", "csv"]);
    assert_eq!(text(&csv.stdout).lines().count(), 9, "{}", text(&csv.stderr));
    let curves = client(&["export", "quickstart", "--epochs", "--format", "jsonl"]);
    assert_eq!(text(&curves.stdout).lines().count(), 16);
    for (kind, file) in [("curves", "curves.png"), ("metric-vs-axis", "width.svg")] {
        let path = dir.path().join(file);
        let out = client(&["plot", "quickstart", "--kind", kind, "--out", path.to_str().unwrap(), "--width", "800"]);
        assert!(out.status.success(), "{kind}: {}", text(&out.stderr));
        let bytes = std::fs::read(&path).unwrap();
        if file.ends_with(".png") {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
            // IHDR: width and height, big-endian, right after the signature and chunk header.
            assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 800);
            assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 640, "the default height");
        } else {
            assert!(text(&bytes).starts_with("<svg") && text(&bytes).contains("width=\"800\""));
        }
    }
}

#[test]
fn bench_self_check_reports_each_precision_s_kernels() {
    let out = run(&["bench", "self-check", "--devices", "cpu"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("cpu f32: trains on widesweep CPU kernels (NHWC, f32"), "{stdout}");
    assert!(stdout.contains("cpu bf16: trains on candle's generic CPU operators (NCHW, bf16"), "{stdout}");
    assert_eq!(stdout.matches(": agreed of ").count(), 2, "one check per precision: {stdout}");
    let bad = run(&["bench", "self-check", "--devices", "gpu"]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("cpu or cuda:N"), "{}", text(&bad.stderr));
}

#[test]
fn data_synthetic_writes_a_dataset_in_the_official_format() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = run(&["data", "synthetic", "cifar10", "--data-dir", data, "--train", "50", "--test", "20"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("50 training and 20 synthetic test images"), "{}", text(&out.stdout));
    let batches = dir.path().join("cifar-10-batches-bin");
    let size = |name: &str| std::fs::metadata(batches.join(name)).unwrap().len();
    assert_eq!((1..=5).map(|i| size(&format!("data_batch_{i}.bin"))).sum::<u64>(), 50 * 3073);
    assert_eq!(size("test_batch.bin"), 20 * 3073);
    let bad = run(&["data", "synthetic", "cifar10", "--data-dir", data, "--train", "3"]);
    assert!(!bad.status.success(), "too few images for five batch files");
}
