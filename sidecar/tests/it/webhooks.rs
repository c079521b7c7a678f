//! Stripe webhooks: signed events from the fixtures commit, release or hold reservations exactly once, whatever
//! the order and however often they arrive.

use reqwest::Method;
use serde_json::{Value, json};
use stock_sidecar::config::Secret;

use crate::helpers::{TestApp, body_of, spawn_app, spawn_app_with, stripe_event};

const CLEANUP: &str = "/api/admin/clean-expired-reservations";

async fn reserve_one(app: &TestApp, reference: &str, quantity: u32) {
    let items = json!([{ "product": "runner", "size": "42", "quantity": quantity }]);
    body_of(app.reserve(reference, items).await, 201).await;
}

async fn status_of(app: &TestApp, reference: &str) -> Value {
    let response = app.api(Method::GET, &format!("/v1/reservations/{reference}")).send().await.expect("request");
    body_of(response, 200).await["status"].clone()
}

async fn figures(app: &TestApp) -> (u64, u64) {
    let size = app.size_stock("runner", "42").await;
    (size["stock"].as_u64().unwrap_or(u64::MAX), size["reservedStock"].as_u64().unwrap_or(u64::MAX))
}

async fn deliver(app: &TestApp, fixture: &str, event_id: &str, object_id: &str) -> Value {
    body_of(app.send_event(&stripe_event(fixture, event_id, object_id)).await, 200).await
}

#[tokio::test]
async fn a_successful_payment_sells_the_reserved_units_once_however_often_it_is_delivered() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    reserve_one(&app, "pi_3Paid", 2).await;

    let answer = deliver(&app, "payment_intent.succeeded", "evt_paid_1", "pi_3Paid").await;
    assert_eq!(answer["outcome"], "committed");
    assert_eq!(answer["duplicate"], false);
    assert_eq!(figures(&app).await, (3, 0), "stock and reserved went down together");
    assert_eq!(status_of(&app, "pi_3Paid").await, "committed");

    let again = deliver(&app, "payment_intent.succeeded", "evt_paid_1", "pi_3Paid").await;
    assert_eq!((again["duplicate"].clone(), again["outcome"].clone()), (json!(true), json!("duplicate")));
    let other_event = deliver(&app, "payment_intent.succeeded", "evt_paid_2", "pi_3Paid").await;
    assert_eq!(other_event["outcome"], "unchanged");
    assert_eq!(figures(&app).await, (3, 0), "sold once");

    let cancel_after = deliver(&app, "payment_intent.canceled", "evt_cancel_late", "pi_3Paid").await;
    assert_eq!(cancel_after["outcome"], "ignored");
    assert_eq!(figures(&app).await, (3, 0), "a late cancellation never puts sold units back");
}

#[tokio::test]
async fn a_failed_payment_keeps_the_reservation_for_a_retry_unless_configured_otherwise() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    reserve_one(&app, "pi_3Failed", 2).await;
    let answer = deliver(&app, "payment_intent.payment_failed", "evt_failed", "pi_3Failed").await;
    assert_eq!(answer["outcome"], "ignored");
    assert_eq!(figures(&app).await, (5, 2), "nothing decremented, still held for a retry");
    let retry = deliver(&app, "payment_intent.succeeded", "evt_retry", "pi_3Failed").await;
    assert_eq!(retry["outcome"], "committed");
    assert_eq!(figures(&app).await, (3, 0));

    let releasing = spawn_app_with(|config| config.release_on_payment_failed = true).await;
    releasing.restock("runner", "42", 5).await;
    reserve_one(&releasing, "pi_3Failed", 2).await;
    let answer = deliver(&releasing, "payment_intent.payment_failed", "evt_failed", "pi_3Failed").await;
    assert_eq!(answer["outcome"], "released");
    assert_eq!(figures(&releasing).await, (5, 0));
}

#[tokio::test]
async fn a_canceled_payment_intent_releases_its_reservation() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    reserve_one(&app, "pi_3Canceled", 4).await;
    assert_eq!(deliver(&app, "payment_intent.canceled", "evt_c", "pi_3Canceled").await["outcome"], "released");
    assert_eq!(figures(&app).await, (5, 0));
    assert_eq!(status_of(&app, "pi_3Canceled").await, "released");
    let success_after = deliver(&app, "payment_intent.succeeded", "evt_s", "pi_3Canceled").await;
    assert_eq!(success_after["outcome"], "committed_late", "units still there: reserved again and sold");
    assert_eq!(figures(&app).await, (1, 0));
}

