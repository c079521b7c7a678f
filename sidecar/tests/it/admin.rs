//! The admin cleanup route (the seed's cron line), monitoring, and the health probes.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{body_of, spawn_app};

const CLEANUP: &str = "/api/admin/clean-expired-reservations";

#[tokio::test]
async fn cleanup_releases_every_expired_reservation_once() {
    let app = spawn_app().await;
    app.restock("runner", "42", 10).await;
    for (reference, ttl) in [("pi_short_a", 60), ("pi_short_b", 120), ("pi_long", 3600)] {
        let body = json!({ "reference": reference, "items": [{ "product": "runner", "size": "42", "quantity": 2 }], "ttlSeconds": ttl });
        body_of(app.api(Method::POST, "/v1/reservations").json(&body).send().await.expect("request"), 201).await;
    }
    app.clock.advance_seconds(120);

    let figures = body_of(app.admin(Method::GET, CLEANUP).send().await.expect("request"), 200).await;
    assert_eq!(figures["activeReservations"], 1);
    assert_eq!(figures["reservedUnits"], 2);
    assert_eq!(figures["expiredNotReleased"], 2);
    assert_eq!(figures["oldestActiveReservation"]["reference"], "pi_long");
    assert_eq!(figures["oldestActiveReservation"]["ageSeconds"], 120);

    let cleaned = body_of(app.admin(Method::POST, CLEANUP).send().await.expect("request"), 200).await;
    assert_eq!(cleaned, json!({ "released": 2, "references": ["pi_short_a", "pi_short_b"] }));
    let again = body_of(app.admin(Method::POST, CLEANUP).send().await.expect("request"), 200).await;
    assert_eq!(again["released"], 0);

    let status = body_of(app.api(Method::GET, "/v1/reservations/pi_short_a").send().await.expect("request"), 200).await;
    assert_eq!(status["status"], "expired");
    let figures = body_of(app.admin(Method::GET, CLEANUP).send().await.expect("request"), 200).await;
    assert_eq!(figures["expiredNotReleased"], 0);
    assert_eq!(app.size_stock("runner", "42").await["availableStock"], 8);

    let release = app.api(Method::DELETE, "/v1/reservations/pi_short_a").send().await.expect("request");
    assert_eq!(body_of(release, 200).await["status"], "expired", "releasing an expired reservation changes nothing");
}

#[tokio::test]
async fn the_scheduled_cleanup_runs_beside_the_server() {
    let app =
        crate::helpers::spawn_app_with(|config| config.cleanup_interval = Some(std::time::Duration::from_millis(50)))
            .await;
    app.restock("runner", "42", 1).await;
    let body = json!({ "reference": "pi_scheduled", "items": [{ "product": "runner", "size": "42", "quantity": 1 }], "ttlSeconds": 1 });
    body_of(app.api(Method::POST, "/v1/reservations").json(&body).send().await.expect("request"), 201).await;
    app.clock.advance_seconds(1);
    // The schedule itself runs on real time every 50 ms; give it up to 5 s on a loaded machine.
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        status =
            body_of(app.api(Method::GET, "/v1/reservations/pi_scheduled").send().await.expect("request"), 200).await;
        if status["status"] == "expired" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status["status"], "expired", "the scheduled cleanup did not release the expired reservation");
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(
        body_of(app.anonymous(Method::GET, "/healthz").send().await.expect("request"), 200).await["status"],
        "ok"
    );
    assert_eq!(
        body_of(app.anonymous(Method::GET, "/readyz").send().await.expect("request"), 200).await["status"],
        "ready"
    );
}

#[tokio::test]
async fn monitoring_lists_the_oldest_reservations_and_each_products_movements_over_a_window() {
    let app = spawn_app().await;
    app.restock("runner", "42", 10).await;
    app.restock("sock", "M", 5).await;
    app.clock.advance_seconds(2 * 3600);
    app.restock("runner", "43", 4).await;
    let adjust = json!({ "product": "sock", "size": "M", "type": "adjustment", "quantity": -1, "reason": "damaged" });
    body_of(app.admin(Method::POST, "/v1/movements").json(&adjust).send().await.expect("request"), 201).await;
    let both = json!([{ "product": "runner", "size": "42", "quantity": 2 }, { "product": "sock", "size": "M", "quantity": 1 }]);
    body_of(app.reserve("pi_first", both).await, 201).await;
    app.clock.advance_seconds(60);
    body_of(app.reserve("pi_second", json!([{ "product": "runner", "size": "43", "quantity": 1 }])).await, 201).await;
    app.clock.advance_seconds(60);
    body_of(app.reserve("pi_paid", json!([{ "product": "runner", "size": "42", "quantity": 3 }])).await, 201).await;
    let paid = crate::helpers::stripe_event("payment_intent.succeeded", "evt_paid", "pi_paid");
    body_of(app.send_event(&paid).await, 200).await;

    let figures = body_of(app.admin(Method::GET, CLEANUP).send().await.expect("request"), 200).await;
    let oldest = figures["oldestActiveReservations"].as_array().expect("a list");
    let listed: Vec<_> = oldest
        .iter()
        .map(|entry| (entry["reference"].clone(), entry["units"].clone(), entry["ageSeconds"].clone()))
        .collect();
    assert_eq!(listed, vec![(json!("pi_first"), json!(3), json!(120)), (json!("pi_second"), json!(1), json!(60))]);
    assert_eq!(oldest[0]["status"], "active");
    assert_eq!(figures["oldestActiveReservation"], oldest[0], "the first of the list, as before");

    // The last 24 hours (the default): every movement.
    assert_eq!(figures["movements"]["windowSeconds"], 86_400);
    assert_eq!(
        figures["movements"]["products"],
        json!([
            { "product": "runner", "movements": 3, "netUnits": 11, "byType": {
                "restock": { "movements": 2, "units": 14 }, "sale": { "movements": 1, "units": -3 } } },
            { "product": "sock", "movements": 2, "netUnits": 4, "byType": {
                "adjustment": { "movements": 1, "units": -1 }, "restock": { "movements": 1, "units": 5 } } },
        ])
    );
    // The last hour: not the first two restocks.
    let recent =
        body_of(app.admin(Method::GET, &format!("{CLEANUP}?windowSeconds=3600")).send().await.expect("request"), 200)
            .await;
    assert_eq!(recent["movements"]["since"], "2026-11-24T11:02:00.000Z");
    let products: Vec<_> = recent["movements"]["products"]
        .as_array()
        .expect("list")
        .iter()
        .map(|entry| (entry["product"].clone(), entry["netUnits"].clone()))
        .collect();
    assert_eq!(products, vec![(json!("runner"), json!(1)), (json!("sock"), json!(-1))]);

    for wrong in ["windowSeconds=5", "windowSeconds=soon", "window=3600"] {
        let answer = app.admin(Method::GET, &format!("{CLEANUP}?{wrong}")).send().await.expect("request");
        assert_eq!(body_of(answer, 422).await["error"], "invalid_request", "{wrong}");
    }
}
