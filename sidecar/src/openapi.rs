//! The OpenAPI 3.1 document of the sidecar's HTTP API, served at `GET /openapi.json` (see `http::document`). It is generated from the
//! code: every route is registered through utoipa-axum's `routes!`, which takes the route's path and method from
//! the handler's `#[utoipa::path]`, so a route cannot exist without its documentation; bodies are the types the
//! handlers serialize. This module adds what belongs to no one route: the document's description, its security
//! schemes, and the error body every route answers with.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The document's frame; the paths come from the routers.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "stock-sidecar",
        description = "payload-stock's stock ledger: reservations for checkouts, Stripe webhooks, stock movements, \
            cleanup and monitoring. Every error answers with an ErrorBody.",
        license(name = "MIT"),
    ),
    components(schemas(ErrorBody, Shortage, CartProblem)),
    modifiers(&BearerTokens),
    tags(
        (name = "reservations", description = "Holding stock for checkouts (SIDECAR_API_TOKEN)"),
        (name = "stock", description = "What a product's sizes have (SIDECAR_API_TOKEN)"),
        (name = "movements", description = "Restocks, returns and adjustments (ADMIN_API_TOKEN)"),
        (name = "returns", description = "Units of a paid reservation coming back, once per return id (recorded \
            with ADMIN_API_TOKEN, listed with SIDECAR_API_TOKEN)"),
        (name = "stripe", description = "Stripe's webhooks, verified by their signature"),
        (name = "operations", description = "Cleanup, monitoring, metrics and probes"),
    )
)]
pub struct ApiDoc;

/// The three bearer tokens: `api` (SIDECAR_API_TOKEN), `admin` (ADMIN_API_TOKEN), `metrics` (METRICS_TOKEN).
#[derive(Debug)]
struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["api", "admin", "metrics"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// Every answer other than success. Details appear with the codes that have them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// A stable code: unauthorized, api_disabled, admin_disabled, metrics_disabled, webhooks_disabled,
    /// invalid_json, invalid_request, invalid_signature, unknown_product, unknown_size, reservation_not_found,
    /// conflict_not_found, insufficient_stock, reference_conflict, reservation_already_committed, stale_stock,
    /// reservation_not_sold, return_id_conflict, exceeds_returnable,
    /// the stock-core refusals of a movement (stock_below_zero, below_reserved, ...), overloaded, ledger_busy,
    /// request_timeout, body_too_large, internal_error.
    pub error: String,
    /// A sentence for a person.
    pub message: String,
    /// With insufficient_stock: every size short of stock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortages: Option<Vec<Shortage>>,
    /// With invalid_request for a cart or a return, and with exceeds_returnable: every problem of every line (a
    /// return's sizes asked back beyond what may still come back also carry requested, returnable and sold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<CartProblem>>,
    /// With stale_stock: the units on hand now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_stock: Option<u32>,
    /// With invalid_request for a movement stock-core refused, or a label it refused: its code (wrong_sign,
    /// zero_quantity, invalid_product, invalid_size, invalid_reason, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With reference_conflict on a movement: the movement first recorded under the reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, schema_with = movement_answer)]
    pub movement: Option<serde_json::Value>,
}

/// A size without enough stock for a cart.
#[derive(Debug, Serialize, ToSchema)]
pub struct Shortage {
    pub product: String,
    pub size: String,
    pub requested: u32,
    pub available: u32,
}

/// A problem with one line of a cart.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartProblem {
    pub code: String,
    pub message: String,
    /// The line's index in `items`, when the problem is one line's.
    pub line: Option<u32>,
    pub product: Option<String>,
    pub size: Option<String>,
}

/// The schema of `ErrorBody.movement`: the movements route's answer, referred to by name so that this module needs
/// nothing from the routes that use it, or null.
fn movement_answer() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, RefBuilder, Type};
    let answer = RefBuilder::new()
        .ref_location_from_schema_name("MovementAnswer")
        .description(Some("With reference_conflict on a movement: the movement first recorded under the reference."))
        .build();
    OneOfBuilder::new().item(answer).item(ObjectBuilder::new().schema_type(Type::Null)).build().into()
}
