//! The outbox behind the Payload projection, at the store: what each ledger change queues, how changes to one
//! product coalesce and keep their order, and how a failing lane waits without holding up the others.

use std::sync::Arc;
use std::time::Duration;

use stock_core::{CartLine, MovementType, ReservationTtl, SignedQuantity, Timestamp};
use stock_sidecar::ledger::Ledger;
use stock_sidecar::store::{MovementOrigin, MovementOutcome, MovementRequest, OutboxTopic, ProjectionSettings};

use crate::helpers::{TestDatabase, open_store};

const GRACE: Duration = Duration::from_secs(30);

async fn store(projection: bool) -> (Arc<Ledger>, TestDatabase) {
    let database = TestDatabase::new().await;
    let settings = projection.then_some(ProjectionSettings { payload_save_grace: GRACE });
    (open_store(&database, settings).await, database)
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_795_000_000_000 + seconds * 1000).expect("instant")
}

async fn restock(store: &Ledger, product: &str, size: &str, units: i64, origin: MovementOrigin, now: Timestamp) -> i64 {
    let request = MovementRequest {
        product: product.to_owned(),
        size: size.to_owned(),
        kind: MovementType::Restock,
        quantity: SignedQuantity::new(units).expect("quantity"),
        reason: "Delivery".to_owned(),
        reference: None,
        expected_stock: None,
        low_stock_threshold: None,
        origin,
    };
    match store.record_movement(request, now).await.expect("recorded") {
        MovementOutcome::Applied(record) => record.id,
        other => unreachable!("restock refused: {other:?}"),
    }
}

async fn reserve(store: &Ledger, reference: &str, product: &str, size: &str, now: Timestamp) {
    let lines = [CartLine { product: product.to_owned(), size: size.to_owned(), quantity: 1.0 }];
    store.reserve(reference, &lines, ReservationTtl::DEFAULT, now).await.expect("reserved");
}

#[tokio::test]
async fn without_payload_nothing_is_queued() {
    let (store, _directory) = store(false).await;
    restock(&store, "1", "42", 3, MovementOrigin::Sidecar, at(0)).await;
    reserve(&store, "pi_1", "1", "42", at(1)).await;
    assert!(store.due_lanes(at(2), 10).await.expect("lanes").is_empty());
    assert_eq!(store.monitoring(at(2)).await.expect("figures").outbox.backlog, 0);
}

#[tokio::test]
async fn changes_to_one_product_coalesce_into_one_row_and_keep_their_order() {
    let (store, _directory) = store(true).await;
    let first = restock(&store, "1", "42", 3, MovementOrigin::Sidecar, at(0)).await;
    let second = restock(&store, "1", "43", 2, MovementOrigin::Sidecar, at(1)).await;
    reserve(&store, "pi_1", "1", "42", at(2)).await;

    let lanes = store.due_lanes(at(3), 10).await.expect("lanes");
    assert_eq!(lanes, ["product:1", "reservation:pi_1"]);
    let entries = store.lane_entries("product:1", 10).await.expect("entries");
    let order: Vec<(OutboxTopic, &str)> = entries.iter().map(|entry| (entry.topic, entry.subject.as_str())).collect();
    let (first, second) = (first.to_string(), second.to_string());
    assert_eq!(
        order,
        [(OutboxTopic::Product, "1"), (OutboxTopic::Movement, &*first), (OutboxTopic::Movement, &*second)]
    );
    assert_eq!(entries[0].revision, 3, "two restocks and a reservation: one product row");
    assert_eq!(entries[0].created_at, at(0), "the row remembers its oldest change");

    let figures = store.monitoring(at(10)).await.expect("figures");
    assert_eq!(figures.outbox.backlog, 4);
    assert_eq!(figures.outbox.oldest_change_at, Some(at(0)));
}

