// The seed suite's scenarios, in JS, on the same rules as tests/scenarios.rs: a seeded
// generator, a manual clock, Netra's registry defaults and a tracker.
import test from 'node:test';
import assert from 'node:assert/strict';
import { tl, manualClock, throwsKind } from './helpers.mjs';

const { IdGenerator, Registry, SessionStore, Tracker, ThreadlineError, areCorrelated } = tl;
const T0 = 1_764_000_000_000;

class World {
  constructor(seed) {
    this.clock = manualClock(T0);
    this.ids = new IdGenerator({ seed, clock: this.clock });
    this.registry = new Registry({ clock: this.clock });
    this.tracker = new Tracker({ clock: this.clock });
  }

  tick(ms) {
    return this.clock.advance(ms);
  }

  context(user, operation) {
    return this.ids.websocketContext(user, { operation });
  }

  snap(operation, ctx, key) {
    this.tick(37);
    const input = { operation };
    if (ctx) {
      input.userContextThreadId = ctx.threadId;
      input.userId = ctx.userId;
      input.websocketClientId = ctx.websocketClientId;
    }
    const m = key ? this.registry.get(key) : null;
    if (m) {
      input.managerThreadId = m.thread_id;
      input.managerInstanceId = m.id;
      input.userId ??= m.user_id;
    }
    if (key) input.isolationKey = key;
    return this.tracker.takeSnapshot(input).mismatch;
  }

  finish() {
    this.registry.drainEventsInto(this.tracker);
    this.tick(100);
    return this.tracker.analyze();
  }
}

test('1. consistent contexts: every snapshot agrees', () => {
  const w = new World(1);
  const ctx = w.context('user123', 'websocket_factory');
  w.snap('user_context_creation', ctx, null);
  w.tick(5);
  w.registry.create(ctx);
  const key = ctx.isolationKey;
  w.snap('manager_creation', ctx, key);
  w.snap('manager_lookup', ctx, key);
  const a = w.finish();
  assert.equal(a.total_violations, 0);
  assert.equal(a.consistency_score, 100);
  assert.equal(a.unique_thread_ids_found, 1);
  assert.equal(areCorrelated(ctx.threadId, ctx.runId), true);
  assert.match(w.tracker.reportText(), / {2}Consistency Score: 100\.0%\n/);
});

test('2. bug reproduction: the mismatch and the failed cleanup are seen', () => {
  const w = new World(2);
  const a = w.context('user123', 'websocket_factory');
  w.snap('user_context_creation', a, null);
  w.tick(5);
  w.registry.create(a);
  const key = a.isolationKey;
  w.snap('manager_creation', a, key);
  const b = w.context('user123', 'websocket_factory');
  w.snap('inconsistent_context_creation', b, key);
  w.tick(5);
  w.tracker.simulateCleanupLookup(b.threadId, { userId: 'user123' });
  const wrongLookupFound = w.registry.findByThread('user123', b.threadId) !== null;
  w.tick(5);
  const wrongCleanup = w.registry.cleanup(b.isolationKey);
  const rightCleanup = w.registry.cleanup(key);
  const an = w.finish();
  assert.ok(an.total_violations > 0);
  assert.ok(an.consistency_score < 100);
  assert.equal(an.total_snapshots, 4);
  assert.equal(an.inconsistent_snapshots, 2, 'the wrong context and the wrong lookup');
  assert.equal(an.unique_thread_ids_found, 2);
  assert.equal(an.first_divergence, 2);
  assert.equal(an.last_consistent_before_divergence, 1);
  assert.deepEqual(an.users_with_multiple_thread_ids, ['user123']);
  assert.deepEqual(Object.entries(an.operation_violations), [
    ['inconsistent_context_creation', 1],
    ['cleanup_lookup', 1],
  ]);
  assert.equal(wrongLookupFound, false);
  assert.equal(wrongCleanup, false);
  assert.equal(rightCleanup, true);
  const text = w.tracker.reportText();
  assert.ok(text.includes('      ⚠️  MISMATCH DETECTED\n'));
  assert.ok(text.includes('  [0] thread_id_mismatch (CRITICAL)\n      Operation: inconsistent_context_creation\n'));
  assert.ok(text.includes('  Consistency Score: 50.0%\n'));
});

test('3. lifecycle: create, connect, send, find, clean up', () => {
  const w = new World(3);
  const ctx = w.context('user123', 'websocket_factory');
  w.snap('user_context_creation', ctx, null);
  w.tick(5);
  const created = w.registry.create(ctx);
  const key = ctx.isolationKey;
  w.snap('manager_creation', ctx, key);
  const connId = w.ids.websocketConnectionId('user123');
  w.tick(5);
  w.registry.addConnection(key, { connectionId: connId, userId: 'user123' });
  w.snap('connection_added', ctx, key);
  w.tick(5);
  const delivered = w.registry.sendToUser(key, 'user123');
  w.snap('message_sent', ctx, key);
  const found = w.registry.findByThread('user123', ctx.threadId);
  w.tick(5);
  w.tracker.simulateCleanupLookup(ctx.threadId, { userId: 'user123' });
  const cleaned = w.registry.cleanup(found.key);
  const a = w.finish();
  assert.equal(a.total_violations, 0);
  assert.equal(a.consistency_score, 100);
  assert.deepEqual(delivered, [connId]);
  assert.match(connId, /^ws_conn_user123_\d{13}_\d+_[0-9a-f]{8}$/);
  assert.match(found.key, /^user123:thread_websocket_factory_/);
  assert.equal(found.connections.length, 1);
  assert.equal(cleaned, true);
  assert.equal(w.registry.isActive(created.id), false);
  assert.equal(w.registry.size, 0);
  assert.deepEqual([a.managers_created, a.managers_cleaned_up, a.leaked_managers], [1, 1, 0]);
});

