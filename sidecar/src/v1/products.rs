//! GET /v1/products/{product}/stock: a product's sizes as they stand now.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::ApiCaller;
use crate::error::ApiError;
use crate::http::AppState;
use crate::openapi::ErrorBody;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_product_stock))
}

/// A product's sizes as they stand now.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductStockAnswer {
    pub product: String,
    pub sizes: Vec<SizeStockAnswer>,
}

/// One size's figures (stock-core's rules: available = stock - reserved; low when available <= threshold).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SizeStockAnswer {
    pub size: String,
    pub stock: u32,
    pub reserved_stock: u32,
    pub available_stock: u32,
    pub low_stock_threshold: u32,
    pub is_low_stock: bool,
}

/// A product's sizes with their stock, reserved, available units and low-stock flag.
#[utoipa::path(get, path = "/v1/products/{product}/stock", tag = "stock", security(("api" = [])),
    params(("product" = String, Path, description = "The product's id")),
    responses(
        (status = 200, body = ProductStockAnswer),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "unknown_product: the ledger has no size of it", body = ErrorBody),
        (status = 503, description = "api_disabled, overloaded or ledger_busy", body = ErrorBody),
    ))]
async fn get_product_stock(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(product): Path<String>,
) -> Result<Json<ProductStockAnswer>, ApiError> {
    let sizes = state.ledger.product_stock(&product, state.clock.now()).await?;
    if sizes.is_empty() {
        return Err(ApiError::NotFound {
            code: "unknown_product",
            message: format!("product {product:?} has no sizes in the ledger (a restock movement creates them)"),
        });
    }
    let sizes = sizes
        .iter()
        .map(|record| {
            let level = &record.level;
            SizeStockAnswer {
                size: record.size.clone(),
                stock: level.stock().get(),
                reserved_stock: level.reserved().get(),
                available_stock: level.available().get(),
                low_stock_threshold: level.low_stock_threshold().get(),
                is_low_stock: level.is_low(),
            }
        })
        .collect();
    Ok(Json(ProductStockAnswer { product, sizes }))
}
