// The Tracker API the replay page depends on.
import test from 'node:test';
import assert from 'node:assert/strict';
import { tl, manualClock, throwsKind } from './helpers.mjs';

const { Tracker, compareAnalyses } = tl;
const T = 'thread_websocket_factory_1234567890_abc_def123';
const LEGACY = 'user123_thread_websocket_factory_1234567890_abc_def123_run456';

/** The seed's sample report: three snapshots, the third one mismatched. */
function seedTracker() {
  const clock = manualClock(1_641_234_565_000);
  const tr = new Tracker({ clock });
  clock.set(1_641_234_567_123);
  tr.takeSnapshot({ operation: 'user_context_creation', userId: 'user123', userContextThreadId: T });
  clock.set(1_641_234_567_456);
  tr.takeSnapshot({
    operation: 'manager_creation',
    userId: 'user123',
    userContextThreadId: T,
    managerThreadId: T,
    isolationKey: LEGACY,
  });
  clock.set(1_641_234_567_789);
  const out = tr.takeSnapshot({
    operation: 'inconsistent_context_creation',
    userId: 'user123',
    userContextThreadId: 'different-thread-abcd1234',
    managerThreadId: T,
    isolationKey: LEGACY,
  });
  clock.set(1_641_234_567_450);
  return { tr, clock, out };
}

test('takeSnapshot reports index, mismatch and the violations it recorded', () => {
  const { tr, out } = seedTracker();
  assert.deepEqual(out, { index: 2, mismatch: true, violations: [0] });
  assert.equal(tr.retainedCount, 3);
  assert.equal(tr.totalSnapshots, 3);
  assert.equal(tr.totalViolations, 1);
});

test('the legacy isolation key yields the whole thread id', () => {
  const { tr } = seedTracker();
  const [s] = tr.snapshotRange(1, 2);
  assert.equal(s.thread_id_isolation_key, T);
  assert.equal(s.isolation_key, LEGACY);
  assert.equal(s.mismatch, false);
});

test('reportText prints the seed layout with a fixed clock', () => {
  const { tr } = seedTracker();
  const text = tr.reportText();
  assert.ok(text.startsWith('=== THREAD_ID CONSISTENCY TRACKING REPORT ===\nTracking Duration: 2.45s\n'));
  assert.match(text, /\[2\] inconsistent_context_creation @ 1641234567\.789s/);
  assert.match(text, /⚠️ {2}MISMATCH DETECTED/);
  assert.match(text, /Consistency Score: 66\.7%/);
  assert.ok(text.endsWith(`Thread IDs Found: ['${T}', 'different-thread-abcd1234']`));
});

test('analyze returns the core analysis with snake_case fields', () => {
  const { tr } = seedTracker();
  const a = tr.analyze();
  assert.equal(a.total_snapshots, 3);
  assert.equal(a.inconsistent_snapshots, 1);
  assert.equal(a.unique_thread_ids_found, 2);
  assert.deepEqual(a.thread_ids, [T, 'different-thread-abcd1234']);
  assert.deepEqual(a.operation_violations, { inconsistent_context_creation: 1 });
  assert.equal(a.consistency_score.toFixed(1), '66.7');
  assert.equal(a.first_divergence, 2);
  assert.equal(a.last_consistent_before_divergence, 1);
  assert.deepEqual(a.users_with_multiple_thread_ids, ['user123']);
  assert.deepEqual(a.thread_ids_by_user, { user123: [T, 'different-thread-abcd1234'] });
});

test('toJSON and fromJSON round-trip to the same report', () => {
  const { tr } = seedTracker();
  tr.recordViolation('custom', 'WARNING', { operation: 'op', details: { attempt: 3 } });
  const json = tr.toJSON();
  const doc = JSON.parse(json);
  assert.equal(doc.schema, 'threadline.report/1');
  const back = Tracker.fromJSON(json);
  assert.equal(back.toJSON(), json);
  assert.equal(back.reportText(), tr.reportText());
  assert.match(back.reportText(), /Details: \{'attempt': 3\}/);
  back.free();
  tr.free();
});