#[tokio::test]
async fn a_late_payment_is_sold_when_units_remain_and_recorded_as_a_conflict_when_they_do_not() {
    let app = spawn_app().await;
    app.restock("runner", "42", 2).await;
    reserve_one(&app, "pi_3LateOk", 1).await;
    reserve_one(&app, "pi_3LateGone", 1).await;
    app.clock.advance_seconds(31 * 60);
    let released = body_of(app.admin(Method::POST, CLEANUP).send().await.expect("request"), 200).await;
    assert_eq!(released["released"], 2);
    reserve_one(&app, "pi_3Newcomer", 1).await;

    let ok = deliver(&app, "payment_intent.succeeded", "evt_late_ok", "pi_3LateOk").await;
    assert_eq!(ok["outcome"], "committed_late");
    assert_eq!(figures(&app).await, (1, 1), "sold one; the newcomer still holds the last");

    let gone = deliver(&app, "payment_intent.succeeded", "evt_late_gone", "pi_3LateGone").await;
    assert_eq!((gone["outcome"].clone(), gone["conflict"].clone()), (json!("conflict"), json!("oversold")));
    assert_eq!(figures(&app).await, (1, 1), "nothing sold twice");
    assert_eq!(status_of(&app, "pi_3LateGone").await, "expired");
    let monitoring = body_of(app.admin(Method::GET, CLEANUP).send().await.expect("request"), 200).await;
    assert_eq!(monitoring["openConflicts"], 1);
}

#[tokio::test]
async fn a_payment_past_the_expiry_instant_but_before_cleanup_counts_as_late() {
    let app = spawn_app().await;
    app.restock("runner", "42", 1).await;
    reserve_one(&app, "pi_3Slow", 1).await;
    app.clock.advance_seconds(30 * 60);
    reserve_one(&app, "pi_3Quick", 1).await;
    let answer = deliver(&app, "payment_intent.succeeded", "evt_slow", "pi_3Slow").await;
    assert_eq!(answer["conflict"], "oversold", "the unit went to the next buyer at the expiry instant");
    assert_eq!(figures(&app).await, (1, 1));
}

#[tokio::test]
async fn a_payment_for_a_reference_nobody_reserved_is_recorded_as_a_conflict() {
    let app = spawn_app().await;
    let answer = deliver(&app, "payment_intent.succeeded", "evt_unknown", "pi_3Nobody").await;
    assert_eq!(
        (answer["outcome"].clone(), answer["conflict"].clone()),
        (json!("conflict"), json!("unknown_reference"))
    );
}

#[tokio::test]
async fn checkout_sessions_commit_when_paid_and_hold_their_units_while_an_async_payment_processes() {
    let app = spawn_app().await;
    app.restock("runner", "42", 10).await;
    reserve_one(&app, "cs_test_paid", 1).await;
    assert_eq!(
        deliver(&app, "checkout.session.completed", "evt_cs_paid", "cs_test_paid").await["outcome"],
        "committed"
    );

    reserve_one(&app, "cs_test_sepa", 2).await;
    let pending = deliver(&app, "checkout.session.completed.unpaid", "evt_cs_unpaid", "cs_test_sepa").await;
    assert_eq!(pending["outcome"], "processing");
    app.clock.advance_seconds(3 * 24 * 60 * 60);
    body_of(app.admin(Method::POST, CLEANUP).send().await.expect("request"), 200).await;
    assert_eq!(figures(&app).await, (9, 2), "a processing payment keeps its units past the expiry and cleanup");
    let paid = deliver(&app, "checkout.session.async_payment_succeeded", "evt_cs_async", "cs_test_sepa").await;
    assert_eq!(paid["outcome"], "committed");
    assert_eq!(figures(&app).await, (7, 0));

    reserve_one(&app, "cs_test_fails", 3).await;
    deliver(&app, "checkout.session.completed.unpaid", "evt_cs_unpaid_2", "cs_test_fails").await;
    let failed = deliver(&app, "checkout.session.async_payment_failed", "evt_cs_failed", "cs_test_fails").await;
    assert_eq!(failed["outcome"], "released");
    reserve_one(&app, "cs_test_abandoned", 3).await;
    assert_eq!(
        deliver(&app, "checkout.session.expired", "evt_cs_expired", "cs_test_abandoned").await["outcome"],
        "released"
    );
    assert_eq!(figures(&app).await, (7, 0));
}

#[tokio::test]
async fn a_processing_event_after_the_success_changes_nothing() {
    let app = spawn_app().await;
    app.restock("runner", "42", 3).await;
    reserve_one(&app, "pi_3Order", 1).await;
    deliver(&app, "payment_intent.succeeded", "evt_success_first", "pi_3Order").await;
    let processing = deliver(&app, "payment_intent.processing", "evt_processing_second", "pi_3Order").await;
    assert_eq!(processing["outcome"], "ignored");
    assert_eq!(status_of(&app, "pi_3Order").await, "committed");
    assert_eq!(figures(&app).await, (2, 0));
}

