//! Refunds and disputes after the sale: Stripe's money events are recorded on the payment of their reservation,
//! never restock by themselves, and stop a payment refunded or disputed before its success from taking units,
//! whatever the order and however often they arrive.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, body_of, spawn_app, stripe_event};

const REPORT: &str = "/api/admin/clean-expired-reservations";
/// The amount of the fixtures' charge and PaymentIntent.
const CHARGED: u64 = 4990;

async fn reserve_one(app: &TestApp, reference: &str, quantity: u32) {
    let items = json!([{ "product": "runner", "size": "42", "quantity": quantity }]);
    body_of(app.reserve(reference, items).await, 201).await;
}

async fn reservation(app: &TestApp, reference: &str) -> Value {
    let response = app.api(Method::GET, &format!("/v1/reservations/{reference}")).send().await.expect("request");
    body_of(response, 200).await
}

async fn figures(app: &TestApp) -> (u64, u64) {
    let size = app.size_stock("runner", "42").await;
    (size["stock"].as_u64().unwrap_or(u64::MAX), size["reservedStock"].as_u64().unwrap_or(u64::MAX))
}

async fn deliver(app: &TestApp, payload: &str) -> Value {
    body_of(app.send_event(payload).await, 200).await
}

/// A checkout's event from the fixtures, under `event_id`, about `object_id`.
async fn checkout_event(app: &TestApp, fixture: &str, event_id: &str, object_id: &str) -> Value {
    deliver(app, &stripe_event(fixture, event_id, object_id)).await
}

