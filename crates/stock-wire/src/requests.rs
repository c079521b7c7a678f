//! The bodies of `POST /v1/reservations` and `POST /v1/movements`: decoded from JSON, every field checked (the
//! labels, quantities and reasons with stock-core's rules), and turned into the requests the ledger takes. A
//! decoded request holds only checked values.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use stock_core::{
    CartLine, ErrorCode, MovementType, Quantity, ReservationTtl, ReturnLine, ReturnReason, SignedQuantity,
};

/// Why a request body was refused. Nothing here knows HTTP: the sidecar answers [`RequestError::InvalidJson`] with
/// 400 `invalid_json` and [`RequestError::Invalid`] with 422 `invalid_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not JSON, or not of the expected shape (an unknown field, a missing one, a wrong type).
    #[error("{0}")]
    InvalidJson(String),
    /// A field's value is refused. `reason` is stock-core's code (`invalid_product`, `invalid_size`,
    /// `invalid_reason`) when its rules refused it.
    #[error("{message}")]
    Invalid { message: String, reason: Option<&'static str> },
}

impl RequestError {
    fn invalid(message: impl Into<String>) -> Self {
        RequestError::Invalid { message: message.into(), reason: None }
    }
}

/// A product id or size label as JSON carries it: a string, or a number (Payload's SQL adapters use numeric ids).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Label {
    Text(String),
    Number(serde_json::Number),
}

impl Label {
    pub fn into_text(self) -> String {
        match self {
            Label::Text(text) => text,
            Label::Number(number) => number.to_string(),
        }
    }
}

/// A field that may be absent, null or set, told apart: `variant: null` names a product without variants, while no
/// `variant` at all means the line names a `size`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<Label>>, D::Error> {
    Option::<Label>::deserialize(deserializer).map(Some)
}

/// The ledger's (product, size) key of a line that names a `size` (a sizes shop) or a `variant` (a shop on Payload's
/// ecommerce plugin: the variant's id, or null for a product without variants), checked; `field` names the line.
fn stock_key(
    product: Label,
    size: Option<Label>,
    variant: Option<Option<Label>>,
    field: &str,
) -> Result<(String, String), RequestError> {
    let product = product.into_text();
    let prefix = if field.is_empty() { String::new() } else { format!("{field}: ") };
    let size = match (size, variant) {
        (Some(size), None) => size.into_text(),
        (None, Some(variant)) => {
            let variant = variant.map(Label::into_text);
            stock_core::variant_key(variant.as_deref()).map_err(|error| label_refusal(error, field))?.to_owned()
        }
        (Some(_), Some(_)) => {
            return Err(RequestError::invalid(format!("{prefix}give size or variant, not both")));
        }
        (None, None) => {
            return Err(RequestError::invalid(format!(
                "{prefix}missing size (a size's label) or variant (a variant's id, or null for a product without variants)"
            )));
        }
    };
    check_labels(&product, &size, field)?;
    Ok((product, size))
}

/// A JSON number that stock-core will check (whole, in range); anything else is refused naming the field.
fn number_field(value: &Value, field: &str) -> Result<f64, RequestError> {
    value.as_f64().ok_or_else(|| RequestError::invalid(format!("{field}: expected a number, got {}", kind_of(value))))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A refusal of stock-core's label rules, with its code as the reason; `field` names where the value came from.
fn label_refusal(error: stock_core::LabelError, field: &str) -> RequestError {
    let prefix = if field.is_empty() { String::new() } else { format!("{field}: ") };
    RequestError::Invalid { message: format!("{prefix}{error}"), reason: Some(error.code()) }
}

/// Checks a product id and a size label with stock-core's rules; `field` names where they came from.
pub fn check_labels(product: &str, size: &str, field: &str) -> Result<(), RequestError> {
    stock_core::check_product_id(product)
        .and_then(|()| stock_core::check_size_label(size))
        .map_err(|error| label_refusal(error, field))
}

/// A reference (PaymentIntent or Checkout Session id, or the shop's own): 1 to 255 visible ASCII characters.
pub fn check_reference(reference: &str, field: &str) -> Result<(), RequestError> {
    let valid =
        !reference.is_empty() && reference.len() <= 255 && reference.bytes().all(|byte| byte.is_ascii_graphic());
    if valid {
        Ok(())
    } else {
        Err(RequestError::invalid(format!("{field}: expected 1 to 255 visible ASCII characters, such as pi_3Abc")))
    }
}

/// A checkout's cart, to hold until it is paid, released or expires.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReservationBody {
    /// The PaymentIntent or Checkout Session id (or the shop's own reference): 1 to 255 visible ASCII characters.
    reference: String,
    /// Every line is reserved, or none.
    items: Vec<ReservationItemBody>,
    /// The reservation's lifetime: 1 to 604800 seconds; RESERVATION_TTL_SECONDS (1800) when absent or null.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    ttl_seconds: Option<Value>,
}