test('fromJSON enforces limits and reports bad input as typed errors', () => {
  const { tr } = seedTracker();
  const json = tr.toJSON();
  throwsKind(() => Tracker.fromJSON(json, { maxBytes: 10 }), 'report.too_large');
  throwsKind(() => Tracker.fromJSON('['.repeat(100), { maxDepth: 64 }), 'report.too_deep');
  throwsKind(() => Tracker.fromJSON(json.slice(0, json.length / 2)), 'report.json');
  throwsKind(() => Tracker.fromJSON('{"schema":"x/2"}'), 'report.schema');
  throwsKind(() => Tracker.fromJSON(undefined), 'argument');
  throwsKind(() => Tracker.fromJSON(json, { maxbytes: 10 }), 'argument', /no option/);
});

test('simulateCleanupLookup takes part in the mismatch check', () => {
  const tr = new Tracker({ clock: manualClock(0) });
  tr.takeSnapshot({
    operation: 'manager_creation',
    userId: 'u1',
    userContextThreadId: 'thread_a',
    managerThreadId: 'thread_a',
    isolationKey: 'u1:thread_a',
  });
  assert.equal(tr.simulateCleanupLookup('thread_a').mismatch, false);
  const bad = tr.simulateCleanupLookup('thread_b', { userId: 'u1', metadata: { why: 'test' } });
  assert.equal(bad.mismatch, true);
  const [s] = tr.snapshotRange(2, 3);
  assert.equal(s.operation, 'cleanup_lookup');
  assert.equal(s.thread_id_cleanup_lookup, 'thread_b');
  assert.equal(s.thread_id_isolation_key, 'thread_a');
  assert.deepEqual(s.metadata, { why: 'test' });
});

test('snapshotRange clamps; filterPositions returns a Uint32Array', () => {
  const { tr } = seedTracker();
  assert.equal(tr.snapshotRange(-5, 100).length, 3);
  assert.equal(tr.snapshotRange(2, 1).length, 0);
  assert.deepEqual(tr.snapshotRange(1, 2).map((s) => s.index), [1]);
  const pos = tr.filterPositions({ mismatches_only: true });
  assert.ok(pos instanceof Uint32Array);
  assert.deepEqual([...pos], [2]);
  assert.deepEqual([...tr.filterPositions({ thread_id: 'different' })], [2]);
  assert.deepEqual([...tr.filterPositions({ user_id: 'user123', operation: 'manager_creation' })], [1]);
  assert.deepEqual([...tr.filterPositions({})], [0, 1, 2]);
  throwsKind(() => tr.filterPositions({ userId: 'x' }), 'argument');
});

test('violationList carries the thread id summary', () => {
  const { tr } = seedTracker();
  const [v] = tr.violationList();
  assert.equal(v.type, 'thread_id_mismatch');
  assert.equal(v.severity, 'CRITICAL');
  assert.equal(v.snapshot_index, 2);
  assert.deepEqual(v.thread_id_summary, {
    user_context: 'different-thread-abcd1234',
    manager_context: T,
    isolation_key: T,
    cleanup_lookup: null,
  });
});

test('a bounded tracker keeps the last snapshots and exact counts', () => {
  const tr = new Tracker({ capacity: 2, clock: manualClock(0) });
  for (let i = 0; i < 5; i++) {
    tr.takeSnapshot({
      operation: 'op',
      userContextThreadId: 'thread_a',
      managerThreadId: i === 3 ? 'thread_b' : 'thread_a',
    });
  }
  assert.equal(tr.capacity, 2);
  assert.equal(tr.retainedCount, 2);
  assert.equal(tr.totalSnapshots, 5);
  assert.deepEqual(tr.snapshotRange(0, 2).map((s) => s.index), [3, 4]);
  assert.equal(tr.analyze().inconsistent_snapshots, 1);
  throwsKind(() => new Tracker({ capacity: 0 }), 'report.capacity');
});

