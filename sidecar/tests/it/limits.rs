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
    let huge = "x".repeat(stock_sidecar::BODY_LIMIT_BYTES + 1);
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
    let app = spawn_app_with(|config| config.max_concurrent_requests = 1).await;
    app.restock("runner", "42", 1).await;
    let mut slow = start_slow_request(&app.address).await;
    // The slow request holds the only permit until it finishes; wait until the server has taken it.
    let mut refused = None;
    for _ in 0..100 {
        let answer = app.api(reqwest::Method::GET, "/v1/products/runner/stock").send().await.expect("request");
        if answer.status() == 503 {
            refused = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = refused.expect("a request beyond the bound is refused");
    assert_eq!(refused.headers().get("retry-after").and_then(|value| value.to_str().ok()), Some("1"));
    assert_eq!(body_of(refused, 503).await["error"], "overloaded");

    // The slow client finishes (with a body that is not a valid request): the permit comes back.
    slow.write_all(&[b' '; 87]).await.expect("rest of the body");
    let (status, _) = read_answer(&mut slow).await;
    assert_eq!(status, 400);
    let answer = app.api(reqwest::Method::GET, "/v1/products/runner/stock").send().await.expect("request");
    assert_eq!(answer.status(), 200);
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
