//! Back-pressure: bodies over the limit, more requests in progress than allowed, and clients too slow to finish a
//! request are each answered at once in the API's error shape, and change nothing.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{API_TOKEN, body_of, spawn_app, spawn_app_with};

/// Opens a connection and sends a request's head and only the first part of its body, as a slow client does.
async fn start_slow_request(address: &str) -> TcpStream {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.expect("connects");
    let head = format!(
        "POST /v1/reservations HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {API_TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"reference\":"
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    stream
}

/// Reads one whole HTTP/1.1 answer from a raw connection: its status and its JSON body.
async fn read_answer(stream: &mut TcpStream) -> (u16, Value) {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await.expect("reads");
        raw.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, body)) = text.split_once("\r\n\r\n")
            && let Ok(json) = serde_json::from_str::<Value>(body)
        {
            let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("status line");
            return (status, json);
        }
        assert!(read > 0, "the connection closed before a whole answer: {text}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_answers_413_in_the_error_shape_and_stores_nothing() {
    let app = spawn_app().await;
    let huge = "x".repeat(stock_sidecar::limits::BODY_LIMIT_BYTES + 1);
    let reservation = app
        .api(reqwest::Method::POST, "/v1/reservations")
        .header("content-type", "application/json")
        .body(format!(r#"{{"reference":"pi_huge","items":[],"padding":"{huge}"}}"#))
        .send()
        .await
        .expect("request");
    let body = body_of(reservation, 413).await;
    assert_eq!(body["error"], "body_too_large");
    let webhook = app
        .client
        .post(format!("{}/webhooks/stripe", app.address))
        .header("stripe-signature", "t=1,v1=00")
        .body(huge)
        .send()
        .await
        .expect("request");
    assert_eq!(body_of(webhook, 413).await["error"], "body_too_large");
    let missing = app.api(reqwest::Method::GET, "/v1/reservations/pi_huge").send().await.expect("request");
    assert_eq!(body_of(missing, 404).await["error"], "reservation_not_found");
}

#[tokio::test]
async fn beyond_the_bound_on_requests_in_progress_the_answer_is_503_with_retry_after() {
    use sqlx::Connection;
    let app = spawn_app_with(|config| config.max_concurrent_requests = 1).await;
    app.restock("runner", "42", 1).await;
    // A request that holds the only slot: a restock waiting for the ledger, which another process has locked
    // against writes (reads go on).
    let refused = if app.database.is_postgres() {
        let mut blocker = sqlx::PgConnection::connect(&app.database_url).await.expect("second connection");
        sqlx::query("BEGIN").execute(&mut blocker).await.expect("transaction");
        sqlx::query("LOCK TABLE sizes IN EXCLUSIVE MODE").execute(&mut blocker).await.expect("lock");
        let refused = refused_while_held(&app).await;
        sqlx::query("ROLLBACK").execute(&mut blocker).await.expect("lock released");
        refused
    } else {
        let blocker = crate::helpers::sqlite_connection(&app.database_url);
        blocker.execute_batch("BEGIN EXCLUSIVE").expect("lock taken");
        let refused = refused_while_held(&app).await;
        blocker.execute_batch("ROLLBACK").expect("lock released");
        refused
    };
    assert_eq!(refused.headers().get("retry-after").and_then(|value| value.to_str().ok()), Some("1"));
    assert_eq!(body_of(refused, 503).await["error"], "overloaded");
    // Once the lock is gone the slot comes back.
    let mut answered = false;
    for _ in 0..200 {
        let answer = app.api(reqwest::Method::GET, "/v1/products/runner/stock").send().await.expect("request");
        answered = answer.status() == 200;
        if answered {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answered, "the slot never came back");
}

/// Starts a restock that waits for the locked ledger (holding the only slot), then reads stock until a read is
/// refused. A restock that itself lost the race for the slot to a read (and was refused) is started again.
async fn refused_while_held(app: &crate::helpers::TestApp) -> reqwest::Response {
    first_refusal(app).await.expect("a request beyond the bound is refused")
}

async fn first_refusal(app: &crate::helpers::TestApp) -> Option<reqwest::Response> {
    let body = json!({ "product": "runner", "size": "42", "type": "restock", "quantity": 1 });
    let mut held = tokio::spawn(app.admin(reqwest::Method::POST, "/v1/movements").json(&body).send());
    for _ in 0..400 {
        if held.is_finished() {
            held = tokio::spawn(app.admin(reqwest::Method::POST, "/v1/movements").json(&body).send());
        }
        let answer = app.api(reqwest::Method::GET, "/v1/products/runner/stock").send().await.expect("request");
        if answer.status() == 503 {
            return Some(answer);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test]
async fn a_client_too_slow_to_send_its_request_gets_408_and_its_connection_back() {
    let app = spawn_app_with(|config| config.request_timeout = Duration::from_secs(1)).await;
    app.restock("runner", "42", 1).await;
    let mut slow = start_slow_request(&app.address).await;
    let (status, body) = read_answer(&mut slow).await;
    assert_eq!((status, body["error"].clone()), (408, json!("request_timeout")));
    assert!(body["message"].as_str().unwrap_or_default().contains("1 s"), "{body}");
    let answer = app.api(reqwest::Method::GET, "/v1/products/runner/stock").send().await.expect("request");
    assert_eq!(answer.status(), 200, "the slow request left nothing held");
}

/// Sends a raw request head and returns the status line of the answer.
async fn status_line_of(address: &str, head: &[u8]) -> String {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.expect("connects");
    // The server may answer and close before the whole head is written.
    let _ = stream.write_all(head).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn oversized_or_too_many_headers_are_refused_by_the_http_layer_with_431() {
    let app = spawn_app().await;
    let mut huge = b"GET /healthz HTTP/1.1\r\nhost: sidecar\r\nx-padding: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 600 * 1024));
    huge.extend_from_slice(b"\r\n\r\n");
    assert!(status_line_of(&app.address, &huge).await.starts_with("HTTP/1.1 431"));
    let mut many = b"GET /healthz HTTP/1.1\r\nhost: sidecar\r\n".to_vec();
    for index in 0..200 {
        many.extend_from_slice(format!("x-header-{index}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"connection: close\r\n\r\n");
    assert!(status_line_of(&app.address, &many).await.starts_with("HTTP/1.1 431"));
    let answer = app.anonymous(reqwest::Method::GET, "/healthz").send().await.expect("request");
    assert_eq!(answer.status(), 200, "the server carries on");
}

/// Opens a connection and sends a whole webhook request head announcing a body that never comes.
async fn stalled_webhook(host: &str) -> TcpStream {
    let mut stream = TcpStream::connect(host).await.expect("connects");
    let head = format!(
        "POST /webhooks/stripe HTTP/1.1\r\nhost: {host}\r\nstripe-signature: t=1,v1=00\r\n\
         content-type: application/json\r\ncontent-length: 4000\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    stream
}

#[tokio::test]
async fn with_1100_stalled_webhook_connections_a_checkout_a_stripe_event_and_healthz_answer_within_a_second() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::with_capacity(1100);
    for _ in 0..1100 {
        stalled.push(stalled_webhook(&host).await);
    }
    // Every stalled request has reached the server and is waiting for its body.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = std::time::Instant::now();
    let reservation = app.reserve("pi_3During", json!([{ "product": "runner", "size": "42", "quantity": 1 }])).await;
    assert_eq!(reservation.status(), 201);
    assert!(started.elapsed() < Duration::from_secs(1), "the checkout took {:?}", started.elapsed());

    let started = std::time::Instant::now();
    let event = crate::helpers::stripe_event("payment_intent.succeeded", "evt_during", "pi_3During");
    let answer = body_of(app.send_event(&event).await, 200).await;
    assert_eq!(answer["outcome"], "committed");
    assert!(started.elapsed() < Duration::from_secs(1), "the Stripe event took {:?}", started.elapsed());

    let started = std::time::Instant::now();
    let health = app.anonymous(reqwest::Method::GET, "/healthz").send().await.expect("request");
    assert_eq!(health.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1), "/healthz took {:?}", started.elapsed());
    drop(stalled);
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_at_its_deadline_and_holds_no_slot_meanwhile() {
    let app = spawn_app_with(|config| {
        config.body_read_timeout = Duration::from_secs(1);
        config.max_concurrent_requests = 1;
    })
    .await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let mut stalled = stalled_webhook(&host).await;
    let mut slow = start_slow_request(&app.address).await;
    // Both hold a connection, neither a slot: the one authenticated slot is free.
    let answer = app.api(reqwest::Method::GET, "/v1/products/runner/stock").send().await.expect("request");
    assert_eq!(answer.status(), 404);
    for stream in [&mut stalled, &mut slow] {
        let (status, body) = read_answer(stream).await;
        assert_eq!((status, body["error"].clone()), (408, json!("request_timeout")));
    }
}

#[tokio::test]
async fn connections_beyond_max_connections_are_closed_and_idle_ones_lose_their_place_at_the_header_deadline() {
    let app = spawn_app_with(|config| {
        config.max_connections = 4;
        config.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(&host).await.expect("connects");
        stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n").await.expect("a header, unfinished");
        idle.push(stream);
    }
    // A fifth connection is accepted and closed at once.
    let mut fifth = TcpStream::connect(&host).await.expect("the kernel accepts it");
    let _ = fifth.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), fifth.read_to_end(&mut answer)).await;
    assert!(read.is_ok() && answer.is_empty(), "closed without an answer: {:?}", String::from_utf8_lossy(&answer));
    // The unfinished headers pass their deadline: the connections are closed, and their places come back.
    for stream in &mut idle {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "closed at the header deadline");
    }
    let health = app.anonymous(reqwest::Method::GET, "/healthz").send().await.expect("request");
    assert_eq!(health.status(), 200);
}
