//! GET /openapi.json: the document lists exactly the routes the sidecar serves, every documented route answers,
//! real answers of every route conform to the schemas documented for their status (no undocumented field), and
//! docs/openapi.json (which js-shim's type test reads) is the document as served.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, body_of, spawn_app, stripe_event};

async fn document(app: &TestApp) -> Value {
    let response = app.anonymous(Method::GET, "/openapi.json").send().await.expect("request");
    assert_eq!(response.headers()["content-type"], "application/json");
    body_of(response, 200).await
}

/// Every operation of the document as (method, path template).
fn operations(document: &Value) -> Vec<(String, String)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations.push((method.to_uppercase(), path.clone()));
        }
    }
    operations.sort();
    operations
}

#[tokio::test]
async fn the_document_lists_every_route_and_every_listed_route_answers() {
    let app = spawn_app().await;
    let document = document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");
    let expected = [
        ("DELETE", "/v1/reservations/{reference}"),
        ("GET", "/api/admin/clean-expired-reservations"),
        ("GET", "/api/admin/conflicts"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/readyz"),
        ("GET", "/v1/products/{product}/stock"),
        ("GET", "/v1/reservations/{reference}"),
        ("GET", "/v1/reservations/{reference}/returns"),
        ("POST", "/api/admin/clean-expired-reservations"),
        ("POST", "/api/admin/conflicts/{id}/resolve"),
        ("POST", "/api/checkout/webhook"),
        ("POST", "/v1/movements"),
        ("POST", "/v1/reservations"),
        ("POST", "/v1/reservations/{reference}/commit"),
        ("POST", "/v1/reservations/{reference}/returns"),
        ("POST", "/webhooks/stripe"),
    ];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(method, path)| ((*method).to_owned(), (*path).to_owned())).collect();
    assert_eq!(operations(&document), expected);

    for (method, path) in operations(&document) {
        let concrete = path.replace("{reference}", "pi_none").replace("{product}", "none").replace("{id}", "1");
        let request = app.admin(Method::from_bytes(method.as_bytes()).expect("method"), &concrete);
        let response = request.header("content-type", "application/json").body("{}").send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        // A route the router lacks answers 405, or 404 with an empty body; the sidecar's own 404s have an error.
        assert_ne!(status, 405, "{method} {path}");
        assert!(status != 404 || text.contains("\"error\""), "{method} {path} is not served");
        let operation = &document["paths"][&path][method.to_lowercase()];
        assert!(
            operation["responses"].get(status.to_string()).is_some(),
            "{method} {path}: {status} is not documented"
        );
        for (code, response) in operation["responses"].as_object().expect("responses") {
            if !code.starts_with('2') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                    "{method} {path} {code}"
                );
            }
        }
    }
}