/// A money event from the fixtures (charge.refunded, refund.*, charge.dispute.*) under `event_id`, naming
/// `payment_intent`, with `fields` of its object replaced.
fn money_event(fixture: &str, event_id: &str, payment_intent: &str, fields: Value) -> String {
    let path = format!("{}/tests/fixtures/stripe/{fixture}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    let mut event: Value = serde_json::from_str(&text).expect("fixture is JSON");
    event["id"] = json!(event_id);
    event["data"]["object"]["payment_intent"] = json!(payment_intent);
    if let (Some(object), Some(fields)) = (event["data"]["object"].as_object_mut(), fields.as_object()) {
        object.extend(fields.clone());
    }
    serde_json::to_string(&event).expect("serializable")
}

/// `charge.refunded` with `refunded` of the charge's amount refunded so far.
fn charge_refunded(event_id: &str, payment_intent: &str, refunded: u64) -> String {
    money_event(
        "charge.refunded",
        event_id,
        payment_intent,
        json!({ "amount": CHARGED, "amount_refunded": refunded, "refunded": refunded == CHARGED }),
    )
}

async fn open_conflicts(app: &TestApp) -> Vec<Value> {
    let report = body_of(app.admin(Method::GET, REPORT).send().await.expect("request"), 200).await;
    report["conflicts"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn refunds_after_the_sale_are_recorded_on_the_reservation_and_restock_nothing() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    reserve_one(&app, "pi_3Sold", 2).await;
    checkout_event(&app, "payment_intent.succeeded", "evt_sold", "pi_3Sold").await;
    assert_eq!(figures(&app).await, (3, 0));
    assert_eq!(reservation(&app, "pi_3Sold").await["payment"], Value::Null, "no money event yet");

    let partial = deliver(&app, &charge_refunded("evt_partial", "pi_3Sold", 1000)).await;
    assert_eq!(partial["outcome"], "recorded");
    let payment = reservation(&app, "pi_3Sold").await["payment"].clone();
    assert_eq!(
        payment,
        json!({ "paymentIntent": "pi_3Sold", "amount": CHARGED, "refunded": 1000, "fullyRefunded": false, "dispute": null })
    );
    let again = deliver(&app, &charge_refunded("evt_partial", "pi_3Sold", 1000)).await;
    assert_eq!(again["outcome"], "duplicate");
    // refund.created of the same refund, after it: one refund's amount never lowers the charge's cumulative figure.
    let refund = money_event("refund.created", "evt_refund_created", "pi_3Sold", json!({ "amount": 1000 }));
    assert_eq!(deliver(&app, &refund).await["outcome"], "recorded");
    assert_eq!(reservation(&app, "pi_3Sold").await["payment"]["refunded"], 1000);

    let full = deliver(&app, &charge_refunded("evt_full", "pi_3Sold", CHARGED)).await;
    assert_eq!(full["outcome"], "recorded");
    let payment = reservation(&app, "pi_3Sold").await["payment"].clone();
    assert_eq!((payment["refunded"].clone(), payment["fullyRefunded"].clone()), (json!(CHARGED), json!(true)));
    // Delivered late, the older partial figure changes nothing.
    deliver(&app, &charge_refunded("evt_partial_late", "pi_3Sold", 1000)).await;
    assert_eq!(reservation(&app, "pi_3Sold").await["payment"]["refunded"], CHARGED);
    assert_eq!(figures(&app).await, (3, 0), "money and stock are separate facts: a refund restocks nothing");
    assert_eq!(reservation(&app, "pi_3Sold").await["status"], "committed");

    let success_again = checkout_event(&app, "payment_intent.succeeded", "evt_sold_again", "pi_3Sold").await;
    assert_eq!(success_again["outcome"], "unchanged");
    assert_eq!(figures(&app).await, (3, 0));
    assert!(open_conflicts(&app).await.is_empty(), "a refund after the sale is no conflict");
    let report = body_of(app.admin(Method::GET, REPORT).send().await.expect("request"), 200).await;
    assert_eq!(report["payments"]["fullyRefunded"], 1);
    assert_eq!(report["payments"]["partiallyRefunded"], 0);
}

#[tokio::test]
async fn a_full_refund_before_its_success_releases_the_reservation_and_the_success_takes_nothing() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    reserve_one(&app, "pi_3Reordered", 2).await;
    assert_eq!(figures(&app).await, (5, 2));

    let refund = charge_refunded("evt_refund_first", "pi_3Reordered", CHARGED);
    let first = deliver(&app, &refund).await;
    assert_eq!(
        (first["outcome"].clone(), first["conflict"].clone()),
        (json!("conflict"), json!("refunded_before_sale"))
    );
    assert_eq!(figures(&app).await, (5, 0), "the reservation's units are available again");
    assert_eq!(reservation(&app, "pi_3Reordered").await["status"], "released");

    let success = checkout_event(&app, "payment_intent.succeeded", "evt_success_second", "pi_3Reordered").await;
    assert_eq!(
        (success["outcome"].clone(), success["conflict"].clone()),
        (json!("conflict"), json!("sale_after_refund"))
    );
    assert_eq!(figures(&app).await, (5, 0), "the late-payment rule does not sell a refunded payment");
    assert_eq!(reservation(&app, "pi_3Reordered").await["status"], "released");

    // Redeliveries of both change nothing.
    assert_eq!(deliver(&app, &refund).await["outcome"], "duplicate");
    let again = checkout_event(&app, "payment_intent.succeeded", "evt_success_second", "pi_3Reordered").await;
    assert_eq!(again["outcome"], "duplicate");
    let other_delivery = checkout_event(&app, "payment_intent.succeeded", "evt_success_third", "pi_3Reordered").await;
    assert_eq!(other_delivery["conflict"], "sale_after_refund");
    assert_eq!(figures(&app).await, (5, 0));

    let conflicts = open_conflicts(&app).await;
    let kinds: Vec<&str> = conflicts.iter().filter_map(|conflict| conflict["kind"].as_str()).collect();
    assert_eq!(kinds, ["refunded_before_sale", "sale_after_refund", "sale_after_refund"]);
    assert!(
        conflicts[0]["details"]["message"].as_str().is_some_and(|message| message.contains("released")),
        "{conflicts:?}"
    );
    assert_eq!(conflicts[1]["details"]["payment"]["refunded"], CHARGED);
}

#[tokio::test]
async fn a_partial_refund_before_its_success_releases_nothing() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    reserve_one(&app, "pi_3PartialFirst", 2).await;
    let partial = deliver(&app, &charge_refunded("evt_partial_first", "pi_3PartialFirst", 1000)).await;
    assert_eq!(partial["outcome"], "recorded");
    assert_eq!(figures(&app).await, (5, 2));
    let success = checkout_event(&app, "payment_intent.succeeded", "evt_partial_success", "pi_3PartialFirst").await;
    assert_eq!(success["outcome"], "committed");
    assert_eq!(figures(&app).await, (3, 0));
    // A refund that failed gave nothing back: recorded, counting for nothing.
    let failed = money_event("refund.updated", "evt_refund_failed", "pi_3PartialFirst", json!({ "amount": 4990 }));
    assert_eq!(deliver(&app, &failed).await["outcome"], "recorded");
    assert_eq!(reservation(&app, "pi_3PartialFirst").await["payment"]["refunded"], 1000);
}

