//! The dashboard: a read-only web interface that the coordinator serves
//! beside gRPC (`serve --http ADDR`, and `run`). Pages and every asset are
//! embedded in the binary (clusters are often offline); the data comes
//! from the same store and the same report renderers as the CLI, so a
//! table on the page is the table `widesweep table` prints.
//!
//! Live updates cost the coordinator one summary query per refresh
//! period, however many pages are open: [`live::Live`] polls and every
//! page's event stream reads the latest snapshot.

mod api;
mod assets;
mod auth;
mod live;
mod query;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::service::Credentials;
use crate::store::Store;

/// What the dashboard needs besides the store.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// The coordinator's credentials: any role that may read may look.
    pub credentials: Credentials,
    /// How often the sweeps' progress is read for the live pages.
    pub refresh: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self { credentials: Credentials::default(), refresh: Duration::from_secs(2) }
    }
}

/// Shared by every handler.
#[derive(Clone)]
struct AppState {
    store: Arc<dyn Store>,
    live: live::Live,
}

/// The dashboard's routes: pages, assets, the JSON API and the event stream.
pub fn router(store: Arc<dyn Store>, config: &WebConfig) -> Router {
    let live = live::Live::start(Arc::clone(&store), config.refresh);
    let state = AppState { store, live };
    let access = auth::Access::new(&config.credentials);
    let guarded = Router::new()
        .route("/", get(assets::index))
        .route("/sweeps/{sweep}", get(assets::sweep_page))
        .route("/api/sweeps", get(api::sweeps))
        .route("/api/sweeps/{sweep}/table", get(api::table))
        .route("/api/sweeps/{sweep}/curves", get(api::curves))
        .route("/api/sweeps/{sweep}/errors", get(api::errors))
        .route("/api/events", get(live::events))
        .layer(axum::middleware::from_fn_with_state(access.clone(), auth::require_reader))
        .with_state(state);
    Router::new()
        .route("/login", get(auth::login))
        .route("/assets/{file}", get(assets::asset))
        .route("/favicon.ico", get(assets::favicon))
        .with_state(access)
        .merge(guarded)
}

/// Serves the dashboard on `listener` until `shutdown` resolves.
pub async fn serve_web(
    store: Arc<dyn Store>,
    config: WebConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    tracing::info!(%local, "dashboard serving");
    axum::serve(listener, router(store, &config)).with_graceful_shutdown(shutdown).await
}
