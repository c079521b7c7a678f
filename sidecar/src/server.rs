//! The listener's own bounds, below the router: at most `MAX_CONNECTIONS` connections at once (one more is closed
//! at once, so a flood of idle connections cannot exhaust the process's file descriptors), and a deadline for a
//! request's headers (`HEADER_READ_TIMEOUT_SECONDS`: a client that opens a connection and sends nothing, or a
//! header a byte at a time, is cut off). Each connection is served as HTTP/1.1 with keep-alive; on shutdown the
//! listener stops accepting, every connection finishes the request it is on, and idle ones close.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// After an accept error (out of file descriptors, say), wait this long before the next accept rather than spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// At shutdown, connections still open after this are dropped (their requests have their own deadlines too).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The listener's bounds.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then drains the connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut refused_since_last_log = 0u64;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(error = %error, "accepting a connection failed; pausing before the next");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Finished connections are reaped as new ones come, so the set holds only live ones.
        while connections.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused_since_last_log += 1;
            if refused_since_last_log.is_power_of_two() {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    refused = refused_since_last_log,
                    "MAX_CONNECTIONS connections are open: new connections are closed at once"
                );
            }
            drop(stream);
            continue;
        };
        refused_since_last_log = 0;
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(error = %error, "connection ended with an error");
                    }
                    return;
                }
                _ = stopped.wait_for(|stopped| *stopped) => connection.as_mut().graceful_shutdown(),
            }
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection ended with an error while shutting down");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained =
        tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(open = connections.len(), "connections still open after the shutdown grace were dropped");
        connections.abort_all();
    }
}
