//! Helpers that several commands share: reading a spec (`plan`, `submit`,
//! `run`, `bench schedule`), hosting a coordinator and its dashboard
//! (`serve`, `run`), and progress wording (`status`, `run`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use widesweep_coordinator::spec::Spec;
use widesweep_coordinator::store::Store;
use widesweep_coordinator::web::{WebConfig, serve_web};
use widesweep_proto::v1 as pb;

/// Reads and validates a spec file; errors name the file.
pub fn read_spec(path: &PathBuf) -> anyhow::Result<(String, Spec)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading spec {}", path.display()))?;
    let spec = Spec::parse(&text).with_context(|| format!("invalid spec {}", path.display()))?;
    Ok((text, spec))
}

/// Refuses a coordinator reachable beyond this machine without a token;
/// `otherwise` names the caller's other way out.
pub fn require_token_off_loopback(listen: SocketAddr, has_token: bool, otherwise: &str) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() && !has_token {
        bail!(
            "refusing to listen on {listen} without a token: anyone who can reach it could submit or overwrite \
             results; set WIDESWEEP_TOKEN (or the role tokens, see `widesweep serve --help`), or {otherwise}"
        );
    }
    Ok(())
}

/// How often expired leases are looked for: a quarter of the lease, at
/// most every 5 s, so that a dead worker's job waits little past its lease.
pub fn reap_interval(lease: Duration) -> Duration {
    lease.div_f64(4.0).min(Duration::from_secs(5))
}

/// The dashboard's server task, stopped with the coordinator.
pub struct Dashboard {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Dashboard {
    pub fn start(store: Arc<dyn Store>, config: WebConfig, listener: tokio::net::TcpListener) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_web(store, config, listener, async {
            let _ = stopped.await;
        }));
        Self { stop, task }
    }

    /// Open event streams never end on their own: they get two seconds.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task).await.is_err() {
            task.abort();
        }
    }
}

pub fn format_duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Time left, while the sweep still has work and the coordinator has an estimate.
pub fn eta(s: &pb::SweepStatus) -> Option<String> {
    s.eta_seconds.filter(|_| s.pending + s.running > 0).map(format_duration)
}
