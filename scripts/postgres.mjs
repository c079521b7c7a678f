// A PostgreSQL server for the benchmarks and the end-to-end tests: its URL (BENCH_POSTGRES_URL, default the local
// one), a psql runner, and the URL of one schema of it, so each run of a sidecar gets a ledger of its own. Each
// function takes another server's URL as its last argument (the tests pass STOCK_TEST_DATABASE).
import { execFileSync } from 'node:child_process';

export const POSTGRES = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Runs one SQL statement on the PostgreSQL server with psql; false if there is none (or the statement failed). */
export function psql(sql, server = POSTGRES) {
  try {
    execFileSync('psql', [server, '--quiet', '--no-psqlrc', '-v', 'ON_ERROR_STOP=1', '-c', sql], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The server's URL with `schema` as the connections' search path. */
export function schemaUrl(schema, server = POSTGRES) {
  return `${server}${server.includes('?') ? '&' : '?'}options[search_path]=${schema}`;
}
