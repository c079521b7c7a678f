//! Returns and cancellations of a paid reservation: recorded once under the caller's return id, never more units
//! back than were sold across all its returns, damaged units recorded without a restock; and
//! RESTOCK_ON_FULL_REFUND, which returns what may still come back when a payment becomes fully refunded.

use reqwest::Method;
use serde_json::{Value, json};
use stock_core::MovementType;

use crate::helpers::{TestApp, body_of, open_store, spawn_app, spawn_app_with, stripe_event};

/// Sells `quantity` of runner 42 (of 5 in stock) under `reference`.
async fn sold(app: &TestApp, reference: &str, quantity: u32) {
    let items = json!([{ "product": "runner", "size": "42", "quantity": quantity }]);
    body_of(app.reserve(reference, items).await, 201).await;
    let event = stripe_event("payment_intent.succeeded", &format!("evt_sold_{reference}"), reference);
    let answer = body_of(app.send_event(&event).await, 200).await;
    assert_eq!(answer["outcome"], "committed");
}

async fn stock(app: &TestApp) -> u64 {
    app.size_stock("runner", "42").await["stock"].as_u64().unwrap_or(u64::MAX)
}

async fn send_return(app: &TestApp, reference: &str, body: Value) -> reqwest::Response {
    let path = format!("/v1/reservations/{reference}/returns");
    app.admin(Method::POST, &path).json(&body).send().await.expect("request")
}

fn line(quantity: u32, reason: &str) -> Value {
    json!({ "product": "runner", "size": "42", "quantity": quantity, "reason": reason })
}

async fn returns_of(app: &TestApp, reference: &str) -> Value {
    let path = format!("/v1/reservations/{reference}/returns");
    body_of(app.api(Method::GET, &path).send().await.expect("request"), 200).await
}

/// Every `return` movement of the ledger: (quantity, reason, reference, order reference).
async fn return_movements(app: &TestApp) -> Vec<(i64, String, Option<String>, Option<String>)> {
    let ledger = open_store(&app.database, None).await;
    let mut found = Vec::new();
    for id in ledger.movement_ids(0, 1000).await.expect("ids") {
        let record = ledger.movement(id).await.expect("read").expect("there");
        let movement = record.movement;
        if movement.kind == MovementType::Return {
            let details = movement.details;
            found.push((movement.quantity.get(), details.reason, details.reference, details.order_reference));
        }
    }
    ledger.close().await;
    found
}

#[tokio::test]
async fn a_return_restocks_returned_lines_and_records_damaged_ones_without_a_movement_once_per_id() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    sold(&app, "pi_3Returned", 3).await;
    assert_eq!(stock(&app).await, 2);

    let body = json!({ "returnId": "RMA-1001", "lines": [line(1, "returned"), line(1, "damaged")] });
    let first = body_of(send_return(&app, "pi_3Returned", body.clone()).await, 201).await;
    assert_eq!(first["created"], true);
    assert_eq!(first["return"]["lines"][0]["restocked"], 1);
    assert_eq!(first["return"]["lines"][1]["restocked"], 0, "damaged units are not put back on sale");
    assert_eq!(
        first["sold"],
        json!([{ "product": "runner", "size": "42", "sold": 3, "returned": 2, "returnable": 1 }])
    );
    assert_eq!(stock(&app).await, 3, "one unit back on sale");
    assert_eq!(
        return_movements(&app).await,
        [(1, "Return RMA-1001: returned".to_owned(), Some("RMA-1001".to_owned()), Some("ORD-2024-001".to_owned()))],
        "the movement names the return and the order"
    );

    let again = body_of(send_return(&app, "pi_3Returned", body).await, 200).await;
    assert_eq!((again["created"].clone(), again["sold"][0]["returned"].clone()), (json!(false), json!(2)));
    assert_eq!(stock(&app).await, 3, "a retry records nothing");
    let other = send_return(&app, "pi_3Returned", json!({ "returnId": "RMA-1001", "lines": [line(1, "returned")] }));
    assert_eq!(body_of(other.await, 409).await["error"], "return_id_conflict");

    let listed = returns_of(&app, "pi_3Returned").await;
    assert_eq!((listed["status"].clone(), listed["sold"][0]["returnable"].clone()), (json!("committed"), json!(1)));
    assert_eq!(listed["returns"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn no_return_brings_back_more_than_was_sold_and_a_refused_one_writes_nothing() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    sold(&app, "pi_3Bounded", 2).await;
    body_of(send_return(&app, "pi_3Bounded", json!({ "returnId": "R1", "lines": [line(1, "cancelled")] })).await, 201)
        .await;

    let too_many = send_return(
        &app,
        "pi_3Bounded",
        json!({ "returnId": "R2", "lines": [line(1, "returned"), line(1, "damaged")] }),
    );
    let refused = body_of(too_many.await, 409).await;
    assert_eq!(refused["error"], "exceeds_returnable");
    assert_eq!(
        refused["errors"][0],
        json!({ "code": "exceeds_returnable", "message": refused["errors"][0]["message"], "product": "runner",
                "size": "42", "requested": 2, "returnable": 1, "sold": 2 })
    );
    assert_eq!(stock(&app).await, 4, "nothing of the refused return was written");
    assert_eq!(returns_of(&app, "pi_3Bounded").await["returns"].as_array().map(Vec::len), Some(1));

    let unsold = json!({ "returnId": "R3", "lines": [{ "product": "runner", "size": "43", "quantity": 1, "reason": "returned" }, line(0, "returned")] });
    let invalid = body_of(send_return(&app, "pi_3Bounded", unsold).await, 422).await;
    let codes: Vec<&str> =
        invalid["errors"].as_array().into_iter().flatten().filter_map(|e| e["code"].as_str()).collect();
    assert_eq!(codes, ["not_sold", "invalid_quantity"], "every problem at once");
    let lost = send_return(&app, "pi_3Bounded", json!({ "returnId": "R4", "lines": [line(1, "lost in the post")] }));
    let lost = body_of(lost.await, 422).await;
    assert_eq!((lost["error"].clone(), lost["reason"].clone()), (json!("invalid_request"), json!("invalid_reason")));

    body_of(app.reserve("pi_3Unpaid", json!([{ "product": "runner", "size": "42", "quantity": 1 }])).await, 201).await;
    let unpaid = send_return(&app, "pi_3Unpaid", json!({ "returnId": "R5", "lines": [line(1, "returned")] }));
    assert_eq!(body_of(unpaid.await, 409).await["error"], "reservation_not_sold");
    let nobody = send_return(&app, "pi_3Nobody", json!({ "returnId": "R6", "lines": [line(1, "returned")] }));
    assert_eq!(body_of(nobody.await, 404).await["error"], "reservation_not_found");
    let shop_token = app.api(Method::POST, "/v1/reservations/pi_3Bounded/returns").json(&json!({})).send().await;
    assert_eq!(shop_token.expect("request").status(), 401, "returns are recorded with the admin token");
    assert_eq!(stock(&app).await, 4);
}

#[tokio::test]
async fn concurrent_returns_of_the_last_returnable_unit_record_one() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    sold(&app, "pi_3Raced", 1).await;
    let same_id =
        (0..4).map(|_| send_return(&app, "pi_3Raced", json!({ "returnId": "RMA-9", "lines": [line(1, "returned")] })));
    let answers = futures_util::future::join_all(same_id).await;
    let mut statuses: Vec<u16> = answers.iter().map(|answer| answer.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 201], "one recorded, the others answered with it");
    let other_ids = (0..3).map(|index| {
        send_return(&app, "pi_3Raced", json!({ "returnId": format!("RMA-{index}"), "lines": [line(1, "returned")] }))
    });
    for answer in futures_util::future::join_all(other_ids).await {
        assert_eq!(answer.status(), 409, "nothing left to return");
    }
    assert_eq!(stock(&app).await, 5, "the one unit sold came back once");
}

