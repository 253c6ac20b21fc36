//! The coordinator's gRPC server: `SweepService` for users, `WorkerService`
//! for worker slots, both behind the bearer-token check, plus the reaper
//! that returns expired leases to the queue.
//!
//! [`serve`] takes its listener and its shutdown future as arguments: the
//! binary passes a bound address and Ctrl-C, tests pass port 0 and their
//! own signal.

mod artifacts;
mod auth;
mod clock;
mod convert;
mod error;
mod sweeps;
mod text;
mod watch;
mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use widesweep_proto::client::MAX_MESSAGE_BYTES;
use widesweep_proto::v1::sweep_service_server::SweepServiceServer;
use widesweep_proto::v1::worker_service_server::WorkerServiceServer;

pub use artifacts::{ArtifactError, ArtifactStore};
pub(crate) use auth::TokenTable;
pub use auth::{Authenticate, Credentials, Permission, Role};
pub use clock::DatabaseClock;
pub use convert::{job_epoch_from_proto, result_row_from_proto};
pub use sweeps::DEFAULT_MAX_ATTEMPTS;
pub use watch::MAX_STREAMS_PER_CREDENTIAL;

use crate::net::{ConnectionLimits, Gate};
use crate::store::Store;

/// Jobs a spec may expand to unless the coordinator is told otherwise.
pub const DEFAULT_MAX_SWEEP_JOBS: u64 = 1_000_000;
/// Concurrent HTTP/2 streams (rpcs, including open `WatchSweep` and
/// `ListResults` streams) one client connection may hold, so that one client
/// cannot open thousands of pollers; a client's further calls wait for a
/// free stream. Announced to clients as SETTINGS_MAX_CONCURRENT_STREAMS.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 64;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// How long a lease lasts without a report or heartbeat.
    pub lease: Duration,
    /// How often the reaper looks for expired leases.
    pub reap_interval: Duration,
    /// Where checkpoint files are stored.
    pub artifacts_dir: PathBuf,
    /// Largest checkpoint upload accepted.
    pub max_checkpoint_bytes: u64,
    /// The bearer tokens accepted, one per role; none at all accepts any
    /// caller (loopback, or `--insecure`).
    pub credentials: Credentials,
    /// Most jobs one submitted spec may expand to: the server's limit,
    /// whatever a client asks for.
    pub max_sweep_jobs: u64,
    /// PEM certificate chain and key: serve TLS (rustls) when set.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// Idle timeout and bounds on open connections.
    pub connections: ConnectionLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(120),
            reap_interval: Duration::from_secs(5),
            artifacts_dir: PathBuf::from("widesweep-artifacts"),
            max_checkpoint_bytes: 2 * 1024 * 1024 * 1024,
            credentials: Credentials::default(),
            max_sweep_jobs: DEFAULT_MAX_SWEEP_JOBS,
            tls: None,
            connections: ConnectionLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("TLS configuration: {0}")]
    Tls(tonic::transport::Error),
    #[error("gRPC server: {0}")]
    Transport(tonic::transport::Error),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves both services on `listener` until `shutdown` resolves, with the