#[tokio::test]
async fn real_answers_conform_to_the_documented_schemas() {
    let app = spawn_app().await;
    let document = document(&app).await;
    let mut checked = 0;
    let mut check = async |method: Method, template: &str, path: &str, request: reqwest::RequestBuilder| {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON answer");
        let schema = &document["paths"][template][method.as_str().to_lowercase()]["responses"][status.to_string()]["content"]
            ["application/json"]["schema"];
        assert!(!schema.is_null(), "{method} {path}: {status} is not documented: {body}");
        let conformity = conforms(&document, schema, &body, "$");
        assert!(
            conformity.is_ok(),
            "{method} {path} answered {status} outside its schema: {}\n{body}",
            conformity.err().unwrap_or_default()
        );
        checked += 1;
        body
    };

    let restock = json!({ "product": "runner", "size": "42", "type": "restock", "quantity": 3, "reason": "delivery", "reference": "po-1" });
    check(Method::POST, "/v1/movements", "/v1/movements", app.admin(Method::POST, "/v1/movements").json(&restock))
        .await;
    check(
        Method::POST,
        "/v1/movements",
        "/v1/movements (again)",
        app.admin(Method::POST, "/v1/movements").json(&restock),
    )
    .await;
    let stale = json!({ "product": "runner", "size": "42", "type": "adjustment", "quantity": -1, "reason": "count", "expectedStock": 9 });
    check(
        Method::POST,
        "/v1/movements",
        "/v1/movements (stale)",
        app.admin(Method::POST, "/v1/movements").json(&stale),
    )
    .await;
    let below = json!({ "product": "runner", "size": "42", "type": "adjustment", "quantity": -9, "reason": "count" });
    check(
        Method::POST,
        "/v1/movements",
        "/v1/movements (below zero)",
        app.admin(Method::POST, "/v1/movements").json(&below),
    )
    .await;
    let wrong_sign = json!({ "product": "runner", "size": "42", "type": "restock", "quantity": -1, "reason": "x" });
    check(
        Method::POST,
        "/v1/movements",
        "/v1/movements (wrong sign)",
        app.admin(Method::POST, "/v1/movements").json(&wrong_sign),
    )
    .await;
    let unknown = json!({ "product": "runner", "size": "99", "type": "return", "quantity": 1, "reason": "x" });
    check(
        Method::POST,
        "/v1/movements",
        "/v1/movements (unknown size)",
        app.admin(Method::POST, "/v1/movements").json(&unknown),
    )
    .await;

    let cart = json!({ "reference": "pi_doc", "items": [{ "product": "runner", "size": "42", "quantity": 2 }] });
    let reservations = "/v1/reservations";
    check(Method::POST, reservations, reservations, app.api(Method::POST, reservations).json(&cart)).await;
    check(Method::POST, reservations, "again", app.api(Method::POST, reservations).json(&cart)).await;
    let short = json!({ "reference": "pi_short", "items": [{ "product": "runner", "size": "42", "quantity": 5 }] });
    check(Method::POST, reservations, "short", app.api(Method::POST, reservations).json(&short)).await;
    let bad = json!({ "reference": "pi_bad", "items": [{ "product": "runner", "size": "7", "quantity": 0 }] });
    check(Method::POST, reservations, "bad cart", app.api(Method::POST, reservations).json(&bad)).await;
    check(Method::POST, reservations, "not JSON", app.api(Method::POST, reservations).body("{oops")).await;
    check(Method::POST, reservations, "no token", app.anonymous(Method::POST, reservations).json(&cart)).await;
    let reference = "/v1/reservations/{reference}";
    check(Method::GET, reference, "pi_doc", app.api(Method::GET, "/v1/reservations/pi_doc")).await;
    check(Method::GET, reference, "pi_none", app.api(Method::GET, "/v1/reservations/pi_none")).await;
    let commit = "/v1/reservations/{reference}/commit";
    let confirmed = json!({ "orderReference": "42" });
    check(Method::POST, commit, "pi_doc", app.admin(Method::POST, "/v1/reservations/pi_doc/commit").json(&confirmed))
        .await;
    check(Method::POST, commit, "pi_none", app.admin(Method::POST, "/v1/reservations/pi_none/commit").json(&confirmed))
        .await;
    check(Method::GET, "/v1/products/{product}/stock", "runner", app.api(Method::GET, "/v1/products/runner/stock"))
        .await;
    check(Method::GET, "/v1/products/{product}/stock", "none", app.api(Method::GET, "/v1/products/none/stock")).await;

    let paid = stripe_event("payment_intent.succeeded", "evt_doc", "pi_doc");
    let now = app.clock_seconds();
    let signed = stripe_webhook::Webhook::generate_test_header(&paid, crate::helpers::WEBHOOK_SECRET, Some(now));
    for path in ["/webhooks/stripe", "/api/checkout/webhook"] {
        let request = app.anonymous(Method::POST, path).header("stripe-signature", &signed).body(paid.clone());
        check(Method::POST, path, path, request).await;
    }
    let forged =
        app.anonymous(Method::POST, "/webhooks/stripe").header("stripe-signature", "t=1,v1=00").body(paid.clone());
    check(Method::POST, "/webhooks/stripe", "forged", forged).await;
    let ignored = stripe_event("payment_intent.created", "evt_ignored", "pi_other");
    body_of(app.send_event(&ignored).await, 200).await;
    let unknown_payment = stripe_event("payment_intent.succeeded", "evt_unknown", "pi_nobody");
    let signed =
        stripe_webhook::Webhook::generate_test_header(&unknown_payment, crate::helpers::WEBHOOK_SECRET, Some(now));
    let conflict =
        app.anonymous(Method::POST, "/webhooks/stripe").header("stripe-signature", signed).body(unknown_payment);
    check(Method::POST, "/webhooks/stripe", "conflict", conflict).await;
    check(Method::DELETE, reference, "paid", app.api(Method::DELETE, "/v1/reservations/pi_doc")).await;
    let unreadable = r#"{"id":"evt_unreadable","type":"payment_intent.succeeded","data":{"object":{}}}"#;
    let signed = stripe_webhook::Webhook::generate_test_header(unreadable, crate::helpers::WEBHOOK_SECRET, Some(now));
    let request = app.anonymous(Method::POST, "/webhooks/stripe").header("stripe-signature", signed).body(unreadable);
    check(Method::POST, "/webhooks/stripe", "unreadable", request).await;
    let reused = json!({ "product": "runner", "size": "42", "type": "restock", "quantity": 4, "reference": "po-1" });
    let request = app.admin(Method::POST, "/v1/movements").json(&reused);
    check(Method::POST, "/v1/movements", "/v1/movements (reference reused)", request).await;
    let dotted = json!({ "product": "..", "size": "42", "type": "restock", "quantity": 1 });
    let request = app.admin(Method::POST, "/v1/movements").json(&dotted);
    check(Method::POST, "/v1/movements", "/v1/movements (a product id that is a path)", request).await;

    let conflicts = "/api/admin/conflicts";
    let listed = check(Method::GET, conflicts, conflicts, app.admin(Method::GET, conflicts)).await;
    let first = listed["conflicts"][0]["id"].as_i64().expect("a conflict");
    let resolve = "/api/admin/conflicts/{id}/resolve";
    let note = json!({ "resolution": "refunded" });
    let path = format!("/api/admin/conflicts/{first}/resolve");
    check(Method::POST, resolve, "resolve", app.admin(Method::POST, &path).json(&note)).await;
    check(Method::POST, resolve, "unknown", app.admin(Method::POST, "/api/admin/conflicts/999/resolve").json(&note))
        .await;
    let empty = json!({ "resolution": " " });
    check(Method::POST, resolve, "empty note", app.admin(Method::POST, &path).json(&empty)).await;

    body_of(app.reserve("pi_lapse", json!([{ "product": "runner", "size": "42", "quantity": 1 }])).await, 201).await;
    let admin = "/api/admin/clean-expired-reservations";
    check(Method::GET, admin, admin, app.admin(Method::GET, admin)).await;
    check(Method::GET, admin, "bad window", app.admin(Method::GET, &format!("{admin}?windowSeconds=1"))).await;
    app.clock.advance_seconds(3600);
    check(Method::POST, admin, admin, app.admin(Method::POST, admin)).await;
    check(Method::GET, admin, "no token", app.anonymous(Method::GET, admin)).await;
    check(Method::GET, "/healthz", "/healthz", app.anonymous(Method::GET, "/healthz")).await;
    check(Method::GET, "/readyz", "/readyz", app.anonymous(Method::GET, "/readyz")).await;
    assert_eq!(checked, 36);

    // The check itself refuses what it should.
    let health = json!({ "$ref": "#/components/schemas/Health" });
    assert!(conforms(&document, &health, &json!({ "status": "ok" }), "$").is_ok());
    assert!(
        conforms(&document, &health, &json!({ "status": "ok", "extra": 1 }), "$").is_err(),
        "an undocumented field"
    );
    assert!(conforms(&document, &health, &json!({}), "$").is_err(), "a required field missing");
    assert!(conforms(&document, &health, &json!({ "status": 1 }), "$").is_err(), "a wrong type");
}

