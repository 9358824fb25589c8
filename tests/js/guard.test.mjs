// ThreadGuard: the frontend's hold on the conversation's thread id.
import test from 'node:test';
import assert from 'node:assert/strict';
import { tl, manualClock, throwsKind } from './helpers.mjs';

const { ThreadGuard, Tracker, parseContextId, areCorrelated } = tl;
const T = 'thread_websocket_factory_7_0a1b2c3d';

test('adopts the server thread, keeps it across a reconnect, flags a wrong-thread message', () => {
  const clock = manualClock(1_764_000_000_000);
  const g = new ThreadGuard({ userId: 'user123', clock });
  assert.equal(g.threadId, null);
  assert.equal(g.isolationKey, null);
  assert.equal(g.threadSource, null);

  const ws1 = g.connected();
  assert.match(ws1, /^ws_client_user123_\d{13}_\d+_[0-9a-f]{8}$/);
  assert.equal(g.connections, 1);
  // The client's first message has no thread yet: nothing to check.
  assert.deepEqual(g.outgoing({ type: 'start_agent', payload: { text: 'hi' } }), { ok: true, checked: false });
  // The server's first message that carries a thread id sets it.
  clock.advance(20);
  assert.deepEqual(g.incoming({ type: 'agent_started', thread_id: T }), { ok: true, checked: true, adopted: true });
  assert.equal(g.threadId, T);
  assert.equal(g.threadSource, 'message');
  assert.equal(g.isolationKey, `user123:${T}`);
  assert.deepEqual(g.incoming(JSON.stringify({ type: 'agent_thinking', thread_id: T })), { ok: true, checked: true });

  // The socket drops and reconnects: a new client id, the same thread.
  clock.advance(5_000);
  const ws2 = g.connected('ws_client_user123_reconnect_2');
  assert.equal(ws2, 'ws_client_user123_reconnect_2');
  assert.equal(g.connections, 2);
  assert.equal(g.threadId, T);
  const resumed = g.stamp({ type: 'resume' });
  assert.deepEqual(resumed, { type: 'resume', thread_id: T });
  assert.deepEqual(g.outgoing(resumed), { ok: true, checked: true });
  assert.deepEqual(g.incoming({ type: 'agent_completed', thread_id: T }), { ok: true, checked: true });

  // A message of another thread is reported, not thrown.
  clock.advance(10);
  const bad = g.incoming({ type: 'agent_completed', thread_id: 'thread_websocket_factory_8_ffffffff' });
  assert.deepEqual(bad, { ok: false, checked: true, expected: T, got: 'thread_websocket_factory_8_ffffffff' });
  assert.equal(g.threadId, T, 'a wrong message never moves the held thread');
  assert.equal(g.checks, 5);
  assert.equal(g.mismatches, 1);

  // Every check is in the guard's tracker; the wrong one is a thread_id_mismatch.
  const tr = g.tracker;
  assert.ok(tr instanceof Tracker);
  const a = tr.analyze();
  assert.equal(a.inconsistent_snapshots, 1);
  assert.deepEqual(a.operation_violations, { message_in: 1 });
  assert.deepEqual(a.thread_ids_by_user, { user123: [T, 'thread_websocket_factory_8_ffffffff'] });
  const [v] = tr.violationList();
  assert.equal(v.type, 'thread_id_mismatch');
  assert.equal(v.thread_id_summary.user_context, T);
  assert.equal(v.thread_id_summary.isolation_key, T);
  assert.equal(v.thread_id_summary.manager_context, 'thread_websocket_factory_8_ffffffff');
  const ops = tr.snapshotRange(0, 100).map((s) => s.operation);
  assert.deepEqual(ops, [
    'connection_opened',
    'thread_adopted',
    'message_in',
    'reconnected',
    'message_out',
    'message_in',
    'message_in',
  ]);
  const last = tr.snapshotRange(6, 7)[0];
  assert.equal(last.websocket_client_id, 'ws_client_user123_reconnect_2');
  assert.deepEqual(last.metadata, { direction: 'in' });
  assert.match(tr.reportText(), /MISMATCH DETECTED/);
  tr.free();
  // The guard keeps its own handle on the tracker.
  assert.equal(g.tracker.totalSnapshots, 7);
  g.free();
});

test('checks never throw: odd thread ids and odd messages', () => {
  const g = new ThreadGuard({ userId: 'user123', threadId: T });
  assert.equal(g.threadSource, 'given');
  assert.deepEqual(g.incoming({ thread_id: 42 }), { ok: false, checked: true, expected: T, got: 42 });
  assert.deepEqual(g.incoming({ thread_id: null }), { ok: true, checked: false });
  assert.deepEqual(g.incoming('not json'), { ok: true, checked: false });
  assert.deepEqual(g.incoming('[1,2]'), { ok: true, checked: false });
  assert.deepEqual(g.incoming(undefined), { ok: true, checked: false });
  assert.deepEqual(g.incoming(7), { ok: true, checked: false });
  const huge = 'x'.repeat(10_000_000);
  const r = g.incoming({ thread_id: huge });
  assert.equal(r.ok, false);
  assert.equal(r.got.length, huge.length, 'the caller gets the value it passed');
  // The tracker keeps a cut copy, so a hostile server cannot fill memory through it.
  const s = g.tracker.snapshotRange(0, 100).at(-1);
  assert.ok(s.thread_id_manager_context.length < 1100, `${s.thread_id_manager_context.length}`);
  assert.match(s.thread_id_manager_context, /… \(10000000 bytes\)$/);
  assert.equal(g.mismatches, 2);
});