/// One line of a cart.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ItemBody))]
#[serde(deny_unknown_fields)]
pub struct ReservationItemBody {
    /// The product's id: a string, or a number (Payload's SQL adapters).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    product: Label,
    /// The size's label: a string or a number. A line names a size or a variant, not both.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    #[serde(default)]
    size: Option<Label>,
    /// In a shop on Payload's ecommerce plugin, the variant's id, or null for a product without variants (its stock
    /// is kept under the size `(no variant)`).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    #[serde(default, deserialize_with = "present")]
    variant: Option<Option<Label>>,
    /// 1 to 1000 units; lines of the same size are summed.
    #[cfg_attr(feature = "openapi", schema(value_type = u32))]
    quantity: Value,
}

/// A reservation request as the ledger takes it: checked reference, TTL and lines (the cart itself is checked by
/// stock-core against the stock when it is reserved).
#[derive(Debug, Clone, PartialEq)]
pub struct ReservationRequest {
    pub reference: String,
    pub lines: Vec<CartLine>,
    pub ttl: ReservationTtl,
}

/// Checks a decoded reservation body; `default_ttl` stands when it names no lifetime.
pub fn reservation_request(
    body: ReservationBody,
    default_ttl: ReservationTtl,
) -> Result<ReservationRequest, RequestError> {
    check_reference(&body.reference, "reference")?;
    let ttl = match &body.ttl_seconds {
        None | Some(Value::Null) => default_ttl,
        Some(value) => ReservationTtl::from_number(number_field(value, "ttlSeconds")?)
            .map_err(|error| RequestError::invalid(format!("ttlSeconds: {error}")))?,
    };
    let lines = body
        .items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let (product, size) = stock_key(item.product, item.size, item.variant, &format!("items[{index}]"))?;
            Ok(CartLine { product, size, quantity: number_field(&item.quantity, &format!("items[{index}].quantity"))? })
        })
        .collect::<Result<Vec<_>, RequestError>>()?;
    Ok(ReservationRequest { reference: body.reference, lines, ttl })
}

/// The whole decoding of a `POST /v1/reservations` body, from bytes.
pub fn decode_reservation(body: &[u8], default_ttl: ReservationTtl) -> Result<ReservationRequest, RequestError> {
    let body: ReservationBody =
        serde_json::from_slice(body).map_err(|error| RequestError::InvalidJson(error.to_string()))?;
    reservation_request(body, default_ttl)
}

/// A movement an admin records.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MovementBody {
    /// The product's id: a string or a number.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    product: Label,
    /// The size's label: a string or a number. A restock creates an unknown size. A movement names a size or a
    /// variant, not both.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    #[serde(default)]
    size: Option<Label>,
    /// In a shop on Payload's ecommerce plugin, the variant's id, or null for a product without variants.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    #[serde(default, deserialize_with = "present")]
    variant: Option<Option<Label>>,
    /// `restock` or `return` (positive), `adjustment` (either sign); sales come from Stripe.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = MovementKind))]
    kind: String,
    /// Units, signed: never zero.
    #[cfg_attr(feature = "openapi", schema(value_type = i32))]
    quantity: Value,
    #[serde(default)]
    reason: String,
    /// Makes the request idempotent: the same movement again with this reference answers the first one (200); a
    /// different product, size, type or quantity under it is refused (409 `reference_conflict`).
    reference: Option<String>,
    /// Compare-and-set: applied only if the units on hand are exactly this (else 409 stale_stock).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    expected_stock: Option<Value>,
    /// Sets the size's low-stock threshold with the movement.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    low_stock_threshold: Option<Value>,
    /// `payload` when Payload's stock-movements hook asks: it saves the Payload document itself.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    origin: Option<String>,
}

/// The types of movement an admin may enter. Only the OpenAPI document uses it: the body's `type` is parsed by
/// stock-core's `MovementType`, which knows sales too and refuses them here with a message.
#[cfg(feature = "openapi")]
#[allow(dead_code)]
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum MovementKind {
    Restock,
    Return,
    Adjustment,
}

