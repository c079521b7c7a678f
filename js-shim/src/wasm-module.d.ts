// What Next.js's bundlers give for `import module from './x.wasm?module'` in the Edge runtime.
declare module '*.wasm?module' {
  const module: WebAssembly.Module;
  export default module;
}
