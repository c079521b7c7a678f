// Compiled by types.test.mjs with `tsc --noEmit` as a CommonJS module: require() of the rules and of the client
// is typed from the CommonJS build's declarations.
import stock = require('payload-stock');
import client = require('payload-stock/client');

const available: number = stock.availableStock(10, 3);
const cart: boolean = stock.validateCart([], []).ok;
const error: InstanceType<typeof client.StockApiError> = new client.StockApiError('gone', { code: 'sidecar_unreachable' });
// @ts-expect-error the client is not part of the rules' entry point
stock.createStockClient;
// @ts-expect-error quantities are numbers
stock.availableStock('10', 3);

export = { available, cart, error };
