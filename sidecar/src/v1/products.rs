//! GET /v1/products/{product}/stock: a product's sizes as they stand now.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::ApiCaller;
use crate::error::ApiError;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/products/{product}/stock", get(get_product_stock))
}

async fn get_product_stock(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(product): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let sizes = state.store.product_stock(&product, state.clock.now()).await?;
    if sizes.is_empty() {
        return Err(ApiError::NotFound {
            code: "unknown_product",
            message: format!("product {product:?} has no sizes in the ledger (a restock movement creates them)"),
        });
    }
    let sizes: Vec<Value> = sizes
        .iter()
        .map(|record| {
            let level = &record.level;
            json!({
                "size": record.size,
                "stock": level.stock().get(),
                "reservedStock": level.reserved().get(),
                "availableStock": level.available().get(),
                "lowStockThreshold": level.low_stock_threshold().get(),
                "isLowStock": level.is_low(),
            })
        })
        .collect();
    Ok(Json(json!({ "product": product, "sizes": sizes })))
}
