// The TypeScript types a shop compiles against: test/types/consumer.ts must compile under `strict`, and each of
// its @ts-expect-error lines must really be an error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

test('the package types accept correct calls and refuse wrong ones', () => {
  const result = spawnSync(process.execPath, [tsc, '-p', join(here, 'types', 'tsconfig.json')], { encoding: 'utf8' });
  assert.equal(result.status, 0, `tsc reported:\n${result.stdout}${result.stderr}`);
});
