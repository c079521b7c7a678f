'use strict';
// payload-stock for CommonJS: the rules of stock from stock-core, compiled to WebAssembly. One instance of the
// wasm module serves both module systems: index.mjs re-exports this file.
const wasm = require('./wasm/stock_wasm.js');

module.exports = {
  availableStock: wasm.availableStock,
  isLowStock: wasm.isLowStock,
  deriveSizes: wasm.deriveSizes,
  validateCart: wasm.validateCart,
  reservationExpiresAt: wasm.reservationExpiresAt,
  isReservationExpired: wasm.isReservationExpired,
  applyMovement: wasm.applyMovement,
};
