
// Appended by mk/wasm.mk to the glue wasm-bindgen writes (pkg/node/threadline.js,
// pkg/web/threadline.js): what a wrong argument was, for the message of the glue's class
// check (`Registry.create({})`), said the way bindings/wasm/src/args.rs `describe` says it.
function describeArgument(v) {
  if (v === undefined || v === null) return String(v);
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}…` : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `the ${typeof v} ${v}`;
  if (Array.isArray(v)) return 'an array';
  if (typeof v !== 'object') return `a ${typeof v}`;
  const name = Object.getPrototypeOf(v)?.constructor?.name;
  return name && name !== 'Object' ? `an instance of ${name}` : 'an object';
}
