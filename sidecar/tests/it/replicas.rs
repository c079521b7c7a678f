//! Two stores on one ledger, as two sidecars sharing one database (PostgreSQL's reason to be; SQLite's own
//! locking gives the same answers between processes on one machine): decisions made on both at once never sell
//! more than the stock, nor apply an event or a movement twice, nor release a reservation twice.

use std::sync::Arc;

use stock_core::{CartLine, MovementType, ReservationTtl, SignedQuantity, Timestamp};
use stock_sidecar::store::{
    EventOutcome, MovementOrigin, MovementOutcome, MovementRequest, ReserveOutcome, Store, StripeAction,
    StripeEventRecord,
};

use crate::helpers::{TestDatabase, open_store};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_795_000_000_000 + seconds * 1000).expect("instant")
}

/// Two stores on a fresh ledger.
async fn two_stores() -> ([Arc<dyn Store>; 2], TestDatabase) {
    let database = TestDatabase::new().await;
    let first = open_store(&database, None).await;
    let second = open_store(&database, None).await;
    ([first, second], database)
}

fn movement(product: &str, units: i64, reference: Option<&str>) -> MovementRequest {
    MovementRequest {
        product: product.to_owned(),
        size: "42".to_owned(),
        kind: MovementType::Restock,
        quantity: SignedQuantity::new(units).expect("quantity"),
        reason: "Delivery".to_owned(),
        reference: reference.map(str::to_owned),
        expected_stock: None,
        low_stock_threshold: None,
        origin: MovementOrigin::Sidecar,
    }
}

fn line(product: &str) -> CartLine {
    CartLine { product: product.to_owned(), size: "42".to_owned(), quantity: 1.0 }
}