test('a bounded tracker read back from its report judges lookups as the original', () => {
  // u1's manager snapshot is dropped (capacity 2), and the report carries it: a lookup of
  // u1 by the wrong thread is compared with it before and after the round trip.
  const tr = new Tracker({ capacity: 2, clock: manualClock(0) });
  const manager = (userId, thread, managerInstanceId) => ({
    operation: 'manager_creation', userId, managerThreadId: thread, managerInstanceId,
    isolationKey: `${userId}:${thread}`,
  });
  tr.takeSnapshot(manager('u1', 'thread_a', 7));
  tr.takeSnapshot(manager('u2', 'thread_b', 8));
  tr.takeSnapshot(manager('u2', 'thread_b', 8));
  const j = tr.toJSON();
  assert.deepEqual(JSON.parse(j).lookup_snapshots.map((s) => [s.index, s.isolation_key]), [[0, 'u1:thread_a']]);
  const back = Tracker.fromJSON(j);
  assert.equal(back.toJSON(), j);
  for (const t of [tr, back]) {
    const out = t.simulateCleanupLookup('thread_z', { userId: 'u1' });
    assert.equal(out.mismatch, true);
    const [s] = t.snapshotRange(1, 2);
    assert.equal(s.index, 3);
    assert.deepEqual([s.thread_id_manager_context, s.thread_id_cleanup_lookup, s.manager_instance_id], ['thread_a', 'thread_z', 7]);
  }
});

test('compareAnalyses compares two analyses', () => {
  const { tr } = seedTracker();
  const fixed = new Tracker({ clock: manualClock(0) });
  const c = compareAnalyses(tr.analyze(), fixed.analyze());
  assert.equal(c.violations_delta, -1);
  assert.deepEqual(c.changed_operations, [{ operation: 'inconsistent_context_creation', before: 1, after: 0 }]);
  throwsKind(() => compareAnalyses({}, fixed.analyze()), 'argument');
  throwsKind(() => compareAnalyses(undefined, fixed.analyze()), 'argument');
});

// takeSnapshot reads plain ASCII input in one call (bindings/wasm/js/args.js) and
// anything else field by field; both must record the same fields.
test('takeSnapshot records every field as given, ASCII or not, given empty or absent', () => {
  const tr = new Tracker({ clock: () => 5 });
  const full = {
    operation: 'manager_creation',
    userId: 'user-1',
    userContextThreadId: 'thread_a',
    websocketClientId: 'ws_1',
    managerThreadId: 'thread_b',
    managerInstanceId: 7,
    isolationKey: 'user-1:thread_c',
    cleanupLookupThreadId: 'thread_d',
    metadata: { note: 'n', depth: { n: 1 } },
  };
  const inputs = [
    full,
    { operation: 'op' },
    { operation: 'op', userId: null, managerThreadId: undefined, managerInstanceId: null, metadata: null },
    { operation: 'op', userId: '', websocketClientId: '', managerThreadId: '' },
    { ...full, userId: 'usér-😀', websocketClientId: 'ws_2' },
    { ...full, operation: 'créer', userId: 'user-2' },
    { ...full, cleanupLookupThreadId: 'thread_😀' },
    { ...full, metadata: { note: 'é' } },
    { operation: 'op', managerInstanceId: 0 },
    { operation: 'op', managerInstanceId: -0 },
    { operation: 'op', managerInstanceId: Number.MAX_SAFE_INTEGER },
  ];
  for (const input of inputs) {
    tr.takeSnapshot(input);
    const [s] = tr.snapshotRange(tr.totalSnapshots - 1, tr.totalSnapshots);
    const given = (v) => (v === undefined ? null : v);
    const key = input.isolationKey;
    assert.deepEqual(
      {
        operation: s.operation,
        user_id: s.user_id,
        thread_id_user_context: s.thread_id_user_context,
        websocket_client_id: s.websocket_client_id,
        thread_id_manager_context: s.thread_id_manager_context,
        manager_instance_id: s.manager_instance_id,
        isolation_key: s.isolation_key,
        thread_id_isolation_key: s.thread_id_isolation_key,
        thread_id_cleanup_lookup: s.thread_id_cleanup_lookup,
        metadata: s.metadata,
      },
      {
        operation: input.operation,
        user_id: given(input.userId),
        thread_id_user_context: given(input.userContextThreadId),
        websocket_client_id: given(input.websocketClientId),
        thread_id_manager_context: given(input.managerThreadId),
        manager_instance_id: given(input.managerInstanceId === -0 ? 0 : input.managerInstanceId),
        isolation_key: given(key),
        thread_id_isolation_key: key ? key.slice(key.indexOf(':') + 1) : null,
        thread_id_cleanup_lookup: given(input.cleanupLookupThreadId),
        metadata: input.metadata ?? {},
      },
      JSON.stringify(input),
    );
  }
  assert.equal(tr.totalSnapshots, inputs.length);
});

