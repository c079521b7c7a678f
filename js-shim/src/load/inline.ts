// How payload-stock's WebAssembly module is loaded in Node (ES modules and CommonJS), browsers through a bundler,
// Bun and Deno: it travels inside the package's JavaScript (base64) and is compiled synchronously on first import,
// so the functions are ready as soon as the import returns, with no file read, no fetch and no bundler setting.
// (The Edge runtime forbids compiling from bytes: it gets edge.ts; package.json's "imports" chooses.)
import { initSync } from '../wasm/stock_wasm.js';
import { wasmBase64 } from '../wasm/stock_wasm_inline.js';

/** The module's bytes from base64: `Uint8Array.fromBase64` where the runtime has it, `atob` everywhere else. */
function decodeBase64(text: string): Uint8Array {
  const fromBase64 = (Uint8Array as { fromBase64?: (text: string) => Uint8Array }).fromBase64;
  if (typeof fromBase64 === 'function') return fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

initSync({ module: decodeBase64(wasmBase64) });