#[tokio::test]
async fn restock_on_full_refund_returns_what_may_still_come_back_once() {
    let app = spawn_app_with(|config| config.restock_on_full_refund = true).await;
    app.restock("runner", "42", 5).await;
    sold(&app, "pi_3RefundedPaid", 3).await;
    body_of(
        send_return(&app, "pi_3RefundedPaid", json!({ "returnId": "R1", "lines": [line(1, "damaged")] })).await,
        201,
    )
    .await;
    assert_eq!(stock(&app).await, 2);

    let refund = |event_id: &str, refunded: u64| {
        let mut event: Value =
            serde_json::from_str(&stripe_event("charge.refunded", event_id, "ch_3Any")).expect("JSON");
        event["data"]["object"]["payment_intent"] = json!("pi_3RefundedPaid");
        event["data"]["object"]["amount"] = json!(4990);
        event["data"]["object"]["amount_refunded"] = json!(refunded);
        serde_json::to_string(&event).expect("JSON")
    };
    let partial = body_of(app.send_event(&refund("evt_part", 1000)).await, 200).await;
    assert_eq!(partial["outcome"], "recorded");
    assert_eq!(stock(&app).await, 2, "a partial refund restocks nothing");
    let full = body_of(app.send_event(&refund("evt_full", 4990)).await, 200).await;
    assert_eq!(full["outcome"], "recorded");
    assert_eq!(stock(&app).await, 4, "the two units that could still come back are on sale again");
    body_of(app.send_event(&refund("evt_full_again", 4990)).await, 200).await;
    assert_eq!(stock(&app).await, 4, "a second full-refund event restocks nothing");

    let listed = returns_of(&app, "pi_3RefundedPaid").await;
    let ids: Vec<&str> =
        listed["returns"].as_array().into_iter().flatten().filter_map(|r| r["returnId"].as_str()).collect();
    assert_eq!(ids, ["R1", "full-refund:pi_3RefundedPaid"]);
    assert_eq!(listed["sold"][0]["returnable"], 0);
    let taken = json!({ "returnId": "full-refund:pi_3RefundedPaid", "lines": [line(1, "returned")] });
    assert_eq!(body_of(send_return(&app, "pi_3RefundedPaid", taken).await, 422).await["error"], "invalid_request");
    let late = send_return(&app, "pi_3RefundedPaid", json!({ "returnId": "R2", "lines": [line(1, "returned")] }));
    assert_eq!(body_of(late.await, 409).await["error"], "exceeds_returnable", "never more back than was sold");
    let movements = return_movements(&app).await;
    assert_eq!(
        movements,
        [(
            2,
            "Return full-refund:pi_3RefundedPaid: cancelled".to_owned(),
            Some("full-refund:pi_3RefundedPaid".to_owned()),
            Some("ORD-2024-001".to_owned())
        )]
    );
}
