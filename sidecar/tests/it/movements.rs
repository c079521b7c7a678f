//! POST /v1/movements: restocks, returns and adjustments, checked and recorded with stock before and after.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{body_of, spawn_app};

async fn movement(app: &crate::helpers::TestApp, body: Value, status: u16) -> Value {
    body_of(app.admin(Method::POST, "/v1/movements").json(&body).send().await.expect("request"), status).await
}

#[tokio::test]
async fn a_restock_of_an_unknown_size_creates_it_and_records_the_movement() {
    let app = spawn_app().await;
    let body = movement(
        &app,
        json!({ "product": "runner", "size": "42", "type": "restock", "quantity": 12, "reason": "Delivery", "reference": "PO-1", "lowStockThreshold": 3 }),
        201,
    )
    .await;
    assert_eq!(body["type"], "restock");
    assert_eq!((body["stockBefore"].as_u64(), body["stockAfter"].as_u64()), (Some(0), Some(12)));
    assert_eq!(body["reference"], "PO-1");
    assert_eq!(body["date"], "2026-11-24T10:00:00.000Z");
    let size = app.size_stock("runner", "42").await;
    assert_eq!(
        size,
        json!({ "size": "42", "stock": 12, "reservedStock": 0, "availableStock": 12, "lowStockThreshold": 3, "isLowStock": false })
    );
}

#[tokio::test]
async fn the_same_reference_twice_records_one_movement() {
    let app = spawn_app().await;
    let request = json!({ "product": "runner", "size": "42", "type": "restock", "quantity": 5, "reference": "PO-2" });
    let first = movement(&app, request.clone(), 201).await;
    let second = movement(&app, request, 200).await;
    assert_eq!(first, second);
    assert_eq!(app.size_stock("runner", "42").await["stock"], 5);
}

#[tokio::test]
async fn expected_stock_makes_a_compare_and_set() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    let stale = movement(
        &app,
        json!({ "product": "runner", "size": "42", "type": "adjustment", "quantity": -1, "expectedStock": 4 }),
        409,
    )
    .await;
    assert_eq!(stale["error"], "stale_stock");
    assert_eq!(stale["currentStock"], 5);
    movement(
        &app,
        json!({ "product": "runner", "size": "42", "type": "adjustment", "quantity": -1, "expectedStock": 5 }),
        201,
    )
    .await;
    assert_eq!(app.size_stock("runner", "42").await["stock"], 4);
}

#[tokio::test]
async fn movements_cannot_take_stock_below_zero_or_below_reserved_units() {
    let app = spawn_app().await;
    app.restock("runner", "42", 3).await;
    body_of(app.reserve("pi_held", json!([{ "product": "runner", "size": "42", "quantity": 2 }])).await, 201).await;
    let below_reserved =
        movement(&app, json!({ "product": "runner", "size": "42", "type": "adjustment", "quantity": -2 }), 409).await;
    assert_eq!(below_reserved["error"], "stock_below_reserved");
    let below_zero =
        movement(&app, json!({ "product": "runner", "size": "42", "type": "adjustment", "quantity": -4 }), 409).await;
    assert_eq!(below_zero["error"], "insufficient_stock");
    assert_eq!(app.size_stock("runner", "42").await["stock"], 3);
}

#[tokio::test]
async fn bad_movements_answer_422_or_404() {
    let app = spawn_app().await;
    app.restock("runner", "42", 3).await;
    for body in [
        json!({ "product": "runner", "size": "42", "type": "sale", "quantity": -1 }),
        json!({ "product": "runner", "size": "42", "type": "restock", "quantity": -1 }),
        json!({ "product": "runner", "size": "42", "type": "return", "quantity": 0 }),
        json!({ "product": "runner", "size": "42", "type": "adjustment", "quantity": 1.5 }),
        json!({ "product": "runner", "size": "42", "type": "adjustment", "quantity": "1" }),
        json!({ "product": "runner", "size": "42", "type": "theft", "quantity": -1 }),
        json!({ "product": "runner", "size": "42", "type": "restock", "quantity": 1, "lowStockThreshold": -1 }),
    ] {
        assert_eq!(movement(&app, body, 422).await["error"], "invalid_request");
    }
    let unknown =
        movement(&app, json!({ "product": "runner", "size": "47", "type": "return", "quantity": 1 }), 404).await;
    assert_eq!(unknown["error"], "unknown_size");
    assert_eq!(app.size_stock("runner", "42").await["stock"], 3);
}
