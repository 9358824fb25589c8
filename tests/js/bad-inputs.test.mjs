// Bad inputs (undefined, numbers, objects, huge strings) throw ThreadlineErrors with a
// kind and a short message: never a panic (a wasm trap), never a wrong answer.
import test from 'node:test';
import assert from 'node:assert/strict';
import { tl, throwsKind } from './helpers.mjs';

const { IdGenerator, UserContext, SessionStore, IsolationKey, Registry, Tracker, ThreadGuard } = tl;
const HUGE = 'x'.repeat(2_000_000);
const NOT_STRINGS = [undefined, null, 42, NaN, true, {}, [], () => 'x', Symbol('s'), 10n];

const ids = new IdGenerator({ seed: 3 });
const tracker = new Tracker();
const sessions = new SessionStore();
const registry = new Registry();

/** Calls whose first argument must be a string. */
const stringCalls = {
  parseId: (v) => tl.parseId(v),
  parseContextId: (v) => tl.parseContextId(v),
  isValidId: (v) => tl.isValidId(v),
  idAgeMs: (v) => tl.idAgeMs(v),
  runReadings: (v) => tl.runReadings(v),
  threadIdForRun: (v) => tl.threadIdForRun(v),
  areCorrelated: (v) => tl.areCorrelated(v, 'run_x_1_abcdef12'),
  correlation: (v) => tl.correlation('thread_x', v),
  'IsolationKey.parse': (v) => IsolationKey.parse(v),
  'new IsolationKey': (v) => new IsolationKey(v, 'thread_a'),
  'ids.userContextIds': (v) => ids.userContextIds(v, 'op'),
  'ids.simpleId': (v) => ids.simpleId(v),
  'ids.websocketClientId': (v) => ids.websocketClientId(v),
  'ids.managerRunId': (v) => ids.managerRunId(v),
  'ids.batchIds': (v) => ids.batchIds(v, 2),
  'ids.messageId': (v) => ids.messageId('chat', v),
  'ids.websocketContext': (v) => ids.websocketContext(v),
  'UserContext.fromWebsocketRequest': (v) => UserContext.fromWebsocketRequest(v),
  'sessions.getOrCreate': (v) => sessions.getOrCreate(v),
  'sessions.invalidateUser': (v) => sessions.invalidateUser(v),
  'registry.get': (v) => registry.get(v),
  'registry.cleanup': (v) => registry.cleanup(v),
  'registry.forceCleanupUser': (v) => registry.forceCleanupUser(v),
  'registry.findByRun': (v) => registry.findByRun('u1', v),
  'tracker.simulateCleanupLookup': (v) => tracker.simulateCleanupLookup(v),
  'tracker.recordViolation': (v) => tracker.recordViolation(v, 'ERROR'),
  'Tracker.fromJSON': (v) => Tracker.fromJSON(v),
};

for (const [name, call] of Object.entries(stringCalls)) {
  test(`${name}: non-strings throw argument errors`, () => {
    for (const v of NOT_STRINGS) {
      const e = throwsKind(() => call(v), 'argument');
      assert.ok(e.message.length < 300, e.message);
    }
  });
}

test('huge strings are refused by the core with a short message, or answered', () => {
  for (const [fn, kind] of [
    [() => tl.parseId(HUGE), 'id.unparsable'],
    [() => tl.parseContextId(`thread_${HUGE}`), 'id.unparsable'],
    [() => IsolationKey.parse(HUGE), 'key.too_long'],
    [() => new IsolationKey('u1', HUGE), 'context.too_long'],
    [() => ids.userContextIds(HUGE, 'op'), 'id.invalid_part'],
    [() => ids.userContextIds('u1', HUGE), 'id.invalid_part'],
    [() => ids.managerRunId(HUGE), 'id.invalid_part'],
    [() => new UserContext({ userId: 'u1', threadId: HUGE, runId: 'run_a' }), 'context.too_long'],
    [() => sessions.getOrCreate('u1', { threadId: HUGE }), 'context.too_long'],
    [() => tracker.takeSnapshot({ operation: HUGE }), 'report.too_long'],
    [() => tracker.recordViolation('x', HUGE), 'report.too_long'],
    [() => Tracker.fromJSON(HUGE, { maxBytes: 1024 }), 'report.too_large'],
    [() => Tracker.fromJSON(HUGE), 'report.json'],
    [() => new ThreadGuard({ userId: HUGE }), 'context.too_long'],
  ]) {
    const e = throwsKind(fn, kind);
    assert.ok(e.message.length < 300, `message of ${e.message.length} chars`);
    if (e.message.includes('"x')) assert.match(e.message, /…/, 'long values are quoted cut');
  }
  // Questions about huge strings are answered, not refused.
  assert.equal(tl.isValidId(HUGE), false);
  assert.deepEqual(tl.runReadings(`run_${HUGE}`), []);
  assert.equal(tl.areCorrelated(HUGE, `run_${HUGE}`), false);
  assert.equal(registry.get(HUGE), null);
  // A thread id in a snapshot may be long: it is data, and kept whole.
  const out = tracker.takeSnapshot({ operation: 'op', userContextThreadId: HUGE, managerThreadId: 'thread_a' });
  assert.equal(out.mismatch, true);
});

