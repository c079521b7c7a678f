//! Cleanup with STRIPE_SECRET_KEY: abandoned checkouts are ended at Stripe (a local fake) before their
//! reservations are released, and payments already under way are left for the webhook.

use reqwest::Method;
use serde_json::json;
use stock_sidecar::config::Secret;

use crate::fake_stripe::FakeStripe;
use crate::helpers::{TestApp, body_of, spawn_app_with};

const CLEANUP: &str = "/api/admin/clean-expired-reservations";

async fn app_with_stripe(stripe: &FakeStripe) -> TestApp {
    let base = stripe.base.clone();
    spawn_app_with(move |config| {
        config.stripe_secret_key = Some(Secret::new("sk_test_fake_key_for_the_tests"));
        config.stripe_api_base = Some(base);
    })
    .await
}

async fn reserve(app: &TestApp, reference: &str) {
    let body = json!({ "reference": reference, "items": [{ "product": "runner", "size": "42", "quantity": 1 }], "ttlSeconds": 60 });
    body_of(app.api(Method::POST, "/v1/reservations").json(&body).send().await.expect("request"), 201).await;
}

#[tokio::test]
async fn cleanup_cancels_abandoned_checkouts_at_stripe_and_keeps_those_whose_payment_is_under_way() {
    let stripe = FakeStripe::start().await;
    let app = app_with_stripe(&stripe).await;
    app.restock("runner", "42", 10).await;
    for (reference, status) in [
        ("pi_3Abandoned", "requires_payment_method"),
        ("pi_3AlreadyPaid", "succeeded"),
        ("pi_3Processing", "processing"),
    ] {
        stripe.set_intent(reference, status);
        reserve(&app, reference).await;
    }
    stripe.set_session("cs_test_abandoned", "open");
    reserve(&app, "cs_test_abandoned").await;
    stripe.set_session("cs_test_completed", "complete");
    reserve(&app, "cs_test_completed").await;
    reserve(&app, "shop-own-reference").await;
    app.clock.advance_seconds(61);

    let cleaned = body_of(app.admin(Method::POST, CLEANUP).send().await.expect("request"), 200).await;
    assert_eq!(cleaned["references"], json!(["cs_test_abandoned", "pi_3Abandoned", "shop-own-reference"]));
    assert_eq!(stripe.intent_status("pi_3Abandoned").as_deref(), Some("canceled"));
    let calls = stripe.calls();
    assert!(
        calls.iter().any(|call| call.starts_with("POST /v1/payment_intents/pi_3Abandoned/cancel")
            && call.contains("cancellation_reason=abandoned")),
        "{calls:?}"
    );
    assert!(calls.contains(&"POST /v1/checkout/sessions/cs_test_abandoned/expire".to_owned()), "{calls:?}");

    for kept in ["pi_3AlreadyPaid", "pi_3Processing", "cs_test_completed"] {
        let response = app.api(Method::GET, &format!("/v1/reservations/{kept}")).send().await.expect("request");
        assert_eq!(body_of(response, 200).await["status"], "active", "{kept} is left for its webhook");
    }
    let paid = crate::helpers::stripe_event("payment_intent.succeeded", "evt_paid_meanwhile", "pi_3AlreadyPaid");
    let answer = body_of(app.send_event(&paid).await, 200).await;
    assert_eq!(answer["outcome"], "committed_late", "sold through the late-payment path");
}

#[tokio::test]
async fn when_stripe_cannot_be_reached_the_reservation_waits_for_the_next_pass() {
    let stripe = FakeStripe::start().await;
    let app = app_with_stripe(&stripe).await;
    app.restock("runner", "42", 1).await;
    reserve(&app, "pi_3Unknown").await;
    app.clock.advance_seconds(61);
    let cleaned = body_of(app.admin(Method::POST, CLEANUP).send().await.expect("request"), 200).await;
    assert_eq!(cleaned["released"], 0, "Stripe answered 404: kept and logged, not released blindly");
    assert_eq!(app.size_stock("runner", "42").await["availableStock"], 1, "its units no longer count all the same");
}
