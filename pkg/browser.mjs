// Browsers and bundlers: the web build. Call the default export `init()` (once) before
// anything else; it fetches and instantiates web/threadline_bg.wasm.
export * from './web/threadline.js';
export { default, initSync } from './web/threadline.js';
export { ThreadlineError } from './error.mjs';
