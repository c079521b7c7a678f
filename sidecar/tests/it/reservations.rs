//! Reserving, reading and releasing reservations through /v1.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{body_of, spawn_app, spawn_app_with};

#[tokio::test]
async fn reserving_available_units_answers_201_and_holds_them() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;

    let response = app.reserve("pi_3Test", json!([{ "product": "runner", "size": "42", "quantity": 2 }])).await;
    let body = body_of(response, 201).await;
    assert_eq!(body["reference"], "pi_3Test");
    assert_eq!(body["status"], "active");
    assert_eq!(body["createdAt"], "2026-11-24T10:00:00.000Z");
    assert_eq!(body["expiresAt"], "2026-11-24T10:30:00.000Z");
    assert_eq!(body["items"], json!([{ "product": "runner", "size": "42", "quantity": 2 }]));

    let size = app.size_stock("runner", "42").await;
    assert_eq!(
        (size["stock"].as_u64(), size["reservedStock"].as_u64(), size["availableStock"].as_u64()),
        (Some(5), Some(2), Some(3))
    );
}

#[tokio::test]
async fn numeric_product_ids_and_sizes_are_read_as_text_and_ttl_can_be_chosen() {
    let app = spawn_app().await;
    app.restock("7", "42", 5).await;
    let body =
        json!({ "reference": "pi_numeric", "items": [{ "product": 7, "size": 42, "quantity": 1 }], "ttlSeconds": 60 });
    let response = app.api(Method::POST, "/v1/reservations").json(&body).send().await.expect("request");
    let body = body_of(response, 201).await;
    assert_eq!(body["expiresAt"], "2026-11-24T10:01:00.000Z");
    assert_eq!(body["items"][0]["product"], "7");
}

#[tokio::test]
async fn a_shop_on_payloads_ecommerce_plugin_names_variants_and_products_without_variants() {
    let app = spawn_app().await;
    for (variant, units) in [(json!(12), 3), (json!(null), 2)] {
        let body = json!({ "product": 7, "variant": variant, "type": "restock", "quantity": units, "reason": "test" });
        let response = app.admin(Method::POST, "/v1/movements").json(&body).send().await.expect("request");
        assert_eq!(body_of(response, 201).await["stockAfter"], units);
    }
    let items =
        json!([{ "product": 7, "variant": 12, "quantity": 2 }, { "product": "7", "variant": null, "quantity": 1 }]);
    let body = body_of(app.reserve("pi_variants", items).await, 201).await;
    assert_eq!(
        body["items"],
        json!([
            { "product": "7", "size": "12", "quantity": 2 },
            { "product": "7", "size": "(no variant)", "quantity": 1 }
        ])
    );
    assert_eq!(app.size_stock("7", "(no variant)").await["availableStock"], 1);

    let short = app.reserve("pi_short", json!([{ "product": 7, "variant": 12, "quantity": 2 }])).await;
    let body = body_of(short, 409).await;
    assert_eq!(body["shortages"][0]["size"], "12");
    let both = app.reserve("pi_both", json!([{ "product": 7, "variant": 12, "size": "12", "quantity": 1 }])).await;
    assert_eq!(body_of(both, 422).await["message"], "items[0]: give size or variant, not both");
}

#[tokio::test]
async fn the_same_request_again_answers_200_with_the_same_reservation() {
    let app = spawn_app().await;
    app.restock("runner", "42", 2).await;
    let items = json!([{ "product": "runner", "size": "42", "quantity": 2 }]);
    let first = body_of(app.reserve("pi_again", items.clone()).await, 201).await;
    let second = body_of(app.reserve("pi_again", items).await, 200).await;
    assert_eq!(first, second);
    assert_eq!(app.size_stock("runner", "42").await["reservedStock"], 2, "held once, not twice");
}