test('a thread that cannot be a thread id is not adopted', () => {
  const g = new ThreadGuard({ userId: 'user123' });
  const r = g.incoming({ thread_id: '   ' });
  assert.equal(r.ok, false);
  assert.equal(r.expected, null);
  assert.equal(r.got, '   ');
  assert.match(r.reason, /thread_id is required/);
  assert.equal(g.threadId, null);
  assert.deepEqual(g.incoming({ thread_id: T }), { ok: true, checked: true, adopted: true });
});

test('mints a correlated thread id locally when the client speaks first', () => {
  const g = new ThreadGuard({ userId: 'user123', operation: 'chat' });
  const msg = g.stamp({ type: 'user_message', text: 'hello' });
  const t = g.threadId;
  assert.equal(msg.thread_id, t);
  assert.equal(g.threadSource, 'minted');
  const parts = parseContextId(t);
  assert.equal(parts.kind, 'thread');
  assert.equal(parts.operation, 'chat');
  assert.equal(areCorrelated(t, `run_${t.slice('thread_'.length)}`), true);
  assert.equal(g.ensureThreadId(), t);
  // The server answering in the same thread is fine; another thread is not.
  assert.equal(g.incoming({ thread_id: t }).ok, true);
  assert.equal(g.incoming({ thread_id: 'thread_chat_1_00000000' }).ok, false);
});

test('a new conversation forgets the thread', () => {
  const g = new ThreadGuard({ userId: 'user123', threadId: T });
  g.newConversation();
  assert.equal(g.threadId, null);
  assert.equal(g.incoming({ thread_id: 'thread_chat_2_12345678' }).adopted, true);
  assert.equal(g.threadId, 'thread_chat_2_12345678');
});

test('the guard tracker is bounded; counts stay exact', () => {
  const g = new ThreadGuard({ userId: 'user123', threadId: T, capacity: 5 });
  for (let i = 0; i < 50; i++) g.incoming({ thread_id: i % 10 === 0 ? 'thread_other' : T });
  const tr = g.tracker;
  assert.equal(tr.capacity, 5);
  assert.equal(tr.retainedCount, 5);
  assert.equal(tr.totalSnapshots, 51, 'thread_given + 50 checks');
  assert.equal(tr.totalViolations, 5);
  assert.equal(g.checks, 50);
  assert.equal(g.mismatches, 5);
});

test('bad guard options throw typed errors', () => {
  throwsKind(() => new ThreadGuard(), 'argument');
  throwsKind(() => new ThreadGuard({}), 'argument', /userId must be a string/);
  throwsKind(() => new ThreadGuard({ userId: 5 }), 'argument');
  throwsKind(() => new ThreadGuard({ userId: 'null' }), 'context.placeholder');
  throwsKind(() => new ThreadGuard({ userId: 'a:b' }), 'context.colon_in_user_id');
  throwsKind(() => new ThreadGuard({ userId: 'u1', threadId: ' ' }), 'context.empty');
  throwsKind(() => new ThreadGuard({ userId: 'u1', operation: 'bad op' }), 'id.invalid_part');
  throwsKind(() => new ThreadGuard({ userId: 'u1', capacity: 0 }), 'report.capacity');
  throwsKind(() => new ThreadGuard({ userId: 'u1', threadid: T }), 'argument', /no option/);
  throwsKind(() => new ThreadGuard({ userId: 'x'.repeat(5_000_000) }), 'context.too_long');
  const g = new ThreadGuard({ userId: 'u1' });
  throwsKind(() => g.stamp('text'), 'argument');
  throwsKind(() => g.connected(12), 'argument');
  assert.equal(new ThreadGuard({ userId: 'test_user', testMode: true }).userId, 'test_user');
});

test("connected() mints the client id by the guard's clock", () => {
  const g = new ThreadGuard({ userId: 'u1', clock: () => 1_700_000_000_000 });
  assert.match(g.connected(), /^ws_client_u1_1700000000000_\d+_[0-9a-f]{8}$/);
  const t = 1_700_000_000_000;
  const ids = new tl.IdGenerator({ clock: () => t });
  assert.match(ids.websocketClientId('u1'), /^ws_client_u1_1700000000000_1_[0-9a-f]{8}$/);
  // Without a clock, Date.now's.
  const before = Date.now();
  const ms = Number(new ThreadGuard({ userId: 'u1' }).connected().split('_')[3]);
  assert.ok(ms >= before && ms <= Date.now(), `${ms}`);
});