test('numbers where counts and ids belong are checked', () => {
  throwsKind(() => ids.batchIds('evt', -1), 'argument');
  throwsKind(() => ids.batchIds('evt', 1.5), 'argument');
  throwsKind(() => ids.batchIds('evt', '3'), 'argument');
  throwsKind(() => ids.batchIds('evt', 100_001), 'id.batch_count');
  throwsKind(() => ids.baseId('x', { randomLength: 0 }), 'id.random_length');
  throwsKind(() => ids.baseId('x', { randomLength: 2 ** 60 }), 'argument');
  throwsKind(() => ids.websocketClientId('u1', 'now'), 'argument');
  throwsKind(() => ids.websocketClientId('u1', -5), 'id.timestamp');
  throwsKind(() => ids.websocketClientId('u1', Infinity), 'id.timestamp');
  throwsKind(() => new IdGenerator({ seed: -1 }), 'argument');
  throwsKind(() => new Tracker({ capacity: 2.5 }), 'argument');
  throwsKind(() => new Tracker({ capacity: 'ten' }), 'argument');
  throwsKind(() => registry.manager('x'), 'argument');
  throwsKind(() => registry.isActive(-1), 'argument');
  throwsKind(() => tracker.snapshotRange(NaN, 1), 'argument');
  throwsKind(() => tl.isValidId('x_1_2', null, -1), 'argument');
});

test('options must be plain objects with known keys', () => {
  for (const bad of [42, 'x', [], () => {}]) {
    throwsKind(() => new Tracker(bad), 'argument');
    throwsKind(() => new IdGenerator(bad), 'argument');
    throwsKind(() => new Registry(bad), 'argument');
    throwsKind(() => tracker.takeSnapshot(bad), 'argument');
    throwsKind(() => tracker.filterPositions(bad), 'argument');
  }
  throwsKind(() => new SessionStore({ testmode: true }), 'argument', /no option "testmode"/);
  throwsKind(() => tracker.takeSnapshot({ operation: 'op', metadata: { big: 10n } }), 'argument');
  const cyclic = {};
  cyclic.self = cyclic;
  throwsKind(() => tracker.takeSnapshot({ operation: 'op', metadata: cyclic }), 'argument');
  throwsKind(() => tl.compareAnalyses({ total_snapshots: 'many' }, {}), 'argument');
});

test('lone surrogates are refused, not merged into U+FFFD', () => {
  for (const s of ['user\ud800', 'user\udc00', '\ud800', 'a\udfffb']) {
    throwsKind(() => tl.parseId(s), 'argument', /lone UTF-16 surrogate/);
    throwsKind(() => new IsolationKey(s, 'thread_a'), 'argument');
    throwsKind(() => new IsolationKey('u1', s), 'argument');
    throwsKind(() => ids.userContextIds(s, 'op'), 'argument');
    throwsKind(() => tracker.takeSnapshot({ operation: 'op', userContextThreadId: s }), 'argument');
    throwsKind(() => tracker.takeSnapshot({ operation: 'op', metadata: { note: s } }), 'argument');
    throwsKind(() => new ThreadGuard({ userId: s }), 'argument');
  }
  // Paired surrogates are ordinary text.
  assert.equal(new IsolationKey('u1', 'thread_\ud83d\ude00').threadId, 'thread_\ud83d\ude00');
  // A guard never adopts or matches such a thread id, and never throws on it.
  const g = new ThreadGuard({ userId: 'u1', threadId: 'thread_\ufffd' });
  const r = g.incoming({ thread_id: 'thread_\ud800' });
  assert.equal(r.ok, false);
  assert.equal(r.got, 'thread_\ud800');
});

test('after all of that the module still works', () => {
  const t = new Tracker();
  t.takeSnapshot({ operation: 'op', userContextThreadId: 'thread_a', isolationKey: 'u1:thread_a' });
  assert.equal(t.analyze().consistency_score, 100);
  assert.match(ids.userContextIds('u1', 'op').thread_id, /^thread_op_/);
});
