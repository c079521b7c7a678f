//! The wasm exports, run inside Node by `wasm-pack test --node`: normal input, bad input, and the JavaScript
//! error shape (`name`, `code`, message) that callers rely on.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, JSON, Object, Reflect};
use stock_wasm::{
    apply_movement, available_stock, derive_sizes, is_low_stock, is_reservation_expired, plan_return,
    reservation_expires_at, validate_cart,
};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

fn json(text: &str) -> JsValue {
    JSON::parse(text).expect("test JSON is valid")
}

fn field(value: &JsValue, name: &str) -> JsValue {
    Reflect::get(value, &JsValue::from_str(name)).expect("readable")
}

fn number(value: &JsValue, name: &str) -> f64 {
    field(value, name).as_f64().expect("a number")
}

fn text(value: &JsValue, name: &str) -> String {
    field(value, name).as_string().expect("a string")
}

/// The `code` of a thrown StockError, after checking its shape.
fn code(error: JsValue) -> String {
    assert!(error.is_instance_of::<js_sys::Error>(), "errors are Error instances");
    assert_eq!(text(&error, "name"), "StockError");
    assert!(!text(&error, "message").is_empty());
    text(&error, "code")
}

#[wasm_bindgen_test]
fn available_stock_and_is_low_stock_compute_from_plain_numbers() {
    assert_eq!(available_stock(Some(10.0), Some(3.0)), 7.0);
    assert!(is_low_stock(Some(10.0), Some(5.0), Some(5.0)));
    assert!(!is_low_stock(Some(10.0), Some(4.0), Some(5.0)));
}

#[wasm_bindgen_test]
fn derive_sizes_fills_in_every_row_and_keeps_other_fields() {
    let sizes = json(
        r#"[{"size":"42","stock":5,"reservedStock":1,"lowStockThreshold":2,"color":"red"},
            {"size":"43","stock":2,"reservedStock":2,"lowStockThreshold":0}]"#,
    );
    let derived = derive_sizes(&sizes).expect("valid sizes");
    let rows: Array = derived.into();
    let first = rows.get(0);
    assert_eq!(number(&first, "availableStock"), 4.0);
    assert_eq!(field(&first, "isLowStock"), JsValue::FALSE);
    assert_eq!(text(&first, "color"), "red");
    assert_eq!(number(&rows.get(1), "availableStock"), 0.0);
    assert_eq!(field(&rows.get(1), "isLowStock"), JsValue::TRUE);
}

