//! Real processes on loopback for the whole-loop tests: a coordinator
//! (`widesweep serve`), workers (`widesweep work`), tiny synthetic
//! datasets and tiny specs, and the database read back with SQL.
#![allow(dead_code)]

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-0123456789";

pub fn widesweep() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_widesweep"));
    command
        .env_remove("WIDESWEEP_TOKEN")
        .env_remove("WIDESWEEP_COORDINATOR")
        .env_remove("WIDESWEEP_DB")
        .env("WIDESWEEP_LOG", "info");
    command
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A child process killed when the test ends, passing or not.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "process did not exit in {timeout:?}; log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` with its stdout and stderr in `log`.
pub fn spawn(mut command: Command, log: PathBuf) -> Proc {
    let out = File::create(&log).unwrap();
    let child = command.stdout(out.try_clone().unwrap()).stderr(out).stdin(Stdio::null()).spawn().unwrap();
    Proc { child, log }
}

/// Tests that run processes take this lock: in parallel on a small machine
/// they would starve each other's heartbeats and make lease expiry a
/// matter of luck.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `check` until it returns `Some`, failing the test after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A scratch directory with a synthetic dataset, a coordinator's address
/// and database, and the processes of one test.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub db: String,
    pub lease_seconds: u64,
    /// The coordinator's self-signed certificate, when it serves TLS.
    pub tls_cert: Option<PathBuf>,
}

