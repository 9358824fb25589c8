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
  // Beside a real U+FFFD too: the wasm asks JS to look only at text that converted to
  // one (a lone surrogate always does), so both kinds of U+FFFD must be told apart.
  throwsKind(() => new IsolationKey('u1', 'thread_\ufffd\ud800'), 'argument', /lone UTF-16 surrogate/);
  throwsKind(() => new IsolationKey('u1', '\udbff\ufffd'), 'argument', /lone UTF-16 surrogate/);
  assert.equal(new IsolationKey('u1', 'thread_\ufffd').threadId, 'thread_\ufffd');
  assert.equal(tl.parseId('req_\ufffd_1_2').prefix, 'req_\ufffd');
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

// wasm32's usize is 32 bits: a size past it is refused (or the core's range refuses it),
// never wrapped, and every message quotes the number as JS prints it.
test('sizes of 2^32 and more are refused, not wrapped', () => {
  throwsKind(() => new Tracker({ capacity: 2 ** 32 + 5 }), 'argument', /^Tracker options\.capacity must be a whole number from 0 to 2\^32-1: got 4294967301$/);
  throwsKind(() => new Tracker({ capacity: 2 ** 32 }), 'argument', /got 4294967296$/);
  assert.equal(new Tracker({ capacity: 2 ** 32 - 1 }).capacity, 2 ** 32 - 1);
  throwsKind(() => new ThreadGuard({ userId: 'u1', capacity: 2 ** 32 + 2 }), 'argument', /^ThreadGuard options\.capacity must be a whole number from 0 to 2\^32-1: got 4294967298$/);
});

test('numbers past 32 bits are quoted as given in the core messages', () => {
  const big = 2 ** 53 - 1;
  throwsKind(() => ids.baseId('p', { randomLength: big }), 'id.random_length', /^random_length 9007199254740991 is out of range: expected 1 to 64 hex characters$/);
  throwsKind(() => ids.baseId('p', { randomLength: 2 ** 32 - 1 }), 'id.random_length', /^random_length 4294967295 is out/);
  throwsKind(() => ids.batchIds('p', big), 'id.batch_count', /^batch count 9007199254740991 is out of range: expected 0 to 100000$/);
  throwsKind(() => new Registry({ maxManagersPerUser: big }), 'registry.config', /^registry setting max_managers_per_user = 9007199254740991 is invalid: expected 1 to 1000000$/);
});

test('a bad connection timestamp is quoted as JS prints it', () => {
  for (const [ts, text] of [[-1, '-1'], [Infinity, 'Infinity'], [-Infinity, '-Infinity'], [NaN, 'NaN'], [1.5e300, '1.5e+300'], [253402300800, '253402300800']]) {
    for (const call of [() => ids.websocketClientId('u', ts), () => ids.websocketConnectionId('u', ts)]) {
      const e = throwsKind(call, 'id.timestamp');
      assert.equal(e.message, `connection timestamp ${text} is invalid: expected finite Unix seconds from 0 to 253402300799`);
    }
  }
  assert.match(ids.websocketClientId('u', 253402300799), /^ws_client_u_253402300799000_/);
});

test('snapshotRange refuses what is not a number, saying what it was', () => {
  const tr = new Tracker();
  throwsKind(() => tr.snapshotRange(), 'argument', /^start must be a number: got undefined$/);
  throwsKind(() => tr.snapshotRange(undefined, 2), 'argument', /^start must be a number: got undefined$/);
  throwsKind(() => tr.snapshotRange('0', 2), 'argument', /^start must be a number: got the string "0"$/);
  throwsKind(() => tr.snapshotRange(0, null), 'argument', /^end must be a number: got null$/);
  throwsKind(() => tr.snapshotRange(NaN, 1), 'argument', /^start must be a number: got the number NaN$/);
  assert.deepEqual(tr.snapshotRange(0, Infinity), []);
});

test('an argument that must be an instance of a class: the message says what was passed', () => {
  const r = new Registry();
  const expected = (cls, got) => new RegExp(`^expected an instance of ${cls}: got ${got}$`);
  throwsKind(() => r.create({}), 'argument', expected('UserContext', 'an object'));
  throwsKind(() => r.create(undefined), 'argument', expected('UserContext', 'undefined'));
  throwsKind(() => r.create('ctx'), 'argument', expected('UserContext', 'the string "ctx"'));
  throwsKind(() => r.create(new Tracker()), 'argument', expected('UserContext', 'an instance of Tracker'));
  throwsKind(() => r.drainEventsInto([]), 'argument', expected('Tracker', 'an array'));
  throwsKind(() => SessionStore.withIds({}), 'argument', expected('IdGenerator', 'an object'));
  throwsKind(() => SessionStore.withIds(7), 'argument', expected('IdGenerator', 'the number 7'));
});

test('a lone surrogate is quoted in the message, escaped as JSON writes it', () => {
  throwsKind(() => tl.parseId('\ud800x'), 'argument', /^id "\\ud800x" contains a lone UTF-16 surrogate: expected well-formed text$/);
  throwsKind(() => new ThreadGuard({ userId: 'a\udc00' }), 'argument', /^ThreadGuard options\.userId "a\\udc00" contains a lone UTF-16 surrogate/);
  const long = throwsKind(() => tl.parseId(`\ud800${'x'.repeat(100)}`), 'argument');
  assert.equal(long.message, `id "\\ud800${'x'.repeat(63)}"… (101 UTF-16 units) contains a lone UTF-16 surrogate: expected well-formed text`);
});
