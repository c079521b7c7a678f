'use strict';
// payload-stock for CommonJS: the rules of stock from stock-core, compiled to WebAssembly. One instance of the
// wasm module serves both module systems: index.mjs re-exports this file.
const wasm = require('./wasm/stock_wasm.js');
const { createStockClient, StockApiError, CHECKOUT_METADATA } = require('./client.cjs');
const { payloadStock, projectionProof, mayOpenAdmin } = require('./plugin.cjs');

// availableStock and isLowStock take their figures as plain WebAssembly numbers, the cheapest call there is. On
// the way in JavaScript converts each argument with ToNumber, which throws its own TypeError for a BigInt or a
// Symbol before payload-stock sees the value. Report those like every other bad figure: a StockError with the
// code invalid_quantity. (try/catch costs nothing on the path that does not throw.)
function invalidFigure(cause) {
  const error = new Error(`expected a number for every figure: ${cause.message}`, { cause });
  error.name = 'StockError';
  error.code = 'invalid_quantity';
  return error;
}

function availableStock(stock, reservedStock) {
  try {
    return wasm.availableStock(stock, reservedStock);
  } catch (error) {
    throw error instanceof TypeError ? invalidFigure(error) : error;
  }
}

function isLowStock(stock, reservedStock, lowStockThreshold) {
  try {
    return wasm.isLowStock(stock, reservedStock, lowStockThreshold);
  } catch (error) {
    throw error instanceof TypeError ? invalidFigure(error) : error;
  }
}

module.exports = {
  availableStock,
  isLowStock,
  deriveSizes: wasm.deriveSizes,
  validateCart: wasm.validateCart,
  reservationExpiresAt: wasm.reservationExpiresAt,
  isReservationExpired: wasm.isReservationExpired,
  applyMovement: wasm.applyMovement,
  createStockClient,
  StockApiError,
  CHECKOUT_METADATA,
  payloadStock,
  projectionProof,
  mayOpenAdmin,
};
