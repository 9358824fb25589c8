// Hardened JS (SES lockdown and the like) freezes Object.prototype before anything runs.
// The objects the package builds must come out the same there: an assignment to a name
// Object.prototype has ('toString', 'constructor') fails on a frozen prototype.
import test from 'node:test';
import assert from 'node:assert/strict';

Object.freeze(Object.prototype);
const { tl } = await import('./helpers.mjs');
const { Tracker, Registry, IdGenerator } = tl;

const NAMES = ['toString', 'constructor', 'hasOwnProperty', 'valueOf', '__proto__', 'plain'];

test('analyze() keeps users named like Object.prototype properties, as JSON.parse does', () => {
  const t = new Tracker({ clock: () => 5 });
  for (const u of NAMES) t.takeSnapshot({ operation: 'op', userId: u, userContextThreadId: `thread_${u}` });
  const first = t.analyze();
  assert.deepEqual(Object.keys(first.thread_ids_by_user), NAMES);
  assert.deepEqual(first, JSON.parse(t.toJSON()).analysis);
  // A later call builds its object from the strings the first one kept.
  t.takeSnapshot({ operation: 'op', userId: 'toString', userContextThreadId: 'thread_other' });
  const later = t.analyze();
  assert.deepEqual(later.thread_ids_by_user.toString, ['thread_toString', 'thread_other']);
  assert.deepEqual(later, JSON.parse(t.toJSON()).analysis);
});

test('Registry.userCounts keeps users named like Object.prototype properties', () => {
  const ids = new IdGenerator({ seed: 1, clock: () => 5 });
  const r = new Registry({ clock: () => 5 });
  for (const u of NAMES) r.create(ids.websocketContext(u));
  assert.deepEqual(Object.keys(r.userCounts()), [...NAMES].sort());
  assert.equal(r.userCounts().constructor, 1);
});
