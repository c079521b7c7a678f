//! PostgreSQL for the benchmarks: a fresh schema per run on the server `BENCH_POSTGRES_URL` names (default the
//! local one), and this machine's limit for a PostgreSQL ledger: a bare loop of single-row durable commits from one
//! connection and from as many connections as the load uses, on the same server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::sidecar::BenchError;
use crate::store_limit::Measured;

/// The server the PostgreSQL columns run on.
pub fn server_url() -> String {
    std::env::var("BENCH_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether the server answers (the PostgreSQL columns are skipped, with a note, when it does not).
pub async fn reachable(server: &str) -> Result<(), String> {
    let connection = PgConnection::connect(server).await.map_err(|error| error.to_string())?;
    let _ = connection.close().await;
    Ok(())
}

/// A schema of its own on the server, dropped with [`Schema::drop_now`].
#[derive(Debug)]
pub struct Schema {
    server: String,
    name: String,
    /// DATABASE_URL for a sidecar whose ledger lives in this schema.
    pub url: String,
}

impl Schema {
    pub async fn create(server: &str, purpose: &str) -> Result<Schema, BenchError> {
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let name = format!("bench_{purpose}_{}_{started}", std::process::id());
        let mut connection = PgConnection::connect(server).await?;
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}"))).execute(&mut connection).await?;
        let _ = connection.close().await;
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options[search_path]={name}");
        Ok(Schema { server: server.to_owned(), name, url })
    }

    pub async fn drop_now(self) -> Result<(), BenchError> {
        let mut connection = PgConnection::connect(&self.server).await?;
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)))
            .execute(&mut connection)
            .await?;
        let _ = connection.close().await;
        Ok(())
    }
}

/// Single-row INSERTs, each its own durable commit (synchronous_commit on, the server's default), from
/// `connections` connections for `duration`: what the disk and the server allow a ledger that commits every
/// decision on its own. Concurrent commits share WAL flushes, so more connections commit more rows per second.
pub async fn commit_loop(server: &str, connections: usize, duration: Duration) -> Result<Measured, BenchError> {
    let schema = Schema::create(server, "limit").await?;
    let mut setup = PgConnection::connect(&schema.url).await?;
    sqlx::query("CREATE TABLE ledger (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, reference TEXT NOT NULL UNIQUE, quantity BIGINT NOT NULL)")
        .execute(&mut setup)
        .await?;
    let _ = setup.close().await;
    let (stop, operations) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let mut workers = tokio::task::JoinSet::new();
    let mut opened = Vec::with_capacity(connections);
    for _ in 0..connections {
        opened.push(PgConnection::connect(&schema.url).await?);
    }
    let start = Instant::now();
    for (worker, mut connection) in opened.into_iter().enumerate() {
        let (stop, operations) = (Arc::clone(&stop), Arc::clone(&operations));
        workers.spawn(async move {
            let mut next = 0u64;
            while !stop.load(Ordering::Relaxed) {
                sqlx::query("INSERT INTO ledger (reference, quantity) VALUES ($1, 1)")
                    .bind(format!("{worker}-{next}"))
                    .execute(&mut connection)
                    .await?;
                next += 1;
                operations.fetch_add(1, Ordering::Relaxed);
            }
            let _ = connection.close().await;
            Ok::<_, BenchError>(())
        });
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    while let Some(finished) = workers.join_next().await {
        finished??;
    }
    schema.drop_now().await?;
    Ok(Measured {
        label: format!("PostgreSQL: 1-row commit (durable), {connections} connection(s)"),
        operations: operations.load(Ordering::Relaxed),
        rows_per_operation: 1,
        elapsed,
    })
}