#[wasm_bindgen_test]
fn derive_sizes_reports_the_row_and_leaves_the_array_untouched_on_bad_input() {
    let sizes = json(
        r#"[{"size":"42","stock":5,"reservedStock":1,"lowStockThreshold":2},
            {"size":"43","stock":2,"reservedStock":3,"lowStockThreshold":0}]"#,
    );
    let error = derive_sizes(&sizes).expect_err("reserved above stock");
    assert!(text(&error, "message").starts_with("sizes[1]"), "{}", text(&error, "message"));
    assert_eq!(code(error), "reserved_exceeds_stock");
    assert!(field(&Array::from(&sizes).get(0), "availableStock").is_undefined(), "nothing written");

    for (input, expected) in [
        (r#"[{"stock":-1,"reservedStock":0,"lowStockThreshold":0}]"#, "invalid_quantity"),
        (r#"[{"stock":1.5,"reservedStock":0,"lowStockThreshold":0}]"#, "invalid_quantity"),
        (r#"[{"stock":"5","reservedStock":0,"lowStockThreshold":0}]"#, "invalid_quantity"),
        (r#"[{"stock":5,"lowStockThreshold":0}]"#, "invalid_quantity"),
        (r#"[{"stock":5,"reservedStock":null,"lowStockThreshold":0}]"#, "invalid_quantity"),
        (r#"[7]"#, "invalid_input"),
        (r#"[null]"#, "invalid_input"),
        (r#"{"stock":5}"#, "invalid_input"),
    ] {
        assert_eq!(code(derive_sizes(&json(input)).expect_err(input)), expected, "{input}");
    }
}

#[wasm_bindgen_test]
fn derive_sizes_refuses_frozen_rows() {
    let row = json(r#"{"stock":5,"reservedStock":1,"lowStockThreshold":2}"#);
    Object::freeze(&Object::from(row.clone()));
    let sizes = Array::of1(&row);
    assert_eq!(code(derive_sizes(&sizes).expect_err("frozen")), "invalid_input");
}

#[wasm_bindgen_test]
fn validate_cart_reports_every_shortage_and_error_and_accepts_numeric_ids() {
    let products = json(
        r#"[{"id":1,"sizes":[{"size":42,"stock":3,"reservedStock":1,"lowStockThreshold":0},
                             {"size":"43","stock":0,"reservedStock":0,"lowStockThreshold":0}]}]"#,
    );
    let items = json(
        r#"[{"product":"1","size":"42","quantity":2},{"product":1,"size":"42","quantity":1},
            {"product":"1","size":"43","quantity":1},{"product":"2","size":"42","quantity":1},
            {"product":"1","size":"44","quantity":1},{"product":"1","size":"42","quantity":0}]"#,
    );
    let result = validate_cart(&products, &items).expect("well-formed input");
    assert_eq!(field(&result, "ok"), JsValue::FALSE);
    let shortages: Array = field(&result, "shortages").into();
    assert_eq!(shortages.length(), 2);
    assert_eq!(number(&shortages.get(0), "requested"), 3.0);
    assert_eq!(number(&shortages.get(0), "available"), 2.0);
    assert_eq!(text(&shortages.get(1), "size"), "43");
    let errors: Array = field(&result, "errors").into();
    let codes: Vec<String> = errors.iter().map(|error| text(&error, "code")).collect();
    assert_eq!(codes, ["unknown_product", "unknown_size", "invalid_quantity"]);
    assert_eq!(number(&errors.get(0), "line"), 3.0);
}

#[wasm_bindgen_test]
fn validate_cart_speaks_of_variants_in_an_ecommerce_plugin_shop() {
    // A product with variants (ids 11 and 12) and one without (its own figures), as Payload's ecommerce plugin has.
    let products = json(
        r#"[{"id":1,"variants":[{"id":11,"stock":3,"reservedStock":1,"lowStockThreshold":0},
                                {"id":"12","stock":0,"reservedStock":0,"lowStockThreshold":0}]},
            {"id":2,"stock":5,"reservedStock":4,"lowStockThreshold":1}]"#,
    );
    let items = json(
        r#"[{"product":1,"variant":11,"quantity":2},{"product":1,"variant":12,"quantity":1},
            {"product":2,"variant":null,"quantity":2},{"product":2,"quantity":1},{"product":1,"variant":13,"quantity":1}]"#,
    );
    let result = validate_cart(&products, &items).expect("well-formed input");
    let shortages: Array = field(&result, "shortages").into();
    let short: Vec<(String, JsValue, f64)> = shortages
        .iter()
        .map(|entry| (text(&entry, "size"), field(&entry, "variant"), number(&entry, "requested")))
        .collect();
    assert_eq!(
        short,
        [("12".to_owned(), JsValue::from_str("12"), 1.0), ("(no variant)".to_owned(), JsValue::NULL, 3.0)]
    );
    let errors: Array = field(&result, "errors").into();
    assert_eq!(text(&errors.get(0), "code"), "unknown_size");
    assert_eq!(text(&errors.get(0), "variant"), "13");

    let not_an_id = json(r#"[{"product":1,"variant":"(no variant)","quantity":1}]"#);
    assert_eq!(code(validate_cart(&products, &not_an_id).expect_err("not an id")), "invalid_variant");
    // A sizes shop's answer is as it was: no `variant`.
    let sized = json(r#"[{"id":"p","sizes":[{"size":"42","stock":1,"reservedStock":0,"lowStockThreshold":0}]}]"#);
    let result = validate_cart(&sized, &json(r#"[{"product":"p","size":"42","quantity":1}]"#)).expect("valid");
    let items: Array = field(&result, "items").into();
    assert!(field(&items.get(0), "variant").is_undefined());
}

#[wasm_bindgen_test]
fn validate_cart_throws_on_input_that_is_not_a_cart() {
    let products = json(r#"[{"id":"p","sizes":[]}]"#);
    assert_eq!(code(validate_cart(&products, &json(r#"{"items":[]}"#)).expect_err("not an array")), "invalid_input");
    let string_quantity = json(r#"[{"product":"p","size":"42","quantity":"2"}]"#);
    assert_eq!(code(validate_cart(&products, &string_quantity).expect_err("string")), "invalid_quantity");
    let no_product = json(r#"[{"size":"42","quantity":2}]"#);
    assert_eq!(code(validate_cart(&products, &no_product).expect_err("missing")), "invalid_input");
    let bad_snapshot =
        json(r#"[{"id":"p","sizes":[{"size":"42","stock":1,"reservedStock":2,"lowStockThreshold":0}]}]"#);
    let items = json(r#"[{"product":"p","size":"42","quantity":1}]"#);
    let error = validate_cart(&bad_snapshot, &items).expect_err("inconsistent snapshot");
    assert!(text(&error, "message").starts_with("products[0].sizes[0]"), "{}", text(&error, "message"));
    assert_eq!(code(error), "reserved_exceeds_stock");
}

#[wasm_bindgen_test]
fn reservations_expire_after_their_ttl_thirty_minutes_by_default() {
    let created = JsValue::from_str("2026-11-24T10:00:00Z");
    assert_eq!(reservation_expires_at(&created, &JsValue::UNDEFINED).expect("valid"), "2026-11-24T10:30:00.000Z");
    assert_eq!(reservation_expires_at(&created, &JsValue::from(60)).expect("valid"), "2026-11-24T10:01:00.000Z");
    let date = js_sys::Date::new(&created);
    assert_eq!(reservation_expires_at(&date, &JsValue::UNDEFINED).expect("a Date"), "2026-11-24T10:30:00.000Z");

    let expires = JsValue::from_str("2026-11-24T10:30:00.000Z");
    assert!(!is_reservation_expired(&expires, &JsValue::from_str("2026-11-24T10:29:59.999Z")).expect("valid"));
    assert!(is_reservation_expired(&expires, &JsValue::from_str("2026-11-24T10:30:00Z")).expect("valid"));
    assert!(is_reservation_expired(&JsValue::from_str("2000-01-01T00:00:00Z"), &JsValue::UNDEFINED).expect("now"));
}

#[wasm_bindgen_test]
fn malformed_dates_and_ttls_are_refused_with_their_codes() {
    let created = JsValue::from_str("2026-11-24T10:00:00Z");
    for ttl in
        [JsValue::from(0), JsValue::from(1.5), JsValue::from(-60), JsValue::from(604_801), JsValue::from_str("60")]
    {
        assert_eq!(code(reservation_expires_at(&created, &ttl).expect_err("bad ttl")), "invalid_ttl");
    }
    for date in [JsValue::from_str("yesterday"), JsValue::from_str("2026-11-24"), JsValue::NULL, JsValue::from(5)] {
        assert_eq!(code(reservation_expires_at(&date, &JsValue::UNDEFINED).expect_err("bad date")), "invalid_date");
    }
    assert_eq!(
        code(reservation_expires_at(&JsValue::UNDEFINED, &JsValue::UNDEFINED).expect_err("none")),
        "invalid_date"
    );
    let expires = JsValue::from_str("2026-11-24T10:30:00Z");
    assert_eq!(code(is_reservation_expired(&expires, &JsValue::from_str("now")).expect_err("bad now")), "invalid_date");
}

#[wasm_bindgen_test]
fn apply_movement_records_stock_before_and_after() {
    let size = json(r#"{"stock":5,"reservedStock":1,"lowStockThreshold":2}"#);
    let movement = json(
        r#"{"type":"sale","quantity":-2,"reason":"Order ORD-1","reference":"pi_3Abc","orderReference":"ORD-1",
            "date":"2026-11-24T10:00:00+01:00"}"#,
    );
    let applied = apply_movement(&size, &movement).expect("valid sale");
    assert_eq!(text(&applied, "type"), "sale");
    assert_eq!(number(&applied, "quantity"), -2.0);
    assert_eq!((number(&applied, "stockBefore"), number(&applied, "stockAfter")), (5.0, 3.0));
    assert_eq!(number(&applied, "availableStock"), 2.0);
    assert_eq!(field(&applied, "isLowStock"), JsValue::TRUE);
    assert_eq!(text(&applied, "reference"), "pi_3Abc");
    assert_eq!(text(&applied, "date"), "2026-11-24T09:00:00.000Z");

    let restock = apply_movement(&size, &json(r#"{"type":"restock","quantity":3}"#)).expect("valid restock");
    assert!(field(&restock, "reference").is_null());
    assert_eq!(text(&restock, "reason"), "");
}

#[wasm_bindgen_test]
fn apply_movement_refuses_bad_movements_with_their_codes() {
    let size = json(r#"{"stock":5,"reservedStock":4,"lowStockThreshold":0}"#);
    for (movement, expected) in [
        (r#"{"type":"sale","quantity":2}"#, "invalid_movement_sign"),
        (r#"{"type":"restock","quantity":-2}"#, "invalid_movement_sign"),
        (r#"{"type":"sale","quantity":-2}"#, "stock_below_reserved"),
        (r#"{"type":"adjustment","quantity":-6}"#, "insufficient_stock"),
        (r#"{"type":"adjustment","quantity":0}"#, "invalid_quantity"),
        (r#"{"type":"adjustment","quantity":0.5}"#, "invalid_quantity"),
        (r#"{"type":"adjustment","quantity":"1"}"#, "invalid_quantity"),
        (r#"{"type":"theft","quantity":-1}"#, "invalid_movement_type"),
        (r#"{"quantity":-1}"#, "invalid_movement_type"),
        (r#"{"type":"return","quantity":1,"date":"soon"}"#, "invalid_date"),
        (r#"{"type":"return","quantity":1,"reason":42}"#, "invalid_input"),
    ] {
        assert_eq!(code(apply_movement(&size, &json(movement)).expect_err(movement)), expected, "{movement}");
    }
    let bad_size = json(r#"{"stock":5,"reservedStock":-1,"lowStockThreshold":0}"#);
    let restock = json(r#"{"type":"restock","quantity":1}"#);
    assert_eq!(code(apply_movement(&bad_size, &restock).expect_err("bad size")), "invalid_quantity");
    assert_eq!(code(apply_movement(&JsValue::NULL, &restock).expect_err("no size")), "invalid_input");
}

#[wasm_bindgen_test]
fn plan_return_checks_a_return_against_what_was_sold_and_counts_what_may_still_come_back() {
    let sold = json(r#"[{"product":"runner","size":"42","sold":3,"returned":1},{"product":7,"variant":12,"sold":1}]"#);
    let lines = json(
        r#"[{"product":"runner","size":"42","quantity":1,"reason":"damaged"},{"product":7,"variant":12,"quantity":1,"reason":"returned"}]"#,
    );
    let plan = plan_return(&sold, &lines).expect("well-formed input");
    assert!(field(&plan, "ok").as_bool().unwrap_or(false));
    let planned = Array::from(&field(&plan, "lines"));
    assert_eq!(number(&planned.get(0), "restocked"), 0.0, "damaged units are not put back on sale");
    assert_eq!(number(&planned.get(1), "restocked"), 1.0);
    let after = Array::from(&field(&plan, "sold"));
    assert_eq!((number(&after.get(0), "returned"), number(&after.get(0), "returnable")), (2.0, 1.0));
    assert_eq!(text(&after.get(1), "size"), "12");

    let too_many = json(
        r#"[{"product":"runner","size":"42","quantity":3,"reason":"returned"},{"product":"runner","size":"44","quantity":1,"reason":"returned"}]"#,
    );
    let refused = plan_return(&sold, &too_many).expect("well-formed input");
    assert!(!field(&refused, "ok").as_bool().unwrap_or(true));
    let errors = Array::from(&field(&refused, "errors"));
    let codes: Vec<String> = errors.iter().map(|error| text(&error, "code")).collect();
    assert_eq!(codes, ["not_sold", "exceeds_returnable"]);
    let lost = json(r#"[{"product":"runner","size":"42","quantity":1,"reason":"lost"}]"#);
    assert_eq!(code(plan_return(&sold, &lost).expect_err("unknown reason")), "invalid_reason");
    assert_eq!(code(plan_return(&json("{}"), &lines).expect_err("not an array")), "invalid_input");
}
