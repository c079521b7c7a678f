//! Two stores on one ledger, as two sidecars sharing one database (PostgreSQL's reason to be; SQLite's own
//! locking gives the same answers between processes on one machine): decisions made on both at once never sell
//! more than the stock, nor apply an event or a movement twice, nor release a reservation twice.

use std::sync::Arc;

use stock_core::{CartLine, MovementType, ReservationTtl, SignedQuantity, Timestamp};
use stock_sidecar::ledger::Ledger;
use stock_sidecar::store::{
    EventOutcome, MovementOrigin, MovementOutcome, MovementRequest, ReserveOutcome, StripeAction, StripeEventRecord,
};
use stock_wire::MoneyChange;

use crate::helpers::{TestDatabase, open_store};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_795_000_000_000 + seconds * 1000).expect("instant")
}

/// Two stores on a fresh ledger.
async fn two_stores() -> ([Arc<Ledger>; 2], TestDatabase) {
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

async fn stock_of(store: &Ledger, product: &str, now: Timestamp) -> (u32, u32) {
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
        assert_eq!(stock_of(&second, product, at(2)).await, (20, 20));
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
    assert_eq!(stock_of(&first, "boot", after_expiry).await, (20, 0));
}

/// Every reference asked of both stores at once: first with the same cart (a retry that went to the other
/// sidecar), then with carts of different sizes. Those lock different sizes, so both stores read the reference as
/// free; on PostgreSQL, where reservations are decided in batches, the store that loses the race has its whole
/// batch fail on the reference's key and runs its requests again one by one. No request may see an error, and
/// each reference holds one cart's units.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_reference_asked_of_two_stores_at_once_reserves_once_and_batches_that_lose_the_race_run_again() {
    let ([first, second], _database) = two_stores().await;
    for size in ["42", "43"] {
        let mut restock = movement("boot", 1000, None);
        restock.size = size.to_owned();
        first.record_movement(restock, at(0)).await.expect("restock");
    }
    let ask_both = |buyers: std::ops::Range<u32>, sizes: [&'static str; 2]| {
        let mut asked = tokio::task::JoinSet::new();
        for buyer in buyers {
            for (store, size) in [first.clone(), second.clone()].into_iter().zip(sizes) {
                asked.spawn(async move {
                    let lines = [CartLine { product: "boot".to_owned(), size: size.to_owned(), quantity: 1.0 }];
                    let ttl = ReservationTtl::from_seconds(600).expect("ttl");
                    store.reserve(&format!("pi_{buyer}"), &lines, ttl, at(1)).await
                });
            }
        }
        asked
    };
    let mut held_units = 0;
    for (buyers, sizes, repeated) in [(0..60, ["42", "42"], "Existing"), (60..120, ["42", "43"], "ReferenceConflict")] {
        let mut asked = ask_both(buyers, sizes);
        let (mut created, mut answered_again) = (0, 0);
        while let Some(answer) = asked.join_next().await {
            match answer.expect("task").expect("no store failure reaches a buyer") {
                ReserveOutcome::Created(record) => {
                    created += 1;
                    held_units += record.items[0].quantity.get();
                }
                ReserveOutcome::Existing(_) if repeated == "Existing" => answered_again += 1,
                ReserveOutcome::ReferenceConflict(_) if repeated == "ReferenceConflict" => answered_again += 1,
                other => unreachable!("expected Created or {repeated}: {other:?}"),
            }
        }
        assert_eq!((created, answered_again), (60, 60), "each reference reserved once, answered once more");
    }
    let sizes = second.product_stock("boot", at(2)).await.expect("stock");
    let reserved: u32 = sizes.iter().map(|size| size.level.reserved().get()).sum();
    assert_eq!((sizes.len(), reserved), (2, held_units));
}