test('4. three users at once stay isolated', () => {
  const w = new World(4);
  const users = ['alice_4821', 'bob_77310', 'carol_5532'];
  const contexts = users.map((u) => w.context(u, 'websocket_factory'));
  const keys = [];
  contexts.forEach((c, i) => {
    w.tick(3);
    w.registry.create(c);
    const key = c.isolationKey;
    w.tick(1);
    w.registry.addConnection(key, { connectionId: `conn_${i}`, userId: c.userId });
    w.snap('manager_creation', c, key);
    keys.push(key);
  });
  let cross = 0;
  let refused = 0;
  keys.forEach((key, i) => {
    users.forEach((user, j) => {
      w.tick(1);
      try {
        const to = w.registry.sendToUser(key, user);
        if (i === j) assert.deepEqual(to, [`conn_${i}`]);
        else cross += 1;
      } catch (e) {
        assert.ok(e instanceof ThreadlineError);
        assert.equal(e.kind, 'registry.isolation_violation');
        refused += 1;
      }
    });
  });
  contexts.forEach((c, i) => {
    w.tick(2);
    w.tracker.simulateCleanupLookup(c.threadId, { userId: c.userId });
    w.registry.cleanup(keys[i]);
  });
  const a = w.finish();
  assert.equal(a.total_violations, 0);
  assert.equal(a.unique_thread_ids_found, 3);
  assert.equal(new Set(contexts.map((c) => c.threadId)).size, 3);
  assert.equal(cross, 0);
  assert.equal(refused, 6);
  assert.equal(w.registry.size, 0);
  assert.equal(Object.keys(a.thread_ids_by_user).length, 3);
  assert.ok(Object.values(a.thread_ids_by_user).every((t) => t.length === 1));
  assert.ok(w.registry.stats().isolation_violations >= 6);
});

test('5. recovery after a mismatch: force cleanup removes fresh managers', () => {
  const w = new World(5);
  const a = w.context('user123', 'websocket_factory');
  w.tick(5);
  w.registry.create(a);
  const key = a.isolationKey;
  w.snap('manager_creation', a, key);
  for (let i = 0; i < 3; i++) {
    const b = w.context('user123', 'websocket_factory');
    w.tick(5);
    w.registry.create(b);
    w.snap('mismatched_reconnect', b, key);
  }
  assert.equal(w.registry.userCount('user123'), 4);
  assert.equal(w.registry.cleanupStaleForUser('user123'), 0, 'fresh managers are not stale');
  assert.equal(w.registry.forceCleanupUser('user123'), 4);
  assert.equal(w.registry.userCount('user123'), 0);
  assert.equal(w.registry.size, 0);
  assert.equal(w.registry.stats().forced_cleaned, 4);
  assert.equal(w.finish().total_violations, 3);
});

test('6. the leak hits the limit; the session store prevents it', () => {
  const w = new World(6);
  let firstFailure = null;
  for (let n = 1; n <= 25; n++) {
    const ctx = w.context('user123', 'websocket_factory');
    w.tick(10);
    try {
      w.registry.create(ctx);
    } catch (e) {
      assert.equal(e.kind, 'registry.limit_exceeded');
      assert.equal(e.message, 'User user123 has reached the maximum number of WebSocket managers (20).');
      firstFailure ??= n;
    }
  }
  assert.equal(firstFailure, 21);
  assert.equal(w.registry.userCount('user123'), 20);
  assert.equal(w.registry.stats().limit_hits, 5);
  w.registry.drainEventsInto(w.tracker);
  w.registry.forceCleanupUser('user123');
  const sessions = SessionStore.withIds(w.ids);
  let failures = 0;
  for (let n = 1; n <= 25; n++) {
    w.tick(10);
    const ctx = sessions.context('user123', { operation: 'websocket_factory' });
    try {
      w.registry.create(ctx);
    } catch {
      failures += 1;
    }
    w.snap('session_connection', ctx, ctx.isolationKey);
  }
  assert.equal(failures, 0);
  assert.equal(w.registry.userCount('user123'), 1);
  const created = w.registry.drainEventsInto(w.tracker).filter((e) => e.kind === 'created').length;
  assert.equal(created, 1);
  w.tick(100);
  const a = w.tracker.analyze();
  assert.equal(a.total_violations, 5);
  assert.deepEqual(a.operation_violations, { create_manager: 5 });
  assert.equal(a.unique_thread_ids_found, 1);
  assert.equal(a.consistency_score, 100);
  assert.equal(a.managers_created, 21);
  assert.equal(a.managers_cleaned_up, 20);
  // The report survives JSON.
  const back = Tracker.fromJSON(w.tracker.toJSON());
  assert.equal(back.reportText(), w.tracker.reportText());
  throwsKind(() => w.registry.create(null), 'argument');
});
