//! The doors a hostile client would try, each tried here and shown shut with nothing changed: reused movement
//! references, labels that would escape their place, Stripe events that newer API versions or other products of
//! the same Stripe account send, and what unauthenticated answers show.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, body_of, spawn_app, stripe_event};

/// The ledger's figures of a size: (stock, reserved).
async fn figures(app: &TestApp, product: &str, size: &str) -> (u64, u64) {
    let row = app.size_stock(product, size).await;
    (row["stock"].as_u64().unwrap_or(0), row["reservedStock"].as_u64().unwrap_or(0))
}

async fn open_conflicts(app: &TestApp) -> Vec<Value> {
    let answer = body_of(app.admin(Method::GET, "/api/admin/conflicts").send().await.expect("request"), 200).await;
    answer["conflicts"].as_array().cloned().unwrap_or_default()
}

/// Every metric series the sidecar exposes (name and labels, without the value).
async fn series(app: &TestApp) -> std::collections::BTreeSet<String> {
    let text = app.admin(Method::GET, "/metrics").send().await.expect("request").text().await.expect("text");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

async fn movement(app: &TestApp, body: Value) -> reqwest::Response {
    app.admin(Method::POST, "/v1/movements").json(&body).send().await.expect("request")
}

#[tokio::test]
async fn a_movement_reference_reused_for_another_movement_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let first = json!({ "product": "runner", "size": "42", "type": "restock", "quantity": 5, "reference": "DN-118" });
    body_of(movement(&app, first.clone()).await, 201).await;
    let mut again = first.clone();
    again["reason"] = json!("typed again");
    let retry = body_of(movement(&app, again).await, 200).await;
    assert_eq!(retry["stockAfter"], 5, "the same movement again answers the first");
    for other in [
        json!({ "product": "runner", "size": "42", "type": "restock", "quantity": 6, "reference": "DN-118" }),
        json!({ "product": "runner", "size": "43", "type": "restock", "quantity": 5, "reference": "DN-118" }),
        json!({ "product": "trail", "size": "42", "type": "restock", "quantity": 5, "reference": "DN-118" }),
        json!({ "product": "runner", "size": "42", "type": "return", "quantity": 5, "reference": "DN-118" }),
    ] {
        let refused = body_of(movement(&app, other.clone()).await, 409).await;
        assert_eq!(refused["error"], "reference_conflict", "{other}");
        assert_eq!(refused["movement"]["quantity"], 5, "the answer shows the first movement");
    }
    assert_eq!(figures(&app, "runner", "42").await, (5, 0));
    let runner = body_of(app.api(Method::GET, "/v1/products/runner/stock").send().await.expect("request"), 200).await;
    assert_eq!(runner["sizes"].as_array().map(Vec::len), Some(1), "no size 43 was created");
    let trail = app.api(Method::GET, "/v1/products/trail/stock").send().await.expect("request");
    assert_eq!(trail.status(), 404, "no empty size row for the refused product either");
}

#[tokio::test]
async fn product_ids_sizes_and_reasons_out_of_bounds_are_refused_with_422() {
    let app = spawn_app().await;
    app.restock("runner", "42", 2).await;
    let long = "x".repeat(65);
    // The second round must add no metric series: nothing of a refused label becomes a label value. (A first scrape
    // makes the scrape's own series exist.)
    series(&app).await;
    let mut before = None;
    for round in 0..2 {
        for (product, size) in [
            (".", "42"),
            ("..", "42"),
            ("a/b", "42"),
            ("a?b", "42"),
            (long.as_str(), "42"),
            ("runner", " 42"),
            ("runner", "4\n2"),
        ] {
            let restock = json!({ "product": product, "size": size, "type": "restock", "quantity": 1 });
            let refused = body_of(movement(&app, restock).await, 422).await;
            assert_eq!(refused["error"], "invalid_request", "{product:?} {size:?}");
            let cart = json!([{ "product": product, "size": size, "quantity": 1 }]);
            let reserved = body_of(app.reserve(&format!("pi_bad_label_{round}"), cart).await, 422).await;
            assert!(reserved["message"].as_str().is_some_and(|text| text.starts_with("items[0]")), "{reserved}");
        }
        let now = series(&app).await;
        if let Some(before) = &before {
            assert_eq!(&now, before, "no new series");
        }
        before = Some(now);
    }
    let reason =
        json!({ "product": "runner", "size": "42", "type": "restock", "quantity": 1, "reason": "r".repeat(501) });
    assert_eq!(body_of(movement(&app, reason).await, 422).await["reason"], "invalid_reason");
    assert_eq!(figures(&app, "runner", "42").await, (2, 0), "nothing changed");
}

