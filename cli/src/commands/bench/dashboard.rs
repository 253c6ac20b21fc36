//! `widesweep bench dashboard`: what open dashboard pages cost a
//! coordinator. A real `widesweep serve` process (this binary) holds a
//! large sweep; simulated workers report epochs to it over gRPC; then
//! simulated pages do what the sweep page's script does (an event stream,
//! and on every change the table, the curves and the errors). The
//! coordinator's CPU time and resident memory are read from /proc, first
//! with the workers alone, then with the pages open.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use widesweep_coordinator::bench::loadgen::{self, LoadConfig};
use widesweep_proto::client::ClientOptions;
use widesweep_proto::v1 as pb;

#[derive(Args, Debug)]
pub struct DashboardBenchArgs {
    /// Database URL (default: a new SQLite file in a temporary directory).
    #[arg(long)]
    pub db: Option<String>,
    /// Seeds per cell of the 1,000-cell sweep (block x N x k x dropout):
    /// 100 makes the 100,000-job sweep.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub seeds: u64,
    /// Open pages, each with its event stream.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub pages: u64,
    /// Simulated workers, each reporting an epoch every --epoch-seconds.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub workers: u64,
    /// A simulated epoch's length (real ones take minutes).
    #[arg(long, default_value_t = 1.0)]
    pub epoch_seconds: f64,
    /// Length of each of the two measured phases.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=3600))]
    pub seconds: u64,
}

/// The coordinator's use of the machine over one phase.
#[derive(Debug, Serialize)]
struct Phase {
    pages: u64,
    seconds: f64,
    /// CPU time over wall time: 1.0 is one core busy.
    cores: f64,
    rss_mean_mib: f64,
    rss_peak_mib: f64,
    events: u64,
    fetches: u64,
    fetch_p50_ms: f64,
    fetch_p99_ms: f64,
    /// How old the table a page got was (`x-data-age-ms`): with the
    /// refresh period, how far a page lags a report.
    age_p50_ms: f64,
    age_p99_ms: f64,
}

/// A `widesweep serve` child, killed when dropped.
struct Coordinator {
    child: tokio::process::Child,
    pid: u32,
    grpc: String,
    http: std::net::SocketAddr,
}

pub async fn run(args: DashboardBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    if cfg!(not(target_os = "linux")) {
        bail!("bench dashboard reads the coordinator's CPU time and memory from /proc: Linux only");
    }
    let dir = tempfile::tempdir()?;
    let db = args.db.clone().unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.path().display()));
    let coordinator = Coordinator::start(&db, dir.path()).await?;
    let jobs = 1000 * args.seeds;
    let pace = Duration::from_secs_f64(args.epoch_seconds.max(0.0));
    let total = Duration::from_secs(args.seconds * 2 + 20);
    let name = format!("dashboard-bench-{}", widesweep_coordinator::store::now_ms());
    let load = LoadConfig {
        workers: args.workers as usize,
        jobs: jobs as usize,
        epochs: 10,
        duration: total,
        pace,
        spec: Some(grid_spec(&name, args.seeds)),
    };
    let target = ClientOptions { url: coordinator.grpc.clone(), ..ClientOptions::default() };
    eprintln!("submitting {jobs} jobs, then {} workers report an epoch every {:?} each", args.workers, pace);
    let workers = tokio::spawn(async move { loadgen::run(&target, &load).await });
    wait_for_sweep(&coordinator.grpc, &name).await?;
    // Let the workers lease and settle before measuring.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let quiet = measure(&coordinator, &name, 0, Duration::from_secs(args.seconds)).await?;
    let busy = measure(&coordinator, &name, args.pages, Duration::from_secs(args.seconds)).await?;
    workers.abort();
    println!(
        "sweep of {jobs} jobs, {} workers reporting an epoch every {:.1} s each",
        args.workers,
        pace.as_secs_f64()
    );
    println!(
        "| pages | seconds | coordinator CPU (cores) | RSS mean MiB | RSS peak MiB | events | fetches | fetch p50 ms | fetch p99 ms | table age p50 ms | table age p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for p in [&quiet, &busy] {
        println!(
            "| {} | {:.0} | {:.3} | {:.1} | {:.1} | {} | {} | {:.1} | {:.1} | {:.0} | {:.0} |",
            p.pages,
            p.seconds,
            p.cores,
            p.rss_mean_mib,
            p.rss_peak_mib,
            p.events,
            p.fetches,
            p.fetch_p50_ms,
            p.fetch_p99_ms,
            p.age_p50_ms,
            p.age_p99_ms
        );
    }
    drop(coordinator);
    Ok(std::process::ExitCode::SUCCESS)
}

