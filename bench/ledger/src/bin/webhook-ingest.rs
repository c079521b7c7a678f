//! Benchmark: how many Stripe webhook events stock-sidecar ingests, with a reservation to commit behind each, on
//! SQLite (synchronous=FULL and NORMAL, one sidecar) and on PostgreSQL (one sidecar, and two sharing the ledger
//! with the load spread over both); next to this machine's bare commit loops measured in the same run, and the
//! sidecars' peak RSS and CPU time per 1,000 events. Prints markdown tables.
//!
//! Run: `cargo run --release -p ledger-bench --bin webhook-ingest -- target/release/stock-sidecar`
//! (`bash scripts/bench.sh` does). `INGEST_EVENTS` (default 20000) and `INGEST_CLIENTS` (default 64) change the
//! load, `INGEST_ROUNDS` (default 3) how often each setup runs (alternating; the summary gives medians),
//! `BENCH_POSTGRES_URL` the PostgreSQL server (default the local one; its columns are skipped with a note when it
//! does not answer). Each event is a signed `payment_intent.succeeded` for a reservation made beforehand through
//! /v1, so every event commits a sale: a claim of the event id, the sale movement, the reservation's status, in one
//! decision.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ledger_bench::postgres::{self, Schema};
use ledger_bench::sidecar::{ADMIN_TOKEN, API_TOKEN, BenchError, Sidecar, WEBHOOK_SECRET, percentile_ms, postgres_cpu};
use ledger_bench::store_limit;
use serde_json::{Value, json};

const SIZES: usize = 20;
const PRODUCT: &str = "ingest";

/// A request to send: path, headers, body.
type Prepared = (String, Vec<(&'static str, String)>, String);

/// One load run: how many requests were answered how, how fast.
struct LoadRun {
    answered: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Status code (and webhook outcome) -> count.
    outcomes: std::collections::BTreeMap<String, usize>,
}

/// Where the ledger is, and how many sidecars share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// One sidecar on SQLite with this `SQLITE_SYNCHRONOUS`.
    Sqlite(&'static str),
    /// This many sidecars on one PostgreSQL schema, the requests spread over them in turn.
    Postgres(usize),
}

impl Setup {
    fn label(self) -> String {
        match self {
            Setup::Sqlite(synchronous) => format!("SQLite, synchronous={synchronous}"),
            Setup::Postgres(1) => "PostgreSQL, 1 sidecar".to_owned(),
            Setup::Postgres(count) => format!("PostgreSQL, {count} sidecars"),
        }
    }
}

/// Sends `requests` (path, headers, body) from `clients` concurrent connections; one pass, in order of index,
/// request `i` to `bases[i % bases.len()]` (a load balancer taking turns).
async fn send_all(
    client: &reqwest::Client,
    bases: &[String],
    requests: Arc<Vec<Prepared>>,
    clients: usize,
) -> Result<LoadRun, BenchError> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    let bases = Arc::new(bases.to_vec());
    for _ in 0..clients {
        let (client, bases, requests, next) =
            (client.clone(), Arc::clone(&bases), Arc::clone(&requests), Arc::clone(&next));
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut outcomes = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, headers, body)) = requests.get(index) else { break };
                let base = &bases[index % bases.len()];
                let began = Instant::now();
                let mut request = client.post(format!("{base}{path}")).body(body.clone());
                for (name, value) in headers {
                    request = request.header(*name, value);
                }
                let response = request.send().await?;
                let status = response.status().as_u16();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                latencies.push(began.elapsed());
                let outcome = answer.get("outcome").and_then(Value::as_str).map(|outcome| format!(" {outcome}"));
                outcomes.push(format!("{status}{}", outcome.unwrap_or_default()));
            }
            Ok::<_, BenchError>((latencies, outcomes))
        });
    }
    let mut latencies = Vec::new();
    let mut outcomes = std::collections::BTreeMap::new();
    while let Some(finished) = workers.join_next().await {
        let (mut some, answers) = finished??;
        latencies.append(&mut some);
        for answer in answers {
            *outcomes.entry(answer).or_insert(0) += 1;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(LoadRun {
        answered: latencies.len(),
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile_ms(&latencies, 50.0),
        p99_ms: percentile_ms(&latencies, 99.0),
        outcomes,
    })
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}")), ("content-type", "application/json".to_owned())]
}