#[tokio::test]
async fn events_that_do_not_concern_stock_are_acknowledged_and_ignored() {
    let app = spawn_app().await;
    let answer = deliver(&app, "payment_intent.created", "evt_created", "pi_3Created").await;
    assert_eq!(answer["outcome"], "ignored");
}

#[tokio::test]
async fn forged_missing_malformed_and_stale_signatures_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    reserve_one(&app, "pi_3Guarded", 2).await;
    let payload = stripe_event("payment_intent.succeeded", "evt_guarded", "pi_3Guarded");

    let forged = app.send_signed(&payload, "whsec_not_the_right_secret").await;
    assert_eq!(body_of(forged, 400).await["error"], "invalid_signature");
    let missing = app
        .client
        .post(format!("{}/api/checkout/webhook", app.address))
        .body(payload.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(body_of(missing, 400).await["error"], "invalid_signature");
    let malformed = app.send_with_signature(&payload, "t=yesterday,v1=abc").await;
    assert_eq!(body_of(malformed, 400).await["error"], "invalid_signature");
    let stale_time = app.clock_seconds() - 301;
    let stale =
        stripe_webhook::Webhook::generate_test_header(&payload, crate::helpers::WEBHOOK_SECRET, Some(stale_time));
    assert_eq!(body_of(app.send_with_signature(&payload, &stale).await, 400).await["error"], "invalid_signature");
    let tampered = payload.replace("ORD-2024-001", "ORD-2024-999");
    let header = stripe_webhook::Webhook::generate_test_header(
        &payload,
        crate::helpers::WEBHOOK_SECRET,
        Some(app.clock_seconds()),
    );
    assert_eq!(body_of(app.send_with_signature(&tampered, &header).await, 400).await["error"], "invalid_signature");

    assert_eq!(figures(&app).await, (5, 2), "nothing applied");
    let genuine = body_of(app.send_event(&payload).await, 200).await;
    assert_eq!(genuine["duplicate"], false, "the refused deliveries did not claim the event id");
}

#[tokio::test]
async fn a_signed_body_that_is_not_an_event_is_recorded_as_a_conflict_not_refused() {
    let app = spawn_app().await;
    for body in ["{ not json", r#"{"id":"evt_x","object":"event"}"#, r#"{"hello":"world"}"#] {
        let answer = body_of(app.send_event(body).await, 200).await;
        assert_eq!(
            (answer["outcome"].clone(), answer["conflict"].clone()),
            (json!("conflict"), json!("unreadable_event"))
        );
        let again = body_of(app.send_event(body).await, 200).await;
        assert_eq!(again["outcome"], "duplicate", "recorded once: {body}");
    }
}

#[tokio::test]
async fn every_configured_secret_verifies_during_a_rotation_and_none_means_disabled() {
    let app = spawn_app_with(|config| {
        config.stripe_webhook_secrets = vec![Secret::new("whsec_old_secret"), Secret::new("whsec_new_secret")];
    })
    .await;
    for (secret, event_id) in [("whsec_old_secret", "evt_old"), ("whsec_new_secret", "evt_new")] {
        let payload = stripe_event("payment_intent.created", event_id, "pi_3Rotation");
        assert_eq!(body_of(app.send_signed(&payload, secret).await, 200).await["eventId"], event_id);
    }
    let closed = spawn_app_with(|config| config.stripe_webhook_secrets.clear()).await;
    let payload = stripe_event("payment_intent.created", "evt_closed", "pi_3Closed");
    assert_eq!(body_of(closed.send_event(&payload).await, 503).await["error"], "webhooks_disabled");
}

#[tokio::test]
async fn events_signed_by_stripes_own_node_library_are_accepted() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let app = spawn_app().await;
    let payload = stripe_event("payment_intent.created", "evt_signed_by_node", "pi_3Node");
    let stripe = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/node_modules/stripe");
    assert!(
        std::path::Path::new(stripe).exists(),
        "the stripe npm package is missing: run `npm ci` in tests/ (scripts/test.sh does)"
    );
    let timestamp = app.clock_seconds().to_string();
    let script = "const Stripe = require(process.argv[1]); const payload = require('fs').readFileSync(0, 'utf8'); \
        const header = new Stripe('sk_test_unused').webhooks.generateTestHeaderString({ payload, \
        secret: process.argv[2], timestamp: Number(process.argv[3]) }); process.stdout.write(header);";
    let mut node = Command::new("node")
        .args(["-e", script, stripe, crate::helpers::WEBHOOK_SECRET, &timestamp])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    node.stdin.take().expect("stdin").write_all(payload.as_bytes()).expect("payload written");
    let output = node.wait_with_output().expect("node finished");
    assert!(output.status.success(), "node failed: {output:?}");
    let header = String::from_utf8(output.stdout).expect("UTF-8 header");

    let ours = stripe_webhook::Webhook::generate_test_header(
        &payload,
        crate::helpers::WEBHOOK_SECRET,
        Some(app.clock_seconds()),
    );
    assert_eq!(header, ours, "the tests sign byte for byte as stripe-node does");
    let answer = body_of(app.send_with_signature(&payload, &header).await, 200).await;
    assert_eq!(answer["eventId"], "evt_signed_by_node");
}