test('takeSnapshot reads each field once, in order, and passes on a getter that throws', () => {
  const tr = new Tracker({ clock: () => 5 });
  const read = [];
  const target = { operation: 'op', userId: 'u', managerInstanceId: 2, metadata: { a: 1 } };
  const logged = new Proxy(target, {
    get(t, k, r) {
      read.push(k);
      return Reflect.get(t, k, r);
    },
  });
  tr.takeSnapshot(logged);
  assert.deepEqual(read, [
    'operation',
    'userId',
    'userContextThreadId',
    'websocketClientId',
    'managerThreadId',
    'managerInstanceId',
    'isolationKey',
    'cleanupLookupThreadId',
    'metadata',
  ]);
  const boom = new Error('boom');
  assert.throws(
    () =>
      tr.takeSnapshot({
        operation: 'op',
        get userId() {
          throw boom;
        },
      }),
    (e) => e === boom,
  );
  assert.equal(tr.totalSnapshots, 1);
  tr.takeSnapshot({ operation: 'after' });
  assert.equal(tr.totalSnapshots, 2);
});

test('takeSnapshot names the bad value in every refusal', () => {
  const tr = new Tracker();
  const refusals = [
    [undefined, 'takeSnapshot needs an object with at least an operation: got nothing'],
    ['op', 'snapshot must be an object: got the string "op"'],
    [['op'], 'snapshot must be an object: got an array'],
    [{ userId: 'u' }, 'snapshot.operation must be a string: got undefined'],
    [{ operation: 'op', userId: 5 }, 'snapshot.userId must be a string: got the number 5'],
    // A lone surrogate would reach the wasm as U+FFFD were it not refused.
    [
      { operation: 'op', isolationKey: 'u:\ud800' },
      'snapshot.isolationKey "u:\\ud800" contains a lone UTF-16 surrogate: expected well-formed text',
    ],
    [
      { operation: '\udc00op' },
      'snapshot.operation "\\udc00op" contains a lone UTF-16 surrogate: expected well-formed text',
    ],
    [
      { operation: 'op', userId: 'a😀', cleanupLookupThreadId: 't\ud83d' },
      'snapshot.cleanupLookupThreadId "t\\ud83d" contains a lone UTF-16 surrogate: expected well-formed text',
    ],
    [
      { operation: 'op', managerInstanceId: 1.5 },
      'snapshot.managerInstanceId must be a whole number from 0 to 2^53-1: got 1.5',
    ],
    [
      { operation: 'op', managerInstanceId: '1' },
      'snapshot.managerInstanceId must be a whole number: got the string "1"',
    ],
    [{ operation: 'op', metadata: [1] }, 'snapshot.metadata must be a plain object: got an array'],
    [{ operation: 'op', metadata: { n: 10n } }, 'snapshot.metadata is not plain JSON data'],
    [
      { operation: 'op', thread: 't' },
      'snapshot has no option "thread": expected one of operation, userId, userContextThreadId, ' +
        'websocketClientId, managerThreadId, managerInstanceId, isolationKey, cleanupLookupThreadId, metadata',
    ],
  ];
  for (const [input, message] of refusals) {
    assert.equal(throwsKind(() => tr.takeSnapshot(input), 'argument').message, message);
  }
  assert.equal(tr.totalSnapshots, 0);
});

