//! The stock-sidecar binary itself: its subcommands, its refusal of a bad configuration, and a graceful stop on
//! SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::TestDatabase;

const BINARY: &str = env!("CARGO_BIN_EXE_stock-sidecar");

fn sidecar(database: &TestDatabase) -> Command {
    sidecar_on(&database.url)
}

fn sidecar_on(database_url: &str) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "info");
    command
}

/// A fresh database for a test that is not async.
fn database() -> TestDatabase {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(TestDatabase::new())
}

#[test]
fn stats_and_cleanup_print_what_they_found() {
    let directory = database();
    let stats = sidecar(&directory).arg("stats").output().expect("runs");
    assert!(stats.status.success(), "{stats:?}");
    let text = String::from_utf8_lossy(&stats.stdout);
    for line in ["active reservations      0", "open conflicts           0", "oldest active            none"] {
        assert!(text.contains(line), "{text}");
    }

    let cleanup = sidecar(&directory).arg("cleanup").output().expect("runs");
    assert!(cleanup.status.success(), "{cleanup:?}");
    assert!(String::from_utf8_lossy(&cleanup.stdout).contains("released 0 expired reservation(s)"));
}

#[test]
fn stats_prints_the_oldest_reservations_and_the_movements_as_tables_or_as_the_admin_json() {
    use stock_core::{CartLine, MovementType, ReservationTtl, SignedQuantity, Timestamp};
    use stock_sidecar::store::{MovementOrigin, MovementRequest};

    let database = database();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let store = crate::helpers::open_store(&database, None).await;
        let now = Timestamp::from_unix_millis(
            i64::try_from(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_millis(),
            )
            .expect("millis"),
        )
        .expect("now");
        let restock = MovementRequest {
            product: "runner".into(),
            size: "42".into(),
            kind: MovementType::Restock,
            quantity: SignedQuantity::new(7).expect("quantity"),
            reason: "Delivery".into(),
            reference: None,
            expected_stock: None,
            low_stock_threshold: None,
            origin: MovementOrigin::Sidecar,
        };
        store.record_movement(restock, now).await.expect("restock");
        let line = CartLine { product: "runner".into(), size: "42".into(), quantity: 2.0 };
        store.reserve("pi_stats_table", &[line], ReservationTtl::DEFAULT, now).await.expect("reserve");
        store.close().await;
    });

    let tables = sidecar(&database).arg("stats").output().expect("runs");
    assert!(tables.status.success(), "{tables:?}");
    let text = String::from_utf8_lossy(&tables.stdout);
    for expected in [
        "active reservations      1",
        "reserved units           2",
        "oldest active reservations",
        "movements in the last 1d 00h",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
    let reservation = text.lines().find(|line| line.contains("pi_stats_table")).expect("the reservation's row");
    assert!(reservation.contains("active") && reservation.contains(" 2 "), "{reservation}");
    let runner = text.lines().find(|line| line.trim_start().starts_with("runner")).expect("the product's row");
    assert!(runner.contains("+7 (1)") && runner.trim_end().ends_with("+7"), "{runner}");

    let json = sidecar(&database).args(["stats", "--json", "--window-seconds", "3600"]).output().expect("runs");
    assert!(json.status.success(), "{json:?}");
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON on stdout");
    assert_eq!(report["activeReservations"], 1);
    assert_eq!(report["oldestActiveReservations"][0]["reference"], "pi_stats_table");
    assert_eq!(report["movements"]["windowSeconds"], 3600);
    assert_eq!(
        report["movements"]["products"][0]["byType"]["restock"],
        serde_json::json!({ "movements": 1, "units": 7 })
    );
    let refused = sidecar(&database).args(["stats", "--window-seconds", "1"]).output().expect("runs");
    assert!(!refused.status.success());
}

#[test]
fn a_bad_configuration_stops_the_sidecar_with_every_problem_listed() {
    let directory = database();
    let output = sidecar(&directory)
        .env("LISTEN_ADDR", "nowhere")
        .env("ADMIN_API_TOKEN", "short")
        .env("STRIPE_WEBHOOK_SECRET", "not-a-secret")
        .arg("serve")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    for setting in ["LISTEN_ADDR", "ADMIN_API_TOKEN", "STRIPE_WEBHOOK_SECRET"] {
        assert!(message.contains(setting), "{message}");
    }
    assert!(!message.contains("short\""), "the token's value is not echoed: {message}");
}

#[test]
fn serve_stops_gracefully_on_sigterm() {
    let directory = database();
    let mut child = sidecar(&directory)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .arg("serve")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let started = Instant::now();
    let listening = lines.by_ref().map_while(Result::ok).find(|line| line.contains("stock-sidecar listening"));
    assert!(listening.is_some(), "no 'listening' line within {:?}", started.elapsed());

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the sidecar did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|line| line.contains("stock-sidecar stopped")), "{rest:?}");
}