/// PostgreSQL's reservation batches: six reservations queued while the batcher waits on a lock form one batch, in
/// which one (`pi_poison`) fails at the database (a trigger the test adds refuses it). The batch is rolled back and
/// its reservations run again one by one: the five others are reserved, the poisoned one is answered its error
/// and leaves no trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_batch_with_one_failing_reservation_commits_the_others_and_leaves_no_trace_of_it() {
    use sqlx::Connection;
    let database = TestDatabase::new().await;
    if !database.is_postgres() {
        return; // SQLite's writer: group_commit's own tests.
    }
    let store = open_store(&database, None).await;
    for size in ["42", "43"] {
        let mut restock = movement("boot", 10, None);
        restock.size = size.to_owned();
        store.record_movement(restock, at(0)).await.expect("restock");
    }
    let mut admin = sqlx::PgConnection::connect(&database.url).await.expect("connect");
    sqlx::query(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.reference = 'pi_poison' THEN RAISE EXCEPTION 'poisoned reservation'; END IF; RETURN NEW; END $$",
    )
    .execute(&mut admin)
    .await
    .expect("function");
    sqlx::query(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON reservations FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    )
    .execute(&mut admin)
    .await
    .expect("trigger");
    // Hold size 43 so that the batcher's first decision waits, and the next six queue into one batch behind it.
    let mut holder = sqlx::PgConnection::connect(&database.url).await.expect("connect");
    sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
    sqlx::query("SELECT 1 FROM sizes WHERE size = '43' FOR UPDATE").execute(&mut holder).await.expect("lock");
    let reserve = |reference: &str, size: &str| {
        let (store, reference, size) = (store.clone(), reference.to_owned(), size.to_owned());
        tokio::spawn(async move {
            let lines = [CartLine { product: "boot".to_owned(), size, quantity: 1.0 }];
            store.reserve(&reference, &lines, ReservationTtl::from_seconds(600).expect("ttl"), at(1)).await
        })
    };
    let waiting = reserve("pi_first", "43");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let queued: Vec<_> = ["pi_1", "pi_2", "pi_poison", "pi_3", "pi_4", "pi_5"]
        .into_iter()
        .map(|reference| (reference, reserve(reference, "42")))
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::query("COMMIT").execute(&mut holder).await.expect("commit");

    assert!(matches!(waiting.await.expect("task"), Ok(ReserveOutcome::Created(_))));
    for (reference, answer) in queued {
        let outcome = answer.await.expect("task");
        if reference == "pi_poison" {
            let error = outcome.expect_err("the poisoned reservation fails");
            assert!(error.to_string().contains("poisoned reservation"), "{error}");
        } else {
            assert!(matches!(outcome, Ok(ReserveOutcome::Created(_))), "{reference}: {outcome:?}");
        }
    }
    assert_eq!(store.reservation("pi_poison").await.expect("read"), None, "no trace of the failed one");
    let (items,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM reservation_items WHERE reference = 'pi_poison'")
        .fetch_one(&mut admin)
        .await
        .expect("count");
    assert_eq!(items, 0);
    assert_eq!(stock_of(&store, "boot", at(2)).await, (10, 5), "the five others hold their units");
}

