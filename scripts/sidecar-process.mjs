// Starting a stock-sidecar process for the demo and the benchmarks: a free-ish port, a temporary database,
// generated tokens, and a stop that cleans up. Used by scripts/demo.mjs, scripts/shop (the shop the end-to-end
// tests and the benchmarks run) and bench/hot-size.mjs.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Starts `binary serve` on 127.0.0.1 with a fresh SQLite database and random tokens, and waits until /readyz
 * answers. `extraEnv` adds settings (a webhook secret, RUST_LOG); `stdio` is where its logs go ('inherit' or
 * 'ignore'). Returns the base URL, the tokens, the environment it runs with and `stop()`.
 */
export async function startSidecar(binary, extraEnv = {}, { stdio = 'inherit', port: chosenPort } = {}) {
  const directory = mkdtempSync(join(tmpdir(), 'payload-stock-sidecar-'));
  const apiToken = randomBytes(16).toString('hex');
  const adminToken = randomBytes(16).toString('hex');
  const port = chosenPort ?? 4300 + Math.floor(Math.random() * 1000);
  const base = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    LISTEN_ADDR: `127.0.0.1:${port}`,
    DATABASE_URL: `sqlite://${join(directory, 'payload-stock.db')}`,
    SIDECAR_API_TOKEN: apiToken,
    ADMIN_API_TOKEN: adminToken,
    ...extraEnv,
  };
  const child = spawn(binary, ['serve'], { env, stdio: ['ignore', stdio, stdio] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => {
    child.kill('SIGTERM');
    await exited;
    rmSync(directory, { recursive: true, force: true });
  };

  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      // env: what the process was started with, for running the binary's other commands on the same ledger.
      // The tokens are the environment's: `extraEnv` may have set them (replicas sharing one ledger share them).
      if ((await fetch(`${base}/readyz`)).ok) return { base, apiToken: env.SIDECAR_API_TOKEN, adminToken: env.ADMIN_API_TOKEN, env, child, stop };
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stop();
  throw new Error(`the sidecar (${binary}) did not become ready within 10 s`);
}
