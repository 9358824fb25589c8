// Objects are freed without leaking: explicitly with free(), and by the garbage collector
// (the package is built with --weak-refs) when they are dropped.
import test from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { tl, pkgDir } from './helpers.mjs';

const { Tracker, ThreadGuard, UserContext, IsolationKey, ThreadlineError } = tl;
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const wasmMemory = createRequire(import.meta.url)(join(pkgDir, 'node', 'threadline.js')).__wasm.memory;

/** A report of 2000 snapshots, made once. */
const BIG_REPORT = (() => {
  const t = new Tracker({ clock: () => 1_764_000_000_000 });
  for (let i = 0; i < 2000; i++) {
    t.takeSnapshot({
      operation: 'manager_creation',
      userId: `user_${i}`,
      userContextThreadId: `thread_websocket_factory_${i}_0a1b2c3d`,
      managerThreadId: `thread_websocket_factory_${i}_0a1b2c3d`,
      isolationKey: `user_${i}:thread_websocket_factory_${i}_0a1b2c3d`,
      metadata: { n: i, note: 'x'.repeat(200) },
    });
  }
  const json = t.toJSON();
  t.free();
  return json;
})();

/** A tracker holding about 1 MB inside the wasm instance (built by the core from JSON). */
function bigTracker() {
  return Tracker.fromJSON(BIG_REPORT);
}

const MB = 1024 * 1024;

test('free() returns the memory: 150 big trackers in a row fit in the space of a few', () => {
  for (let i = 0; i < 5; i++) bigTracker().free();
  const warm = wasmMemory.buffer.byteLength;
  for (let i = 0; i < 150; i++) bigTracker().free();
  const grown = wasmMemory.buffer.byteLength - warm;
  // Leaking would grow the instance by well over 100 MB.
  assert.ok(grown <= 16 * MB, `wasm memory grew by ${(grown / MB).toFixed(1)} MB`);
});

test('a freed object throws instead of touching freed memory; the instance keeps working', () => {
  const t = bigTracker();
  t.free();
  const freed = (e) =>
    e instanceof ThreadlineError && e.kind === 'freed' && /already freed/.test(e.message);
  assert.throws(() => t.analyze(), freed);
  assert.throws(() => t.takeSnapshot({ operation: 'op' }), freed);
  assert.throws(() => t.free(), freed, 'a second free() is refused');
  const c = new UserContext({ userId: 'u1', threadId: 'thread_a', runId: 'run_a' });
  c.free();
  assert.throws(() => c.threadId, freed);
  // Other objects are untouched.
  assert.equal(new IsolationKey('u1', 'thread_a').canonical(), 'u1:thread_a');
});

test('objects dropped without free() are reclaimed by the garbage collector', async () => {
  for (let i = 0; i < 5; i++) bigTracker().free();
  const warm = wasmMemory.buffer.byteLength;
  for (let round = 0; round < 30; round++) {
    for (let i = 0; i < 5; i++) bigTracker(); // dropped at once
    gc();
    await tick();
    await tick();
  }
  gc();
  await tick();
  const grown = wasmMemory.buffer.byteLength - warm;
  // 150 trackers of ~1 MB each were dropped; with finalization the space is reused.
  assert.ok(grown <= 48 * MB, `wasm memory grew by ${(grown / MB).toFixed(1)} MB`);
});

test('a guard and the tracker handle it gives out share one tracker safely', () => {
  const g = new ThreadGuard({ userId: 'user123', threadId: 'thread_a' });
  const t1 = g.tracker;
  const t2 = g.tracker;
  g.incoming({ thread_id: 'thread_a' });
  assert.equal(t1.totalSnapshots, 2);
  assert.equal(t2.totalSnapshots, 2);
  g.free();
  // The handles keep the shared tracker alive after the guard is gone.
  assert.equal(t1.analyze().total_snapshots, 2);
  t1.free();
  assert.equal(t2.retainedCount, 2);
  t2.free();
});

test('a clock that calls back into its own tracker gets an error, not a crash', () => {
  let t;
  t = new Tracker({
    clock: () => {
      if (t) t.takeSnapshot({ operation: 'reentrant' });
      return 1000;
    },
  });
  assert.throws(() => t.takeSnapshot({ operation: 'outer' }), (e) => e instanceof Error);
  t = null;
});

test('takeSnapshot reads its input right when a getter grows the wasm memory', () => {
  // Growing the memory detaches every view of it, among them the one `takeSnapshot`'s
  // one-call reading writes the fields' sizes to (bindings/wasm/js/args.js).
  const kept = [];
  let grew = 0;
  const input = {
    operation: 'op',
    userId: 'user-1',
    managerInstanceId: 3,
    // The last field, absent: the sizes written after it would be lost.
    get cleanupLookupThreadId() {
      const start = wasmMemory.buffer.byteLength;
      while (wasmMemory.buffer.byteLength === start && kept.length < 1000) kept.push(bigTracker());
      if (wasmMemory.buffer.byteLength !== start) grew += 1;
      return undefined;
    },
  };
  const t = new Tracker({ clock: () => 5 });
  t.takeSnapshot(input);
  assert.ok(grew >= 1, 'the getter grew the memory');
  const [s] = t.snapshotRange(0, 1);
  assert.equal(s.user_id, 'user-1');
  assert.equal(s.manager_instance_id, 3);
  assert.equal(s.thread_id_cleanup_lookup, null);
  assert.deepEqual(s.metadata, {});
  for (const k of kept) k.free();
  t.free();
});
