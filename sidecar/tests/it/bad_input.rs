//! The bad input catalogue: every way a client or an attacker can get a request wrong, each answered with its
//! documented status and error code, none answered 500, and none changing anything in the ledger.

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, API_TOKEN, TestApp, WEBHOOK_SECRET, body_of, spawn_app, stripe_event};

/// What a test can observe of the ledger: one size's figures, the monitoring figures, and one reservation.
async fn ledger_state(app: &TestApp) -> Value {
    let size = app.size_stock("runner", "42").await;
    let monitoring = app.admin(Method::GET, "/api/admin/clean-expired-reservations").send().await.expect("monitoring");
    let mut monitoring = body_of(monitoring, 200).await;
    // ledgerWrites counts decisions run, refusals included: not ledger state.
    for volatile in ["now", "oldestActiveReservation", "payloadProjection", "ledgerWrites"] {
        monitoring.as_object_mut().expect("object").remove(volatile);
    }
    let reservation = app.api(Method::GET, "/v1/reservations/pi_keep").send().await.expect("reservation");
    let reservation = body_of(reservation, 200).await;
    json!({ "size": size, "monitoring": monitoring, "reservation": reservation["status"] })
}

fn json_body(builder: RequestBuilder, body: &str) -> RequestBuilder {
    builder.header("content-type", "application/json").body(body.to_owned())
}

fn signed(app: &TestApp, payload: &str, secret: &str, seconds_ago: i64) -> RequestBuilder {
    let header =
        stripe_webhook::Webhook::generate_test_header(payload, secret, Some(app.clock_seconds() - seconds_ago));
    webhook(app, &header, payload)
}

fn webhook(app: &TestApp, signature: &str, payload: &str) -> RequestBuilder {
    app.client
        .post(format!("{}/webhooks/stripe", app.address))
        .header("stripe-signature", signature)
        .header("content-type", "application/json")
        .body(payload.to_owned())
}

fn reservation(app: &TestApp, body: Value) -> RequestBuilder {
    json_body(app.api(Method::POST, "/v1/reservations"), &body.to_string())
}

fn cart(quantity: Value) -> Value {
    json!({ "reference": "pi_new", "items": [{ "product": "runner", "size": "42", "quantity": quantity }] })
}

fn movement(app: &TestApp, body: Value) -> RequestBuilder {
    json_body(app.admin(Method::POST, "/v1/movements"), &body.to_string())
}

