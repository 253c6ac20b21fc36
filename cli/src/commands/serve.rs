use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use widesweep_coordinator::net::ConnectionLimits;
use widesweep_coordinator::service::{Credentials, DEFAULT_MAX_SWEEP_JOBS, ServerConfig, serve};
use widesweep_coordinator::spec::MAX_SWEEP_JOBS;
use widesweep_coordinator::store::{self, DEFAULT_DB_URL};
use widesweep_coordinator::web::{WebConfig, tls_acceptor};

use super::common::{Dashboard, reap_interval, require_token_off_loopback};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Database URL: sqlite://FILE (embedded default) or postgres://USER@HOST/DB.
    #[arg(long, env = "WIDESWEEP_DB", default_value = DEFAULT_DB_URL)]
    pub db: String,
    /// File whose first line is the database URL, instead of --db: a
    /// PostgreSQL password then appears in no command line or environment
    /// (a Kubernetes Secret mounted as a file, for instance).
    #[arg(long, value_name = "FILE", env = "WIDESWEEP_DB_FILE")]
    pub db_file: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Also serve the dashboard (read-only web pages) on this address, e.g.
    /// 127.0.0.1:7080; readers log in with the viewer (or user) token. With
    /// --tls-cert it serves HTTPS with the same certificate.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// Most jobs one submitted spec may expand to (clients' --allow-large
    /// cannot go past it).
    #[arg(long, default_value_t = DEFAULT_MAX_SWEEP_JOBS, value_parser = clap::value_parser!(u64).range(1..=MAX_SWEEP_JOBS))]
    pub max_sweep_jobs: u64,
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
    /// Seconds a connection (gRPC or dashboard) may move no byte before it
    /// is closed: a half-sent request, an idle keep-alive, a vanished peer.
    /// Live clients are pinged three times per timeout, and answer.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout_seconds: u64,
    /// Largest checkpoint upload accepted, in MiB.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub max_checkpoint_mb: u64,
}

/// The credentials a coordinator accepts, one per role (docs/security.md).
/// Each comes from a file or the environment.
#[derive(Args, Debug, Clone, Default)]
pub struct CredentialArgs {
    /// Shared token granting every role, for one researcher who runs
    /// everything; prefer the role tokens below on a shared cluster.
    #[arg(long, env = "WIDESWEEP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the shared token.
    #[arg(long, value_name = "FILE", env = "WIDESWEEP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// File holding the users' token: submit, steer, read
    /// (or set WIDESWEEP_USER_TOKEN).
    #[arg(long, value_name = "FILE", env = "WIDESWEEP_USER_TOKEN_FILE")]
    pub user_token_file: Option<PathBuf>,
    /// File holding the workers' token: register, lease, report
    /// (or set WIDESWEEP_WORKER_TOKEN).
    #[arg(long, value_name = "FILE", env = "WIDESWEEP_WORKER_TOKEN_FILE")]
    pub worker_token_file: Option<PathBuf>,
    /// File holding the viewers' token: read only
    /// (or set WIDESWEEP_VIEWER_TOKEN).
    #[arg(long, value_name = "FILE", env = "WIDESWEEP_VIEWER_TOKEN_FILE")]
    pub viewer_token_file: Option<PathBuf>,
}

impl CredentialArgs {
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        use crate::secrets::{read_token_file, token_from, token_from_env};
        let role = |file: &Option<PathBuf>, flag: &str, var: &str| -> anyhow::Result<Option<String>> {
            match (file, token_from_env(var)?) {
                (Some(_), Some(_)) => bail!("give the {var} token either in the environment or with {flag}, not both"),
                (Some(file), None) => read_token_file(file, flag).map(Some),
                (None, from_env) => Ok(from_env),
            }
        };
        let credentials = Credentials {
            shared: token_from(self.token.as_deref(), self.token_file.as_deref(), "--token-file")?,
            user: role(&self.user_token_file, "--user-token-file", "WIDESWEEP_USER_TOKEN")?,
            worker: role(&self.worker_token_file, "--worker-token-file", "WIDESWEEP_WORKER_TOKEN")?,
            viewer: role(&self.viewer_token_file, "--viewer-token-file", "WIDESWEEP_VIEWER_TOKEN")?,
        };
        let given: Vec<&String> = [&credentials.shared, &credentials.user, &credentials.worker, &credentials.viewer]
            .into_iter()
            .flatten()
            .collect();
        for (i, token) in given.iter().enumerate() {
            if given[..i].contains(token) {
                bail!("two roles were given the same token: each role needs a token of its own");
            }
        }
        Ok(credentials)
    }
}

impl ServeArgs {
    /// Checks what can be checked before touching the database.
    fn config(&self) -> anyhow::Result<ServerConfig> {
        let credentials = self.credentials.credentials()?;
        if !self.insecure {
            require_token_off_loopback(self.listen, credentials.any(), "--insecure if the network is trusted")?;
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
            credentials,
            max_sweep_jobs: self.max_sweep_jobs,
            tls,
            connections: ConnectionLimits {
                idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
                ..ConnectionLimits::default()
            },
        })
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    let store = match &args.db_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading --db-file {}", path.display()))?;
            let url = text.lines().next().unwrap_or_default().trim();
            anyhow::ensure!(
                !url.is_empty(),
                "--db-file {} is empty: write the database URL on its first line",
                path.display()
            );
            // The URL may hold a password: errors name the file, not the URL.
            store::open(url).await.with_context(|| format!("opening the database named in {}", path.display()))?
        }
        None => store::open(&args.db).await.with_context(|| format!("opening the database {}", args.db))?,
    };
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let dashboard = match args.http {
        Some(address) => {
            if !args.insecure {
                require_token_off_loopback(address, config.credentials.any(), "keep --http on 127.0.0.1")?;
            }
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("listening on --http {address}"))?;
            // The dashboard serves HTTPS with the coordinator's certificate.
            let web = WebConfig {
                credentials: config.credentials.clone(),
                stale_after: config.lease,
                tls: config.tls.clone(),
                connections: config.connections,
                ..WebConfig::default()
            };
            if let Some((cert, key)) = &web.tls {
                tls_acceptor(cert, key).context("--tls-cert and --tls-key for the dashboard (--http)")?;
            }
            let scheme = if web.tls.is_some() { "https" } else { "http" };
            eprintln!("dashboard at {scheme}://{}/", listener.local_addr()?);
            Some(Dashboard::start(Arc::clone(&store), web, listener))
        }
        None => None,
    };
    let shutdown = async {
        crate::signals::first_signal().await;
        tracing::info!("shutting down");
    };
    serve(store, config, listener, shutdown).await?;
    if let Some(dashboard) = dashboard {
        dashboard.stop().await;
    }
    Ok(ExitCode::SUCCESS)
}
