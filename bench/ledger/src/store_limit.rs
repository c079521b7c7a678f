//! This machine's limit for a SQLite ledger, measured the way the sidecar talks to SQLite (sqlx, one writer
//! connection, WAL): a bare loop of single-row commits, durable (synchronous=FULL) and not (NORMAL, OFF), the cost
//! of one statement without a commit, and rows per second when many rows share one commit.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};

/// One measured loop: how many operations ran, how long they took, and how many rows each wrote.
#[derive(Debug)]
pub struct Measured {
    pub label: String,
    pub operations: u64,
    pub rows_per_operation: u64,
    pub elapsed: Duration,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64()
    }
    pub fn micros_each(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.operations as f64
    }
}

async fn open(
    directory: &std::path::Path,
    name: &str,
    synchronous: SqliteSynchronous,
) -> Result<SqliteConnection, sqlx::Error> {
    let url = format!("sqlite://{}", directory.join(name).display());
    let options = SqliteConnectOptions::from_str(&url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous);
    let mut connection = SqliteConnection::connect_with(&options).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, reference TEXT NOT NULL UNIQUE, quantity INTEGER NOT NULL)")
        .execute(&mut connection)
        .await?;
    Ok(connection)
}

/// Commits of `rows` rows each (BEGIN IMMEDIATE, the inserts, COMMIT), for `duration`.
async fn commit_loop(
    connection: &mut SqliteConnection,
    label: &str,
    rows: u64,
    duration: Duration,
) -> Result<Measured, sqlx::Error> {
    let start = Instant::now();
    let mut operations = 0u64;
    let mut next = 0u64;
    while start.elapsed() < duration {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *connection).await?;
        for _ in 0..rows {
            sqlx::query("INSERT INTO ledger (reference, quantity) VALUES (?1, 1)")
                .bind(format!("{label}-{next}"))
                .execute(&mut *connection)
                .await?;
            next += 1;
        }
        sqlx::query("COMMIT").execute(&mut *connection).await?;
        operations += 1;
    }
    Ok(Measured { label: label.to_owned(), operations, rows_per_operation: rows, elapsed: start.elapsed() })
}

/// The cost of one sqlx statement round trip to SQLite's worker thread, with no commit and no disk.
async fn statement_loop(connection: &mut SqliteConnection, duration: Duration) -> Result<Measured, sqlx::Error> {
    let start = Instant::now();
    let mut operations = 0u64;
    while start.elapsed() < duration {
        sqlx::query("SELECT quantity FROM ledger WHERE id = ?1").bind(1i64).fetch_optional(&mut *connection).await?;
        operations += 1;
    }
    Ok(Measured {
        label: "one indexed SELECT, no transaction (sqlx round trip)".to_owned(),
        operations,
        rows_per_operation: 0,
        elapsed: start.elapsed(),
    })
}

/// Every loop, `duration` each, on databases in a temporary directory under `parent` (the disk being measured).
pub async fn measure_all(parent: &std::path::Path, duration: Duration) -> Result<Vec<Measured>, sqlx::Error> {
    let directory = tempfile::tempdir_in(parent)?;
    let mut rows = Vec::new();
    let mut full = open(directory.path(), "full.db", SqliteSynchronous::Full).await?;
    rows.push(commit_loop(&mut full, "1-row commit, WAL synchronous=FULL (durable)", 1, duration).await?);
    rows.push(commit_loop(&mut full, "100-row commit, WAL synchronous=FULL (durable)", 100, duration).await?);
    rows.push(statement_loop(&mut full, duration).await?);
    full.close().await?;
    let mut normal = open(directory.path(), "normal.db", SqliteSynchronous::Normal).await?;
    rows.push(commit_loop(&mut normal, "1-row commit, WAL synchronous=NORMAL (not durable)", 1, duration).await?);
    normal.close().await?;
    let mut off = open(directory.path(), "off.db", SqliteSynchronous::Off).await?;
    rows.push(commit_loop(&mut off, "1-row commit, WAL synchronous=OFF (not durable)", 1, duration).await?);
    off.close().await?;
    Ok(rows)
}

/// The loops as a markdown table.
pub fn print_table(rows: &[Measured]) {
    println!("| loop | operations/s | us each | rows/s |");
    println!("| --- | ---: | ---: | ---: |");
    for row in rows {
        let rows_per_second = row.per_second() * row.rows_per_operation as f64;
        println!("| {} | {:.0} | {:.1} | {:.0} |", row.label, row.per_second(), row.micros_each(), rows_per_second);
    }
}