#[tokio::test]
async fn a_delivery_that_raced_a_change_stays_for_another_delivery() {
    let (store, _directory) = store(true).await;
    restock(&store, "1", "42", 3, MovementOrigin::Sidecar, at(0)).await;
    let product = store.lane_entries("product:1", 1).await.expect("entries").remove(0);
    // While Payload is being written, a reservation changes the product again.
    reserve(&store, "pi_1", "1", "42", at(1)).await;
    assert!(!store.outbox_delivered(&product).await.expect("delivered"), "the newer change must still be delivered");
    let again = store.lane_entries("product:1", 1).await.expect("entries").remove(0);
    assert_eq!((again.id, again.revision), (product.id, product.revision + 1));
    assert!(store.outbox_delivered(&again).await.expect("delivered"));
    let left: Vec<OutboxTopic> =
        store.lane_entries("product:1", 10).await.expect("entries").iter().map(|entry| entry.topic).collect();
    assert_eq!(left, [OutboxTopic::Movement]);
}

#[tokio::test]
async fn a_failing_lane_waits_for_its_retry_without_holding_up_the_others() {
    let (store, _directory) = store(true).await;
    restock(&store, "1", "42", 3, MovementOrigin::Sidecar, at(0)).await;
    restock(&store, "2", "42", 3, MovementOrigin::Sidecar, at(0)).await;
    let head = store.lane_entries("product:1", 1).await.expect("entries").remove(0);
    store.outbox_failed(&head, "Payload is unreachable", at(10)).await.expect("recorded");
    // A later change to the failing product waits with it, so its writes stay in order.
    restock(&store, "1", "43", 1, MovementOrigin::Sidecar, at(1)).await;

    assert_eq!(store.due_lanes(at(2), 10).await.expect("lanes"), ["product:2"]);
    assert_eq!(store.due_lanes(at(10), 10).await.expect("lanes"), ["product:1", "product:2"]);
    let figures = store.monitoring(at(2)).await.expect("figures");
    assert_eq!(figures.outbox.failing, 1);
    assert_eq!(figures.outbox.last_error.as_deref(), Some("Payload is unreachable"));
    let retried = store.lane_entries("product:1", 1).await.expect("entries").remove(0);
    assert_eq!(retried.attempts, 1);
}

#[tokio::test]
async fn a_movement_entered_in_payload_waits_for_payload_to_save_its_document() {
    let (store, _directory) = store(true).await;
    let id = restock(&store, "1", "42", 3, MovementOrigin::Payload, at(0)).await;
    let lane = format!("movement:{id}");
    assert_eq!(store.due_lanes(at(1), 10).await.expect("lanes"), ["product:1"], "the sizes go at once");
    let figures = store.monitoring(at(1)).await.expect("figures");
    assert_eq!((figures.outbox.backlog, figures.outbox.awaiting_payload_save), (1, 1));
    let after_grace = at(0).checked_add_millis(30_000).expect("instant");
    assert!(store.due_lanes(after_grace, 10).await.expect("lanes").contains(&lane));
}

#[tokio::test]
async fn a_lane_is_delivered_by_one_claimant_at_a_time_and_taken_over_when_its_claim_lapses() {
    use stock_sidecar::store::LaneClaim;

    let (store, _directory) = store(true).await;
    restock(&store, "1", "42", 3, MovementOrigin::Sidecar, at(0)).await;
    let first = LaneClaim { owner: "sidecar-a".to_owned(), until: at(30) };
    let second = LaneClaim { owner: "sidecar-b".to_owned(), until: at(31) };

    assert!(store.claim_lane("product:1", &first, at(1)).await.expect("claim"));
    assert!(!store.claim_lane("product:1", &second, at(1)).await.expect("claim"), "the lane is taken");
    assert!(store.due_lanes(at(1), 10).await.expect("lanes").is_empty(), "a claimed lane is not offered");
    assert!(store.claim_lane("product:1", &first, at(2)).await.expect("claim"), "its holder may renew it");

    // The first claimant stops answering: once its claim lapses, the lane is offered and taken over.
    assert_eq!(store.due_lanes(at(30), 10).await.expect("lanes"), ["product:1"]);
    assert!(store.claim_lane("product:1", &second, at(30)).await.expect("claim"));
    store.release_lane("product:1", "sidecar-a").await.expect("a stale release");
    assert!(!store.claim_lane("product:1", &first, at(30)).await.expect("claim"), "a late release frees nothing");

    store.release_lane("product:1", "sidecar-b").await.expect("release");
    assert!(store.claim_lane("product:1", &first, at(31)).await.expect("claim"), "released: free at once");
}