test('takeSnapshot refuses bad input with typed errors', () => {
  const tr = new Tracker();
  throwsKind(() => tr.takeSnapshot(), 'argument');
  throwsKind(() => tr.takeSnapshot({}), 'argument', /operation must be a string/);
  throwsKind(() => tr.takeSnapshot({ operation: 42 }), 'argument');
  throwsKind(() => tr.takeSnapshot({ operation: '' }), 'report.empty');
  throwsKind(() => tr.takeSnapshot({ operation: 'x'.repeat(10_000_000) }), 'report.too_long');
  throwsKind(() => tr.takeSnapshot({ operation: 'op', managerInstanceId: -1 }), 'argument');
  throwsKind(() => tr.takeSnapshot({ operation: 'op', metadata: 'text' }), 'argument');
  throwsKind(() => tr.takeSnapshot({ operation: 'op', threadId: 't' }), 'argument', /no option/);
  throwsKind(() => tr.recordViolation(undefined, 'ERROR'), 'argument');
  throwsKind(() => tr.simulateCleanupLookup(5), 'argument');
  throwsKind(() => new Tracker({ clock: 5 }), 'argument');
  throwsKind(() => new Tracker({ clock: () => 'soon' }), 'argument');
  assert.equal(tr.totalSnapshots, 0);
});

test('Date.now is the default clock', () => {
  const before = Date.now();
  const tr = new Tracker();
  tr.takeSnapshot({ operation: 'op' });
  const [s] = tr.snapshotRange(0, 1);
  assert.ok(s.timestamp_ms >= before && s.timestamp_ms <= Date.now());
  assert.ok(tr.startedMs >= before);
});

test('fromJSONBytes reads a report from its UTF-8 bytes', () => {
  const { tr } = seedTracker();
  tr.recordViolation('custom', 'WARNING', { details: { note: 'café ✓' } });
  const json = tr.toJSON();
  const bytes = new TextEncoder().encode(json);
  const a = Tracker.fromJSONBytes(bytes);
  assert.equal(a.toJSON(), json);
  assert.equal(a.reportText(), tr.reportText());
  const b = Tracker.fromJSONBytes(bytes.buffer, { clock: () => 0 });
  assert.equal(b.reportText(), tr.reportText());
  throwsKind(() => Tracker.fromJSONBytes(bytes, { maxBytes: 100 }), 'report.too_large');
  throwsKind(() => Tracker.fromJSONBytes(new Uint8Array([0x7b, 0xff, 0x7d])), 'report.json', /not valid UTF-8/);
  throwsKind(() => Tracker.fromJSONBytes(bytes.subarray(0, 100)), 'report.json');
  throwsKind(() => Tracker.fromJSONBytes(json), 'argument', /Uint8Array/);
  throwsKind(() => Tracker.fromJSONBytes(undefined), 'argument');
});

