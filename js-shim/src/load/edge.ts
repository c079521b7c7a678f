// How payload-stock's WebAssembly module is loaded on Next.js's Edge runtime (middleware, edge route handlers),
// which forbids compiling WebAssembly from bytes at run time: it is imported as a compiled WebAssembly.Module
// (`.wasm?module`, which Next.js's bundlers turn into one) and instantiated synchronously.
import { initSync } from '../wasm/stock_wasm.js';
import wasmModule from '../wasm/stock_wasm_bg.wasm?module';

/**
 * The module as this realm's WebAssembly.Module. Next.js's local Edge sandbox (`next dev`, `next start` and the
 * build's page-data step) compiles it outside the sandbox's realm, so it fails the glue's `instanceof` check,
 * and the glue would then try to compile it again as bytes. It is a compiled module all the same (the brand check
 * of `WebAssembly.Module.exports` says so, and throws a TypeError on anything else): it gets this realm's
 * prototype. On a real Edge runtime, one realm, it is returned as it is.
 */
function inThisRealm(module: WebAssembly.Module): WebAssembly.Module {
  if (module instanceof WebAssembly.Module) return module;
  WebAssembly.Module.exports(module);
  return Object.setPrototypeOf(module, WebAssembly.Module.prototype) as WebAssembly.Module;
}

initSync({ module: inThisRealm(wasmModule) });