#[tokio::test]
async fn every_bad_input_is_answered_with_its_code_and_changes_nothing() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    assert_eq!(
        app.reserve("pi_keep", json!([{ "product": "runner", "size": "42", "quantity": 2 }])).await.status(),
        201
    );
    let before = ledger_state(&app).await;

    // A real payment for pi_keep: any of these that got through would sell its units.
    let event = stripe_event("payment_intent.succeeded", "evt_forged", "pi_keep");
    let valid_header = stripe_webhook::Webhook::generate_test_header(&event, WEBHOOK_SECRET, Some(app.clock_seconds()));
    let valid_signature = valid_header.split(",v1=").nth(1).expect("v1").to_owned();
    let timestamp = app.clock_seconds();
    let huge = "x".repeat(stock_sidecar::limits::BODY_LIMIT_BYTES + 10);

    let cases: Vec<(&str, RequestBuilder, u16, &str)> = vec![
        // Webhooks: signatures.
        (
            "no signature header",
            app.client.post(format!("{}/webhooks/stripe", app.address)).body(event.clone()),
            400,
            "invalid_signature",
        ),
        ("an empty signature header", webhook(&app, "", &event), 400, "invalid_signature"),
        ("a malformed signature header", webhook(&app, "not a signature", &event), 400, "invalid_signature"),
        ("a header without v1", webhook(&app, &format!("t={timestamp}"), &event), 400, "invalid_signature"),
        (
            "a forged v1",
            webhook(&app, &format!("t={timestamp},v1={}", "0".repeat(64)), &event),
            400,
            "invalid_signature",
        ),
        ("a v1 that is not hex", webhook(&app, &format!("t={timestamp},v1=zz"), &event), 400, "invalid_signature"),
        (
            "a timestamp that is not a number",
            webhook(&app, &format!("t=soon,v1={valid_signature}"), &event),
            400,
            "invalid_signature",
        ),
        (
            "a secret rotated out",
            signed(&app, &event, "whsec_rotated_out_secret_0123456789", 0),
            400,
            "invalid_signature",
        ),
        ("a signature older than the tolerance", signed(&app, &event, WEBHOOK_SECRET, 600), 400, "invalid_signature"),
        (
            "a body changed after signing",
            webhook(&app, &valid_header, &event.replace("pi_keep", "pi_kept")),
            400,
            "invalid_signature",
        ),
        ("a webhook body over the limit", webhook(&app, &valid_header, &huge), 413, "body_too_large"),
        // /v1: tokens.
        (
            "no token on /v1",
            json_body(app.anonymous(Method::POST, "/v1/reservations"), &cart(json!(1)).to_string()),
            401,
            "unauthorized",
        ),
        (
            "a wrong token on /v1",
            json_body(
                app.anonymous(Method::POST, "/v1/reservations").bearer_auth("wrong-token-0123456789"),
                &cart(json!(1)).to_string(),
            ),
            401,
            "unauthorized",
        ),
        (
            "the admin token on /v1",
            json_body(
                app.anonymous(Method::POST, "/v1/reservations").bearer_auth(ADMIN_TOKEN),
                &cart(json!(1)).to_string(),
            ),
            401,
            "unauthorized",
        ),
        (
            "a Basic instead of a Bearer token",
            app.anonymous(Method::GET, "/v1/reservations/pi_keep").basic_auth("user", Some(API_TOKEN)),
            401,
            "unauthorized",
        ),
        // /v1/reservations: bodies.
        (
            "malformed JSON",
            json_body(app.api(Method::POST, "/v1/reservations"), "{\"reference\":"),
            400,
            "invalid_json",
        ),
        (
            "JSON of the wrong shape",
            json_body(app.api(Method::POST, "/v1/reservations"), "[1,2,3]"),
            422,
            "invalid_request",
        ),
        ("no items", reservation(&app, json!({ "reference": "pi_new" })), 422, "invalid_request"),
        ("an empty cart", reservation(&app, json!({ "reference": "pi_new", "items": [] })), 422, "invalid_request"),
        ("a zero quantity", reservation(&app, cart(json!(0))), 422, "invalid_request"),
        ("a negative quantity", reservation(&app, cart(json!(-1))), 422, "invalid_request"),
        ("a fractional quantity", reservation(&app, cart(json!(1.5))), 422, "invalid_request"),
        ("a huge quantity", reservation(&app, cart(json!(1e12))), 422, "invalid_request"),
        ("a quantity as a string", reservation(&app, cart(json!("2"))), 422, "invalid_request"),
        (
            "an unknown product",
            reservation(
                &app,
                json!({ "reference": "pi_new", "items": [{ "product": "ghost", "size": "42", "quantity": 1 }] }),
            ),
            422,
            "invalid_request",
        ),
        (
            "an unknown size",
            reservation(
                &app,
                json!({ "reference": "pi_new", "items": [{ "product": "runner", "size": "99", "quantity": 1 }] }),
            ),
            422,
            "invalid_request",
        ),
        (
            "an empty reference",
            reservation(
                &app,
                json!({ "reference": "", "items": [{ "product": "runner", "size": "42", "quantity": 1 }] }),
            ),
            422,
            "invalid_request",
        ),
        (
            "a reference with spaces",
            reservation(
                &app,
                json!({ "reference": "pi 1", "items": [{ "product": "runner", "size": "42", "quantity": 1 }] }),
            ),
            422,
            "invalid_request",
        ),
        (
            "a zero TTL",
            reservation(
                &app,
                json!({ "reference": "pi_new", "ttlSeconds": 0, "items": [{ "product": "runner", "size": "42", "quantity": 1 }] }),
            ),
            422,
            "invalid_request",
        ),
        ("more than is available", reservation(&app, cart(json!(4))), 409, "insufficient_stock"),
        (
            "a taken reference with other items",
            reservation(
                &app,
                json!({ "reference": "pi_keep", "items": [{ "product": "runner", "size": "42", "quantity": 1 }] }),
            ),
            409,
            "reference_conflict",
        ),
        (
            "releasing an unknown reservation",
            app.api(Method::DELETE, "/v1/reservations/pi_ghost"),
            404,
            "reservation_not_found",
        ),
        // Movements and admin routes.
        (
            "the API token on movements",
            json_body(
                app.api(Method::POST, "/v1/movements"),
                &json!({ "product": "runner", "size": "42", "type": "restock", "quantity": 1 }).to_string(),
            ),
            401,
            "unauthorized",
        ),
        (
            "a sale entered by hand",
            movement(&app, json!({ "product": "runner", "size": "42", "type": "sale", "quantity": -1 })),
            422,
            "invalid_request",
        ),
        (
            "a restock with a negative quantity",
            movement(&app, json!({ "product": "runner", "size": "42", "type": "restock", "quantity": -3 })),
            422,
            "invalid_request",
        ),
        (
            "an unknown movement type",
            movement(&app, json!({ "product": "runner", "size": "42", "type": "gift", "quantity": 1 })),
            422,
            "invalid_request",
        ),
        (
            "an adjustment of an unknown size",
            movement(&app, json!({ "product": "runner", "size": "99", "type": "adjustment", "quantity": -1 })),
            404,
            "unknown_size",
        ),
        (
            "an adjustment below the reserved units",
            movement(&app, json!({ "product": "runner", "size": "42", "type": "adjustment", "quantity": -4 })),
            409,
            "stock_below_reserved",
        ),
        (
            "a stale expected stock",
            movement(
                &app,
                json!({ "product": "runner", "size": "42", "type": "restock", "quantity": 1, "expectedStock": 4 }),
            ),
            409,
            "stale_stock",
        ),
        (
            "an unknown origin",
            movement(
                &app,
                json!({ "product": "runner", "size": "42", "type": "restock", "quantity": 1, "origin": "mars" }),
            ),
            422,
            "invalid_request",
        ),
        (
            "cleanup without a token",
            app.anonymous(Method::POST, "/api/admin/clean-expired-reservations"),
            401,
            "unauthorized",
        ),
        (
            "cleanup with the API token",
            app.api(Method::POST, "/api/admin/clean-expired-reservations").bearer_auth(API_TOKEN),
            401,
            "unauthorized",
        ),
        (
            "monitoring without a token",
            app.anonymous(Method::GET, "/api/admin/clean-expired-reservations"),
            401,
            "unauthorized",
        ),
    ];
    assert!(cases.len() >= 30, "the catalogue has {} cases", cases.len());

    for (name, request, status, code) in cases {
        let answer = request.send().await.unwrap_or_else(|error| unreachable!("{name}: no answer: {error}"));
        let got = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or_else(|error| unreachable!("{name}: not JSON: {error}"));
        assert_eq!((got, body["error"].as_str()), (status, Some(code)), "{name}: {body}");
        assert!(body["message"].as_str().is_some_and(|message| !message.is_empty()), "{name}: no message: {body}");
    }
    assert_eq!(ledger_state(&app).await, before, "nothing changed");
}
