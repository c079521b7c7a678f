//! The buyers of `bench/flash-sale.mjs`: K reservations of one unit sent to the sidecar at the same instant, one
//! connection each, from Rust (Node's fetch tops out near 2,700 requests/s on this machine, below what the
//! sidecar takes, so a Node client would measure itself). Prints one JSON line: winners' references, refusals,
//! throughput, latency percentiles, 503 `overloaded` answers (each retried after a second, as the answer asks).
//!
//! Usage: `reserve-burst BASE_URL API_TOKEN PRODUCT SIZE K REFERENCE_PREFIX [warm|cold]`. `warm` (the default)
//! opens the K connections before the burst, as a shop's server keeps its connections to the sidecar alive;
//! `cold` opens them during the burst. BASE_URL may list several sidecars sharing one ledger, comma-separated:
//! buyer `i` goes to the `i % n`th, as a load balancer taking turns would send it.

use std::sync::Arc;
use std::time::Instant;

use ledger_bench::sidecar::{BenchError, percentile_ms};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), BenchError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bases, token, product, size, buyers, prefix, rest @ ..] = args.as_slice() else {
        return Err("usage: reserve-burst BASE_URL API_TOKEN PRODUCT SIZE K REFERENCE_PREFIX [warm|cold]".into());
    };
    let buyers: usize = buyers.parse()?;
    let bases: Vec<&str> = bases.split(',').collect();
    let warm = rest.first().map(String::as_str) != Some("cold");
    let client = reqwest::Client::builder().pool_max_idle_per_host(buyers).build()?;
    if warm {
        let opening = (0..buyers).map(|index| {
            let (client, url) = (client.clone(), format!("{}/healthz", bases[index % bases.len()]));
            tokio::spawn(async move { client.get(url).send().await?.bytes().await })
        });
        for opened in futures_util::future::join_all(opening).await {
            opened??;
        }
    }

    let start = Arc::new(tokio::sync::Barrier::new(buyers + 1));
    let mut tasks = Vec::with_capacity(buyers);
    for index in 0..buyers {
        let (client, start) = (client.clone(), Arc::clone(&start));
        let url = format!("{}/v1/reservations", bases[index % bases.len()]);
        let reference = format!("{prefix}{index}");
        let body = json!({ "reference": reference, "items": [{ "product": product, "size": size, "quantity": 1 }] });
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let began = Instant::now();
            let mut overloaded = 0u64;
            loop {
                let response = client.post(&url).bearer_auth(&token).json(&body).send().await?;
                let status = response.status().as_u16();
                response.bytes().await?;
                // Beyond MAX_CONCURRENT_REQUESTS the sidecar answers 503 with Retry-After: 1; a client waits, retries.
                if status == 503 {
                    overloaded += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
                return Ok::<_, reqwest::Error>((reference, status, began.elapsed(), overloaded));
            }
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut winners = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    let mut latencies = Vec::with_capacity(buyers);
    let mut overloaded = 0;
    for task in futures_util::future::join_all(tasks).await {
        let (reference, status, latency, retried) = task??;
        overloaded += retried;
        latencies.push(latency);
        *statuses.entry(status.to_string()).or_insert(0u64) += 1;
        if status == 201 {
            winners.push(reference);
        }
    }
    let elapsed = began.elapsed();
    latencies.sort();
    let summary: Value = json!({
        "winners": winners,
        "statuses": statuses,
        "perSecond": buyers as f64 / elapsed.as_secs_f64(),
        "p50": percentile_ms(&latencies, 50.0),
        "p99": percentile_ms(&latencies, 99.0),
        "warm": warm,
        "overloaded": overloaded,
    });
    println!("{summary}");
    Ok(())
}
