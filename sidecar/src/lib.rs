//! stock-sidecar: the service that owns payload-stock's ledger. It reserves stock for checkouts, releases expired
//! reservations on a schedule and on demand, records stock movements, and answers stock queries. Every decision is
//! one atomic ledger operation; the rules come from stock-core.
//!
//! `run(listener, config, shutdown)` serves on a listener the caller bound, so tests run the real server on
//! `127.0.0.1:0` with a fresh database each.

pub mod admin;
pub mod alerts;
pub mod auth;
pub mod cleanup;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
mod json;
pub mod ledger;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod projection;
pub mod requests;
pub mod server;
pub mod store;
pub mod stripe_api;
pub mod v1;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::{AppState, router};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::projection::Projector;
use crate::store::{PostgresStore, ProjectionSettings, SqliteStore, StoreError};
use crate::stripe_api::{CheckoutCanceller, StripeCanceller};

/// Why the sidecar could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot open the ledger: {0}")]
    Store(#[from] StoreError),
    #[error("the server failed: {0}")]
    Serve(#[from] std::io::Error),
    #[error("{0}")]
    Stripe(String),
    #[error("{0}")]
    Payload(String),
}

/// Makes ring the TLS crypto provider of the process (async-stripe uses it; reqwest would bring a second one).
/// Harmless when called again.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Opens the ledger named by the configuration (PostgreSQL for a `postgres://` URL, SQLite otherwise), measured
/// into `metrics`; with Payload configured, ledger changes are also queued for the projection.
pub async fn open_ledger(config: &Config, metrics: Arc<Metrics>) -> Result<Ledger, StoreError> {
    let projection =
        config.payload.as_ref().map(|payload| ProjectionSettings { payload_save_grace: payload.payload_save_grace });
    let url = config.database_url.expose();
    Ok(if config.database_url.is_postgres() {
        let store = PostgresStore::connect(url, config.database_max_connections).await?;
        Ledger::new(store.with_projection(projection), metrics)
    } else {
        let store = SqliteStore::open(url, config.sqlite_synchronous).await?;
        Ledger::new(store.with_projection(projection), metrics)
    })
}

/// Everything `serve` and the commands run on, opened from the configuration.
#[derive(Debug)]
pub struct Opened {
    pub state: AppState,
    /// The projection into Payload and what wakes it; `None` without PAYLOAD_URL.
    pub projection: Option<(Projector, Arc<Notify>)>,
}

/// Opens the ledger, the Stripe client and the Payload projection the configuration names.
pub async fn open_state(config: Config, clock: Arc<dyn Clock>) -> Result<Opened, RunError> {
    let checkouts: Option<Arc<dyn CheckoutCanceller>> = match &config.stripe_secret_key {
        Some(key) => {
            let canceller = StripeCanceller::new(key, config.stripe_api_base.as_deref()).map_err(RunError::Stripe)?;
            Some(Arc::new(canceller))
        }
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let ledger = Arc::new(open_ledger(&config, metrics.clone()).await?);
    let projection = match &config.payload {
        Some(payload) => {
            let projector =
                Projector::new(payload.clone(), ledger.clone(), clock.clone()).map_err(RunError::Payload)?;
            Some((projector, ledger.projection_wakeup()))
        }
        None => None,
    };
    let state = AppState { ledger, config: Arc::new(config), clock, checkouts, metrics };
    Ok(Opened { state, projection })
}

/// Serves the API on `listener` with the system clock until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    run_with_clock(listener, config, Arc::new(SystemClock), shutdown).await
}

/// Serves the API on `listener` reading time from `clock`, with the scheduled cleanup beside it, until
/// `shutdown` completes; then stops accepting, finishes the requests in flight and closes the store.
pub async fn run_with_clock(
    listener: TcpListener,
    config: Config,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    install_crypto_provider();
    let Opened { state, projection } = open_state(config, clock).await?;
    if state.checkouts.is_none() {
        tracing::info!(
            "STRIPE_SECRET_KEY is not set: cleanup releases expired reservations without canceling at Stripe"
        );
    }
    if state.config.api_token.is_none() {
        tracing::warn!("SIDECAR_API_TOKEN is not set: the /v1 reservation API answers 503 until it is");
    }
    if state.config.admin_token.is_none() {
        tracing::warn!("ADMIN_API_TOKEN is not set: movements and the admin routes answer 503 until it is");
    }

    let (stop_background, background_stopped) = tokio::sync::watch::channel(false);
    let schedule = state.config.cleanup_interval.map(|interval| {
        let shared = (state.ledger.clone(), state.clock.clone());
        tokio::spawn(cleanup::run_schedule(shared, state.checkouts.clone(), interval, background_stopped.clone()))
    });
    let alerts = state.config.low_stock_check_interval.map(|interval| {
        let shared = (state.ledger.clone(), state.clock.clone());
        let webhook = state.config.low_stock_webhook.clone();
        tokio::spawn(alerts::run_alerts(shared, webhook, interval, background_stopped.clone()))
    });
    let worker = match projection {
        Some((projector, wakeup)) => Some(tokio::spawn(projection::run_worker(projector, wakeup, background_stopped))),
        None => {
            tracing::info!("PAYLOAD_URL is not set: the ledger is not projected into Payload (the sidecar runs alone)");
            None
        }
    };

    let address = listener.local_addr()?;
    let (database, synchronous) = (&state.config.database_url, state.config.sqlite_synchronous);
    if synchronous == crate::config::SqliteDurability::Normal && !database.is_postgres() {
        tracing::warn!(
            "SQLITE_SYNCHRONOUS=normal: a power loss can take back the last changes already answered (a Stripe event \
             answered 200 would be forgotten); a crash of this process cannot"
        );
    }
    if database.is_postgres() {
        tracing::info!(%address, %database, "stock-sidecar listening (ledger in PostgreSQL)");
    } else {
        tracing::info!(%address, %database, ?synchronous, "stock-sidecar listening");
    }
    let bounds = server::ConnectionLimits {
        max_connections: state.config.max_connections,
        header_read_timeout: state.config.header_read_timeout,
    };
    let ledger = state.ledger.clone();
    server::serve(listener, router(state), bounds, shutdown).await;

    let _ = stop_background.send(true);
    for task in [schedule, alerts, worker].into_iter().flatten() {
        let _ = task.await;
    }
    ledger.close().await;
    tracing::info!("stock-sidecar stopped");
    Ok(())
}