/// The signed `payment_intent.succeeded` event of reservation `index`.
fn signed_event(template: &Value, index: usize, now: i64) -> Prepared {
    let mut event = template.clone();
    event["id"] = json!(format!("evt_ingest_{index}"));
    event["data"]["object"]["id"] = json!(format!("pi_ingest_{index}"));
    let body = event.to_string();
    let signature = stripe_webhook::Webhook::generate_test_header(&body, WEBHOOK_SECRET, Some(now));
    let headers = vec![("stripe-signature", signature), ("content-type", "application/json".to_owned())];
    ("/webhooks/stripe".to_owned(), headers, body)
}

async fn ledger_writes(client: &reqwest::Client, base: &str) -> Result<(u64, u64), BenchError> {
    let figures: Value = client
        .get(format!("{base}/api/admin/clean-expired-reservations"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let writes = &figures["ledgerWrites"];
    Ok((writes["writes"].as_u64().unwrap_or(0), writes["commits"].as_u64().unwrap_or(0)))
}

/// What one setup gave.
struct StoreRun {
    setup: Setup,
    reservations: LoadRun,
    events: LoadRun,
    writes_per_commit: f64,
    peak_rss_mib: f64,
    cpu_ms_per_1000_events: f64,
    /// The PostgreSQL server's CPU per 1,000 events (its processes on this machine), for the PostgreSQL setups.
    postgres_cpu_ms_per_1000_events: Option<f64>,
}

async fn run_setup(
    binary: &Path,
    parent: &Path,
    setup: Setup,
    load: (usize, usize),
    template: &Value,
) -> Result<StoreRun, BenchError> {
    let (events, clients) = load;
    let (sidecars, schema) = match setup {
        Setup::Sqlite(synchronous) => {
            (vec![Sidecar::start(binary, parent, &[("SQLITE_SYNCHRONOUS", synchronous)]).await?], None)
        }
        Setup::Postgres(count) => {
            let schema = Schema::create(&postgres::server_url(), "ingest").await?;
            let mut sidecars = Vec::with_capacity(count);
            for _ in 0..count {
                sidecars.push(Sidecar::start(binary, parent, &[("DATABASE_URL", schema.url.as_str())]).await?);
            }
            (sidecars, Some(schema))
        }
    };
    let bases: Vec<String> = sidecars.iter().map(|sidecar| sidecar.base.clone()).collect();
    let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build()?;
    for size in 0..SIZES {
        let body = json!({ "product": PRODUCT, "size": size.to_string(), "type": "restock", "quantity": 1_000_000 });
        let status = client
            .post(format!("{}/v1/movements", bases[0]))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await?
            .status();
        if !status.is_success() {
            return Err(format!("restock answered {status}").into());
        }
    }
    let reservations: Vec<_> = (0..events)
        .map(|index| {
            let body = json!({ "reference": format!("pi_ingest_{index}"),
                "items": [{ "product": PRODUCT, "size": (index % SIZES).to_string(), "quantity": 1 }] });
            ("/v1/reservations".to_owned(), bearer(API_TOKEN), body.to_string())
        })
        .collect();
    let reserved = send_all(&client, &bases, Arc::new(reservations), clients).await?;

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let signed: Vec<_> = (0..events).map(|index| signed_event(template, index, now)).collect();
    let (mut writes_before, mut commits_before) = (0, 0);
    for base in &bases {
        let (writes, commits) = ledger_writes(&client, base).await?;
        (writes_before, commits_before) = (writes_before + writes, commits_before + commits);
    }
    let usage_before: Vec<_> = sidecars.iter().map(Sidecar::usage).collect::<Result<_, _>>()?;
    let server_before = postgres_cpu();
    let ingested = send_all(&client, &bases, Arc::new(signed), clients).await?;
    let server_cpu = postgres_cpu().saturating_sub(server_before);
    let usage_after: Vec<_> = sidecars.iter().map(Sidecar::usage).collect::<Result<_, _>>()?;
    let (mut writes_after, mut commits_after) = (0, 0);
    for base in &bases {
        let (writes, commits) = ledger_writes(&client, base).await?;
        (writes_after, commits_after) = (writes_after + writes, commits_after + commits);
    }
    let log = sidecars[0].log_path();
    for sidecar in sidecars {
        sidecar.stop()?;
    }
    if let Some(schema) = schema {
        schema.drop_now().await?;
    }
    if ingested.outcomes.get("200 committed") != Some(&events) {
        return Err(
            format!("not every event committed its sale: {:?} (log: {})", ingested.outcomes, log.display()).into()
        );
    }
    let cpu: Duration =
        usage_after.iter().zip(&usage_before).map(|(after, before)| after.cpu.saturating_sub(before.cpu)).sum();
    let peak_rss_kib = usage_after.iter().map(|usage| usage.peak_rss_kib).max().unwrap_or(0);
    Ok(StoreRun {
        setup,
        reservations: reserved,
        events: ingested,
        writes_per_commit: (writes_after - writes_before) as f64 / (commits_after - commits_before).max(1) as f64,
        peak_rss_mib: peak_rss_kib as f64 / 1024.0,
        cpu_ms_per_1000_events: cpu.as_secs_f64() * 1000.0 * 1000.0 / events as f64,
        postgres_cpu_ms_per_1000_events: matches!(setup, Setup::Postgres(_))
            .then(|| server_cpu.as_secs_f64() * 1000.0 * 1000.0 / events as f64),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BenchError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let binary = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/release/stock-sidecar".to_owned()));
    let events: usize = std::env::var("INGEST_EVENTS").ok().map(|value| value.parse()).transpose()?.unwrap_or(20_000);
    let clients: usize = std::env::var("INGEST_CLIENTS").ok().map(|value| value.parse()).transpose()?.unwrap_or(64);
    let fixture =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../sidecar/tests/fixtures/stripe/payment_intent.succeeded.json");
    let template: Value = serde_json::from_str(&std::fs::read_to_string(fixture)?)?;
    let parent = std::env::temp_dir();

    let rounds: usize = std::env::var("INGEST_ROUNDS").ok().map(|value| value.parse()).transpose()?.unwrap_or(3);
    let mut setups = vec![Setup::Sqlite("full"), Setup::Sqlite("normal")];
    let server = postgres::server_url();
    let postgres_note = match postgres::reachable(&server).await {
        Ok(()) => {
            setups.extend([Setup::Postgres(1), Setup::Postgres(2)]);
            None
        }
        Err(error) => Some(format!("PostgreSQL columns skipped: no server answers at BENCH_POSTGRES_URL ({error})")),
    };
    // Rounds alternate the setups, so that a slow spell of the shared machine does not land on one of them.
    let mut runs = Vec::new();
    for round in 1..=rounds {
        for &setup in &setups {
            eprintln!("webhook-ingest: round {round} of {rounds}, {}", setup.label());
            runs.push((round, run_setup(&binary, &parent, setup, (events, clients), &template).await?));
        }
    }
    let mut limits = store_limit::measure_all(&parent, Duration::from_secs(3)).await?;
    if postgres_note.is_none() {
        for connections in [1, clients] {
            limits.push(postgres::commit_loop(&server, connections, Duration::from_secs(3)).await?);
        }
    }
    let limit_of = |prefix: &str| limits.iter().find(|row| row.label.starts_with(prefix)).map(|row| row.per_second());
    let limit_for = |setup: Setup| {
        match setup {
            Setup::Sqlite("full") => limit_of("1-row commit, WAL synchronous=FULL"),
            Setup::Sqlite(_) => limit_of("1-row commit, WAL synchronous=NORMAL"),
            Setup::Postgres(_) => limit_of(&format!("PostgreSQL: 1-row commit (durable), {clients} connection")),
        }
        .unwrap_or(f64::NAN)
    };

    println!(
        "\nWebhook ingest: {events} signed payment_intent.succeeded events from {clients} concurrent connections,"
    );
    println!("each committing a reservation made beforehand (release stock-sidecar, client on the same 2 cores)\n");
    if let Some(note) = &postgres_note {
        println!("{note}\n");
    }
    println!(
        "| round | ledger | events/s | p50 ms | p99 ms | writes per commit | x bare 1-row commit loop | sidecar peak RSS MiB | sidecars' CPU ms per 1,000 events | answers |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for (round, run) in &runs {
        let limit = limit_for(run.setup);
        let answers: Vec<String> = run.events.outcomes.iter().map(|(what, count)| format!("{what}: {count}")).collect();
        println!(
            "| {round} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {:.2} | {:.1} | {:.0} | {} |",
            run.setup.label(),
            run.events.per_second,
            run.events.p50_ms,
            run.events.p99_ms,
            run.writes_per_commit,
            run.events.per_second / limit,
            run.peak_rss_mib,
            run.cpu_ms_per_1000_events,
            answers.join(", ")
        );
    }
    println!("\nMedian of the rounds\n");
    println!(
        "| ledger | events/s | x bare 1-row commit loop | reservations/s | peak RSS MiB (max) | sidecars' CPU ms per 1,000 events | PostgreSQL server CPU ms per 1,000 events |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &setup in &setups {
        let of_setting: Vec<&StoreRun> = runs.iter().map(|(_, run)| run).filter(|run| run.setup == setup).collect();
        let median = |value: &dyn Fn(&StoreRun) -> f64| {
            let mut values: Vec<f64> = of_setting.iter().map(|run| value(run)).collect();
            values.sort_by(f64::total_cmp);
            // The lower middle value for an even count: the conservative median.
            values.get(values.len().saturating_sub(1) / 2).copied().unwrap_or(f64::NAN)
        };
        let limit = limit_for(setup);
        let events_per_second = median(&|run| run.events.per_second);
        let peak = of_setting.iter().map(|run| run.peak_rss_mib).fold(0.0, f64::max);
        let server = match setup {
            Setup::Postgres(_) => {
                format!("{:.0}", median(&|run| run.postgres_cpu_ms_per_1000_events.unwrap_or(f64::NAN)))
            }
            Setup::Sqlite(_) => "-".to_owned(),
        };
        println!(
            "| {} | {events_per_second:.0} | {:.2} | {:.0} | {peak:.1} | {:.0} | {server} |",
            setup.label(),
            events_per_second / limit,
            median(&|run| run.reservations.per_second),
            median(&|run| run.cpu_ms_per_1000_events),
        );
    }
    println!(
        "\nThe reservations made before each run ({events}, 1 unit each over {SIZES} sizes, {clients} connections)\n"
    );
    println!("| round | ledger | reservations/s | p50 ms | p99 ms | answered |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: |");
    for (round, run) in &runs {
        let reservations = &run.reservations;
        println!(
            "| {round} | {} | {:.0} | {:.2} | {:.2} | {} |",
            run.setup.label(),
            reservations.per_second,
            reservations.p50_ms,
            reservations.p99_ms,
            reservations.answered
        );
    }
    println!(
        "\nThis machine's limits, measured in the same run (SQLite: one connection as the sidecar's writer uses it, WAL; PostgreSQL: the same server, one INSERT per commit; 3 s per row)\n"
    );
    store_limit::print_table(&limits);
    Ok(())
}