#[tokio::test]
async fn disputes_lost_and_won_are_recorded_and_never_restock() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    for reference in ["pi_3Lost", "pi_3Won"] {
        reserve_one(&app, reference, 1).await;
        checkout_event(&app, "payment_intent.succeeded", &format!("evt_paid_{reference}"), reference).await;
    }
    assert_eq!(figures(&app).await, (3, 0));

    let opened = money_event("charge.dispute.created", "evt_dispute_lost_open", "pi_3Lost", json!({}));
    assert_eq!(deliver(&app, &opened).await["outcome"], "recorded");
    assert_eq!(reservation(&app, "pi_3Lost").await["payment"]["dispute"], "open");
    let lost = money_event("charge.dispute.closed", "evt_dispute_lost", "pi_3Lost", json!({}));
    assert_eq!(deliver(&app, &lost).await["outcome"], "recorded");
    assert_eq!(deliver(&app, &lost).await["outcome"], "duplicate");
    // An older "open" delivered after the decision never reopens it.
    let stale = money_event("charge.dispute.created", "evt_dispute_lost_stale", "pi_3Lost", json!({}));
    deliver(&app, &stale).await;
    assert_eq!(reservation(&app, "pi_3Lost").await["payment"]["dispute"], "lost");

    let won = money_event("charge.dispute.closed.won", "evt_dispute_won", "pi_3Won", json!({}));
    assert_eq!(deliver(&app, &won).await["outcome"], "recorded");
    assert_eq!(reservation(&app, "pi_3Won").await["payment"]["dispute"], "won");

    assert_eq!(figures(&app).await, (3, 0), "a dispute, lost or won, restocks nothing");
    let report = body_of(app.admin(Method::GET, REPORT).send().await.expect("request"), 200).await;
    assert_eq!(
        (report["payments"]["lostDisputes"].clone(), report["payments"]["wonDisputes"].clone()),
        (json!(1), json!(1))
    );
    assert!(open_conflicts(&app).await.is_empty());
}

#[tokio::test]
async fn a_dispute_before_a_late_success_keeps_the_late_payment_rule_from_taking_units() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    reserve_one(&app, "pi_3DisputedLate", 1).await;
    app.clock.advance_seconds(31 * 60);
    body_of(app.admin(Method::POST, REPORT).send().await.expect("request"), 200).await;
    let dispute = money_event("charge.dispute.created", "evt_dispute_early", "pi_3DisputedLate", json!({}));
    assert_eq!(deliver(&app, &dispute).await["outcome"], "recorded", "an expired reservation has nothing to release");
    let success = checkout_event(&app, "payment_intent.succeeded", "evt_late_disputed", "pi_3DisputedLate").await;
    assert_eq!(success["conflict"], "sale_after_refund");
    assert_eq!(figures(&app).await, (5, 0), "a late payment already disputed is not reserved again");
    assert_eq!(reservation(&app, "pi_3DisputedLate").await["status"], "expired");
}