#[tokio::test]
async fn a_ledger_locked_by_another_process_answers_503_so_that_stripe_retries_and_nothing_is_half_applied() {
    use sqlx::Connection;

    let app = spawn_app().await;
    app.restock("runner", "42", 5).await;
    reserve_one(&app, "pi_3Retried", 2).await;
    let payload = stripe_event("payment_intent.succeeded", "evt_retried", "pi_3Retried");

    // Another process holds the ledger's lock longer than the sidecar waits for it (5 s): SQLite's write lock, or
    // on PostgreSQL an exclusive lock on the table of Stripe events.
    let (status, retry_after, body) = if app.database.is_postgres() {
        let mut blocker = sqlx::PgConnection::connect(&app.database_url).await.expect("second connection");
        sqlx::query("BEGIN").execute(&mut blocker).await.expect("transaction");
        sqlx::query("LOCK TABLE stripe_events IN ACCESS EXCLUSIVE MODE").execute(&mut blocker).await.expect("lock");
        let answer = answer_of(app.send_event(&payload).await).await;
        sqlx::query("ROLLBACK").execute(&mut blocker).await.expect("lock released");
        answer
    } else {
        let blocker = crate::helpers::sqlite_connection(&app.database_url);
        blocker.execute_batch("BEGIN EXCLUSIVE").expect("lock taken");
        let answer = answer_of(app.send_event(&payload).await).await;
        blocker.execute_batch("ROLLBACK").expect("lock released");
        answer
    };
    assert_eq!(status, 503);
    assert_eq!(body["error"], "ledger_busy");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(!body["message"].as_str().unwrap_or_default().contains("database"), "internals are not leaked: {body}");

    let retried = body_of(app.send_event(&payload).await, 200).await;
    assert_eq!((retried["duplicate"].clone(), retried["outcome"].clone()), (json!(false), json!("committed")));
    assert_eq!(figures(&app).await, (3, 0));
}

/// A response's status, Retry-After header and JSON body.
async fn answer_of(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|value| value.to_str().ok()).map(str::to_owned);
    (status, retry_after, response.json().await.expect("JSON error body"))
}

#[tokio::test]
async fn a_payment_confirmed_by_the_shop_and_its_stripe_event_sell_once_in_either_order() {
    let app = spawn_app().await;
    app.restock("7", "12", 4).await;
    let confirm = |reference: &str| {
        app.admin(Method::POST, &format!("/v1/reservations/{reference}/commit"))
            .json(&json!({ "orderReference": "42" }))
            .send()
    };
    for (reference, confirm_first) in [("pi_confirm_first", true), ("pi_event_first", false)] {
        body_of(app.reserve(reference, json!([{ "product": 7, "variant": 12, "quantity": 1 }])).await, 201).await;
        let event = stripe_event("payment_intent.succeeded", &format!("evt_{reference}"), reference);
        if !confirm_first {
            assert_eq!(body_of(app.send_event(&event).await, 200).await["outcome"], "committed");
        }
        let answer = body_of(confirm(reference).await.expect("request"), 200).await;
        assert_eq!(answer["outcome"], if confirm_first { "committed" } else { "unchanged" }, "{answer}");
        assert_eq!(answer["reservation"]["status"], "committed");
        if confirm_first {
            assert_eq!(body_of(app.send_event(&event).await, 200).await["outcome"], "unchanged");
        }
        let again = body_of(confirm(reference).await.expect("request"), 200).await;
        assert_eq!(again["outcome"], "duplicate");
    }
    let size = app.size_stock("7", "12").await;
    assert_eq!((size["stock"].as_u64(), size["reservedStock"].as_u64()), (Some(2), Some(0)), "two sales of one unit");

    let unknown = body_of(confirm("pi_never_reserved").await.expect("request"), 200).await;
    assert_eq!(
        (unknown["outcome"].as_str(), unknown["conflict"].as_str()),
        (Some("conflict"), Some("unknown_reference"))
    );
    let by_api_token = app.api(Method::POST, "/v1/reservations/pi_confirm_first/commit").json(&json!({})).send();
    assert_eq!(by_api_token.await.expect("request").status(), 401, "only the admin token may declare a payment");
}
