// Three sidecars on one PostgreSQL ledger, projecting into one real Payload, as a shop behind a load balancer runs
// them: a flash sale spread over the three while one of them is killed, the same Stripe events delivered to two of
// them at once, cleanup asked of two at once; then the ledger and Payload must show each unit sold once, each event
// applied once, each reservation released once, and nothing the killed sidecar was doing lost.
// Runs when STOCK_TEST_DATABASE names a PostgreSQL server (scripts/test.sh sets it when one is reachable).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startSidecar } from '../../scripts/sidecar-process.mjs';
import { psql, schemaUrl } from '../../scripts/postgres.mjs';
import { WEBHOOK_SECRET, freePort, payloadApi, sidecarBinary, sleep, startPayload, stripeEvent, stripeSignature, waitFor } from '../../scripts/shop/harness.mjs';

const server = process.env.STOCK_TEST_DATABASE;
const STOCK = 50;
const BUYERS = 300;
const TTL_SECONDS = 8;


async function call(base, method, path, token, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

test('three sidecars on one PostgreSQL: exactly the stock sold, each event applied once, each reservation released once, nothing lost with a replica killed', { skip: server ? false : 'STOCK_TEST_DATABASE is not set: no PostgreSQL server to share (scripts/test.sh sets it when one is reachable)', timeout: 180_000 }, async () => {
  const schema = `stock_replicas_${randomBytes(6).toString('hex')}`;
  assert.ok(psql(`CREATE SCHEMA ${schema}`, server), `creating the schema ${schema}`);
  const directory = mkdtempSync(join(tmpdir(), 'payload-stock-replicas-'));
  const apiKey = randomBytes(16).toString('hex');
  const payloadPort = await freePort();
  const shared = {
    DATABASE_URL: schemaUrl(schema, server),
    SIDECAR_API_TOKEN: randomBytes(16).toString('hex'),
    ADMIN_API_TOKEN: randomBytes(16).toString('hex'),
    PAYLOAD_URL: `http://127.0.0.1:${payloadPort}`,
    PAYLOAD_API_KEY: apiKey,
    PROJECTION_RETRY_MAX_SECONDS: '1',
    // A killed sidecar's claims on outbox lanes lapse after 2 s; the others then deliver what it had claimed.
    PROJECTION_LEASE_SECONDS: '2',
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    CLEANUP_INTERVAL_SECONDS: '0',
    DATABASE_MAX_CONNECTIONS: '8',
    RUST_LOG: process.env.RUST_LOG ?? 'warn',
  };
  const replicas = [];
  let payload;
  try {
    for (let index = 0; index < 3; index++) {
      replicas.push(await startSidecar(sidecarBinary(), shared, { stdio: 'ignore', port: await freePort() }));
    }
    const [first, second, doomed] = replicas;
    const { SIDECAR_API_TOKEN: api, ADMIN_API_TOKEN: admin } = shared;
    payload = await startPayload({ database: join(directory, 'payload.db'), port: payloadPort, sidecarUrl: first.base, sidecarAdminToken: admin, apiKey });
    const shop = payloadApi(payload.url, apiKey);
    const created = await shop.post('/products?depth=0', { title: 'Last pairs', sizes: [{ size: '42' }] });
    assert.equal(created.status, 201, created.text);
    const product = String(created.body.doc.id);
    const restock = await call(second.base, 'POST', '/v1/movements', admin, { product, size: '42', type: 'restock', quantity: STOCK, reason: 'Delivery' });
    assert.equal(restock.status, 201, JSON.stringify(restock.body));

    // The flash sale: each buyer goes to one replica (round robin); a connection refused sends it on to the next,
    // as a load balancer does. The third replica is killed (SIGKILL) once a fifth of the buyers have an answer.
    let answered = 0;
    let killed = false;
    const buy = async (buyer) => {
      const body = { reference: `pi_flash_${buyer}`, items: [{ product, size: '42', quantity: 1 }], ttlSeconds: TTL_SECONDS };
      for (let attempt = 0; attempt < 3; attempt++) {
        const replica = replicas[(buyer + attempt) % 3];
        try {
          const answer = await call(replica.base, 'POST', '/v1/reservations', api, body);
          answered++;
          if (answered >= BUYERS / 5 && !killed) {
            killed = true;
            doomed.child.kill('SIGKILL');
          }
          return { buyer, ...answer };
        } catch {
          // That replica is gone: the next one.
        }
      }
      throw new Error(`buyer ${buyer} reached no replica`);
    };
    const answers = await Promise.all(Array.from({ length: BUYERS }, (_, buyer) => buy(buyer)));
    assert.ok(killed, 'the third replica was killed during the sale');
    const winners = answers.filter((answer) => answer.status === 201 || answer.status === 200).map((answer) => answer.body.reference);
    const refused = answers.filter((answer) => answer.status === 409);
    assert.equal(new Set(winners).size, STOCK, `exactly ${STOCK} reservations: ${JSON.stringify(answers.filter((a) => a.status >= 500))}`);
    assert.equal(winners.length + refused.length, BUYERS, 'every buyer got an answer: a reservation or a refusal');
    const stock = await call(first.base, 'GET', `/v1/products/${product}/stock`, api);
    assert.deepEqual(stock.body.sizes.map(({ stock: units, reservedStock, availableStock }) => ({ units, reservedStock, availableStock })), [{ units: STOCK, reservedStock: STOCK, availableStock: 0 }]);

    // Half the winners pay. Stripe's delivery of each event reaches two replicas at the same moment.
    const paying = [...winners].sort().slice(0, STOCK / 2);
    const deliveries = await Promise.all(paying.map(async (reference) => {
      const event = stripeEvent('payment_intent.succeeded', reference);
      const send = (replica) => fetch(`${replica.base}/webhooks/stripe`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'stripe-signature': stripeSignature(event) },
        body: event,
      }).then(async (response) => ({ status: response.status, body: await response.json() }));
      return Promise.all([send(first), send(second)]);
    }));
    for (const pair of deliveries) {
      assert.deepEqual(pair.map((answer) => answer.status), [200, 200]);
      assert.deepEqual(pair.map((answer) => answer.body.duplicate).sort(), [false, true], `applied once: ${JSON.stringify(pair)}`);
      assert.equal(pair.find((answer) => !answer.body.duplicate).body.outcome, 'committed');
    }

    // The other half never pay: once their reservations expired, cleanup asked of both surviving replicas at once
    // releases each of them once.
    await sleep(TTL_SECONDS * 1000 + 500);
    const cleanups = await Promise.all([first, second].map((replica) => call(replica.base, 'POST', '/api/admin/clean-expired-reservations', admin)));
    const released = cleanups.flatMap((answer) => answer.body.references);
    assert.equal(released.length, STOCK / 2, `each released once: ${JSON.stringify(cleanups.map((answer) => answer.body))}`);
    assert.deepEqual([...new Set(released)].sort(), winners.filter((reference) => !paying.includes(reference)).sort());

    // Nothing lost: Payload ends up showing the ledger, including what the killed replica had queued or claimed.
    await waitFor('Payload to show the sale', async () => {
      const row = (await shop.sizes(product))['42'];
      return row && row.stock === STOCK / 2 && row.reservedStock === 0 && row.availableStock === STOCK / 2;
    }, { timeoutMs: 60_000 });
    await waitFor('the outbox to drain', async () => (await call(first.base, 'GET', '/readyz', api)).body.payloadProjection.backlog === 0, { timeoutMs: 30_000 });
    const movements = await shop.movements(product);
    assert.equal(movements.filter((doc) => doc.type === 'sale').length, STOCK / 2, 'one sale document per payment');
    assert.equal(movements.filter((doc) => doc.type === 'restock').length, 1);
    const reservations = await shop.get(`/stock-reservations?depth=0&limit=1000&where[reference][like]=pi_flash_`);
    const statuses = reservations.body.docs.map((doc) => doc.status);
    assert.equal(statuses.filter((status) => status === 'committed').length, STOCK / 2);
    assert.equal(statuses.filter((status) => status === 'expired').length, STOCK / 2);
    assert.equal(statuses.length, STOCK, 'one reservation document per winner');
  } finally {
    await Promise.allSettled([payload?.stop(), ...replicas.map((replica) => replica.stop())]);
    rmSync(directory, { recursive: true, force: true });
    psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`, server);
  }
});