/// A Checkout Session's events with its PaymentIntent.
fn session_event(fixture: &str, event_id: &str, session: &str, payment_intent: &str) -> String {
    let mut event: Value = serde_json::from_str(&stripe_event(fixture, event_id, session)).expect("JSON");
    event["data"]["object"]["payment_intent"] = json!(payment_intent);
    serde_json::to_string(&event).expect("serializable")
}

#[tokio::test]
async fn a_checkout_sessions_money_events_find_it_through_its_payment_intent_in_either_order() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;

    reserve_one(&app, "cs_test_refunded_after", 1).await;
    let completed = session_event("checkout.session.completed", "evt_cs_done", "cs_test_refunded_after", "pi_3OfCs");
    assert_eq!(deliver(&app, &completed).await["outcome"], "committed");
    assert_eq!(reservation(&app, "cs_test_refunded_after").await["payment"]["paymentIntent"], "pi_3OfCs");
    assert_eq!(deliver(&app, &charge_refunded("evt_cs_refund", "pi_3OfCs", CHARGED)).await["outcome"], "recorded");
    let payment = reservation(&app, "cs_test_refunded_after").await["payment"].clone();
    assert_eq!((payment["paymentIntent"].clone(), payment["fullyRefunded"].clone()), (json!("pi_3OfCs"), json!(true)));
    assert_eq!(figures(&app).await, (4, 0));

    // The refund first: its PaymentIntent names no reservation yet; the session's completion finds it.
    reserve_one(&app, "cs_test_refunded_first", 2).await;
    let early = deliver(&app, &charge_refunded("evt_cs_refund_early", "pi_3OfCsEarly", CHARGED)).await;
    assert_eq!(early["outcome"], "recorded");
    assert_eq!(figures(&app).await, (4, 2));
    let late =
        session_event("checkout.session.completed", "evt_cs_done_late", "cs_test_refunded_first", "pi_3OfCsEarly");
    let answer = deliver(&app, &late).await;
    assert_eq!(
        (answer["outcome"].clone(), answer["conflict"].clone()),
        (json!("conflict"), json!("sale_after_refund"))
    );
    assert_eq!(figures(&app).await, (4, 0), "released, nothing sold");
    let shown = reservation(&app, "cs_test_refunded_first").await;
    assert_eq!((shown["status"].clone(), shown["payment"]["refunded"].clone()), (json!("released"), json!(CHARGED)));
}

#[tokio::test]
async fn money_events_of_someone_elses_payment_or_without_a_payment_intent_move_nothing() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    let foreign = deliver(&app, &charge_refunded("evt_foreign", "pi_3NotOurs", CHARGED)).await;
    assert_eq!(foreign["outcome"], "recorded");
    let legacy = money_event("charge.refunded", "evt_legacy", "", json!({ "payment_intent": null }));
    assert_eq!(deliver(&app, &legacy).await["outcome"], "ignored");
    let unreadable = money_event("charge.refunded", "evt_unreadable", "pi_3Odd", json!({ "amount_refunded": "all" }));
    let answer = deliver(&app, &unreadable).await;
    assert_eq!((answer["outcome"].clone(), answer["conflict"].clone()), (json!("conflict"), json!("unreadable_event")));
    assert_eq!(figures(&app).await, (5, 0));
    let report = body_of(app.admin(Method::GET, REPORT).send().await.expect("request"), 200).await;
    assert_eq!(report["payments"]["fullyRefunded"], 0, "someone else's refund is not the shop's");
    let metrics = app.admin(Method::GET, "/metrics").send().await.expect("request").text().await.expect("text");
    assert!(
        metrics.contains(r#"payload_stock_webhook_events_total{type="charge.refunded",outcome="recorded"} 1"#),
        "{metrics}"
    );
}