/// A movement request as the ledger takes it (stock-core checks the movement itself against the stock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementRequest {
    pub product: String,
    pub size: String,
    pub kind: MovementType,
    pub quantity: SignedQuantity,
    pub reason: String,
    /// Makes the request idempotent: a second request with the same reference gets the first movement back.
    pub reference: Option<String>,
    /// Compare-and-set: applied only if units on hand are exactly this.
    pub expected_stock: Option<Quantity>,
    /// Sets the size's low-stock threshold with the movement.
    pub low_stock_threshold: Option<Quantity>,
    pub origin: MovementOrigin,
}

/// Who saves a movement's Payload document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MovementOrigin {
    /// The sidecar: the outbox creates the document.
    #[default]
    Sidecar,
    /// Payload's stock-movements hook asked for it and saves the document itself; the outbox creates it only if
    /// it is still missing after a grace period.
    Payload,
}

impl MovementOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            MovementOrigin::Sidecar => "sidecar",
            MovementOrigin::Payload => "payload",
        }
    }
}

fn optional_quantity(value: Option<&Value>, field: &str) -> Result<Option<Quantity>, RequestError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => Quantity::from_number(number_field(value, field)?)
            .map(Some)
            .map_err(|error| RequestError::invalid(format!("{field}: {error}"))),
    }
}

/// Checks a decoded movement body.
pub fn movement_request(body: MovementBody) -> Result<MovementRequest, RequestError> {
    let kind = MovementType::parse(&body.kind).map_err(|error| RequestError::invalid(format!("type: {error}")))?;
    if kind == MovementType::Sale {
        return Err(RequestError::invalid(
            "type: sales are recorded from Stripe payments, not entered by hand; use adjustment",
        ));
    }
    let quantity = SignedQuantity::from_number(number_field(&body.quantity, "quantity")?)
        .map_err(|error| RequestError::invalid(error.to_string()))?;
    if let Some(reference) = &body.reference {
        check_reference(reference, "reference")?;
    }
    let (product, size) = stock_key(body.product, body.size, body.variant, "")?;
    stock_core::check_reason(&body.reason).map_err(|error| label_refusal(error, "reason"))?;
    let origin = match body.origin.as_deref() {
        None | Some("sidecar") => MovementOrigin::Sidecar,
        Some("payload") => MovementOrigin::Payload,
        Some(other) => return Err(RequestError::invalid(format!("origin: {other:?} is not sidecar or payload"))),
    };
    Ok(MovementRequest {
        product,
        size,
        kind,
        quantity,
        reason: body.reason,
        reference: body.reference,
        expected_stock: optional_quantity(body.expected_stock.as_ref(), "expectedStock")?,
        low_stock_threshold: optional_quantity(body.low_stock_threshold.as_ref(), "lowStockThreshold")?,
        origin,
    })
}

/// The whole decoding of a `POST /v1/movements` body, from bytes.
pub fn decode_movement(body: &[u8]) -> Result<MovementRequest, RequestError> {
    let body: MovementBody =
        serde_json::from_slice(body).map_err(|error| RequestError::InvalidJson(error.to_string()))?;
    movement_request(body)
}

/// Units of a paid reservation coming back: returned by the customer, returned damaged, or cancelled before they
/// were shipped.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReturnBody {
    /// The caller's id of this return (an RMA number, a form's submission key): 1 to 255 visible ASCII characters.
    /// The same return again under it answers the first one (200) and records nothing; other lines under it are
    /// refused (409 `return_id_conflict`).
    return_id: String,
    /// 1 to 200 lines; the lines of one size together never bring back more than the reservation sold, across all
    /// its returns.
    lines: Vec<ReturnLineBody>,
}

/// One line of a return.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReturnLineBody {
    /// The product's id: a string or a number.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    product: Label,
    /// The size's label. A line names a size or a variant, not both.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    #[serde(default)]
    size: Option<Label>,
    /// In a shop on Payload's ecommerce plugin, the variant's id, or null for a product without variants.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    #[serde(default, deserialize_with = "present")]
    variant: Option<Option<Label>>,
    /// Whole units, at least 1.
    #[cfg_attr(feature = "openapi", schema(value_type = u32))]
    quantity: Value,
    /// `returned` (back on sale), `cancelled` (cancelled before shipping: back on sale) or `damaged` (recorded as
    /// returned, not put back on sale).
    #[cfg_attr(feature = "openapi", schema(value_type = ReturnReasonKind))]
    reason: String,
}

