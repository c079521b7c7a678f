//! The stock-sidecar binary: `serve` (the default), `cleanup` and `stats`. Configuration comes from environment
//! variables (see the README), optionally from the file named by STOCK_SIDECAR_CONFIG.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use stock_sidecar::cleanup::release_expired_now;
use stock_sidecar::clock::{Clock, SystemClock};
use stock_sidecar::config::Config;
use stock_sidecar::store::Store;
use stock_sidecar::{open_state, open_store, run};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "stock-sidecar",
    version,
    about = "payload-stock's stock ledger: reservations, Stripe webhooks, cleanup"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API on LISTEN_ADDR (default 127.0.0.1:4242), with the scheduled cleanup.
    Serve,
    /// Release every expired reservation once, print what was released, and exit.
    Cleanup,
    /// Print the monitoring figures (active reservations, reserved units, the oldest one, expired ones).
    Stats,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        // async-stripe warns on every event whose API version differs from the one it was generated for; the
        // events parse all the same, so that warning is left out unless RUST_LOG asks for it.
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,stripe_webhook=error")),
        )
        .init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("stock-sidecar: {error}");
            return ExitCode::from(2);
        }
    };
    let outcome = match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Cleanup => cleanup(config).await,
        Command::Stats => stats(config).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("stock-sidecar: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", config.listen_addr))?;
    run(listener, config, shutdown_signal()).await.map_err(|error| error.to_string())
}

async fn cleanup(config: Config) -> Result<(), String> {
    let (state, store) = open_state(config, Arc::new(SystemClock)).await.map_err(|error| error.to_string())?;
    let references = release_expired_now(&state).await.map_err(|error| error.to_string())?;
    println!("released {} expired reservation(s)", references.len());
    for reference in &references {
        println!("  {reference}");
    }
    store.close().await;
    Ok(())
}

async fn stats(config: Config) -> Result<(), String> {
    let store = Arc::new(open_store(&config).await.map_err(|error| error.to_string())?);
    let figures = store.monitoring(SystemClock.now()).await.map_err(|error| error.to_string())?;
    println!("active reservations      {}", figures.active_reservations);
    println!("reserved units           {}", figures.reserved_units);
    println!("expired, not released    {}", figures.expired_not_released);
    println!("open conflicts           {}", figures.open_conflicts);
    match &figures.oldest_active {
        Some(oldest) => println!(
            "oldest active            {} (created {}, expires {})",
            oldest.reference, oldest.created_at, oldest.expires_at
        ),
        None => println!("oldest active            none"),
    }
    store.close().await;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down: finishing the requests in flight");
}