#[tokio::test]
async fn the_same_reference_with_other_items_is_a_reference_conflict() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    body_of(app.reserve("pi_taken", json!([{ "product": "runner", "size": "42", "quantity": 1 }])).await, 201).await;
    let body =
        body_of(app.reserve("pi_taken", json!([{ "product": "runner", "size": "42", "quantity": 2 }])).await, 409)
            .await;
    assert_eq!(body["error"], "reference_conflict");
    assert_eq!(app.size_stock("runner", "42").await["reservedStock"], 1);
}

#[tokio::test]
async fn insufficient_stock_answers_409_with_every_shortage_and_reserves_nothing() {
    let app = spawn_app().await;
    app.restock("runner", "42", 1).await;
    app.restock("runner", "43", 2).await;
    app.restock("boot", "40", 5).await;
    let items = json!([
        { "product": "runner", "size": "42", "quantity": 2 },
        { "product": "runner", "size": "43", "quantity": 3 },
        { "product": "boot", "size": "40", "quantity": 1 },
    ]);
    let body = body_of(app.reserve("pi_short", items).await, 409).await;
    assert_eq!(body["error"], "insufficient_stock");
    assert_eq!(
        body["shortages"],
        json!([
            { "product": "runner", "size": "42", "requested": 2, "available": 1 },
            { "product": "runner", "size": "43", "requested": 3, "available": 2 },
        ])
    );
    assert_eq!(app.size_stock("boot", "40").await["reservedStock"], 0, "all or nothing");
    let missing = app.api(Method::GET, "/v1/reservations/pi_short").send().await.expect("request");
    assert_eq!(body_of(missing, 404).await["error"], "reservation_not_found");
}

#[tokio::test]
async fn bad_carts_answer_422_with_every_error() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    let items = json!([
        { "product": "runner", "size": "44", "quantity": 1 },
        { "product": "sandal", "size": "42", "quantity": 1 },
        { "product": "runner", "size": "42", "quantity": 0 },
        { "product": "runner", "size": "42", "quantity": 1.5 },
        { "product": "runner", "size": "42", "quantity": 5000 },
    ]);
    let body = body_of(app.reserve("pi_bad", items).await, 422).await;
    assert_eq!(body["error"], "invalid_request");
    let codes: Vec<_> = body["errors"].as_array().expect("errors").iter().map(|e| e["code"].clone()).collect();
    assert_eq!(
        codes,
        [
            json!("unknown_size"),
            json!("unknown_product"),
            json!("invalid_quantity"),
            json!("invalid_quantity"),
            json!("invalid_quantity")
        ]
    );

    for (items, field) in
        [(json!([{ "product": "runner", "size": "42", "quantity": "2" }]), "items[0].quantity"), (json!([]), "empty")]
    {
        let body = body_of(app.reserve("pi_bad2", items).await, 422).await;
        assert_eq!(body["error"], "invalid_request");
        assert!(body["message"].as_str().expect("message").contains(field), "{body}");
    }
    let body = json!({ "reference": "", "items": [{ "product": "runner", "size": "42", "quantity": 1 }] });
    let response = app.api(Method::POST, "/v1/reservations").json(&body).send().await.expect("request");
    assert_eq!(body_of(response, 422).await["error"], "invalid_request");
    let body = json!({ "reference": "pi_ttl", "items": [{ "product": "runner", "size": "42", "quantity": 1 }], "ttlSeconds": 0 });
    let response = app.api(Method::POST, "/v1/reservations").json(&body).send().await.expect("request");
    assert_eq!(body_of(response, 422).await["error"], "invalid_request");
    assert_eq!(app.size_stock("runner", "42").await["reservedStock"], 0);
}

