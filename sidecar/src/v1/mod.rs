//! The /v1 API: reservations and stock for the shop's server (SIDECAR_API_TOKEN), movements for admins
//! (ADMIN_API_TOKEN).

mod movements;
mod products;
mod reservations;

use utoipa_axum::router::OpenApiRouter;

use crate::http::AppState;

pub use movements::MovementAnswer;
pub use products::{ProductStockAnswer, SizeStockAnswer};
pub use reservations::{ReservationAnswer, ReservedItemAnswer};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(reservations::router()).merge(products::router()).merge(movements::router())
}
