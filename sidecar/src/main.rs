//! The stock-sidecar binary: `serve` (the default), `cleanup`, `stats`, `resolve-conflict`, `import` and
//! `reconcile`. Configuration comes from environment
//! variables (docs/configuration.md), optionally from the file named by STOCK_SIDECAR_CONFIG.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use stock_core::{MovementType, ReservationStatus};
use stock_sidecar::admin::MonitoringReport;
use stock_sidecar::cleanup::release_expired_now;
use stock_sidecar::clock::{Clock, SystemClock};
use stock_sidecar::config::{Config, LogFormat};
use stock_sidecar::ledger::Ledger;
use stock_sidecar::metrics::Metrics;
use stock_sidecar::projection::Projector;
use stock_sidecar::store::ResolveOutcome;
use stock_sidecar::{Opened, install_crypto_provider, open_ledger, open_state, run};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

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
    /// Print the monitoring figures: active reservations and the oldest of them, expired ones, conflicts, each
    /// product's movements over a window, how far Payload is behind.
    Stats {
        /// Print the admin GET's JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// The window the movements are summed over, in seconds back from now (60 to 7776000).
        #[arg(long, default_value_t = stock_sidecar::admin::DEFAULT_WINDOW_SECONDS,
              value_parser = clap::value_parser!(u32).range(60..=i64::from(stock_sidecar::admin::MAX_WINDOW_SECONDS)))]
        window_seconds: u32,
    },
    /// Mark an open conflict (listed by `stats`) resolved, with a note of what was done about it.
    ResolveConflict {
        /// The conflict's id, as `stats` lists it.
        id: i64,
        /// What was done ("refunded the customer", "restocked 1 and shipped"): 1 to 500 characters.
        note: String,
    },
    /// Read every product's sizes from Payload (PAYLOAD_URL) into the ledger, for a shop whose stock was entered
    /// in Payload before payload-stock managed it. Sizes the ledger has are left alone; safe to run twice.
    Import,
    /// Compare Payload's sizes and stock-movements with the ledger and print the differences; exits 1 if any.
    Reconcile {
        /// Rewrite the products that differ from the ledger and create the missing movement documents.
        #[arg(long)]
        fix: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("stock-sidecar: {error}");
            return ExitCode::from(2);
        }
    };
    // `serve` logs on standard output, as a service does; the other commands print their results there, so their
    // log lines go to standard error.
    init_logging(config.log_format, matches!(command, Command::Serve));
    let outcome = match command {
        Command::Serve => serve(config).await,
        Command::Cleanup => cleanup(config).await,
        Command::Stats { json, window_seconds } => stats(config, json, window_seconds).await,
        Command::ResolveConflict { id, note } => resolve_conflict(config, id, &note).await,
        Command::Import => import(config).await,
        Command::Reconcile { fix } => reconcile(config, fix).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("stock-sidecar: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines on standard output (`serve`) or standard error (the other commands): JSON objects (one a line, with
/// the request's and the Stripe event's fields) or human-readable text, as LOG_FORMAT says; filtered by RUST_LOG.
fn init_logging(format: LogFormat, on_stdout: bool) {
    use std::io::IsTerminal;
    let terminal = if on_stdout { std::io::stdout().is_terminal() } else { std::io::stderr().is_terminal() };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = if on_stdout { BoxMakeWriter::new(std::io::stdout) } else { BoxMakeWriter::new(std::io::stderr) };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    if format.is_json(terminal) {
        builder.json().with_current_span(false).with_span_list(true).init();
    } else {
        builder.with_ansi(terminal).init();
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", config.listen_addr))?;
    run(listener, config, shutdown_signal()).await.map_err(|error| error.to_string())
}

async fn cleanup(config: Config) -> Result<(), String> {
    let Opened { state, .. } = open_state(config, Arc::new(SystemClock)).await.map_err(|error| error.to_string())?;
    let released = release_expired_now(&state.ledger, state.clock.now(), state.checkouts.as_deref())
        .await
        .map_err(|error| error.to_string());
    state.ledger.close().await;
    let references = released?;
    println!("released {} expired reservation(s)", references.len());
    for reference in &references {
        println!("  {reference}");
    }
    Ok(())
}

async fn stats(config: Config, json: bool, window_seconds: u32) -> Result<(), String> {
    let ledger = open_ledger(&config, Arc::new(Metrics::new())).await.map_err(|error| error.to_string())?;
    let report = MonitoringReport::read(&ledger, SystemClock.now(), window_seconds, config.payload.is_some()).await;
    ledger.close().await;
    let report = report.map_err(|error| error.to_string())?;
    if json {
        let text = serde_json::to_string_pretty(&report.to_json()).map_err(|error| error.to_string())?;
        println!("{text}");
    } else {
        print!("{}", stats_tables(&report));
    }
    Ok(())
}

/// The report as tables for a terminal.
fn stats_tables(report: &MonitoringReport) -> String {
    use std::fmt::Write;
    let (now, figures) = (report.now, &report.figures);
    let mut out = String::new();
    let _ = writeln!(out, "ledger at {now}");
    let _ = writeln!(out, "active reservations      {}", figures.active_reservations);
    let _ = writeln!(out, "reserved units           {}", figures.reserved_units);
    let _ = writeln!(out, "expired, not released    {}", figures.expired_not_released);
    let _ = writeln!(out, "open conflicts           {}", figures.open_conflicts);
    let payments = &figures.payments;
    let _ = writeln!(
        out,
        "payments after the sale  {} fully refunded, {} partially; disputes {} open, {} lost, {} won",
        payments.fully_refunded,
        payments.partially_refunded,
        payments.open_disputes,
        payments.lost_disputes,
        payments.won_disputes
    );
    let outbox = &figures.outbox;
    let _ = match (report.payload_enabled, outbox.oldest_change_at) {
        (false, _) if outbox.backlog == 0 => writeln!(out, "Payload projection       off (PAYLOAD_URL is not set)"),
        (_, Some(oldest)) => writeln!(
            out,
            "Payload backlog          {} change(s), oldest {} old, {} failing{}",
            outbox.backlog,
            duration(now.unix_millis() - oldest.unix_millis()),
            outbox.failing,
            outbox.last_error.as_deref().map(|error| format!(" (last error: {error})")).unwrap_or_default()
        ),
        _ => writeln!(out, "Payload backlog          0 (Payload shows the ledger)"),
    };

    let _ = writeln!(out);
    if figures.oldest_active.is_empty() {
        let _ = writeln!(out, "oldest active            none");
    } else {
        let _ = writeln!(out, "oldest active reservations");
        let _ =
            writeln!(out, "  {:<32} {:<11} {:>5} {:>10} {:>12}", "reference", "status", "units", "age", "expires in");
        for oldest in &figures.oldest_active {
            let _ = writeln!(
                out,
                "  {:<32} {:<11} {:>5} {:>10} {:>12}",
                oldest.reference,
                oldest.status.as_str(),
                oldest.units,
                duration(now.unix_millis() - oldest.created_at.unix_millis()),
                match oldest.status {
                    ReservationStatus::Processing => "(payment)".to_owned(),
                    _ => duration(oldest.expires_at.unix_millis() - now.unix_millis()),
                }
            );
        }
    }

    if !report.conflicts.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "open conflicts (resolve with `stock-sidecar resolve-conflict ID NOTE`)");
        let _ = writeln!(out, "  {:>6} {:<18} {:<32} {:>10}  what the ledger did", "id", "kind", "reference", "age");
        for conflict in &report.conflicts {
            let details: serde_json::Value = serde_json::from_str(&conflict.details).unwrap_or_default();
            let message = details.get("message").and_then(serde_json::Value::as_str).unwrap_or(&conflict.details);
            let _ = writeln!(
                out,
                "  {:>6} {:<18} {:<32} {:>10}  {message} (event {})",
                conflict.id,
                conflict.kind,
                conflict.reference,
                duration(now.unix_millis() - conflict.created_at.unix_millis()),
                conflict.event_id
            );
        }
    }

    let _ = writeln!(out);
    let window = duration(i64::from(report.window_seconds) * 1000);
    let mut products: Vec<&str> = report.movements.iter().map(|total| total.product.as_str()).collect();
    products.dedup();
    if products.is_empty() {
        let _ = writeln!(out, "movements in the last {window}: none");
        return out;
    }
    let _ = writeln!(out, "movements in the last {window} (units, count in brackets)");
    let _ = writeln!(
        out,
        "  {:<24} {:>12} {:>12} {:>12} {:>12} {:>8}",
        "product", "sale", "restock", "return", "adjustment", "net"
    );
    for product in products {
        let cell = |kind: MovementType| {
            report
                .movements
                .iter()
                .find(|total| total.product == product && total.kind == kind)
                .map_or_else(|| "-".to_owned(), |total| format!("{:+} ({})", total.units, total.movements))
        };
        let net: i64 = report.movements.iter().filter(|total| total.product == product).map(|total| total.units).sum();
        let _ = writeln!(
            out,
            "  {:<24} {:>12} {:>12} {:>12} {:>12} {:>+8}",
            product,
            cell(MovementType::Sale),
            cell(MovementType::Restock),
            cell(MovementType::Return),
            cell(MovementType::Adjustment),
            net
        );
    }
    out
}

async fn resolve_conflict(config: Config, id: i64, note: &str) -> Result<(), String> {
    let note = note.trim();
    if note.is_empty() {
        return Err("say what was done about the conflict (1 to 500 characters)".to_owned());
    }
    stock_core::check_reason(note).map_err(|error| format!("the note: {error}"))?;
    let ledger = open_ledger(&config, Arc::new(Metrics::new())).await.map_err(|error| error.to_string())?;
    let outcome = ledger.resolve_conflict(id, note, SystemClock.now()).await;
    ledger.close().await;
    match outcome.map_err(|error| error.to_string())? {
        ResolveOutcome::Resolved(conflict) => {
            println!("conflict {id} ({} of {}) resolved: {note}", conflict.kind, conflict.reference);
            Ok(())
        }
        ResolveOutcome::AlreadyResolved(conflict) => {
            println!("conflict {id} was resolved before: {}", conflict.resolution.as_deref().unwrap_or("(no note)"));
            Ok(())
        }
        ResolveOutcome::NotFound => Err(format!("there is no conflict {id}")),
    }
}

/// `1h 05m`, `4m 10s`, `12s`; a negative span (a reservation past its expiry) as `0s`.
fn duration(millis: i64) -> String {
    let seconds = millis.max(0) / 1000;
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        3600..86_400 => format!("{}h {:02}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d {:02}h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

/// The projector of a command that talks to Payload, or why there is none.
async fn open_projector(config: Config) -> Result<(Projector, Arc<Ledger>), String> {
    if config.payload.is_none() {
        return Err("PAYLOAD_URL (and PAYLOAD_API_KEY) must be set: this command talks to Payload".to_owned());
    }
    install_crypto_provider();
    let Opened { state, projection } =
        open_state(config, Arc::new(SystemClock)).await.map_err(|error| error.to_string())?;
    let (projector, _) = projection.ok_or("the projection did not start")?;
    Ok((projector, state.ledger))
}

async fn import(config: Config) -> Result<(), String> {
    let (projector, ledger) = open_projector(config).await?;
    let report = projector.import_from_payload().await.map_err(|error| error.to_string());
    ledger.close().await;
    let report = report?;
    for (product, size, units) in &report.imported {
        println!("imported        product {product} size {size}: {units} unit(s)");
    }
    for (product, size, units) in &report.already_in_ledger {
        println!("already there   product {product} size {size}: the ledger has {units} unit(s); left alone");
    }
    for (product, problem) in &report.skipped {
        println!("skipped         product {product}: {problem}");
    }
    println!(
        "{} size(s) imported, {} already in the ledger, {} skipped",
        report.imported.len(),
        report.already_in_ledger.len(),
        report.skipped.len()
    );
    Ok(())
}

async fn reconcile(config: Config, fix: bool) -> Result<(), String> {
    let (projector, ledger) = open_projector(config).await?;
    let report = projector.reconcile(fix).await.map_err(|error| error.to_string());
    ledger.close().await;
    let report = report?;
    if !report.differences.is_empty() {
        println!("{:<12} {:<8} {:<18} {:<24} ledger", "product", "size", "figure", "Payload");
    }
    for difference in &report.differences {
        println!(
            "{:<12} {:<8} {:<18} {:<24} {}",
            difference.product,
            difference.size.as_deref().unwrap_or("-"),
            difference.what,
            difference.payload,
            difference.ledger
        );
    }
    println!(
        "{} product(s) checked: {} difference(s), {} movement document(s) missing, {} not what the ledger recorded, \
         {} unknown to the ledger",
        report.products_checked,
        report.differences.len(),
        report.missing_movements.len(),
        report.mismatched_movements.len(),
        report.unknown_movement_documents.len()
    );
    for id in &report.mismatched_movements {
        println!("movement {id}: its stock-movements document says something other than the ledger");
    }
    for key in &report.unknown_movement_documents {
        println!(
            "idempotencyKey {key}: a stock-movements document that is no movement of the ledger (delete it in Payload)"
        );
    }
    if fix {
        println!(
            "fixed: {} product(s) rewritten from the ledger, {} movement document(s) created, {} rewritten",
            report.products_rewritten, report.movements_created, report.movements_rewritten
        );
        if !report.unknown_movement_documents.is_empty() {
            return Err(format!(
                "{} stock-movements document(s) are no movement of the ledger: reconcile never deletes; delete them in \
                 Payload",
                report.unknown_movement_documents.len()
            ));
        }
        return Ok(());
    }
    let clean = report.differences.is_empty()
        && report.missing_movements.is_empty()
        && report.mismatched_movements.is_empty()
        && report.unknown_movement_documents.is_empty();
    if clean {
        Ok(())
    } else {
        Err("Payload differs from the ledger; `stock-sidecar reconcile --fix` rewrites it from the ledger".to_owned())
    }
}

/// Completes on Ctrl-C or SIGTERM. The SIGTERM handler is installed at once, before the server logs that it
/// listens, so a SIGTERM sent right after that line stops it gracefully instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let interrupt = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let terminate = async {
            match terminate {
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
}
