//! The /v1 API: reservations and stock for the shop's server (SIDECAR_API_TOKEN), movements and returns for
//! admins (ADMIN_API_TOKEN).

mod movements;
mod products;
mod reservations;
mod returns;

use utoipa_axum::router::OpenApiRouter;

use crate::http::AppState;

pub use movements::MovementAnswer;
pub use products::{ProductStockAnswer, SizeStockAnswer};
pub use reservations::{ReservationAnswer, ReservedItemAnswer};
pub use returns::{RecordedReturn, ReturnAnswer, ReturnsAnswer};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(reservations::router())
        .merge(returns::router())
        .merge(products::router())
        .merge(movements::router())
}