/// 5 blocks x 5 N x 10 k x 4 dropout rates = 1,000 cells, `seeds` each.
fn grid_spec(name: &str, seeds: u64) -> String {
    let seeds: Vec<String> = (1..=seeds).map(|s| s.to_string()).collect();
    format!(
        "name = \"{name}\"\ndataset = \"cifar10\"\nseeds = [{}]\n[recipe]\nepochs = 10\n[grid]\n\
         block = [\"B(3,3)\", \"B(3,1,3)\", \"B(1,3,1)\", \"B(1,3)\", \"B(3,1)\"]\n\
         blocks_per_group = [1, 2, 3, 4, 5]\nwidth = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\ndropout = [0.0, 0.1, 0.2, 0.3]\n",
        seeds.join(", ")
    )
}

impl Coordinator {
    async fn start(db: &str, dir: &std::path::Path) -> anyhow::Result<Self> {
        let free = || -> anyhow::Result<std::net::SocketAddr> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
        };
        let (grpc, http) = (free()?, free()?);
        let log = std::fs::File::create(dir.join("serve.log"))?;
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["serve", "--db", db, "--listen", &grpc.to_string(), "--http", &http.to_string()])
            .args(["--max-sweep-jobs", "1000000", "--artifacts"])
            .arg(dir.join("artifacts"))
            .env_remove("WIDESWEEP_TOKEN")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting `widesweep serve`")?;
        let pid = child.id().context("the coordinator exited at once")?;
        let coordinator = Self { child, pid, grpc: format!("http://{grpc}"), http };
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(http).await.is_err() {
            if Instant::now() > deadline {
                bail!("the coordinator did not listen within 60 s; see {}", dir.join("serve.log").display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(coordinator)
    }

    /// User and system CPU seconds so far.
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')').context("/proc stat")?.1.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        Ok(ticks / 100.0)
    }

    fn rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmRSS in /proc status")?;
        Ok(kib / 1024.0)
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn wait_for_sweep(url: &str, name: &str) -> anyhow::Result<()> {
    let mut client = ClientOptions { url: url.to_string(), ..ClientOptions::default() }.connect_lazy()?.sweeps;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(status) = client.get_sweep(pb::GetSweepRequest { sweep: name.to_string() }).await {
            let status = status.into_inner();
            eprintln!("sweep submitted: {} jobs", status.pending + status.running + status.succeeded);
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the sweep was not submitted within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[derive(Default)]
struct Tally {
    events: AtomicU64,
    latencies_us: std::sync::Mutex<Vec<u64>>,
    /// Microseconds too, from the tables' `x-data-age-ms`.
    ages_us: std::sync::Mutex<Vec<u64>>,
}

/// The `p` quantile of `values` (microseconds) in milliseconds; 0 for none.
fn percentile_ms(values: &mut [u64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_unstable();
    let index = ((values.len() as f64 * p).ceil() as usize).clamp(1, values.len()) - 1;
    values[index] as f64 / 1000.0
}

async fn measure(coordinator: &Coordinator, sweep: &str, pages: u64, length: Duration) -> anyhow::Result<Phase> {
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for _ in 0..pages {
        tasks.push(tokio::spawn(page(coordinator.http, sweep.to_string(), Arc::clone(&tally))));
    }
    // The pages' first loads are part of what they cost, but not the
    // moment they all open at once: settle, then measure.
    tokio::time::sleep(Duration::from_secs(5)).await;
    tally.events.store(0, Ordering::Relaxed);
    tally.latencies_us.lock().unwrap().clear();
    tally.ages_us.lock().unwrap().clear();
    let (cpu0, started) = (coordinator.cpu_seconds()?, Instant::now());
    let mut rss = Vec::new();
    while started.elapsed() < length {
        rss.push(coordinator.rss_mib()?);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cores = (coordinator.cpu_seconds()? - cpu0) / seconds;
    for task in tasks {
        // A page that stopped early failed: the figures would be wrong.
        if task.is_finished() {
            task.await?.context("a simulated page failed")?;
            bail!("a simulated page's event stream ended");
        }
        task.abort();
    }
    let mut latencies = tally.latencies_us.lock().unwrap().clone();
    let mut ages = tally.ages_us.lock().unwrap().clone();
    Ok(Phase {
        pages,
        seconds,
        cores,
        rss_mean_mib: rss.iter().sum::<f64>() / rss.len().max(1) as f64,
        rss_peak_mib: rss.iter().copied().fold(0.0, f64::max),
        events: tally.events.load(Ordering::Relaxed),
        fetches: latencies.len() as u64,
        fetch_p50_ms: percentile_ms(&mut latencies, 0.5),
        fetch_p99_ms: percentile_ms(&mut latencies, 0.99),
        age_p50_ms: percentile_ms(&mut ages, 0.5),
        age_p99_ms: percentile_ms(&mut ages, 0.99),
    })
}

/// One open sweep page: what app.js does, over HTTP/1.1 like a browser.
async fn page(address: std::net::SocketAddr, sweep: String, tally: Arc<Tally>) -> anyhow::Result<()> {
    let mut fetcher = connect(address).await?;
    for path in ["/sweeps/x", "/assets/app.js", "/assets/style.css"] {
        get(&mut fetcher, address, path).await?;
    }
    let mut events = connect(address).await?;
    let request = hyper::Request::get("/api/events")
        .header(hyper::header::HOST, address.to_string())
        .body(Empty::<Bytes>::new())?;
    let mut stream = events.send_request(request).await?.into_body();
    let mut buffer = String::new();
    let mut seen = String::new();
    while let Some(frame) = stream.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        buffer.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(json) = event.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
            tally.events.fetch_add(1, Ordering::Relaxed);
            // The page refreshes when its sweep's progress moves.
            let sweeps: serde_json::Value = serde_json::from_str(json)?;
            let Some(mine) = sweeps.as_array().and_then(|a| a.iter().find(|s| s["name"] == sweep.as_str())) else {
                continue;
            };
            let key = format!("{}/{}/{}/{}", mine["epochs_done"], mine["succeeded"], mine["failed"], mine["running"]);
            if key == seen {
                continue;
            }
            seen = key;
            for path in [
                format!("/api/sweeps/{sweep}/table?format=json"),
                format!("/api/sweeps/{sweep}/curves"),
                format!("/api/sweeps/{sweep}/errors"),
            ] {
                let started = Instant::now();
                let age_ms = get(&mut fetcher, address, &path).await?;
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                tally.latencies_us.lock().unwrap().push(micros);
                if path.contains("/table") {
                    tally.ages_us.lock().unwrap().extend(age_ms.map(|ms| ms * 1000));
                }
            }
        }
    }
    Ok(())
}

type Connection = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(address: std::net::SocketAddr) -> anyhow::Result<Connection> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A GET whose whole body is read, as a browser would (which takes gzip);
/// the data's age when the answer says it (`x-data-age-ms`).
async fn get(sender: &mut Connection, address: std::net::SocketAddr, path: &str) -> anyhow::Result<Option<u64>> {
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, address.to_string())
        .header(hyper::header::ACCEPT_ENCODING, "gzip, deflate")
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let age = response.headers().get("x-data-age-ms").and_then(|v| v.to_str().ok()?.parse().ok());
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(age)
}
