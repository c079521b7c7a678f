// The TypeScript types a shop compiles against: test/types/consumer.ts (ES modules), commonjs.cts and
// payload-consumer.ts must compile under `strict`, and each of their @ts-expect-error lines must really be an error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

/** Runs tsc on a project of test/types/ and asserts it reports nothing. */
function compiles(project) {
  const result = spawnSync(process.execPath, [tsc, '-p', join(here, 'types', project)], { encoding: 'utf8' });
  assert.equal(result.status, 0, `tsc reported:\n${result.stdout}${result.stderr}`);
}

test('the types of the rules and the client accept correct calls and refuse wrong ones (ES modules and CommonJS)', () => {
  compiles('tsconfig.json');
});

test('the plugin is a Payload Plugin, typed with Payload\'s own Config', () => {
  compiles('tsconfig.payload.json');
});
