//! This machine's limit for a SQLite ledger, measured the way the sidecar's writer talks to SQLite (rusqlite, one
//! connection on its own thread, WAL, prepared statements): a bare loop of single-row commits, durable
//! (synchronous=FULL) and not (NORMAL, OFF), rows per second when many rows share one durable commit, and the
//! cost of one indexed SELECT on the same thread next to the same SELECT handed to tokio's blocking threads and
//! awaited (what one read of the sidecar costs: its reads run that way, a whole read per hand-off). sqlx's SQLite
//! driver, which the sidecar used before (a round trip to its SQLite thread per statement), measured 17.5 us a
//! SELECT here (docs/BENCHMARKS.md).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

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

pub type LimitError = Box<dyn std::error::Error + Send + Sync>;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, reference TEXT NOT NULL UNIQUE, quantity INTEGER NOT NULL)";

fn open(path: &Path, synchronous: &str) -> Result<Connection, LimitError> {
    let connection = Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", synchronous)?;
    connection.execute_batch(CREATE)?;
    Ok(connection)
}

/// Commits of `rows` rows each (BEGIN IMMEDIATE, the inserts, COMMIT), for `duration`.
fn commit_loop(connection: &Connection, label: &str, rows: u64, duration: Duration) -> Result<Measured, LimitError> {
    let start = Instant::now();
    let mut operations = 0u64;
    let mut next = 0u64;
    while start.elapsed() < duration {
        connection.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        for _ in 0..rows {
            let reference = format!("{label}-{next}");
            connection
                .prepare_cached("INSERT INTO ledger (reference, quantity) VALUES (?1, 1)")?
                .execute([reference])?;
            next += 1;
        }
        connection.prepare_cached("COMMIT")?.execute([])?;
        operations += 1;
    }
    Ok(Measured { label: label.to_owned(), operations, rows_per_operation: rows, elapsed: start.elapsed() })
}

fn select_loop(connection: &Connection, duration: Duration) -> Result<Measured, LimitError> {
    let start = Instant::now();
    let mut operations = 0u64;
    while start.elapsed() < duration {
        let mut statement = connection.prepare_cached("SELECT quantity FROM ledger WHERE id = ?1")?;
        let _: Option<i64> = rusqlite::OptionalExtension::optional(statement.query_row([1i64], |row| row.get(0)))?;
        operations += 1;
    }
    Ok(Measured {
        label: "one indexed SELECT on the connection's thread (rusqlite)".to_owned(),
        operations,
        rows_per_operation: 0,
        elapsed: start.elapsed(),
    })
}

async fn blocking_select_loop(path: &Path, duration: Duration) -> Result<Measured, LimitError> {
    let connection = Arc::new(Mutex::new(Connection::open(path)?));
    let start = Instant::now();
    let mut operations = 0u64;
    while start.elapsed() < duration {
        let connection = Arc::clone(&connection);
        tokio::task::spawn_blocking(move || -> Result<Option<i64>, rusqlite::Error> {
            let connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            let mut statement = connection.prepare_cached("SELECT quantity FROM ledger WHERE id = ?1")?;
            rusqlite::OptionalExtension::optional(statement.query_row([1i64], |row| row.get(0)))
        })
        .await??;
        operations += 1;
    }
    Ok(Measured {
        label: "one indexed SELECT handed to a blocking thread and awaited (a sidecar read)".to_owned(),
        operations,
        rows_per_operation: 0,
        elapsed: start.elapsed(),
    })
}

/// Every loop, `duration` each, on databases in a temporary directory under `parent` (the disk being measured).
pub async fn measure_all(parent: &Path, duration: Duration) -> Result<Vec<Measured>, LimitError> {
    let directory = tempfile::tempdir_in(parent)?;
    let mut rows = Vec::new();
    let full_path = directory.path().join("full.db");
    let full = open(&full_path, "FULL")?;
    rows.push(commit_loop(&full, "1-row commit, WAL synchronous=FULL (durable)", 1, duration)?);
    rows.push(commit_loop(&full, "100-row commit, WAL synchronous=FULL (durable)", 100, duration)?);
    rows.push(select_loop(&full, duration)?);
    rows.push(blocking_select_loop(&full_path, duration).await?);
    drop(full);
    let normal = open(&directory.path().join("normal.db"), "NORMAL")?;
    rows.push(commit_loop(&normal, "1-row commit, WAL synchronous=NORMAL (not durable)", 1, duration)?);
    drop(normal);
    let off = open(&directory.path().join("off.db"), "OFF")?;
    rows.push(commit_loop(&off, "1-row commit, WAL synchronous=OFF (not durable)", 1, duration)?);
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
