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

// `takeSnapshot`'s input read in one call (bindings/wasm/src/tracker.rs, `SnapshotArgs`).
// Read field by field from the .wasm, one snapshot took about 70 calls across the
// boundary (a get, a type check, a surrogate check and a copy per field), most of its
// time. This reads input the .wasm would accept, in the order the .wasm reads it; for
// anything else it returns `undefined`, and the .wasm reads the object field by field
// as before and throws the error that names the bad value. So the rules and the
// messages stay in one place.

// The text fields, in the order of `SnapshotArgs::TEXT_FIELDS`.
const TEXT_FIELDS = [
  'operation',
  'userId',
  'userContextThreadId',
  'websocketClientId',
  'managerThreadId',
  'isolationKey',
  'cleanupLookupThreadId',
];
const KNOWN = new Set([...TEXT_FIELDS, 'managerInstanceId', 'metadata']);
// Where the metadata's and the instance id's sizes go, after the text fields'.
const METADATA = TEXT_FIELDS.length;
const INSTANCE = METADATA + 1;
// Where `managerInstanceId` is read: between `managerThreadId` and `isolationKey`.
const INSTANCE_READ_BEFORE = TEXT_FIELDS.indexOf('isolationKey');

/**
 * The snapshot's text fields and its metadata as JSON, one after another in one text;
 * `sizes` gets each one's length in UTF-16 units (-1 when absent), then the instance id
 * (NaN when absent). `undefined` when the input is not what the .wasm accepts.
 *
 * No surrogate check here: the wasm takes this text only when it is ASCII (its UTF-8
 * length equals its length in UTF-16 units), and a lone surrogate, which converts to
 * U+FFFD, three bytes for one unit, never is. Other text goes the field-by-field way.
 */
export function packSnapshotInput(v, sizes) {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const keys = Object.keys(v);
  for (let i = 0; i < keys.length; i++) if (!KNOWN.has(keys[i])) return undefined;
  let text = '';
  for (let i = 0; i < TEXT_FIELDS.length; i++) {
    if (i === INSTANCE_READ_BEFORE) {
      const n = v.managerInstanceId;
      if (n === undefined || n === null) sizes[INSTANCE] = NaN;
      else if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) sizes[INSTANCE] = n;
      else return undefined;
    }
    const s = v[TEXT_FIELDS[i]];
    if (s === undefined || s === null) {
      if (i === 0) return undefined;
      sizes[i] = -1;
    } else if (typeof s === 'string') {
      sizes[i] = s.length;
      text += s;
    } else {
      return undefined;
    }
  }
  const m = v.metadata;
  if (m === undefined || m === null) {
    sizes[METADATA] = -1;
  } else {
    if (typeof m !== 'object' || Array.isArray(m)) return undefined;
    let json;
    try {
      json = JSON.stringify(m);
    } catch {
      return undefined;
    }
    if (typeof json !== 'string') return undefined;
    sizes[METADATA] = json.length;
    text += json;
  }
  // A getter or a toJSON that called into the wasm may have grown its memory. That
  // detaches `sizes`, a view of the memory, and drops what was written to it since:
  // then the wasm reads the input field by field.
  if (sizes.length === 0) return undefined;
  return text;
}

/** What `takeSnapshot` and `simulateCleanupLookup` return; `violations` is a view of wasm memory. */
export function snapshotOutcome(index, mismatch, violations) {
  return { index, mismatch, violations: Array.from(violations) };
}