#[tokio::test]
async fn no_secret_reaches_the_logs_even_at_debug_level() {
    const API: &str = "api-token-never-logged-0123456789";
    const ADMIN: &str = "admin-token-never-logged-0123456789";
    const WEBHOOK: &str = "whsec_webhook_secret_never_logged_0123456789";
    const PAYLOAD_KEY: &str = "payload-key-never-logged-0123456789";
    const DATABASE_PASSWORD: &str = "database-password-never-logged-0123";
    let database = TestDatabase::new().await;
    // On PostgreSQL the URL carries a password too (trust authentication accepts it unasked).
    let database_url = match database.url.strip_prefix("postgres://postgres@") {
        Some(rest) => format!("postgres://postgres:{DATABASE_PASSWORD}@{rest}"),
        None => database.url.clone(),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("address").port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = tokio::process::Command::from(sidecar_on(&database_url))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .env("SIDECAR_API_TOKEN", API)
        .env("ADMIN_API_TOKEN", ADMIN)
        .env("STRIPE_WEBHOOK_SECRET", WEBHOOK)
        // Nothing listens on port 9: every delivery fails and is logged with its error.
        .env("PAYLOAD_URL", "http://127.0.0.1:9")
        .env("PAYLOAD_API_KEY", PAYLOAD_KEY)
        .env("PROJECTION_RETRY_MAX_SECONDS", "1")
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starts");
    // Read both pipes from the start: at debug level the logs outgrow a pipe's buffer within seconds, and a sidecar
    // blocked writing a log line answers no request.
    let drain = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        tokio::spawn(async move {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut text).await;
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|pipe| Box::new(pipe) as Box<dyn tokio::io::AsyncRead + Send + Unpin>));
    let stderr = drain(child.stderr.take().map(|pipe| Box::new(pipe) as Box<dyn tokio::io::AsyncRead + Send + Unpin>));
    stock_sidecar::install_crypto_provider();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the sidecar did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let restock = serde_json::json!({ "product": "runner", "size": "42", "type": "restock", "quantity": 5 });
    let answer = client.post(format!("{base}/v1/movements")).bearer_auth(ADMIN).json(&restock).send().await;
    assert_eq!(answer.expect("answer").status(), 201);
    let cart =
        serde_json::json!({ "reference": "pi_logs", "items": [{ "product": "runner", "size": "42", "quantity": 1 }] });
    let answer = client.post(format!("{base}/v1/reservations")).bearer_auth(API).json(&cart).send().await;
    assert_eq!(answer.expect("answer").status(), 201);
    for wrong in [ADMIN, "wrong-token-0123456789"] {
        let answer = client.post(format!("{base}/v1/reservations")).bearer_auth(wrong).json(&cart).send().await;
        assert_eq!(answer.expect("answer").status(), 401);
    }
    let event = crate::helpers::stripe_event("payment_intent.succeeded", "evt_logs", "pi_logs");
    let seconds =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs())
            .expect("seconds");
    for secret in [WEBHOOK, "whsec_some_other_secret_0123456789"] {
        let header = stripe_webhook::Webhook::generate_test_header(&event, secret, Some(seconds));
        let _ = client
            .post(format!("{base}/webhooks/stripe"))
            .header("stripe-signature", header)
            .body(event.clone())
            .send()
            .await;
    }
    // Let the projection fail (and log) a few times.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let killed =
        Command::new("kill").args(["-TERM", &child.id().expect("pid").to_string()]).status().expect("kill runs");
    assert!(killed.success());
    child.wait().await.expect("exits");
    let (stdout, stderr) = (stdout.await.expect("read"), stderr.await.expect("read"));
    let logs = format!("{}{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    assert!(logs.contains("delivery to Payload failed"), "the logs say what failed: {logs}");
    assert!(logs.contains("Stripe webhook refused"), "{logs}");
    for secret in [API, ADMIN, WEBHOOK, PAYLOAD_KEY, DATABASE_PASSWORD] {
        assert!(!logs.contains(secret), "a secret reached the logs: {secret}");
    }

    // Standard output is no terminal here, so the lines are JSON (LOG_FORMAT=auto), one object each; the lines of
    // a request name its id, and the lines about a Stripe event name the event and its reference.
    let mut lines = Vec::new();
    for line in String::from_utf8_lossy(&stdout).lines() {
        let parsed = serde_json::from_str::<serde_json::Value>(line);
        assert!(parsed.is_ok(), "a JSON line: {line}");
        lines.extend(parsed.ok());
    }
    let applied = lines.iter().find(|line| line["fields"]["message"] == "Stripe event applied").expect("logged");
    let spans = applied["spans"].as_array().expect("the line's spans");
    let request = spans.iter().find(|span| span["name"] == "request").expect("inside the request's span");
    assert!(request["request_id"].as_str().is_some_and(|id| id.len() == 36), "{request}");
    assert_eq!(request["route"], "/webhooks/stripe");
    let event = spans.iter().find(|span| span["name"] == "stripe_event").expect("inside the event's span");
    assert_eq!(
        (&event["event_id"], &event["reference"]),
        (&serde_json::json!("evt_logs"), &serde_json::json!("pi_logs"))
    );
    let listening = |line: &serde_json::Value| {
        line["fields"]["message"].as_str().is_some_and(|message| message.starts_with("stock-sidecar listening"))
    };
    assert!(lines.iter().any(listening));
}

#[test]
fn log_format_text_writes_human_readable_lines_and_a_wrong_one_is_refused() {
    let database = database();
    let output = sidecar(&database).env("LOG_FORMAT", "text").arg("cleanup").output().expect("runs");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.lines().all(|line| !line.starts_with('{')), "no JSON: {stdout}");
    let output = sidecar(&database).env("LOG_FORMAT", "xml").arg("cleanup").output().expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("LOG_FORMAT"));
}