/// PostgreSQL's Stripe event batches, as the reservation batches above: six payments queued while the batcher waits
/// on a lock form one batch, in which one (`evt_poison`) fails at the database. The batch is rolled back and its
/// events run again one by one: the five others sell their reservations once, the poisoned one is answered its
/// error and leaves no trace (its event unrecorded, its reservation still active, nothing sold).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_batch_with_one_failing_stripe_event_applies_the_others_and_leaves_no_trace_of_it() {
    use sqlx::Connection;
    let database = TestDatabase::new().await;
    if !database.is_postgres() {
        return;
    }
    let store = open_store(&database, None).await;
    let ttl = ReservationTtl::from_seconds(600).expect("ttl");
    for size in ["42", "43"] {
        let mut restock = movement("boot", 10, None);
        restock.size = size.to_owned();
        store.record_movement(restock, at(0)).await.expect("restock");
    }
    let buyers = ["pi_1", "pi_2", "pi_poison", "pi_3", "pi_4", "pi_5"];
    for (reference, size) in buyers.iter().map(|reference| (*reference, "42")).chain([("pi_first", "43")]) {
        let lines = [CartLine { product: "boot".to_owned(), size: size.to_owned(), quantity: 1.0 }];
        let outcome = store.reserve(reference, &lines, ttl, at(1)).await.expect("reserve");
        assert!(matches!(outcome, ReserveOutcome::Created(_)), "{reference}: {outcome:?}");
    }
    let mut admin = sqlx::PgConnection::connect(&database.url).await.expect("connect");
    for statement in [
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.id = 'evt_poison' THEN RAISE EXCEPTION 'poisoned event'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON stripe_events FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    ] {
        sqlx::query(statement).execute(&mut admin).await.expect("trigger");
    }
    let mut holder = sqlx::PgConnection::connect(&database.url).await.expect("connect");
    sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
    sqlx::query("SELECT 1 FROM sizes WHERE size = '43' FOR UPDATE").execute(&mut holder).await.expect("lock");
    let pay = |reference: &str| {
        let (store, reference) = (store.clone(), reference.to_owned());
        tokio::spawn(async move {
            let id = format!("evt_{}", reference.trim_start_matches("pi_"));
            let event = StripeEventRecord { id, kind: "payment_intent.succeeded".into() };
            let action = StripeAction::Commit { reference, order_reference: None, marked: true, payment_intent: None };
            store.apply_stripe_event(&event, &action, at(2)).await
        })
    };
    let waiting = pay("pi_first");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let queued: Vec<_> = buyers.into_iter().map(|reference| (reference, pay(reference))).collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::query("COMMIT").execute(&mut holder).await.expect("commit");

    assert_eq!(waiting.await.expect("task").expect("applied"), EventOutcome::Committed { late: false });
    for (reference, answer) in queued {
        let outcome = answer.await.expect("task");
        if reference == "pi_poison" {
            let error = outcome.expect_err("the poisoned event fails");
            assert!(error.to_string().contains("poisoned event"), "{error}");
        } else {
            assert_eq!(outcome.expect("applied"), EventOutcome::Committed { late: false }, "{reference}");
        }
    }
    let poisoned = store.reservation("pi_poison").await.expect("read").expect("still there");
    assert_eq!(poisoned.status, stock_core::ReservationStatus::Active, "no trace of the failed one");
    let (events, sales): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM stripe_events WHERE id = 'evt_poison'), \
           (SELECT COUNT(*) FROM movements WHERE reference = 'pi_poison')",
    )
    .fetch_one(&mut admin)
    .await
    .expect("count");
    assert_eq!((events, sales), (0, 0));
    assert_eq!(stock_of(&store, "boot", at(3)).await, (5, 1), "five sold, the poisoned one still held");
}