test('analyze() is the report JSON analysis: fields, order, odd user ids and non-ASCII ids', () => {
  // analyze() assembles its lists from one text sliced by UTF-16 lengths
  // (bindings/wasm/js/analysis.js); the report JSON is serde's text of the same analysis.
  const clock = manualClock(1_700_000_000_000);
  const tr = new Tracker({ clock });
  const users = ['user123', '__proto__', 'constructor', '42', '7', 'ünïcødé', 'emoji👩‍💻', 'quote"back\\slash', ''];
  const threads = ['thread_a', 'thread_ü_1', 'thread_😀_2', 'thread_"q"', 'thread_tab\t', 'thread_a'];
  users.forEach((userId, i) => {
    clock.set(1_700_000_000_000 + i);
    const t1 = threads[i % threads.length];
    const t2 = threads[(i + 1) % threads.length];
    tr.takeSnapshot({ operation: 'manager_creation', userId: userId || null, userContextThreadId: t1, managerThreadId: t1 });
    // Every other user also meets a second thread id: users_with_multiple_thread_ids.
    if (i % 2 === 0) tr.takeSnapshot({ operation: `op_${i}`, userId: userId || null, userContextThreadId: t1, managerThreadId: t2 });
  });
  const a = tr.analyze();
  const fromReport = JSON.parse(tr.toJSON()).analysis;
  assert.deepStrictEqual(a, fromReport);
  assert.equal(JSON.stringify(a), JSON.stringify(fromReport), 'same field and key order');
  assert.equal(Object.getPrototypeOf(a.thread_ids_by_user), Object.prototype);
  assert.ok(Object.hasOwn(a.thread_ids_by_user, '__proto__'));
  assert.deepEqual(a.thread_ids_by_user.__proto__, ['thread_ü_1']);
  assert.deepEqual(a.thread_ids_by_user['emoji👩‍💻'], ['thread_a', 'thread_ü_1']);
  assert.deepEqual(a.thread_ids_by_user.constructor, ['thread_😀_2', 'thread_"q"']);
  // Integer-like keys come first in a JS object, as JSON.parse orders them too.
  assert.deepEqual(Object.keys(a.thread_ids_by_user).slice(0, 2), ['7', '42']);
  assert.deepEqual(a.thread_ids, ['thread_a', 'thread_ü_1', 'thread_😀_2', 'thread_"q"', 'thread_tab\t']);
  assert.deepEqual(a.users_with_multiple_thread_ids, ['user123', 'constructor', '7', 'emoji👩‍💻']);
  // An empty tracker: empty lists, not missing ones.
  const empty = new Tracker({ clock: () => 5 }).analyze();
  assert.deepEqual([empty.thread_ids, empty.thread_ids_by_user, empty.users_with_multiple_thread_ids], [[], {}, []]);
});

test('analyze() after analyze(): new thread ids and users, and results that do not share arrays', () => {
  // Each tracker keeps the strings of its earlier analyses and is sent only new ones.
  const clock = manualClock(1_700_000_000_000);
  const tr = new Tracker({ clock });
  const take = (userId, t1, t2 = t1) =>
    tr.takeSnapshot({ operation: 'op', userId, userContextThreadId: t1, managerThreadId: t2 });
  const same = () => {
    const a = tr.analyze();
    assert.equal(JSON.stringify(a), JSON.stringify(JSON.parse(tr.toJSON()).analysis));
    return a;
  };
  const empty = same();
  assert.deepEqual(empty.thread_ids, []);
  take('u1', 'thread_1');
  const first = same();
  first.thread_ids.push('mutated');
  first.thread_ids_by_user.u1.push('mutated');
  first.users_with_multiple_thread_ids.push('mutated');
  take('u1', 'thread_1', 'thread_2'); // an old user meets a new thread
  take('u2', 'thread_2'); // a new user, an old thread
  take('ü', 'thread_é'); // non-ASCII, after ASCII sent earlier
  const second = same();
  assert.deepEqual(second.thread_ids, ['thread_1', 'thread_2', 'thread_é']);
  assert.deepEqual(second.thread_ids_by_user, { u1: ['thread_1', 'thread_2'], u2: ['thread_2'], ü: ['thread_é'] });
  assert.deepEqual(second.users_with_multiple_thread_ids, ['u1']);
  const third = same(); // nothing new
  assert.deepEqual(third, second);
  assert.notEqual(third.thread_ids, second.thread_ids);
  assert.notEqual(third.thread_ids_by_user.u1, second.thread_ids_by_user.u1);
  // A tracker read back from its report, then fed: the same answers.
  const back = Tracker.fromJSON(tr.toJSON(), { clock });
  assert.deepEqual(back.analyze(), third);
});