/// Why units come back. Only the OpenAPI document uses it: the line's `reason` is parsed by stock-core's
/// `ReturnReason`.
#[cfg(feature = "openapi")]
#[allow(dead_code)]
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ReturnReasonKind {
    Returned,
    Cancelled,
    Damaged,
}

/// A return as the ledger takes it: a checked id, and lines whose labels and reasons are checked (their quantities
/// are checked by stock-core against what the reservation sold, with every problem reported at once).
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnRequest {
    pub return_id: String,
    pub lines: Vec<ReturnLine>,
}

/// The start of the return ids the ledger gives the returns RESTOCK_ON_FULL_REFUND makes
/// (`full-refund:<PaymentIntent>`); a caller's return id cannot take it.
pub const FULL_REFUND_RETURN: &str = "full-refund:";

/// Checks a decoded return body.
pub fn return_request(body: ReturnBody) -> Result<ReturnRequest, RequestError> {
    check_reference(&body.return_id, "returnId")?;
    if body.return_id.starts_with(FULL_REFUND_RETURN) {
        return Err(RequestError::invalid(format!(
            "returnId: ids starting with {FULL_REFUND_RETURN} are the ledger's own (RESTOCK_ON_FULL_REFUND)"
        )));
    }
    if body.lines.len() > stock_core::MAX_CART_LINES {
        return Err(RequestError::invalid(format!(
            "lines: {} lines; a return has at most {}",
            body.lines.len(),
            stock_core::MAX_CART_LINES
        )));
    }
    let lines = body
        .lines
        .into_iter()
        .enumerate()
        .map(|(index, line)| {
            let field = format!("lines[{index}]");
            let (product, size) = stock_key(line.product, line.size, line.variant, &field)?;
            let reason = ReturnReason::parse(&line.reason).map_err(|error| RequestError::Invalid {
                message: format!("{field}.reason: {error}"),
                reason: Some(error.code()),
            })?;
            Ok(ReturnLine {
                product,
                size,
                quantity: number_field(&line.quantity, &format!("{field}.quantity"))?,
                reason,
            })
        })
        .collect::<Result<Vec<_>, RequestError>>()?;
    Ok(ReturnRequest { return_id: body.return_id, lines })
}