#[tokio::test]
async fn malformed_json_answers_400_and_wrong_shapes_422_in_the_error_shape() {
    let app = spawn_app().await;
    let response = app
        .api(Method::POST, "/v1/reservations")
        .header("content-type", "application/json")
        .body("{ not json")
        .send()
        .await
        .expect("request");
    let body = body_of(response, 400).await;
    assert_eq!(body["error"], "invalid_json");
    assert!(body["message"].is_string());

    let response =
        app.api(Method::POST, "/v1/reservations").json(&json!({ "reference": 5 })).send().await.expect("request");
    assert_eq!(body_of(response, 422).await["error"], "invalid_request");
    let response = app
        .api(Method::POST, "/v1/reservations")
        .json(&json!({ "reference": "pi", "items": [], "extra": 1 }))
        .send()
        .await
        .expect("request");
    assert_eq!(body_of(response, 422).await["error"], "invalid_request");
}

#[tokio::test]
async fn a_missing_or_wrong_token_answers_401_and_an_unset_token_503() {
    let app = spawn_app().await;
    for request in [
        app.anonymous(Method::POST, "/v1/reservations").json(&json!({})),
        app.anonymous(Method::GET, "/v1/reservations/pi_1"),
        app.anonymous(Method::GET, "/v1/products/runner/stock"),
        app.client.get(format!("{}/v1/products/runner/stock", app.address)).bearer_auth("wrong-token-0123456789"),
        app.api(Method::POST, "/v1/movements").json(&json!({})),
        app.api(Method::GET, "/api/admin/clean-expired-reservations"),
    ] {
        let body = body_of(request.send().await.expect("request"), 401).await;
        assert_eq!(body["error"], "unauthorized");
    }

    let closed = spawn_app_with(|config| {
        config.api_token = None;
        config.admin_token = None;
    })
    .await;
    let body = body_of(closed.api(Method::GET, "/v1/products/runner/stock").send().await.expect("request"), 503).await;
    assert_eq!(body["error"], "api_disabled");
    let body = body_of(
        closed.admin(Method::POST, "/api/admin/clean-expired-reservations").send().await.expect("request"),
        503,
    )
    .await;
    assert_eq!(body["error"], "admin_disabled");
}

#[tokio::test]
async fn releasing_gives_the_units_back_and_is_idempotent() {
    let app = spawn_app().await;
    app.restock("runner", "42", 3).await;
    body_of(app.reserve("pi_release", json!([{ "product": "runner", "size": "42", "quantity": 3 }])).await, 201).await;
    assert_eq!(app.size_stock("runner", "42").await["availableStock"], 0);

    for _ in 0..2 {
        let response = app.api(Method::DELETE, "/v1/reservations/pi_release").send().await.expect("request");
        assert_eq!(body_of(response, 200).await["status"], "released");
    }
    assert_eq!(app.size_stock("runner", "42").await["availableStock"], 3);
    let response = app.api(Method::GET, "/v1/reservations/pi_release").send().await.expect("request");
    assert_eq!(body_of(response, 200).await["status"], "released");
    let response = app.api(Method::DELETE, "/v1/reservations/pi_unknown").send().await.expect("request");
    assert_eq!(body_of(response, 404).await["error"], "reservation_not_found");
}

#[tokio::test]
async fn a_reservation_stops_holding_units_at_its_expiry_instant_even_before_cleanup() {
    let app = spawn_app().await;
    app.restock("runner", "42", 1).await;
    body_of(app.reserve("pi_expiring", json!([{ "product": "runner", "size": "42", "quantity": 1 }])).await, 201).await;
    let refused = app.reserve("pi_second", json!([{ "product": "runner", "size": "42", "quantity": 1 }])).await;
    assert_eq!(body_of(refused, 409).await["error"], "insufficient_stock");

    app.clock.advance_seconds(30 * 60 - 1);
    assert_eq!(app.size_stock("runner", "42").await["availableStock"], 0, "still held one second before expiry");
    app.clock.advance_seconds(1);
    assert_eq!(app.size_stock("runner", "42").await["availableStock"], 1, "free at the expiry instant");
    body_of(app.reserve("pi_second", json!([{ "product": "runner", "size": "42", "quantity": 1 }])).await, 201).await;
}
