use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use widesweep_coordinator::service::{ServerConfig, serve};
use widesweep_coordinator::store::{self, DEFAULT_DB_URL};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Database URL: sqlite://FILE (embedded default) or postgres://USER@HOST/DB.
    #[arg(long, env = "WIDESWEEP_DB", default_value = DEFAULT_DB_URL)]
    pub db: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Bearer token every client must send.
    #[arg(long, env = "WIDESWEEP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Listen on a non-loopback address without a token.
    #[arg(long)]
    pub insecure: bool,
    /// PEM certificate chain: serve TLS (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Directory for checkpoint files.
    #[arg(long, value_name = "DIR", default_value = "widesweep-artifacts")]
    pub artifacts: PathBuf,
    /// Seconds a lease lasts without a report or heartbeat.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub lease_seconds: u64,
    /// Largest checkpoint upload accepted, in MiB.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub max_checkpoint_mb: u64,
}

impl ServeArgs {
    /// Checks what can be checked before touching the database.
    fn config(&self) -> anyhow::Result<ServerConfig> {
        if !self.insecure {
            require_token_off_loopback(self.listen, self.token.as_deref(), "--insecure if the network is trusted")?;
        }
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((
                std::fs::read(cert).with_context(|| format!("reading --tls-cert {}", cert.display()))?,
                std::fs::read(key).with_context(|| format!("reading --tls-key {}", key.display()))?,
            )),
            _ => None,
        };
        Ok(ServerConfig {
            lease: Duration::from_secs(self.lease_seconds),
            reap_interval: reap_interval(Duration::from_secs(self.lease_seconds)),
            artifacts_dir: self.artifacts.clone(),
            max_checkpoint_bytes: self.max_checkpoint_mb * 1024 * 1024,
            token: self.token.clone(),
            tls,
        })
    }
}

/// Refuses a coordinator reachable beyond this machine without a token;
/// `otherwise` names the caller's other way out.
pub fn require_token_off_loopback(listen: SocketAddr, token: Option<&str>, otherwise: &str) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() && token.is_none() {
        bail!(
            "refusing to listen on {listen} without a token: anyone who can reach it could submit or overwrite \
             results; pass --token (or set WIDESWEEP_TOKEN), or {otherwise}"
        );
    }
    Ok(())
}

/// How often expired leases are looked for: a quarter of the lease, at
/// most every 5 s, so that a dead worker's job waits little past its lease.
pub fn reap_interval(lease: Duration) -> Duration {
    lease.div_f64(4.0).min(Duration::from_secs(5))
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    let store = store::open(&args.db).await.with_context(|| format!("opening the database {}", args.db))?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let shutdown = async {
        crate::signals::first_signal().await;
        tracing::info!("shutting down");
    };
    serve(store, config, listener, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
