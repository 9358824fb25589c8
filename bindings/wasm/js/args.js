// Checks of JS values that cost less here than in the .wasm (bindings/wasm/src/args.rs).

// A lone UTF-16 surrogate (with the `u` flag, a paired one is part of one code point).
const LONE_SURROGATE = /\p{Cs}/u;
// As many characters of a bad value as the core's messages quote.
const SHOWN = 64;

/**
 * `s` quoted as JSON writes it (a lone surrogate as `\ud800`), cut after 64 UTF-16 units
 * with the full length noted, when it holds a lone surrogate; else `undefined`.
 */
export function loneSurrogate(s) {
  if (!LONE_SURROGATE.test(s)) return undefined;
  if (s.length <= SHOWN) return JSON.stringify(s);
  return `${JSON.stringify(s.slice(0, SHOWN))}… (${s.length} UTF-16 units)`;
}

/** `obj[key] = value` as an own enumerable property, even for the key `__proto__`. */
export function setOwn(obj, key, value) {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}
