// Copies the wasm-pack output (../pkg, built for Node with --target nodejs) into this package's wasm/ folder,
// which is what gets published: the package must not depend on a folder outside itself.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, '..', '..', 'pkg');
const target = join(here, '..', 'wasm');
const files = ['stock_wasm.js', 'stock_wasm.d.ts', 'stock_wasm_bg.wasm'];

const missing = files.filter((file) => !existsSync(join(pkg, file)));
if (missing.length > 0) {
  console.error(
    `payload-stock: ${missing.join(', ')} not found in ${pkg}.\n` +
      'Build the WebAssembly package first: wasm-pack build crates/stock-wasm --profile wasm-release --target nodejs --out-dir ../../pkg\n' +
      '(scripts/test.sh and scripts/demo.sh do it for you).',
  );
  process.exit(1);
}
mkdirSync(target, { recursive: true });
for (const file of files) copyFileSync(join(pkg, file), join(target, file));
console.log(`payload-stock: copied ${files.length} files from pkg/ into js-shim/wasm/`);
