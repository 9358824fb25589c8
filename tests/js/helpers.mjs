// Shared by the tests: the package as a user gets it, fixed clocks, vector files.
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import assert from 'node:assert/strict';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const pkgDir = join(root, 'pkg');
export const vectorsDir = join(root, 'tests', 'vectors');

/** The package, imported by path the way `import ... from 'threadline'` resolves it in Node. */
export const tl = await import(join(pkgDir, 'index.mjs'));

/** A clock that returns `t` and moves only when told. */
export function manualClock(t) {
  const clock = () => clock.now;
  clock.now = t;
  clock.set = (v) => {
    clock.now = v;
  };
  clock.advance = (ms) => {
    clock.now += ms;
    return clock.now;
  };
  return clock;
}

export function readVectors(name) {
  return JSON.parse(readFileSync(join(vectorsDir, name), 'utf8'));
}

export function vectorFiles() {
  return readdirSync(vectorsDir).filter((f) => f.endsWith('.json')).sort();
}

/** Asserts that `fn` throws a ThreadlineError of `kind` (a string or a RegExp). */
export function throwsKind(fn, kind, message) {
  let caught;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, `expected a ThreadlineError ${kind}, nothing was thrown`);
  assert.ok(caught instanceof tl.ThreadlineError, `expected a ThreadlineError, got ${caught}`);
  assert.ok(caught instanceof Error, 'a ThreadlineError is an Error');
  assert.equal(caught.name, 'ThreadlineError');
  if (kind instanceof RegExp) assert.match(caught.kind, kind);
  else assert.equal(caught.kind, kind, `kind of: ${caught.message}`);
  if (message) assert.match(caught.message, message);
  return caught;
}
