//! Low-stock alerts: each crossing of a size's stock state (low, out of stock, back in stock) recorded once, also
//! with two sidecars checking at once, and posted signed to the alert webhook until it accepts it.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use stock_core::{CartLine, MovementType, Quantity, ReservationTtl, SignedQuantity, StockState, Timestamp};
use stock_sidecar::alerts::{ALERT_ID_HEADER, SIGNATURE_HEADER, check_stock_alerts, deliver_stock_alerts, signature};
use stock_sidecar::clock::ManualClock;
use stock_sidecar::config::{AlertWebhookConfig, Config, Secret};
use stock_sidecar::http::AppState;
use stock_sidecar::ledger::Ledger;
use stock_sidecar::open_state;
use stock_sidecar::store::{MovementOrigin, MovementRequest, StockAlert, StoreError};

use crate::helpers::{START, TestDatabase};

/// A check at the state's clock, as the scheduled one runs it.
async fn check(state: &AppState) -> Result<Vec<StockAlert>, StoreError> {
    check_stock_alerts(&state.ledger, state.clock.now(), state.config.low_stock_webhook.is_some()).await
}

async fn deliver(state: &AppState, webhook: &AlertWebhookConfig, http: &reqwest::Client) -> Result<usize, StoreError> {
    deliver_stock_alerts(&state.ledger, state.clock.as_ref(), webhook, http).await
}

const ALERT_SECRET: &str = "alert-signing-secret-0123456789";

/// The sidecar's state on `database`, without a server, reading time from `clock`.
async fn state_on(database: &TestDatabase, clock: &ManualClock, webhook: Option<&str>) -> AppState {
    let config = Config {
        database_url: database.url.as_str().into(),
        cleanup_interval: None,
        low_stock_check_interval: None,
        low_stock_webhook: webhook
            .map(|url| AlertWebhookConfig { url: Secret::new(url), secret: Secret::new(ALERT_SECRET) }),
        ..Config::default()
    };
    open_state(config, Arc::new(clock.clone())).await.expect("opens").state
}

fn restock(units: i64, threshold: u32) -> MovementRequest {
    MovementRequest {
        product: "runner".into(),
        size: "42".into(),
        kind: MovementType::Restock,
        quantity: SignedQuantity::new(units).expect("quantity"),
        reason: "Delivery".into(),
        reference: None,
        expected_stock: None,
        low_stock_threshold: Some(Quantity::new(threshold).expect("threshold")),
        origin: MovementOrigin::Sidecar,
    }
}

async fn reserve(store: &Ledger, reference: &str, units: u32, ttl_seconds: u32, now: Timestamp) {
    let line = CartLine { product: "runner".into(), size: "42".into(), quantity: f64::from(units) };
    let ttl = ReservationTtl::from_seconds(ttl_seconds).expect("ttl");
    store.reserve(reference, &[line], ttl, now).await.expect("reserve");
}

