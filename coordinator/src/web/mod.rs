//! The dashboard: a read-only web interface that the coordinator serves
//! beside gRPC (`serve --http ADDR`, and `run`). Pages and every asset are
//! embedded in the binary (clusters are often offline); the data comes
//! from the same store and the same report renderers as the CLI, so a
//! table on the page is the table `widesweep table` prints.
//!
//! Live updates cost the coordinator one summary query per refresh
//! period, however many pages are open: [`live::Live`] polls and every
//! page's event stream reads the latest snapshot; a sweep's results are
//! read once per change and shared by every page ([`cache::Cache`]).

mod api;
mod assets;
mod auth;
mod cache;
mod curves;
mod live;
mod query;
mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

pub use self::tls::{TlsError, acceptor as tls_acceptor};
use crate::net::{ConnectionLimits, Gate, GuardedListener};
use crate::service::Credentials;
use crate::store::{Store, StoreError};

/// What the dashboard needs besides the store.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// The coordinator's credentials: any role that may read may look.
    pub credentials: Credentials,
    /// How often the sweeps' progress is read for the live pages.
    pub refresh: Duration,
    /// A worker not heard from for this long is marked stale (the
    /// coordinator's lease: its jobs are about to go back to the queue).
    pub stale_after: Duration,
    /// PEM certificate chain and key: serve HTTPS (the coordinator's own).
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// Idle timeout and bounds on open connections.
    pub connections: ConnectionLimits,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            credentials: Credentials::default(),
            refresh: Duration::from_secs(2),
            stale_after: Duration::from_secs(60),
            tls: None,
            connections: ConnectionLimits::default(),
        }
    }
}

/// Shared by every handler.
#[derive(Clone)]
struct AppState {
    store: Arc<dyn Store>,
    live: live::Live,
    cache: cache::Cache,
    refresh: Duration,
    stale_after: Duration,
    /// How often an idle event stream sends a comment (see [`crate::net`]).
    keepalive: Duration,
}

impl AppState {
    /// The sweep's results and curves, shared by every page (see [`cache`]).
    async fn sweep_data(&self, sweep: &str) -> Result<Arc<cache::SweepData>, StoreError> {
        self.cache.get(&*self.store, sweep, self.live.version(sweep), self.refresh).await
    }
}

/// The dashboard's routes: pages, assets, the JSON API and the event stream.
pub fn router(store: Arc<dyn Store>, config: &WebConfig) -> Router {
    let live = live::Live::start(Arc::clone(&store), config.refresh);
    let state = AppState {
        store,
        live,
        cache: cache::Cache::default(),
        refresh: config.refresh,
        stale_after: config.stale_after,
        keepalive: config.connections.keepalive(),
    };
    let access = auth::Access::new(&config.credentials, config.tls.is_some());
    let guarded = Router::new()
        .route("/", get(assets::index))
        .route("/sweeps/{sweep}", get(assets::sweep_page))
        .route("/workers", get(assets::workers_page))
        .route("/jobs/{job}", get(assets::job_page))
        .route("/api/sweeps", get(api::sweeps))
        .route("/api/sweeps/{sweep}/table", get(api::table))
        .route("/api/table-choices", get(api::table_choices))
        .route("/api/sweeps/{sweep}/curves", get(api::curves))
        .route("/api/sweeps/{sweep}/errors", get(api::errors))
        .route("/api/sweeps/{sweep}/causes", get(api::causes))
        .route("/api/workers", get(api::workers))
        .route("/api/jobs/{job}", get(api::job))
        .route("/api/events", get(live::events))
        .layer(axum::middleware::from_fn_with_state(access.clone(), auth::require_reader))
        .with_state(state);
    Router::new()
        .route("/login", get(auth::login))
        .route("/assets/{file}", get(assets::asset))
        .route("/favicon.ico", get(assets::favicon))
        .with_state(access)
        .merge(guarded)
        .layer(axum::middleware::map_response(auth::harden))
}

/// Serves the dashboard on `listener` until `shutdown` resolves: HTTPS when
/// the config holds a certificate, HTTP otherwise.
pub async fn serve_web(
    store: Arc<dyn Store>,
    config: WebConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let app = router(store, &config);
    let gate = Gate::new(config.connections);
    match &config.tls {
        Some((cert, key)) => {
            let acceptor = tls::acceptor(cert, key).map_err(std::io::Error::other)?;
            tracing::info!(%local, "dashboard serving HTTPS");
            let listener = GuardedListener::new(tls::TlsListener::new(listener, acceptor)?, gate);
            axum::serve(listener, app).with_graceful_shutdown(shutdown).await
        }
        None => {
            tracing::info!(%local, "dashboard serving");
            axum::serve(GuardedListener::new(listener, gate), app).with_graceful_shutdown(shutdown).await
        }
    }
}