impl Cluster {
    /// 128 training and 32 test images of a synthetic MNIST under data/mnist.
    pub fn new(db: Option<String>, lease_seconds: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        widesweep_worker::data::synthetic::write_idx_dataset(&dir.path().join("data/mnist"), 128, 32).unwrap();
        let db = db.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("sweeps.db").display()));
        Self { dir, port: free_port(), db, lease_seconds, tls_cert: None }
    }

    /// Serve TLS with a fresh self-signed certificate for localhost.
    pub fn with_tls(mut self) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let cert_path = self.path("coordinator.crt");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(self.path("coordinator.key"), key.serialize_pem()).unwrap();
        self.tls_cert = Some(cert_path);
        self
    }

    /// Arguments every client needs: the coordinator, the token, the CA.
    pub fn client_args(&self, command: &mut Command, token: &str) {
        command.args(["--coordinator", &self.url(), "--token", token]);
        if let Some(cert) = &self.tls_cert {
            command.arg("--tls-ca").arg(cert);
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn url(&self) -> String {
        match self.tls_cert {
            Some(_) => format!("https://localhost:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    pub fn serve(&self, log: &str) -> Proc {
        self.serve_with(log, &[])
    }

    /// [`Self::serve`] with more arguments for `widesweep serve`.
    pub fn serve_with(&self, log: &str, extra: &[&str]) -> Proc {
        let mut command = widesweep();
        command.args(["serve", "--db", &self.db, "--listen"]).arg(format!("127.0.0.1:{}", self.port));
        command.arg("--artifacts").arg(self.path("artifacts"));
        command.args(["--lease-seconds", &self.lease_seconds.to_string(), "--token", TOKEN]);
        if self.tls_cert.is_some() {
            command.arg("--tls-cert").arg(self.path("coordinator.crt"));
            command.arg("--tls-key").arg(self.path("coordinator.key"));
        }
        command.args(extra);
        let proc = spawn(command, self.path(log));
        let port = self.port;
        wait_for("the coordinator to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        proc
    }

    pub fn work_command(&self, name: &str, token: &str) -> Command {
        let mut command = widesweep();
        command.args(["work", "--devices", "cpu"]);
        self.client_args(&mut command, token);
        command.arg("--data-dir").arg(self.path("data")).arg("--unofficial-dataset-sizes");
        command.arg("--scratch-dir").arg(self.path(&format!("scratch-{name}")));
        command
    }

    pub fn work(&self, name: &str) -> Proc {
        spawn(self.work_command(name, TOKEN), self.path(&format!("{name}.log")))
    }

    /// Writes a spec of `widths` x `seeds` tiny WRN-10-k cells on the
    /// synthetic MNIST and submits it.
    pub fn submit(&self, name: &str, widths: &[u32], seeds: &[u32], epochs: u32, max_attempts: u32) {
        let spec = self.path(&format!("{name}.toml"));
        std::fs::write(&spec, tiny_spec(name, "mnist", widths, seeds, epochs)).unwrap();
        let mut command = widesweep();
        command.arg("submit").arg(&spec).args(["--max-attempts", &max_attempts.to_string()]);
        self.client_args(&mut command, TOKEN);
        let out = command.output().unwrap();
        assert!(out.status.success(), "submit failed: {}", text(&out.stderr));
    }

    pub fn status(&self, sweep: &str) -> Output {
        let mut command = widesweep();
        command.args(["status", sweep]);
        self.client_args(&mut command, TOKEN);
        command.output().unwrap()
    }
}

impl Drop for Cluster {
    /// A failing test shows every process's log: the only way to see what
    /// a worker or coordinator did, once the directory is gone.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let log = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("===== {} (last 60 lines) =====", path.display());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// `widesweep run SPEC` on the cluster's database and folders, one CPU
/// slot, warnings only in its log.
pub fn run_command(cluster: &Cluster, spec: &std::path::Path) -> Command {
    let mut command = widesweep();
    command.env("WIDESWEEP_LOG", "warn").arg("run").arg(spec).args(["--db", &cluster.db]);
    command.args(["--listen", "127.0.0.1:0", "--devices", "cpu", "--unofficial-dataset-sizes"]);
    command.arg("--data-dir").arg(cluster.path("data"));
    command.arg("--artifacts").arg(cluster.path("artifacts"));
    command.arg("--scratch-dir").arg(cluster.path("scratch"));
    command
}

pub fn tiny_spec(name: &str, dataset: &str, widths: &[u32], seeds: &[u32], epochs: u32) -> String {
    format!(
        "name = \"{name}\"\ndataset = \"{dataset}\"\nseeds = {seeds:?}\n\n[recipe]\nepochs = {epochs}\nbatch_size = 32\n\
         lr = 0.05\nlr_milestones = []\ncheckpoint_every = 1\n\n[grid]\nblock = [\"B(3,3)\"]\nblocks_per_group = [1]\n\
         width = {widths:?}\n"
    )
}

/// One job as the database holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobState {
    pub id: i64,
    pub status: String,
    pub attempt: i64,
    pub attempts_spent: i64,
    pub last_error: Option<String>,
    pub final_test_error: Option<f64>,
    pub final_train_loss: Option<f64>,
    /// (epoch, attempt that reported it)
    pub epochs: Vec<(i64, i64)>,
}

/// The same queries on either pool type.
macro_rules! read_jobs {
    ($pool:expr, $sweep:expr) => {
        async {
            use sqlx::Row;
            let pool = $pool;
            let Ok(rows) = sqlx::query(
                "SELECT j.id, j.status, j.attempt, j.attempts_spent, j.last_error, j.final_test_error, \
                 j.final_train_loss FROM jobs j JOIN sweeps s ON s.id = j.sweep_id WHERE s.name = $1 ORDER BY j.id",
            )
            .bind($sweep)
            .fetch_all(&pool)
            .await
            else {
                // No tables yet: the migrations have not run.
                return Vec::new();
            };
            let mut jobs = Vec::new();
            for row in rows {
                let id: i64 = row.get("id");
                let epochs = sqlx::query("SELECT epoch, attempt FROM epochs WHERE job_id = $1 ORDER BY epoch")
                    .bind(id)
                    .fetch_all(&pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|e| (e.get::<i64, _>("epoch"), e.get::<i64, _>("attempt")))
                    .collect();
                jobs.push(JobState {
                    id,
                    status: row.get("status"),
                    attempt: row.get("attempt"),
                    attempts_spent: row.get("attempts_spent"),
                    last_error: row.get("last_error"),
                    final_test_error: row.get("final_test_error"),
                    final_train_loss: row.get("final_train_loss"),
                    epochs,
                });
            }
            pool.close().await;
            jobs
        }
    };
}
/// Reads the jobs of `sweep` with plain SQL, as a user would.
pub fn jobs(db: &str, sweep: &str) -> Vec<JobState> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Before the coordinator has created the database there are no jobs.
    if db.starts_with("sqlite:") {
        let Ok(pool) = runtime.block_on(sqlx::SqlitePool::connect(&format!("{db}?mode=ro"))) else { return Vec::new() };
        runtime.block_on(read_jobs!(pool, sweep))
    } else {
        let Ok(pool) = runtime.block_on(sqlx::PgPool::connect(db)) else { return Vec::new() };
        runtime.block_on(read_jobs!(pool, sweep))
    }
}

/// Every job of `sweep` has ended (succeeded, failed or cancelled).
pub fn all_done(db: &str, sweep: &str) -> Option<Vec<JobState>> {
    let jobs = jobs(db, sweep);
    (!jobs.is_empty() && jobs.iter().all(|j| matches!(j.status.as_str(), "succeeded" | "failed" | "cancelled")))
        .then_some(jobs)
}

/// Epochs 1..=E, each exactly once.
pub fn assert_epochs_complete(job: &JobState, epochs: i64) {
    let numbers: Vec<i64> = job.epochs.iter().map(|(e, _)| *e).collect();
    assert_eq!(numbers, (1..=epochs).collect::<Vec<_>>(), "job {} epochs", job.id);
}

/// A new, empty PostgreSQL database on the local server (`WIDESWEEP_TEST_PG`
/// names the admin connection); its URL. PostgreSQL is required: the test
/// fails, not skips, without it.
pub fn fresh_postgres() -> String {
    use sqlx::Connection;
    let admin = std::env::var("WIDESWEEP_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let name = format!("widesweep_cli_{}_{nanos}", std::process::id());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is required ({admin}): {e}; start it or set WIDESWEEP_TEST_PG"));
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    });
    let base = admin.rsplit_once('/').map(|(base, _)| base.to_string()).unwrap();
    format!("{base}/{name}")
}
