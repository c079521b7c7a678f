// The demo shop's server refuses, in production, the settings meant for a laptop: test payments (any visitor could
// pay any checkout) and a missing PAYLOAD_SECRET. It refuses before it loads Next.js, so no build is needed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const server = join(dirname(fileURLToPath(import.meta.url)), '..', 'server.mjs');

/** Runs server.mjs with `env` on top of a production environment, expecting it to refuse at once. */
function refusal(env) {
  const run = spawnSync(process.execPath, [server], {
    env: { PATH: process.env.PATH, NODE_ENV: 'production', PORT: '9', PAYLOAD_SECRET: 'a-production-secret-0123456789', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: run.status, stderr: run.stderr };
}

test('in production, STRIPE_TEST_MODE=1 stops the server at start unless it is declared a local demo', () => {
  const { status, stderr } = refusal({ STRIPE_TEST_MODE: '1' });
  assert.equal(status, 1);
  assert.match(stderr, /STRIPE_TEST_MODE=1 lets any visitor pay any checkout/);
});

test('the local-demo exception holds only for a server listening on a loopback address', () => {
  const { status, stderr } = refusal({ STRIPE_TEST_MODE: '1', ALLOW_TEST_PAYMENTS_IN_PRODUCTION: '1', SHOP_HOST: '0.0.0.0' });
  assert.equal(status, 1);
  assert.match(stderr, /STRIPE_TEST_MODE=1/);
});

test('in production, a missing PAYLOAD_SECRET stops the server at start', () => {
  const { status, stderr } = refusal({ PAYLOAD_SECRET: '' });
  assert.equal(status, 1);
  assert.match(stderr, /PAYLOAD_SECRET is not set/);
});
