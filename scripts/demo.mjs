// A sample product through payload-stock: what a Payload hook or a Next.js route handler would do with it.
import {
  applyMovement,
  deriveSizes,
  isReservationExpired,
  reservationExpiresAt,
  validateCart,
} from '../js-shim/index.mjs'; // in a shop: from 'payload-stock'

const product = {
  id: 'trail-runner',
  title: 'Trail Runner',
  sizes: [
    { size: '40', stock: 12, reservedStock: 2, lowStockThreshold: 3 },
    { size: '41', stock: 5, reservedStock: 3, lowStockThreshold: 3 },
    { size: '42', stock: 1, reservedStock: 1, lowStockThreshold: 3 },
    { size: '43', stock: 0, reservedStock: 0, lowStockThreshold: 3 },
  ],
};

console.log(`Derived sizes of "${product.title}" (deriveSizes):`);
console.table(deriveSizes(product.sizes));

const cart = [
  { product: 'trail-runner', size: '41', quantity: 2 },
  { product: 'trail-runner', size: '42', quantity: 1 },
  { product: 'trail-runner', size: '45', quantity: 1 },
];
console.log('\nA cart checked against it (validateCart):');
console.dir(validateCart([product], cart), { depth: null });

const createdAt = new Date().toISOString();
const expiresAt = reservationExpiresAt(createdAt);
console.log(`\nA reservation made at ${createdAt} expires at ${expiresAt} (reservationExpiresAt, 30 min default);`);
console.log(`expired now? ${isReservationExpired(expiresAt)}; in an hour? ${isReservationExpired(expiresAt, new Date(Date.now() + 3_600_000))}`);

console.log('\nA restock of 10 units of size 43 (applyMovement):');
console.dir(applyMovement(product.sizes[3], { type: 'restock', quantity: 10, reason: 'Supplier delivery', reference: 'PO-1042' }));

try {
  applyMovement(product.sizes[2], { type: 'sale', quantity: -1, reason: 'Walk-in sale' });
} catch (error) {
  console.log(`\nSelling the last, reserved pair of size 42 is refused: ${error.code}: ${error.message}`);
}
