//! `wayside-data`: the central data API. Stores face vectors and plate reads
//! with their images and answers similarity and plate searches.
//!
//! Flow: `routes` (HTTP, validation, result shape) → `store` (the `Store`
//! trait; `embedded` SQLite + vector index, or `elastic`) with pure helpers in
//! `vector` (cosine kernels), `binary` (binary-quantized candidate search)
//! and `plate` (OCR-confusion normalisation).
//! `config` is the one settings tree; `error` the one HTTP error type;
//! `metrics` the Prometheus endpoint. `fuzzing` holds the properties the fuzz
//! targets check (`fuzz/`, docs/RELIABILITY.md).

pub mod binary;
pub mod config;
pub mod error;
pub mod fuzzing;
pub mod metrics;
pub mod plate;
pub mod routes;
pub mod store;
pub mod tls;
pub mod vector;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use config::{BackendKind, Config, ConfigError};
use routes::AppState;
use store::elastic::ElasticStore;
use store::embedded::EmbeddedStore;
use store::media::MediaStore;
use store::{Store, StoreError};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    #[error("media directory: {0}")]
    Media(#[from] std::io::Error),
}

/// Validates the config, opens the store and media directory, and returns
/// the router.
pub fn build(cfg: Config) -> Result<Router, StartError> {
    cfg.validate()?;
    let store: Arc<dyn Store> = match cfg.backend {
        BackendKind::Embedded => Arc::new(EmbeddedStore::open(&cfg.data_dir, cfg.search.clone())?),
        BackendKind::Elasticsearch => Arc::new(ElasticStore::new(cfg.elasticsearch.clone())?),
    };
    let media = MediaStore::open(&cfg.data_dir.join("media"))?;
    Ok(routes::router(AppState {
        cfg: Arc::new(cfg),
        store,
        media,
        metrics: Arc::default(),
    }))
}

/// Serves `router` on `listener` (HTTPS with `tls`) until `shutdown`
/// completes, then drains within the service's stop budget.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Some(tls) = tls else {
        return axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
    };
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping.graceful_shutdown(Some(wayside_service::STOP_BUDGET));
    });
    axum_server::from_tcp_rustls(
        listener.into_std()?,
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )?
    .handle(handle)
    .serve(router.into_make_service())
    .await
}