/// What the alert webhook received: headers and bodies, in order.
type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A webhook on 127.0.0.1 that answers 500 to its first `failures` requests and 200 after.
async fn webhook_receiver(failures: usize) -> (String, Received) {
    let received: Received = Arc::default();
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                let mut list = kept.lock().expect("lock");
                list.push((headers, body));
                if list.len() <= failures { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/alerts", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test]
async fn each_crossing_is_alerted_once_and_posted_signed_until_the_webhook_accepts_it() {
    let database = TestDatabase::new().await;
    let clock = ManualClock::new(Timestamp::parse_rfc3339(START).expect("start"));
    let (url, received) = webhook_receiver(1).await;
    let state = state_on(&database, &clock, Some(&url)).await;
    let store = &*state.ledger;
    let now = || stock_sidecar::clock::Clock::now(&clock);

    store.record_movement(restock(5, 2), now()).await.expect("restock");
    assert!(check(&state).await.expect("check").is_empty(), "5 available, threshold 2: in stock");
    reserve(store, "pi_three", 3, 60, now()).await;
    let states =
        |alerts: Vec<stock_sidecar::store::StockAlert>| alerts.iter().map(|alert| alert.state()).collect::<Vec<_>>();
    assert_eq!(states(check(&state).await.expect("check")), [StockState::Low]);
    assert!(check(&state).await.expect("check").is_empty(), "once per crossing");
    reserve(store, "pi_two", 2, 3600, now()).await;
    assert_eq!(states(check(&state).await.expect("check")), [StockState::OutOfStock]);
    // pi_three lapses at its expiry instant, with no write: 3 of 5 available again.
    clock.advance_seconds(61);
    assert_eq!(states(check(&state).await.expect("check")), [StockState::InStock]);

    // The first POST fails (500) and waits for its retry; the others are accepted at once.
    let (webhook, http) = (state.config.low_stock_webhook.clone().expect("set"), http());
    assert_eq!(store.monitoring(now()).await.expect("figures").alerts.undelivered, 3);
    assert_eq!(deliver(&state, &webhook, &http).await.expect("deliver"), 2);
    let figures = store.monitoring(now()).await.expect("figures");
    assert_eq!(figures.alerts.undelivered, 1);
    assert!(figures.alerts.last_error.is_some_and(|error| error.contains("500")), "the failure is shown");
    assert_eq!(deliver(&state, &webhook, &http).await.expect("deliver"), 0, "not due yet");
    clock.advance_seconds(2);
    assert_eq!(deliver(&state, &webhook, &http).await.expect("deliver"), 1);
    clock.advance_seconds(600);
    assert_eq!(deliver(&state, &webhook, &http).await.expect("deliver"), 0, "each delivered once");
    assert_eq!(store.monitoring(now()).await.expect("figures").alerts, Default::default());

    let received = received.lock().expect("lock").clone();
    let ids: Vec<_> =
        received.iter().map(|(headers, _)| headers[ALERT_ID_HEADER].to_str().expect("id").to_owned()).collect();
    assert_eq!(ids, ["1", "2", "3", "1"], "the first alert again after its retry, with the same id");
    for (headers, body) in &received {
        let header = headers[SIGNATURE_HEADER].to_str().expect("signature");
        let seconds: i64 = header.trim_start_matches("t=").split(',').next().expect("t").parse().expect("seconds");
        assert_eq!(header, signature(ALERT_SECRET, seconds, body.as_bytes()), "signed with the secret");
    }
    let bodies: Vec<serde_json::Value> =
        received.iter().map(|(_, body)| serde_json::from_str(body).expect("JSON")).collect();
    assert_eq!(bodies[0]["event"], "stock.low");
    assert_eq!((bodies[0]["availableStock"].clone(), bodies[0]["lowStockThreshold"].clone()), (2.into(), 2.into()));
    assert_eq!(bodies[0]["text"], "Low stock: product runner size 42 has 2 available (threshold 2)");
    assert_eq!((bodies[1]["event"].clone(), bodies[1]["previousState"].clone()), ("stock.out".into(), "low".into()));
    assert_eq!(bodies[2]["event"], "stock.back_in_stock");
    assert_eq!(bodies[2]["availableStock"], 3);
    assert_eq!(bodies[3], bodies[0], "a retry posts the same alert");
}

fn http() -> reqwest::Client {
    stock_sidecar::install_crypto_provider();
    stock_sidecar::alerts::webhook_client().expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sidecars_checking_at_once_record_each_crossing_once() {
    let database = TestDatabase::new().await;
    let clock = ManualClock::new(Timestamp::parse_rfc3339(START).expect("start"));
    let first = state_on(&database, &clock, None).await;
    let second = state_on(&database, &clock, None).await;
    let now = stock_sidecar::clock::Clock::now(&clock);
    for product in 0..20 {
        let mut request = restock(1, 0);
        request.product = format!("boot-{product}");
        first.ledger.record_movement(request, now).await.expect("restock");
        let line = CartLine { product: format!("boot-{product}"), size: "42".into(), quantity: 1.0 };
        first.ledger.reserve(&format!("pi_{product}"), &[line], ReservationTtl::DEFAULT, now).await.expect("reserve");
    }
    let (from_first, from_second) = tokio::join!(check(&first), check(&second));
    let (from_first, from_second) = (from_first.expect("check"), from_second.expect("check"));
    assert_eq!(from_first.len() + from_second.len(), 20, "20 sizes out of stock, each alerted once");
    assert!(from_first.iter().chain(&from_second).all(|alert| alert.state() == StockState::OutOfStock));

    // Without a webhook the alerts are recorded as delivered: nothing waits to be posted.
    let later = Timestamp::from_unix_millis(now.unix_millis() + 1000).expect("later");
    assert!(first.ledger.claim_stock_alerts(later, later, 100).await.expect("claim").is_empty());
}

#[tokio::test]
async fn a_webhook_that_redirects_is_a_failed_delivery_and_its_url_is_shown_nowhere() {
    let database = TestDatabase::new().await;
    let clock = ManualClock::new(Timestamp::parse_rfc3339(START).expect("start"));
    // The redirect's target would accept anything; it must receive nothing.
    let (target, received) = webhook_receiver(0).await;
    let redirecting = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move || {
            let target = target.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [(axum::http::header::LOCATION, target)]) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/alerts?token=slack-like-credential", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, redirecting).await });
    let state = state_on(&database, &clock, Some(&url)).await;
    let store = &*state.ledger;
    let now = || stock_sidecar::clock::Clock::now(&clock);

    store.record_movement(restock(1, 2), now()).await.expect("restock");
    assert_eq!(check(&state).await.expect("check").len(), 1);
    let webhook = state.config.low_stock_webhook.clone().expect("set");
    assert_eq!(deliver(&state, &webhook, &http()).await.expect("deliver"), 0);
    assert!(received.lock().expect("lock").is_empty(), "the redirect was not followed");
    let figures = store.monitoring(now()).await.expect("figures");
    assert_eq!(figures.alerts.undelivered, 1, "kept for its retry");
    let error = figures.alerts.last_error.expect("the failure is shown");
    assert!(error.contains("307"), "{error}");
    assert!(!error.contains("slack-like-credential") && !error.contains("127.0.0.1"), "{error}");
    assert!(!format!("{:?}", state.config).contains("slack-like-credential"));
}