#[tokio::test]
async fn docs_openapi_json_is_the_document_as_served() {
    let app = spawn_app().await;
    let served = app.anonymous(Method::GET, "/openapi.json").send().await.expect("request").text().await.expect("body");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, format!("{served}\n")).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed.trim_end() == served.trim_end(),
        "docs/openapi.json differs from the served document: run `UPDATE_OPENAPI=1 cargo test -p stock-sidecar --test it docs_openapi` and commit it"
    );
}

/// Whether `value` conforms to `schema` (the subset of JSON Schema utoipa writes: `$ref`, `type` (one or a list),
/// `properties`, `required`, `items`, `additionalProperties`, `enum`, `oneOf`, `anyOf`, `format`, `minimum`).
/// An object property the schema does not list is a problem: the document must name every field.
fn conforms(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return conforms(document, &document["components"]["schemas"][name], value, at);
    }
    for combinator in ["oneOf", "anyOf"] {
        if let Some(choices) = schema[combinator].as_array() {
            let fits = choices.iter().filter(|choice| conforms(document, choice, value, at).is_ok()).count();
            let ok = if combinator == "oneOf" { fits == 1 } else { fits >= 1 };
            return if ok { Ok(()) } else { Err(format!("{at}: {fits} of the {combinator} choices fit {value}")) };
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(kind) => vec![kind.as_str()],
        Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let fits_type = |kind: &str| match kind {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|kind| fits_type(kind)) {
        return Err(format!("{at}: {value} is not of type {types:?}"));
    }
    if let (Some(minimum), Some(number)) = (schema["minimum"].as_f64(), value.as_f64())
        && number < minimum
    {
        return Err(format!("{at}: {number} is below the minimum {minimum}"));
    }
    if let (Some(items), Some(elements)) = (schema.get("items"), value.as_array()) {
        for (index, element) in elements.iter().enumerate() {
            conforms(document, items, element, &format!("{at}[{index}]"))?;
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema["properties"].as_object();
        for required in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !object.contains_key(required) {
                return Err(format!("{at}: the required {required} is missing"));
            }
        }
        for (key, field) in object {
            match (properties.and_then(|properties| properties.get(key)), schema.get("additionalProperties")) {
                (Some(property), _) => conforms(document, property, field, &format!("{at}.{key}"))?,
                (None, Some(additional)) if additional.is_object() => {
                    conforms(document, additional, field, &format!("{at}.{key}"))?;
                }
                (None, _) => return Err(format!("{at}: {key} is not documented")),
            }
        }
    }
    Ok(())
}
