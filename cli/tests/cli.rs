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
