// A local fake of the part of Stripe's HTTP API a shop on Payload's ecommerce plugin calls (customers, PaymentIntents:
// create, retrieve, cancel), answering in Stripe's shapes and errors, for the tests and benchmarks: Stripe's servers
// cannot be reached from here. What a customer does in the browser (pay) is `fake.pay(id)`: the PaymentIntent turns
// `succeeded`, and `paymentIntentEvent` gives the webhook event Stripe would then send.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

// A PaymentIntent in full as Stripe's basil API version answers it (the fixture's), so that strict clients such as
// the sidecar's async-stripe read the fake's answers as they read Stripe's.
const PAYMENT_INTENT = JSON.parse(readFileSync(new URL('../../sidecar/tests/fixtures/stripe/payment_intent.succeeded.json', import.meta.url), 'utf8')).data.object;

const newId = (prefix) => `${prefix}_${randomBytes(12).toString('hex')}`;

/** `a[b][c]=1` form fields as Stripe's clients send them, into nested objects (arrays are not needed here). */
function formToObject(text) {
  const result = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const path = key.split('[').map((part) => part.replace(/]$/, ''));
    let target = result;
    for (const part of path.slice(0, -1)) target = target[part] ??= {};
    target[path.at(-1)] = value;
  }
  return result;
}

function stripeError(status, message, code) {
  return { status, body: { error: { type: 'invalid_request_error', message, ...(code ? { code } : {}) } } };
}

/**
 * Starts the fake on a free port of 127.0.0.1. Returns `{ url, paymentIntents, calls, pay, paymentIntentEvent,
 * close }`: `url` is the API base (give it as STRIPE_API_BASE), `calls` counts requests by route.
 */
export async function startFakeStripe() {
  const customers = new Map();
  const paymentIntents = new Map();
  const calls = {};

  function route(method, path, query, form) {
    let match;
    if (method === 'GET' && path === '/v1/customers') {
      const data = [...customers.values()].filter((customer) => !query.get('email') || customer.email === query.get('email'));
      return { status: 200, body: { object: 'list', data: data.slice(0, 10), has_more: false, url: '/v1/customers' }, name: 'customers.list' };
    }
    if (method === 'POST' && path === '/v1/customers') {
      const customer = { id: newId('cus'), object: 'customer', email: form.email ?? null, metadata: form.metadata ?? {} };
      customers.set(customer.id, customer);
      return { status: 200, body: customer, name: 'customers.create' };
    }
    if (method === 'POST' && path === '/v1/payment_intents') {
      const amount = Number(form.amount);
      if (!Number.isInteger(amount) || amount < 1) return { ...stripeError(400, 'Invalid positive integer', 'parameter_invalid_integer'), name: 'paymentIntents.create' };
      const id = newId('pi');
      const intent = {
        ...structuredClone(PAYMENT_INTENT),
        id,
        amount,
        amount_received: 0,
        automatic_payment_methods: form.automatic_payment_methods ? { allow_redirects: 'always', enabled: form.automatic_payment_methods.enabled === 'true' } : null,
        client_secret: `${id}_secret_${randomBytes(8).toString('hex')}`,
        created: Math.floor(Date.now() / 1000),
        currency: String(form.currency ?? '').toLowerCase(),
        customer: form.customer ?? null,
        description: form.description ?? null,
        latest_charge: null,
        metadata: form.metadata ?? {},
        payment_method: null,
        status: 'requires_payment_method',
      };
      paymentIntents.set(id, intent);
      return { status: 200, body: intent, name: 'paymentIntents.create' };
    }
    if ((match = path.match(/^\/v1\/payment_intents\/([^/]+)$/)) && method === 'GET') {
      const intent = paymentIntents.get(match[1]);
      return intent ? { status: 200, body: intent, name: 'paymentIntents.retrieve' } : { ...stripeError(404, `No such payment_intent: '${match[1]}'`, 'resource_missing'), name: 'paymentIntents.retrieve' };
    }
    if ((match = path.match(/^\/v1\/payment_intents\/([^/]+)\/cancel$/)) && method === 'POST') {
      const intent = paymentIntents.get(match[1]);
      if (!intent) return { ...stripeError(404, `No such payment_intent: '${match[1]}'`, 'resource_missing'), name: 'paymentIntents.cancel' };
      if (intent.status === 'succeeded' || intent.status === 'canceled') {
        return { ...stripeError(400, `You cannot cancel this PaymentIntent because it has a status of ${intent.status}.`, 'payment_intent_unexpected_state'), name: 'paymentIntents.cancel' };
      }
      Object.assign(intent, { status: 'canceled', canceled_at: Math.floor(Date.now() / 1000), cancellation_reason: form.cancellation_reason ?? null });
      return { status: 200, body: intent, name: 'paymentIntents.cancel' };
    }
    return { ...stripeError(404, `Unrecognized request URL (${method}: ${path}).`), name: 'unknown' };
  }

  const server = http.createServer(async (request, response) => {
    const chunks = [];
    for await (const chunk of request) chunks.push(chunk);
    const url = new URL(request.url, 'http://stripe.invalid');
    const authorised = /^Bearer sk_test_\w+$/.test(request.headers.authorization ?? '');
    const answer = authorised
      ? route(request.method, url.pathname, url.searchParams, formToObject(Buffer.concat(chunks).toString('utf8')))
      : { ...stripeError(401, 'Invalid API Key provided'), name: 'unauthorised' };
    calls[answer.name] = (calls[answer.name] ?? 0) + 1;
    response.writeHead(answer.status, { 'content-type': 'application/json', 'request-id': newId('req') });
    response.end(JSON.stringify(answer.body));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;

  return {
    url,
    paymentIntents,
    calls,
    /** The customer pays: the PaymentIntent succeeds (as Stripe.js confirming the card would make it). */
    pay(id) {
      const intent = paymentIntents.get(id);
      if (!intent) throw new Error(`fake Stripe: no PaymentIntent ${id}`);
      if (intent.status !== 'requires_payment_method') throw new Error(`fake Stripe: ${id} is ${intent.status}, it cannot be paid`);
      Object.assign(intent, { status: 'succeeded', amount_received: intent.amount, latest_charge: newId('ch'), payment_method: newId('pm') });
      return intent;
    },
    /** The event Stripe sends to webhooks about a PaymentIntent now (`payment_intent.succeeded`, `.canceled`, ...). */
    paymentIntentEvent(type, id) {
      const intent = paymentIntents.get(id);
      if (!intent) throw new Error(`fake Stripe: no PaymentIntent ${id}`);
      return JSON.stringify({
        id: newId('evt'),
        object: 'event',
        api_version: '2025-03-31.basil',
        created: Math.floor(Date.now() / 1000),
        data: { object: intent },
        livemode: false,
        pending_webhooks: 1,
        request: { id: null, idempotency_key: null },
        type,
      });
    },
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }),
  };
}