/// reaper running beside them.
pub async fn serve(
    store: Arc<dyn Store>,
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let local: SocketAddr = listener.local_addr()?;
    let auth = Authenticate::new(&config.credentials);
    let clock = DatabaseClock::new(Arc::clone(&store));
    if let Err(error) = clock.sync().await {
        // The reaper measures again at every pass.
        tracing::warn!(%error, "could not read the database's clock; using this machine's until it can");
    }
    let artifacts = ArtifactStore::new(&config.artifacts_dir, config.max_checkpoint_bytes);
    sweep_artifacts(store.as_ref(), &artifacts).await;
    let janitor = tokio::spawn(sweep_artifacts_forever(Arc::clone(&store), artifacts.clone()));
    let sweeps = SweepServiceServer::new(sweeps::Sweeps {
        store: Arc::clone(&store),
        watchers: watch::Watchers::new(Arc::clone(&store)),
        streams: watch::StreamBudget::default(),
        clock: clock.clone(),
        max_sweep_jobs: config.max_sweep_jobs,
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let workers = WorkerServiceServer::new(workers::Workers {
        store: Arc::clone(&store),
        secrets: Default::default(),
        clock: clock.clone(),
        artifacts,
        lease: config.lease,
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);

    // The stream limit bounds streaming responses for their whole life; the
    // concurrency limit alone would count a stream only until its headers.
    let mut builder = Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .concurrency_limit_per_connection(MAX_STREAMS_PER_CONNECTION as usize)
        // Pings keep a live client's quiet connection (a watch with no
        // change, a worker between reports) moving, so that only dead and
        // stalled ones reach the idle timeout; an unanswered ping closes it.
        .http2_keepalive_interval(Some(config.connections.keepalive()))
        .http2_keepalive_timeout(Some(config.connections.keepalive()));
    if let Some((cert, key)) = &config.tls {
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .map_err(ServeError::Tls)?;
    }
    let reaper = tokio::spawn(reap_forever(Arc::clone(&store), clock, config.reap_interval));
    tracing::info!(%local, backend = ?store.backend(), lease_s = config.lease.as_secs(), tls = config.tls.is_some(), credentials = ?config.credentials, "coordinator serving");
    let result = builder
        .add_service(InterceptedService::new(sweeps, auth.clone()))
        .add_service(InterceptedService::new(workers, auth))
        .serve_with_incoming_shutdown(Gate::new(config.connections).incoming(listener), shutdown)
        .await
        .map_err(ServeError::Transport);
    reaper.abort();
    janitor.abort();
    result
}

/// How often stored checkpoint files are checked against the database.
const ARTIFACT_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Removes what no row needs: temporary files of uploads a crash cut
/// short, and checkpoint files that no checkpoint row references (an
/// upload refused after its transfer, a prune that crashed between the
/// row and the file, a database restored from an older backup).
async fn sweep_artifacts(store: &dyn Store, artifacts: &ArtifactStore) {
    match artifacts.sweep_abandoned().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(files = n, "removed temporary files of abandoned checkpoint uploads"),
        Err(error) => tracing::warn!(%error, "could not clean the artifacts' temporary directory"),
    }
    let settled = match artifacts.settled_files().await {
        Ok(settled) => settled,
        Err(error) => return tracing::warn!(%error, "could not list the stored checkpoint files"),
    };
    let mut removed = 0;
    for sha in settled {
        match store.checkpoint_file_used(&sha).await {
            Ok(false) => {
                artifacts.remove(&sha).await;
                removed += 1;
            }
            Ok(true) => {}
            // Keep the file: the next sweep asks again.
            Err(error) => return tracing::warn!(%error, "could not check the stored checkpoint files"),
        }
    }
    if removed > 0 {
        tracing::info!(files = removed, "removed checkpoint files that no checkpoint references");
    }
}

async fn sweep_artifacts_forever(store: Arc<dyn Store>, artifacts: ArtifactStore) {
    let start = tokio::time::Instant::now() + ARTIFACT_SWEEP_INTERVAL;
    let mut ticker = tokio::time::interval_at(start, ARTIFACT_SWEEP_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        sweep_artifacts(store.as_ref(), &artifacts).await;
    }
}

/// Returns expired leases to pending at a fixed interval. Errors are
/// logged and retried: a database blip must not stop the reaper for good.
///
/// The first pass waits one interval: leases that expired while the
/// coordinator was down belong to workers that are reconnecting now, and
/// an attempt that reports before it is reaped keeps its lease.
async fn reap_forever(store: Arc<dyn Store>, clock: DatabaseClock, interval: Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(error) = clock.sync().await {
            tracing::warn!(%error, "could not read the database's clock");
        }
        match store.reap_expired(clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "expired leases returned to the queue"),
            Err(error) => tracing::error!(%error, "reaper failed"),
        }
    }
}