async fn stock_of(store: &dyn Store, product: &str, now: Timestamp) -> (u32, u32) {
    let sizes = store.product_stock(product, now).await.expect("stock");
    (sizes[0].level.stock().get(), sizes[0].level.reserved().get())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyers_on_two_stores_get_exactly_the_stock_and_cleanup_on_both_releases_each_reservation_once() {
    let ([first, second], _database) = two_stores().await;
    for product in ["boot", "sock"] {
        first.record_movement(movement(product, 20, None), at(0)).await.expect("restock");
    }

    // 120 carts of one boot and one sock, half listing them in the other order, half through each store.
    let mut buyers = tokio::task::JoinSet::new();
    for buyer in 0..120 {
        let store = if buyer % 2 == 0 { first.clone() } else { second.clone() };
        let lines = if buyer % 4 < 2 { [line("boot"), line("sock")] } else { [line("sock"), line("boot")] };
        buyers.spawn(async move {
            let ttl = ReservationTtl::from_seconds(600).expect("ttl");
            store.reserve(&format!("pi_{buyer}"), &lines, ttl, at(1)).await
        });
    }
    let mut reserved = 0;
    while let Some(outcome) = buyers.join_next().await {
        match outcome.expect("task").expect("no store failure, not even a deadlock") {
            ReserveOutcome::Created(_) => reserved += 1,
            ReserveOutcome::Rejected(_) => {}
            other => unreachable!("a fresh reference: {other:?}"),
        }
    }
    assert_eq!(reserved, 20);
    for product in ["boot", "sock"] {
        assert_eq!(stock_of(&*second, product, at(2)).await, (20, 20));
    }

    // Cleanup runs on both stores at once, after every reservation expired.
    let after_expiry = at(1 + 600);
    let (from_first, from_second) =
        tokio::join!(first.release_expired(after_expiry), second.release_expired(after_expiry));
    let mut released = from_first.expect("cleanup");
    released.extend(from_second.expect("cleanup"));
    released.sort();
    let before = released.len();
    released.dedup();
    assert_eq!((before, released.len()), (20, 20), "each reservation released once");
    assert!(first.release_expired(after_expiry).await.expect("cleanup").is_empty());
    assert_eq!(stock_of(&*first, "boot", after_expiry).await, (20, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_stripe_event_delivered_to_two_stores_at_once_is_applied_once() {
    let ([first, second], _database) = two_stores().await;
    first.record_movement(movement("boot", 30, None), at(0)).await.expect("restock");
    for buyer in 0..30 {
        let outcome = second.reserve(&format!("pi_{buyer}"), &[line("boot")], ReservationTtl::DEFAULT, at(1)).await;
        assert!(matches!(outcome.expect("reserve"), ReserveOutcome::Created(_)));
    }

    let mut deliveries = tokio::task::JoinSet::new();
    for buyer in 0..30 {
        for store in [first.clone(), second.clone()] {
            deliveries.spawn(async move {
                let event = StripeEventRecord { id: format!("evt_{buyer}"), kind: "payment_intent.succeeded".into() };
                let action =
                    StripeAction::Commit { reference: format!("pi_{buyer}"), order_reference: None, marked: true };
                (buyer, store.apply_stripe_event(&event, &action, at(2)).await)
            });
        }
    }
    let mut applied = vec![0; 30];
    while let Some(delivery) = deliveries.join_next().await {
        let (buyer, outcome) = delivery.expect("task");
        match outcome.expect("no store failure") {
            EventOutcome::Committed { late: false } => applied[buyer] += 1,
            EventOutcome::Duplicate => {}
            other => unreachable!("pi_{buyer}: {other:?}"),
        }
    }
    assert_eq!(applied, vec![1; 30], "every event applied exactly once");
    assert_eq!(stock_of(&*first, "boot", at(3)).await, (0, 0), "30 sold, once each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_movement_asked_of_two_stores_at_once_is_recorded_once() {
    let ([first, second], _database) = two_stores().await;
    let mut requests = tokio::task::JoinSet::new();
    for round in 0..10 {
        for store in [first.clone(), second.clone()] {
            // The first rounds create the size: two stores adding the same new size at once.
            let request = movement("boot", 5, Some(&format!("delivery-{round}")));
            requests.spawn(async move { store.record_movement(request, at(round)).await });
        }
    }
    let (mut applied, mut replayed) = (0, 0);
    while let Some(outcome) = requests.join_next().await {
        match outcome.expect("task").expect("no store failure") {
            MovementOutcome::Applied(_) => applied += 1,
            MovementOutcome::Replayed(_) => replayed += 1,
            other => unreachable!("{other:?}"),
        }
    }
    assert_eq!((applied, replayed), (10, 10));
    assert_eq!(stock_of(&*second, "boot", at(20)).await, (50, 0));
}

/// Operators tell replicas apart in `pg_stat_activity` by the `application_name` of each one's DATABASE_URL (the
/// suite relies on it too, to end a frozen test's connections before dropping its schema); without one the
/// connections say `stock-sidecar`.
#[tokio::test]
async fn the_database_urls_application_name_names_the_connections() {
    use sqlx::Connection;
    let database = TestDatabase::new().await;
    let Some(server) = crate::helpers::postgres_server() else {
        return; // SQLite has no connections to name.
    };
    let named = open_store(&database, None).await;
    named.monitoring(at(0)).await.expect("a read");
    let unnamed_url = database.url.split("&application_name=").next().expect("the URL").to_owned();
    let unnamed = stock_sidecar::store::PostgresStore::connect(&unnamed_url, 1).await.expect("store opens");
    unnamed.monitoring(at(0)).await.expect("a read");

    let mut connection = sqlx::PgConnection::connect(&server).await.expect("connect");
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut connection)
    .await
    .expect("pg_stat_activity");
    let schema = database.url.rsplit("application_name=").next().expect("the name");
    assert!(names.iter().any(|name| name == schema), "the URL's name shows: {names:?}");
    assert!(names.iter().any(|name| name == "stock-sidecar"), "the default name shows: {names:?}");
}
