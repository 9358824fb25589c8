// IdGenerator, UserContext, SessionStore, IsolationKey, Registry and the free functions.
import test from 'node:test';
import assert from 'node:assert/strict';
import { tl, manualClock, throwsKind } from './helpers.mjs';

const { IdGenerator, UserContext, SessionStore, IsolationKey, Registry, Tracker } = tl;
const T0 = 1_764_000_000_000;
const H8 = '[0-9a-f]{8}';

test('an OS-seeded generator mints every Netra format on Date.now()', () => {
  const ids = new IdGenerator();
  const before = Date.now();
  const c = ids.userContextIds('user123', 'websocket_factory');
  assert.match(c.thread_id, new RegExp(`^thread_websocket_factory_1_${H8}$`));
  assert.equal(c.run_id, `run_${c.thread_id.slice('thread_'.length)}`);
  assert.match(c.request_id, new RegExp(`^req_websocket_factory_2_${H8}$`));
  assert.equal(tl.areCorrelated(c.thread_id, c.run_id), true);
  assert.match(ids.userContextIds('u1').thread_id, /^thread_context_2_/, 'operation defaults to "context"');
  const base = ids.baseId();
  const p = tl.parseId(base);
  assert.equal(p.prefix, 'id');
  assert.ok(p.timestamp_ms >= before && p.timestamp_ms <= Date.now());
  assert.match(p.random, new RegExp(`^${H8}$`));
  assert.match(ids.baseId('req', { includeRandom: false }), /^req_\d{13}_\d+$/);
  assert.match(ids.baseId('x', { randomLength: 3 }), /^x_\d{13}_\d+_[0-9a-f]{3}$/);
  assert.match(ids.simpleId('conn'), new RegExp(`^conn_${H8}$`));
  assert.match(ids.sessionId('alice_long_name'), /^session_web_alice_lo_\d{13}_\d+_/);
  assert.match(ids.agentExecutionId('triage', 'bob'), /^agent_triage_bob_/);
  assert.match(ids.messageId('chat', 'bob', 'thread_ws_7_abcdef1234'), /^msg_chat_bob_abcdef12_\d{13}_/);
  assert.match(ids.websocketConnectionId('bob', 1_700_000_000.5), /^ws_conn_bob_1700000000500_\d+_/);
  assert.equal(ids.batchIds('evt', 4).length, 4);
  assert.match(ids.managerRunId('different-thread-abcd1234'), new RegExp(`^run_different-thread-abcd1234_\\d{1,5}_${H8}$`));
  assert.match(ids.uuidV4(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(ids.isValidId(base, 'id'), true);
  assert.equal(ids.isValidId(base, 'msg'), false);
  assert.ok(ids.counter >= 13);
  ids.resetCounter();
  assert.equal(ids.counter, 0);
  // Two OS-seeded generators do not repeat each other.
  assert.notEqual(new IdGenerator().simpleId('x'), new IdGenerator().simpleId('x'));
  assert.ok(IdGenerator.shared() instanceof IdGenerator);
});

test('a clock going backwards keeps ids increasing and is counted', () => {
  const clock = manualClock(T0);
  const ids = new IdGenerator({ seed: 1, clock });
  const a = ids.baseId('x', { includeRandom: false });
  clock.advance(-5000);
  const b = ids.baseId('x', { includeRandom: false });
  assert.equal(a, `x_${T0}_1`);
  assert.equal(b, `x_${T0}_2`);
  assert.equal(ids.clockRegressions, 1);
});

test('the clock is called only for ids that hold a time', () => {
  let calls = 0;
  const ids = new IdGenerator({
    seed: 1,
    clock: () => {
      calls += 1;
      return T0;
    },
  });
  const c = ids.userContextIds('user-1', 'websocket_factory');
  assert.match(c.thread_id, /^thread_websocket_factory_1_[0-9a-f]{8}$/);
  assert.equal(calls, 0);
  assert.equal(ids.baseId('x', { includeRandom: false }), `x_${T0}_2`);
  assert.equal(calls, 1);
});

test('free functions: parse, readings, correlation, validity', () => {
  assert.deepEqual(tl.parseId('session_web_user1234_1700000000000_42_deadbeef'), {
    prefix: 'session_web_user1234',
    timestamp_ms: 1_700_000_000_000,
    counter: 42,
    random: 'deadbeef',
    full_id: 'session_web_user1234_1700000000000_42_deadbeef',
  });
  assert.deepEqual(tl.runReadings('run_thread_consistency_test_5_abcd1234'), [
    { thread_id: 'thread_thread_consistency_test_5_abcd1234', format: 'generator' },
    { thread_id: 'thread_consistency_test', format: 'manager' },
  ]);
  assert.equal(tl.threadIdForRun('run_thread_consistency_test_5_abcd1234'), 'thread_thread_consistency_test_5_abcd1234');
  assert.equal(tl.threadIdForRun('nope'), null);
  assert.equal(tl.areCorrelated('thread_consistency', 'run_thread_consistency_test_5_abcd1234'), false);
  assert.equal(tl.correlation('thread_consistency_test', 'run_thread_consistency_test_5_abcd1234'), 'manager');
  assert.equal(tl.correlation('x', 'y'), null);
  assert.equal(tl.isValidId(`req_${Date.now()}_1_abcdef12`), true);
  assert.equal(tl.isValidId('req_1000000000000_1_abcdef12'), false, 'older than a year');
  assert.equal(tl.idAgeMs(`req_${T0}_1_abcdef12`, T0 + 250), 250);
  assert.equal(typeof tl.version(), 'string');
});

test('UserContext validates like Netra and exposes its ids', () => {
  const c = new UserContext({
    userId: 'user123',
    threadId: 'thread_ws_1_abcdef12',
    runId: 'run_ws_1_abcdef12',
    agentContext: { agent: 'triage' },
    operationDepth: 2,
  });
  assert.equal(c.userId, 'user123');
  assert.equal(c.threadId, 'thread_ws_1_abcdef12');
  assert.equal(c.runId, 'run_ws_1_abcdef12');
  assert.match(c.requestId, /^[0-9a-f-]{36}$/, 'a UUID v4 when none is given');
  assert.equal(c.websocketClientId, null);
  assert.equal(c.parentRequestId, null);
  assert.equal(c.operationDepth, 2);
  assert.deepEqual(c.agentContext, { agent: 'triage' });
  assert.deepEqual(c.auditMetadata, {});
  assert.equal(c.isolationKey, 'user123:thread_ws_1_abcdef12');
  const j = JSON.parse(JSON.stringify(c));
  assert.equal(j.thread_id, 'thread_ws_1_abcdef12');
  assert.equal(j.websocket_client_id, null);
  assert.equal(j.operation_depth, 2);

  const w = UserContext.fromWebsocketRequest('user123', { operation: 'websocket_factory' });
  assert.equal(tl.areCorrelated(w.threadId, w.runId), true);
  assert.match(w.requestId, /^req_websocket_factory_/);
  assert.match(w.websocketClientId, /^ws_client_user123_/);
  assert.match(UserContext.fromWebsocketRequest('u1').threadId, /^thread_websocket_session_/);

  const ids = { userId: 'u1', threadId: 'thread_x', runId: 'run_x' };
  throwsKind(() => new UserContext({ ...ids, userId: 'NULL' }), 'context.placeholder');
  throwsKind(() => new UserContext({ ...ids, runId: '' }), 'context.empty');
  throwsKind(() => new UserContext({ ...ids, userId: 'mock_user' }), 'context.placeholder_prefix');
  throwsKind(() => new UserContext({ ...ids, userId: 'test_user' }), 'context.placeholder_prefix');
  assert.equal(new UserContext({ ...ids, userId: 'test_user', testMode: true }).userId, 'test_user');
  throwsKind(() => new UserContext({ ...ids, threadId: 'x'.repeat(1025) }), 'context.too_long', /1025 bytes/);
  throwsKind(() => new UserContext({ ...ids, operationDepth: 10_001 }), 'context.depth');
  throwsKind(() => new UserContext({ ...ids, agentContext: [1] }), 'argument');
  throwsKind(() => new UserContext({ userId: 'u1' }), 'argument', /threadId must be a string/);
  throwsKind(() => new UserContext(), 'argument');
  throwsKind(() => UserContext.fromWebsocketRequest('a:b'), 'context.colon_in_user_id');
});

test('SessionStore hands out the same thread every call and a new request id', () => {
  const clock = manualClock(T0);
  const ids = new IdGenerator({ seed: 9, clock });
  const s = SessionStore.withIds(ids);
  const a = s.getOrCreate('u1');
  clock.advance(10);
  const b = s.getOrCreate('u1');
  assert.equal(a.created, true);
  assert.equal(b.created, false);
  assert.equal(a.thread_id, b.thread_id);
  assert.equal(a.run_id, b.run_id);
  assert.notEqual(a.request_id, b.request_id);
  assert.equal(tl.areCorrelated(a.thread_id, a.run_id), true);
  const c = s.getOrCreate('u1', { runId: 'run_other_1_abcdef12' });
  assert.equal(c.thread_id, a.thread_id);
  assert.equal(c.run_id, 'run_other_1_abcdef12');
  const given = s.getOrCreate('u1', { threadId: 'thread_chat_9_abcdef12' });
  assert.equal(given.thread_id, 'thread_chat_9_abcdef12');
  assert.equal(tl.areCorrelated(given.thread_id, given.run_id), true);
  const ex = s.getExisting('u1', 'thread_chat_9_abcdef12');
  assert.equal(ex.thread_id, 'thread_chat_9_abcdef12');
  assert.equal(ex.accesses, 1);
  assert.equal(s.getExisting('u2'), null);
  assert.equal(s.activeCount, 2);
  assert.equal(s.userCount('u1'), 2);
  const ctx = s.context('u1', { websocketClientId: 'ws_client_u1_x' });
  assert.equal(ctx.threadId, a.thread_id);
  assert.equal(ctx.websocketClientId, 'ws_client_u1_x');
  clock.advance(25 * 3600 * 1000);
  assert.equal(s.cleanupExpired(), 2);
  assert.equal(s.activeCount, 0);
  s.getOrCreate('u3');
  assert.equal(s.invalidateUser('u3'), 1);
  throwsKind(() => s.getOrCreate('a:b'), 'context.colon_in_user_id');
  throwsKind(() => s.getOrCreate('u1', { operation: 'bad op' }), 'id.invalid_part');
  throwsKind(() => s.getOrCreate('u1', { thread: 'x' }), 'argument', /no option/);
  throwsKind(() => s.cleanupExpired(-1), 'argument');
  assert.equal(new SessionStore().getOrCreate('u9').created, true);
});

test('IsolationKey parses both forms and keeps the whole thread id', () => {
  const k = IsolationKey.parse('user123_thread_websocket_factory_1234567890_abc_def123_run456');
  assert.equal(k.userId, 'user123');
  assert.equal(k.threadId, 'thread_websocket_factory_1234567890_abc_def123');
  assert.equal(k.form, 'legacy');
  assert.equal(k.runToken, 'run456');
  assert.equal(k.canonical(), 'user123:thread_websocket_factory_1234567890_abc_def123');
  assert.equal(String(k), 'user123_thread_websocket_factory_1234567890_abc_def123_run456');
  const c = new IsolationKey('u', 'a:b');
  assert.equal(c.toString(), 'u:a:b');
  assert.equal(c.runToken, null);
  assert.deepEqual(JSON.parse(JSON.stringify(c)), {
    user_id: 'u',
    thread_id: 'a:b',
    form: 'canonical',
    run_token: null,
    canonical: 'u:a:b',
  });
  throwsKind(() => IsolationKey.parse('plain'), 'key.unparsable');
  throwsKind(() => IsolationKey.parse('x'.repeat(10_000_000)), 'key.too_long');
  throwsKind(() => new IsolationKey('a:b', 't'), 'context.colon_in_user_id');
});

test('Registry: limit, reuse, isolation, events into a tracker', () => {
  const clock = manualClock(T0);
  const r = new Registry({ maxManagersPerUser: 3, clock });
  const ctx = (t) =>
    new UserContext({ userId: 'u1', threadId: t, runId: `run_${t}`, requestId: 'req_x_1_abcdef12' });
  const a = r.create(ctx('thread_a'));
  assert.deepEqual(a, { id: a.id, reused: false, stale_cleaned: 0 });
  assert.equal(r.create(ctx('thread_a')).reused, true);
  r.create(ctx('thread_b'));
  r.create(ctx('thread_c'));
  throwsKind(() => r.create(ctx('thread_d')), 'registry.limit_exceeded', /maximum number of WebSocket managers \(3\)/);
  assert.deepEqual(r.keys(), ['u1:thread_a', 'u1:thread_b', 'u1:thread_c']);
  assert.deepEqual(r.userCounts(), { u1: 3 });
  r.addConnection('u1:thread_a', { connectionId: 'c1', userId: 'u1' });
  throwsKind(() => r.addConnection('u1:thread_a', { connectionId: 'c2', userId: 'u2' }), 'registry.isolation_violation');
  throwsKind(() => r.sendToUser('u1:thread_a', 'u2'), 'registry.isolation_violation');
  assert.deepEqual(r.sendToUser('u1:thread_a', 'u1'), ['c1']);
  throwsKind(() => r.touch('nobody:x'), 'registry.unknown_manager');
  const m = r.get('u1:thread_a');
  assert.equal(m.thread_id, 'thread_a');
  assert.equal(m.active, true);
  assert.equal(m.messages_routed, 1);
  assert.equal(m.connections[0].connection_id, 'c1');
  // A manager-format run id of thread_a finds it; a run of an unknown thread does not.
  assert.equal(r.findByRun('u1', 'run_thread_a_1_abcdef12').key, 'u1:thread_a');
  assert.equal(r.findByRun('u1', 'run_thread_z_1_abcdef12'), null);
  assert.equal(r.findByThread('u1', 'thread_b').key, 'u1:thread_b');
  assert.equal(r.deactivate('u1:thread_a'), 1);
  assert.equal(r.isActive(a.id), false);
  // Eleven seconds on, every unconnected manager is stale: room again.
  clock.advance(11_000);
  const d = r.create(ctx('thread_d'));
  assert.ok(d.stale_cleaned >= 1);
  assert.equal(r.enforceLimits('u1'), true);
  const tracker = new Tracker({ clock });
  const events = r.drainEventsInto(tracker);
  assert.deepEqual(
    [...new Set(events.map((e) => e.kind))].sort(),
    ['cleaned_up', 'connection_added', 'created', 'deactivated', 'limit_exceeded', 'reused'],
  );
  assert.equal(events[0].user_id, 'u1');
  const an = tracker.analyze();
  assert.equal(an.managers_created, 4);
  assert.deepEqual(an.operation_violations, { create_manager: 1 });
  assert.equal(r.drainEvents().length, 0);
  const held = r.userCount('u1');
  assert.ok(held >= 1);
  assert.equal(r.forceCleanupUser('u1'), held, 'fresh managers too');
  assert.equal(r.size, 0);
  assert.equal(r.shutdown(), 0);
  throwsKind(() => new Registry({ maxManagersPerUser: 0 }), 'registry.config');
  throwsKind(() => new Registry({ proactiveCleanupPercent: 101 }), 'registry.config');
  throwsKind(() => new Registry({ proactiveCleanupPercent: 1000 }), 'argument');
  throwsKind(() => new Registry({ maxManagers: 5 }), 'argument', /no option/);
  throwsKind(() => r.create({ user_id: 'u1' }), 'argument', /instance of UserContext/);
  throwsKind(() => r.drainEventsInto({}), 'argument', /instance of Tracker/);
});

test('Registry.userCounts keeps a user named "__proto__" as an own property', () => {
  const r = new Registry({ clock: () => 1000 });
  for (const userId of ['__proto__', 'constructor', 'u1']) {
    r.create(new UserContext({ userId, threadId: 'thread_a', runId: 'run_a' }));
  }
  const counts = r.userCounts();
  assert.ok(Object.hasOwn(counts, '__proto__'));
  assert.equal(Object.getPrototypeOf(counts), Object.prototype);
  assert.deepEqual(Object.entries(counts), [['__proto__', 1], ['constructor', 1], ['u1', 1]]);
  assert.deepEqual(counts, JSON.parse('{"__proto__":1,"constructor":1,"u1":1}'));
});

test('parseId and parseContextId refuse numbers a JS number would round', () => {
  const max = '9007199254740991'; // 2^53-1: still exact
  assert.equal(tl.parseId(`x_${max}_${max}`).counter, Number.MAX_SAFE_INTEGER);
  assert.equal(tl.parseId(`x_${max}_${max}`).timestamp_ms, Number.MAX_SAFE_INTEGER);
  throwsKind(() => tl.parseId('x_9007199254740992_1'), 'id.unparsable',
    /^id timestamp 9007199254740992 is beyond 2\^53-1, the largest integer a JS number holds exactly$/);
  throwsKind(() => tl.parseId('x_1_18446744073709551615_ab'), 'id.unparsable', /^id counter 18446744073709551615 is beyond/);
  assert.equal(tl.parseContextId(`thread_op_${max}_abcdef12`).counter, Number.MAX_SAFE_INTEGER);
  throwsKind(() => tl.parseContextId('thread_op_9007199254740993_abcdef12'), 'id.unparsable', /^id counter 9007199254740993 is beyond/);
});
