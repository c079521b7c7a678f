// payload-stock for ES modules: re-exports the CommonJS entry so that both module systems share one wasm
// instance (no dual-package hazard).
import payloadStockPackage from './index.cjs';

export const {
  availableStock,
  isLowStock,
  deriveSizes,
  validateCart,
  reservationExpiresAt,
  isReservationExpired,
  applyMovement,
  createStockClient,
  StockApiError,
  CHECKOUT_METADATA,
  payloadStock,
  projectionProof,
  mayOpenAdmin,
} = payloadStockPackage;