/// The whole decoding of a `POST /v1/reservations/{reference}/returns` body, from bytes.
pub fn decode_return(body: &[u8]) -> Result<ReturnRequest, RequestError> {
    let body: ReturnBody =
        serde_json::from_slice(body).map_err(|error| RequestError::InvalidJson(error.to_string()))?;
    return_request(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_body_names_each_line_by_size_or_variant_with_a_reason() {
        let request = decode_return(
            br#"{"returnId":"RMA-7","lines":[{"product":"p","size":"42","quantity":1,"reason":"damaged"},{"product":9,"variant":null,"quantity":2,"reason":"cancelled"}]}"#,
        )
        .expect("valid");
        assert_eq!(request.return_id, "RMA-7");
        assert_eq!((request.lines[0].size.as_str(), request.lines[0].reason), ("42", ReturnReason::Damaged));
        assert_eq!((request.lines[1].size.as_str(), request.lines[1].quantity), (stock_core::NO_VARIANT, 2.0));
        let refused = |body: &str| decode_return(body.as_bytes()).expect_err(body);
        let lost = refused(r#"{"returnId":"R","lines":[{"product":"p","size":"42","quantity":1,"reason":"lost"}]}"#);
        assert!(matches!(lost, RequestError::Invalid { reason: Some("invalid_reason"), .. }), "{lost:?}");
        assert!(matches!(refused(r#"{"returnId":"","lines":[]}"#), RequestError::Invalid { reason: None, .. }));
        assert!(matches!(refused(r#"{"returnId":"R","lines":[],"note":1}"#), RequestError::InvalidJson(_)));
        let taken = refused(r#"{"returnId":"full-refund:pi_1","lines":[]}"#);
        assert!(taken.to_string().contains("the ledger's own"), "{taken}");
        let line = r#"{"product":"p","size":"42","quantity":1,"reason":"returned"}"#;
        let many = format!(r#"{{"returnId":"R","lines":[{}]}}"#, vec![line; 201].join(","));
        assert!(refused(&many).to_string().contains("at most 200"));
    }

    #[test]
    fn a_reservation_body_is_checked_field_by_field_with_stock_cores_codes() {
        let request = decode_reservation(
            br#"{"reference":"pi_1","items":[{"product":7,"size":42,"quantity":2}],"ttlSeconds":null}"#,
            ReservationTtl::DEFAULT,
        )
        .expect("valid");
        assert_eq!((request.lines[0].product.as_str(), request.lines[0].size.as_str()), ("7", "42"));
        assert_eq!(request.ttl, ReservationTtl::DEFAULT);

        let refused = |body: &str| decode_reservation(body.as_bytes(), ReservationTtl::DEFAULT).expect_err(body);
        assert!(matches!(refused(r#"{"reference":"pi_1","items":[],"extra":1}"#), RequestError::InvalidJson(_)));
        assert!(matches!(refused("not json"), RequestError::InvalidJson(_)));
        let bad_size = refused(r#"{"reference":"pi_1","items":[{"product":"p","size":" 42","quantity":1}]}"#);
        assert!(
            matches!(&bad_size, RequestError::Invalid { message, reason: Some("invalid_size") } if message.starts_with("items[0]: ")),
            "{bad_size:?}"
        );
        let bad_quantity = refused(r#"{"reference":"pi_1","items":[{"product":"p","size":"42","quantity":"2"}]}"#);
        assert_eq!(
            bad_quantity,
            RequestError::Invalid {
                message: "items[0].quantity: expected a number, got a string".into(),
                reason: None
            }
        );
        assert!(matches!(refused(r#"{"reference":"pi 1","items":[]}"#), RequestError::Invalid { reason: None, .. }));
    }

    #[test]
    fn a_movement_body_is_never_a_sale_and_names_who_saves_its_document() {
        let request =
            decode_movement(br#"{"product":"p","size":"42","type":"restock","quantity":3,"origin":"payload"}"#)
                .expect("valid");
        assert_eq!(
            (request.kind, request.quantity.get(), request.origin),
            (MovementType::Restock, 3, MovementOrigin::Payload)
        );
        let sale = decode_movement(br#"{"product":"p","size":"42","type":"sale","quantity":-1}"#).expect_err("a sale");
        assert!(sale.to_string().contains("sales are recorded from Stripe payments"), "{sale}");
        let long_reason = format!(
            r#"{{"product":"p","size":"42","type":"adjustment","quantity":-1,"reason":"{}"}}"#,
            "x".repeat(501)
        );
        assert!(matches!(
            decode_movement(long_reason.as_bytes()),
            Err(RequestError::Invalid { reason: Some("invalid_reason"), .. })
        ));
        assert!(matches!(
            decode_movement(br#"{"product":"p","size":"42","type":"restock","quantity":1,"origin":"admin"}"#),
            Err(RequestError::Invalid { reason: None, .. })
        ));
    }

    #[test]
    fn a_line_names_a_variant_or_a_product_without_variants_in_an_ecommerce_shop() {
        let request = decode_reservation(
            br#"{"reference":"pi_1","items":[{"product":7,"variant":12,"quantity":1},{"product":"8","variant":null,"quantity":2}]}"#,
            ReservationTtl::DEFAULT,
        )
        .expect("valid");
        let keys: Vec<_> = request.lines.iter().map(|line| (line.product.as_str(), line.size.as_str())).collect();
        assert_eq!(keys, [("7", "12"), ("8", stock_core::NO_VARIANT)]);

        let refused = |body: &str| decode_reservation(body.as_bytes(), ReservationTtl::DEFAULT).expect_err(body);
        let both = refused(r#"{"reference":"pi_1","items":[{"product":7,"size":"42","variant":12,"quantity":1}]}"#);
        assert_eq!(both.to_string(), "items[0]: give size or variant, not both");
        let neither = refused(r#"{"reference":"pi_1","items":[{"product":7,"quantity":1}]}"#);
        assert!(neither.to_string().starts_with("items[0]: missing size"), "{neither}");
        let not_an_id =
            refused(r#"{"reference":"pi_1","items":[{"product":7,"variant":"(no variant)","quantity":1}]}"#);
        assert!(matches!(&not_an_id, RequestError::Invalid { reason: Some("invalid_variant"), .. }), "{not_an_id:?}");

        let movement =
            decode_movement(br#"{"product":"p","variant":null,"type":"restock","quantity":3}"#).expect("valid");
        assert_eq!((movement.product.as_str(), movement.size.as_str()), ("p", stock_core::NO_VARIANT));
        let movement =
            decode_movement(br#"{"product":"p","variant":"v1","type":"restock","quantity":3}"#).expect("valid");
        assert_eq!(movement.size, "v1");
    }
}