#[tokio::test]
async fn events_of_types_stock_does_not_use_are_answered_200_whatever_their_shape() {
    let app = spawn_app().await;
    for (id, kind, object) in [
        ("evt_customer", "customer.created", json!({ "id": "cus_1" })),
        ("evt_invoice", "invoice.paid", json!({ "id": "in_1", "status": "a_status_from_2031" })),
        ("evt_odd", "v2.core.event_destination.ping", json!(null)),
    ] {
        let body = json!({ "id": id, "object": "event", "type": kind, "data": { "object": object } }).to_string();
        let answer = body_of(app.send_event(&body).await, 200).await;
        assert_eq!(answer["outcome"], "ignored", "{kind}");
    }
    assert!(open_conflicts(&app).await.is_empty());
}

#[tokio::test]
async fn fields_and_values_from_newer_stripe_versions_never_make_a_payment_unreadable() {
    let app = spawn_app().await;
    app.restock("runner", "42", 1).await;
    body_of(app.reserve("pi_3Future", json!([{ "product": "runner", "size": "42", "quantity": 1 }])).await, 201).await;
    let mut event: Value =
        serde_json::from_str(&stripe_event("payment_intent.succeeded", "evt_future", "pi_3Future")).expect("JSON");
    event["api_version"] = json!("2031-01-01.future");
    event["data"]["object"]["status"] = json!("a_status_stripe_adds_later");
    event["data"]["object"]["payment_method_types"] = json!(["a_method_from_2031"]);
    event["data"]["object"]["brand_new_object"] = json!({ "nested": [1, 2, 3] });
    event["data"]["object"].as_object_mut().expect("object").remove("amount");
    let answer = body_of(app.send_event(&event.to_string()).await, 200).await;
    assert_eq!(answer["outcome"], "committed");
    assert_eq!(figures(&app, "runner", "42").await, (0, 0));
}

#[tokio::test]
async fn a_signed_payment_stock_cannot_read_is_recorded_once_as_a_conflict_an_operator_sees() {
    let app = spawn_app().await;
    let without_id = json!({ "id": "evt_no_object_id", "object": "event", "type": "payment_intent.succeeded",
        "data": { "object": { "object": "payment_intent", "metadata": { "payloadStock": "1" } } } })
    .to_string();
    let answer = body_of(app.send_event(&without_id).await, 200).await;
    assert_eq!((answer["outcome"].clone(), answer["conflict"].clone()), (json!("conflict"), json!("unreadable_event")));
    assert_eq!(body_of(app.send_event(&without_id).await, 200).await["outcome"], "duplicate");
    let conflicts = open_conflicts(&app).await;
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        (conflicts[0]["kind"].clone(), conflicts[0]["eventId"].clone()),
        (json!("unreadable_event"), json!("evt_no_object_id"))
    );
    assert!(conflicts[0]["details"]["problem"].as_str().is_some_and(|text| text.contains("data.object.id")));
    let report =
        body_of(app.admin(Method::GET, "/api/admin/clean-expired-reservations").send().await.expect("request"), 200)
            .await;
    assert_eq!(report["openConflicts"], 1);
    assert_eq!(report["conflicts"][0]["kind"], "unreadable_event");
    let metrics = app.admin(Method::GET, "/metrics").send().await.expect("request").text().await.expect("text");
    assert!(
        metrics.contains(r#"payload_stock_webhook_events_total{type="payment_intent.succeeded",outcome="conflict"} 1"#),
        "counted"
    );
}