/// A PostgreSQL batch that asks twice for a reference reserved before (a double submit) answers both with that
/// reservation, its items as they are, and reserves the batch's new reference beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_batch_asking_twice_for_an_existing_reference_answers_it_twice() {
    use sqlx::Connection;
    let database = TestDatabase::new().await;
    if !database.is_postgres() {
        return; // SQLite decides one request after the other: `reservations::*` covers a repeated request.
    }
    let store = open_store(&database, None).await;
    for size in ["42", "43"] {
        let mut restock = movement("boot", 10, None);
        restock.size = size.to_owned();
        store.record_movement(restock, at(0)).await.expect("restock");
    }
    let reserve = |reference: &str, size: &str| {
        let (store, reference, size) = (store.clone(), reference.to_owned(), size.to_owned());
        tokio::spawn(async move {
            let lines = [CartLine { product: "boot".to_owned(), size, quantity: 1.0 }];
            store.reserve(&reference, &lines, ReservationTtl::from_seconds(600).expect("ttl"), at(1)).await
        })
    };
    assert!(matches!(reserve("pi_double", "42").await.expect("task"), Ok(ReserveOutcome::Created(_))));
    let commits_before = store.monitoring(at(1)).await.expect("figures").ledger_writes.commits;
    // Size 43 held, so that the next three queue into one batch behind the first.
    let mut holder = sqlx::PgConnection::connect(&database.url).await.expect("connect");
    sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
    sqlx::query("SELECT 1 FROM sizes WHERE size = '43' FOR UPDATE").execute(&mut holder).await.expect("lock");
    let waiting = reserve("pi_first", "43");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let queued = [reserve("pi_double", "42"), reserve("pi_double", "42"), reserve("pi_new", "42")];
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::query("COMMIT").execute(&mut holder).await.expect("commit");

    assert!(matches!(waiting.await.expect("task"), Ok(ReserveOutcome::Created(_))));
    let [first, second, new] = queued;
    for repeated in [first, second] {
        match repeated.await.expect("task").expect("answered") {
            ReserveOutcome::Existing(record) => assert_eq!(record.items.len(), 1, "{record:?}"),
            other => unreachable!("the reservation made before: {other:?}"),
        }
    }
    assert!(matches!(new.await.expect("task"), Ok(ReserveOutcome::Created(_))));
    assert_eq!(stock_of(&store, "boot", at(2)).await, (10, 2));
    let commits = store.monitoring(at(2)).await.expect("figures").ledger_writes.commits - commits_before;
    assert_eq!(commits, 2, "the first alone, then the three in one batch: none ran again one by one");
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
                let action = StripeAction::Commit {
                    reference: format!("pi_{buyer}"),
                    order_reference: None,
                    marked: true,
                    payment_intent: None,
                };
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
    assert_eq!(stock_of(&first, "boot", at(3)).await, (0, 0), "30 sold, once each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_refund_and_its_success_on_two_stores_at_once_never_both_release_and_sell() {
    let ([first, second], _database) = two_stores().await;
    first.record_movement(movement("boot", 40, None), at(0)).await.expect("restock");
    for buyer in 0..40 {
        let outcome = second.reserve(&format!("pi_{buyer}"), &[line("boot")], ReservationTtl::DEFAULT, at(1)).await;
        assert!(matches!(outcome.expect("reserve"), ReserveOutcome::Created(_)));
    }
    let mut deliveries = tokio::task::JoinSet::new();
    for buyer in 0..40 {
        let (refunds, pays) =
            if buyer % 2 == 0 { (first.clone(), second.clone()) } else { (second.clone(), first.clone()) };
        deliveries.spawn(async move {
            let event = StripeEventRecord { id: format!("evt_refund_{buyer}"), kind: "charge.refunded".into() };
            let action = StripeAction::RecordMoney {
                payment_intent: format!("pi_{buyer}"),
                change: MoneyChange::Refunded { amount: 4990, refunded: 4990 },
                restock_on_full_refund: false,
            };
            (buyer, true, refunds.apply_stripe_event(&event, &action, at(2)).await)
        });
        deliveries.spawn(async move {
            let event = StripeEventRecord { id: format!("evt_paid_{buyer}"), kind: "payment_intent.succeeded".into() };
            let action = StripeAction::Commit {
                reference: format!("pi_{buyer}"),
                order_reference: None,
                marked: true,
                payment_intent: None,
            };
            (buyer, false, pays.apply_stripe_event(&event, &action, at(2)).await)
        });
    }
    let mut outcomes = vec![(None, None); 40];
    while let Some(delivery) = deliveries.join_next().await {
        let (buyer, refund, outcome) = delivery.expect("task");
        let outcome = outcome.expect("no store failure");
        if refund { outcomes[buyer].0 = Some(outcome) } else { outcomes[buyer].1 = Some(outcome) }
    }
    let mut sold = 0;
    for (buyer, pair) in outcomes.into_iter().enumerate() {
        match pair {
            // The refund came first: released, and the success took nothing.
            (
                Some(EventOutcome::Conflict { kind: "refunded_before_sale" }),
                Some(EventOutcome::Conflict { kind: "sale_after_refund" }),
            ) => {}
            // The success came first: sold, and the refund after it is only recorded.
            (Some(EventOutcome::Recorded), Some(EventOutcome::Committed { late: false })) => sold += 1,
            other => unreachable!("pi_{buyer}: {other:?}"),
        }
    }
    assert_eq!(stock_of(&first, "boot", at(3)).await, (40 - sold, 0), "each unit sold at most once, none sold late");
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
    assert_eq!(stock_of(&second, "boot", at(20)).await, (50, 0));
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
    let metrics = std::sync::Arc::new(stock_sidecar::metrics::Metrics::new());
    let unnamed = stock_sidecar::ledger::Ledger::new(unnamed, metrics);
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
