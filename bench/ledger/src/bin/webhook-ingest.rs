//! Benchmark: how many Stripe webhook events one stock-sidecar ingests, with a reservation to commit behind each,
//! for SQLite synchronous=FULL and NORMAL; next to this machine's bare commit loops measured in the same run, and
//! the sidecar's peak RSS and CPU time per 1,000 events. Prints markdown tables.
//!
//! Run: `cargo run --release -p ledger-bench --bin webhook-ingest -- target/release/stock-sidecar`
//! (`bash scripts/bench.sh` does). `INGEST_EVENTS` (default 20000) and `INGEST_CLIENTS` (default 64) change the
//! load, `INGEST_ROUNDS` (default 3) how often each setting runs (alternating; the summary gives medians). Each event is a signed `payment_intent.succeeded` for a reservation made beforehand through /v1, so every
//! event commits a sale: a claim of the event id, the sale movement, the reservation's status, in one decision.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ledger_bench::sidecar::{ADMIN_TOKEN, API_TOKEN, BenchError, Sidecar, WEBHOOK_SECRET, percentile_ms};
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

/// Sends `requests` (path, headers, body) from `clients` concurrent connections; one pass, in order of index.
async fn send_all(
    client: &reqwest::Client,
    base: &str,
    requests: Arc<Vec<Prepared>>,
    clients: usize,
) -> Result<LoadRun, BenchError> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, base, requests, next) =
            (client.clone(), base.to_owned(), Arc::clone(&requests), Arc::clone(&next));
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut outcomes = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, headers, body)) = requests.get(index) else { break };
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

/// What one store setting gave.
struct StoreRun {
    synchronous: &'static str,
    reservations: LoadRun,
    events: LoadRun,
    writes_per_commit: f64,
    peak_rss_mib: f64,
    cpu_ms_per_1000_events: f64,
}

async fn run_store(
    binary: &Path,
    parent: &Path,
    synchronous: &'static str,
    events: usize,
    clients: usize,
    template: &Value,
) -> Result<StoreRun, BenchError> {
    let sidecar = Sidecar::start(binary, parent, &[("SQLITE_SYNCHRONOUS", synchronous)]).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build()?;
    for size in 0..SIZES {
        let body = json!({ "product": PRODUCT, "size": size.to_string(), "type": "restock", "quantity": 1_000_000 });
        let status = client
            .post(format!("{}/v1/movements", sidecar.base))
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
    let reserved = send_all(&client, &sidecar.base, Arc::new(reservations), clients).await?;

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let signed: Vec<_> = (0..events).map(|index| signed_event(template, index, now)).collect();
    let (writes_before, commits_before) = ledger_writes(&client, &sidecar.base).await?;
    let usage_before = sidecar.usage()?;
    let ingested = send_all(&client, &sidecar.base, Arc::new(signed), clients).await?;
    let usage_after = sidecar.usage()?;
    let (writes_after, commits_after) = ledger_writes(&client, &sidecar.base).await?;
    let log = sidecar.log_path();
    sidecar.stop()?;
    if ingested.outcomes.get("200 committed") != Some(&events) {
        return Err(
            format!("not every event committed its sale: {:?} (log: {})", ingested.outcomes, log.display()).into()
        );
    }
    let cpu = usage_after.cpu.saturating_sub(usage_before.cpu);
    Ok(StoreRun {
        synchronous,
        reservations: reserved,
        events: ingested,
        writes_per_commit: (writes_after - writes_before) as f64 / (commits_after - commits_before).max(1) as f64,
        peak_rss_mib: usage_after.peak_rss_kib as f64 / 1024.0,
        cpu_ms_per_1000_events: cpu.as_secs_f64() * 1000.0 * 1000.0 / events as f64,
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
    // Rounds alternate the settings, so that a slow spell of the shared machine does not land on one of them.
    let mut runs = Vec::new();
    for round in 1..=rounds {
        for synchronous in ["full", "normal"] {
            eprintln!("webhook-ingest: round {round} of {rounds}, synchronous={synchronous}");
            runs.push((round, run_store(&binary, &parent, synchronous, events, clients, &template).await?));
        }
    }
    let limits = store_limit::measure_all(&parent, Duration::from_secs(3)).await?;
    let limit_of = |prefix: &str| limits.iter().find(|row| row.label.starts_with(prefix)).map(|row| row.per_second());
    let durable_limit = limit_of("1-row commit, WAL synchronous=FULL").unwrap_or(f64::NAN);
    let normal_limit = limit_of("1-row commit, WAL synchronous=NORMAL").unwrap_or(f64::NAN);

    println!(
        "\nWebhook ingest: {events} signed payment_intent.succeeded events from {clients} concurrent connections,"
    );
    println!("each committing a reservation made beforehand (release stock-sidecar, client on the same 2 cores)\n");
    println!(
        "| round | synchronous | events/s | p50 ms | p99 ms | writes per commit | x bare 1-row commit loop | sidecar peak RSS MiB | sidecar CPU ms per 1,000 events | answers |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for (round, run) in &runs {
        let limit = if run.synchronous == "full" { durable_limit } else { normal_limit };
        let answers: Vec<String> = run.events.outcomes.iter().map(|(what, count)| format!("{what}: {count}")).collect();
        println!(
            "| {round} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {:.2} | {:.1} | {:.0} | {} |",
            run.synchronous,
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
        "| synchronous | events/s | x bare 1-row commit loop | reservations/s | peak RSS MiB (max) | CPU ms per 1,000 events |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for synchronous in ["full", "normal"] {
        let of_setting: Vec<&StoreRun> =
            runs.iter().map(|(_, run)| run).filter(|run| run.synchronous == synchronous).collect();
        let median = |value: &dyn Fn(&StoreRun) -> f64| {
            let mut values: Vec<f64> = of_setting.iter().map(|run| value(run)).collect();
            values.sort_by(f64::total_cmp);
            // The lower middle value for an even count: the conservative median.
            values.get(values.len().saturating_sub(1) / 2).copied().unwrap_or(f64::NAN)
        };
        let limit = if synchronous == "full" { durable_limit } else { normal_limit };
        let events_per_second = median(&|run| run.events.per_second);
        let peak = of_setting.iter().map(|run| run.peak_rss_mib).fold(0.0, f64::max);
        println!(
            "| {synchronous} | {events_per_second:.0} | {:.2} | {:.0} | {peak:.1} | {:.0} |",
            events_per_second / limit,
            median(&|run| run.reservations.per_second),
            median(&|run| run.cpu_ms_per_1000_events),
        );
    }
    println!(
        "\nThe reservations made before each run ({events}, 1 unit each over {SIZES} sizes, {clients} connections)\n"
    );
    println!("| round | synchronous | reservations/s | p50 ms | p99 ms | answered |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: |");
    for (round, run) in &runs {
        let reservations = &run.reservations;
        println!(
            "| {round} | {} | {:.0} | {:.2} | {:.2} | {} |",
            run.synchronous, reservations.per_second, reservations.p50_ms, reservations.p99_ms, reservations.answered
        );
    }
    println!(
        "\nThis machine's SQLite limit, measured in the same run (one connection as the sidecar's writer uses it, WAL, 3 s per row)\n"
    );
    store_limit::print_table(&limits);
    Ok(())
}