#[tokio::test]
async fn payments_that_are_not_the_shops_are_ignored_quietly_and_marked_ones_nobody_reserved_are_conflicts() {
    let app = spawn_app().await;
    let unmarked = |event: &str, object: &str| {
        let mut value: Value =
            serde_json::from_str(&stripe_event("payment_intent.succeeded", event, object)).expect("JSON");
        value["data"]["object"]["metadata"] = json!({ "subscription": "sub_1" });
        value.to_string()
    };
    let foreign = body_of(app.send_event(&unmarked("evt_invoice_paid", "pi_3Subscription")).await, 200).await;
    assert_eq!(foreign["outcome"], "ignored");
    assert!(foreign["reason"].as_str().is_some_and(|reason| reason.contains("not one of the shop's checkouts")));
    assert!(open_conflicts(&app).await.is_empty(), "no conflict for someone else's payment");

    // The same unmarked payment of a reservation the shop made is the shop's: it is sold.
    app.restock("runner", "42", 1).await;
    body_of(app.reserve("pi_3Unmarked", json!([{ "product": "runner", "size": "42", "quantity": 1 }])).await, 201)
        .await;
    let sold = body_of(app.send_event(&unmarked("evt_unmarked_sale", "pi_3Unmarked")).await, 200).await;
    assert_eq!(sold["outcome"], "committed");

    let marked = stripe_event("payment_intent.succeeded", "evt_marked_lost", "pi_3NeverReserved");
    let conflict = body_of(app.send_event(&marked).await, 200).await;
    assert_eq!(conflict["conflict"], "unknown_reference");
    let listed = open_conflicts(&app).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["reference"], "pi_3NeverReserved");

    // Resolved once, with the operator's note; again changes nothing.
    let id = listed[0]["id"].as_i64().expect("id");
    let path = format!("/api/admin/conflicts/{id}/resolve");
    let resolve = |note: &str| app.admin(Method::POST, &path).json(&json!({ "resolution": note })).send();
    let resolved = body_of(resolve("Refunded the customer").await.expect("request"), 200).await;
    assert_eq!(
        (resolved["alreadyResolved"].clone(), resolved["conflict"]["resolution"].clone()),
        (json!(false), json!("Refunded the customer"))
    );
    let again = body_of(resolve("Another note").await.expect("request"), 200).await;
    assert_eq!(
        (again["alreadyResolved"].clone(), again["conflict"]["resolution"].clone()),
        (json!(true), json!("Refunded the customer"))
    );
    assert!(open_conflicts(&app).await.is_empty());
    let missing =
        app.admin(Method::POST, "/api/admin/conflicts/999/resolve").json(&json!({ "resolution": "x" })).send();
    assert_eq!(body_of(missing.await.expect("request"), 404).await["error"], "conflict_not_found");
    let anonymous = app.anonymous(Method::GET, "/api/admin/conflicts").send().await.expect("request");
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn unauthenticated_answers_carry_no_data() {
    let payload = {
        let settings = [
            ("PAYLOAD_URL", "http://127.0.0.1:9"),
            ("PAYLOAD_API_KEY", "payload-key-0123456789"),
            ("ADMIN_API_TOKEN", crate::helpers::ADMIN_TOKEN),
        ];
        let settings = settings.into_iter().map(|(key, value)| (key.to_owned(), value.to_owned())).collect();
        stock_sidecar::config::Config::from_settings(&settings).expect("valid").payload
    };
    let app = crate::helpers::spawn_app_with(|config| config.payload = payload).await;
    app.restock("runner", "42", 1).await;
    // Nothing listens on port 9: the delivery fails with an error naming Payload's URL.
    let report = loop {
        let report = body_of(
            app.admin(Method::GET, "/api/admin/clean-expired-reservations").send().await.expect("request"),
            200,
        )
        .await;
        if report["payloadProjection"]["failing"].as_u64().unwrap_or(0) > 0 {
            break report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(report["payloadProjection"]["lastError"].as_str().is_some_and(|error| error.contains("127.0.0.1:9")));
    let ready = app.anonymous(Method::GET, "/readyz").send().await.expect("request").text().await.expect("text");
    assert!(!ready.contains("127.0.0.1") && !ready.contains("lastError") && !ready.contains("runner"), "{ready}");
    let ready: Value = serde_json::from_str(&ready).expect("JSON");
    assert!(ready["payloadProjection"]["failing"].as_u64().unwrap_or(0) > 0, "the count is there");
    let metrics = app.anonymous(Method::GET, "/metrics").send().await.expect("request");
    assert_eq!(metrics.status(), 401);
}

#[tokio::test]
async fn sales_whose_labels_hold_a_colon_get_keys_of_their_own() {
    let app = spawn_app().await;
    // Unescaped, both sales had the key sale:pi_k:runner:x:y, and the second failed forever.
    app.restock("runner", "x:y", 1).await;
    app.restock("x", "y", 1).await;
    for (reference, product, size) in [("pi_k", "runner", "x:y"), ("pi_k:runner", "x", "y")] {
        let cart = json!([{ "product": product, "size": size, "quantity": 1 }]);
        body_of(app.reserve(reference, cart).await, 201).await;
        let event = stripe_event("payment_intent.succeeded", &format!("evt_{reference}"), reference);
        assert_eq!(body_of(app.send_event(&event).await, 200).await["outcome"], "committed", "{reference}");
    }
    assert_eq!(figures(&app, "runner", "x:y").await, (0, 0));
    assert_eq!(figures(&app, "x", "y").await, (0, 0));
}

/// The migration that escapes the keys stored before (0009 on SQLite, 0005 on PostgreSQL), run again on rows
/// written in the old form: they take the form the sidecar now computes, and keys without `:` or `\` stay.
#[tokio::test]
async fn keys_stored_in_the_old_form_are_rewritten_in_the_new_one() {
    use sqlx::Connection;
    let app = spawn_app().await;
    app.restock("shoe", "1", 1).await; // the sidecar has opened (and migrated) its database
    let rows = [
        ("sale:pi_old:shoe:p:q", "sale", "pi_old", "p:q", "sale:pi_old:shoe:p\\:q"),
        ("sale:pi_o\\ld:shoe:9", "sale", "pi_o\\ld", "9", "sale:pi_o\\\\ld:shoe:9"),
        ("import:shoe:r:s", "adjustment", "", "r:s", "import:shoe:r\\:s"),
        ("sale:pi_plain:shoe:40", "sale", "pi_plain", "40", "sale:pi_plain:shoe:40"),
    ];
    let insert = |placeholder: fn(usize) -> String| {
        format!(
            "INSERT INTO movements (idempotency_key, product, size, type, quantity, stock_before, stock_after, \
             reason, reference, date) VALUES ({}, 'shoe', {}, {}, -1, 1, 0, 'old', {}, 0)",
            placeholder(1),
            placeholder(2),
            placeholder(3),
            placeholder(4)
        )
    };
    let keys: Vec<String> = if app.database.is_postgres() {
        let mut connection = sqlx::PgConnection::connect(&app.database_url).await.expect("connect");
        for (key, kind, reference, size, _) in rows {
            let sql = insert(|index| format!("${index}"));
            let reference = (!reference.is_empty()).then_some(reference);
            let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key).bind(size).bind(kind).bind(reference);
            query.execute(&mut connection).await.expect("insert");
        }
        let migration = include_str!("../../migrations/postgres/0005_unambiguous_keys.sql");
        sqlx::raw_sql(sqlx::AssertSqlSafe(migration)).execute(&mut connection).await.expect("migrate");
        sqlx::query_scalar("SELECT idempotency_key FROM movements WHERE reason = 'old' ORDER BY id")
            .fetch_all(&mut connection)
            .await
            .expect("keys")
    } else {
        let connection = crate::helpers::sqlite_connection(&app.database_url);
        for (key, kind, reference, size, _) in rows {
            let sql = insert(|index| format!("?{index}"));
            let reference = (!reference.is_empty()).then_some(reference);
            connection.execute(&sql, rusqlite::params![key, size, kind, reference]).expect("insert");
        }
        let migration = include_str!("../../migrations/sqlite/0009_unambiguous_keys.sql");
        connection.execute_batch(migration).expect("migrate");
        let mut statement = connection
            .prepare("SELECT idempotency_key FROM movements WHERE reason = 'old' ORDER BY id")
            .expect("statement");
        statement
            .query_map([], |row| row.get::<_, String>(0))
            .expect("keys")
            .collect::<Result<Vec<String>, _>>()
            .expect("keys")
    };
    let expected: Vec<&str> = rows.iter().map(|row| row.4).collect();
    assert_eq!(keys, expected);
}
