//! Benchmark: this machine's limit for a SQLite ledger (bare commit loops, durable and not). Prints a markdown
//! table. Run: `cargo run --release -p ledger-bench --bin store-limit [-- SECONDS_PER_ROW]` (default 3);
//! `webhook-ingest` runs the same loops and prints the sidecar's rate as a fraction of them.

use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ledger_bench::store_limit::LimitError> {
    let seconds: u64 = std::env::args().nth(1).map(|value| value.parse()).transpose()?.unwrap_or(3);
    let parent = std::env::current_dir()?;
    let rows = ledger_bench::store_limit::measure_all(&parent, Duration::from_secs(seconds)).await?;
    println!(
        "\nThis machine's SQLite limit (rusqlite on one connection, WAL; {seconds} s per row, on the disk of {})\n",
        parent.display()
    );
    ledger_bench::store_limit::print_table(&rows);
    Ok(())
}
