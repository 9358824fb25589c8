// Reliability of the WebAssembly package (issue 7): bad input at every entry point gets
// a ThreadlineError with a kind and changes nothing; async tasks interleaving on one
// registry never over-admit or lose a manager; no Rust panic ever reaches JS (it would
// arrive as a WebAssembly.RuntimeError "unreachable", which these tests treat as a bug).
import test from 'node:test';
import assert from 'node:assert/strict';
import { tl, manualClock } from './helpers.mjs';

const { Registry, Tracker, UserContext, IdGenerator, IsolationKey, SessionStore, ThreadlineError } = tl;

const T0 = 1_764_000_000_000;
const TEN_MB = 'x'.repeat(10 * 1024 * 1024);
const LONE_HIGH = 'user\ud800';
const LONE_LOW = 'user\udc00';
// Invalid UTF-8 cannot be a JS string; it arrives as bytes, or decoded with U+FFFD.
const BYTES = new Uint8Array([0x75, 0xff, 0xfe]);

/** Calls `fn`; it must throw a ThreadlineError (of `kind`, when given), never a panic. */
function refused(fn, kind) {
  try {
    fn();
  } catch (e) {
    assert.ok(!(e instanceof WebAssembly.RuntimeError), `a Rust panic reached JS: ${e}`);
    assert.ok(e instanceof ThreadlineError, `not a ThreadlineError: ${e?.name}: ${e?.message}`);
    assert.equal(typeof e.kind, 'string');
    if (kind) assert.ok(e.kind === kind || e.kind.startsWith(`${kind}.`), `kind ${e.kind}, expected ${kind}`);
    assert.ok(e.message.length < 2048, 'error messages stay short whatever the input');
    return e;
  }
  assert.fail(`no error (expected ${kind ?? 'a ThreadlineError'})`);
}

function world() {
  const clock = manualClock(T0);
  const ids = new IdGenerator({ seed: 1, clock });
  const reg = new Registry({ maxManagersPerUser: 2, clock });
  const ctx = new UserContext({ userId: 'alice', threadId: 'thread_a', runId: 'run_a', requestId: 'req_a' });
  reg.create(ctx);
  reg.addConnection('alice:thread_a', { connectionId: 'c1', userId: 'alice' });
  reg.drainEvents();
  const tracker = new Tracker({ clock });
  tracker.takeSnapshot({ operation: 'manager_creation', isolationKey: 'alice:thread_a' });
  const sessions = SessionStore.withIds(ids, {});
  sessions.getOrCreate('alice', {});
  const fingerprint = () =>
    JSON.stringify({
      counter: ids.counter,
      regressions: ids.clockRegressions,
      managers: reg.keys().map((k) => reg.get(k)),
      stats: reg.stats(),
      tracker: tracker.toJSON(),
      sessions: sessions.userCount('alice'),
      session: sessions.getExisting('alice', undefined),
    });
  return { clock, ids, reg, ctx, tracker, sessions, fingerprint };
}

const ctxWith = (fields) => new UserContext({ userId: 'alice', threadId: 'thread_a', runId: 'run_a', requestId: 'req_a', ...fields });

/** Entry points taking an id or a name, each with the bad value in one place. */
function textEntryPoints(w) {
  return [
    ['UserContext.userId', (v) => ctxWith({ userId: v })],
    ['UserContext.threadId', (v) => ctxWith({ threadId: v })],
    ['UserContext.runId', (v) => ctxWith({ runId: v })],
    ['IsolationKey user', (v) => new IsolationKey(v, 'thread_a')],
    ['IsolationKey thread', (v) => new IsolationKey('alice', v)],
    ['IsolationKey.parse', (v) => IsolationKey.parse(v)],
    ['parseId', (v) => tl.parseId(v)],
    ['ids.websocketClientId', (v) => w.ids.websocketClientId(v, undefined)],
    ['ids.userContextIds', (v) => w.ids.userContextIds(v, undefined)],
    ['ids.baseId', (v) => w.ids.baseId(v, {})],
    ['ids.managerRunId', (v) => w.ids.managerRunId(v)],
    ['sessions.getOrCreate', (v) => w.sessions.getOrCreate(v, {})],
    ['registry.addConnection id', (v) => w.reg.addConnection('alice:thread_a', { connectionId: v, userId: 'alice' })],
    ['registry.create', (v) => w.reg.create(v)],
  ];
}

const BAD_VALUES = [
  ['undefined', undefined, 'argument'],
  ['null', null, 'argument'],
  ['number', 7, 'argument'],
  ['NaN', NaN, 'argument'],
  ['boolean', true, 'argument'],
  ['object', { toString: () => 'alice' }, 'argument'],
  ['array', ['alice'], 'argument'],
  ['bytes', BYTES, 'argument'],
  ['symbol', Symbol('alice'), 'argument'],
  ['bigint', 7n, 'argument'],
  ['empty', '', undefined],
  ['blank', '   ', undefined],
  ['NUL', 'us\0er', undefined],
  ['control', 'us\u001ber', undefined],
  ['10 MB', TEN_MB, undefined],
];

for (const [label, value, kind] of BAD_VALUES) {
  test(`bad text (${label}) gets a ThreadlineError and changes nothing`, () => {
    const w = world();
    const before = w.fingerprint();
    for (const [name, call] of textEntryPoints(w)) {
      if (name === 'registry.create' && typeof value === 'string') continue; // takes a UserContext
      if (name === 'ids.baseId' && value == null) continue; // documented default prefix "id"
      try {
        refused(() => call(value), name === 'registry.create' ? 'argument' : kind);
      } catch (e) {
        e.message = `${name} with ${label}: ${e.message}`;
        throw e;
      }
    }
    assert.equal(w.fingerprint(), before);
  });
}

test('lone surrogates are refused, not silently changed', () => {
  const w = world();
  const before = w.fingerprint();
  for (const s of [LONE_HIGH, LONE_LOW]) {
    for (const [name, call] of textEntryPoints(w)) {
      if (name === 'registry.create' || name === 'parseId') continue;
      refused(() => call(s), undefined);
    }
  }
  assert.equal(w.fingerprint(), before);
});

test('lone surrogates never reach the core as a panic, and never merge with valid text', () => {
  // Nothing panics, and whatever is refused is refused with a ThreadlineError.
  const w = world();
  for (const s of [LONE_HIGH, LONE_LOW, '\ud800', 'a\udfffb']) {
    for (const [name, call] of textEntryPoints(w)) {
      if (name === 'registry.create') continue;
      try {
        call(s);
      } catch (e) {
        assert.ok(!(e instanceof WebAssembly.RuntimeError), `${name}: panic ${e}`);
        assert.ok(e instanceof ThreadlineError, `${name}: ${e}`);
      }
    }
  }
  assert.equal(tl.parseId('req_1764000000000_1_abcdef12').prefix, 'req');
});

test("':' in a user id is refused where it would split a key", () => {
  const w = world();
  const before = w.fingerprint();
  refused(() => ctxWith({ userId: 'alice:admin' }), 'context.colon_in_user_id');
  refused(() => new IsolationKey('alice:admin', 'thread_a'));
  refused(() => w.ids.websocketConnectionId('alice:admin', undefined), 'id');
  refused(() => w.sessions.getOrCreate('alice:admin', {}));
  const k = IsolationKey.parse('alice:admin:thread_a');
  assert.deepEqual([k.userId, k.threadId], ['alice', 'admin:thread_a']);
  assert.equal(w.fingerprint(), before);
});

test('negative, fractional, huge and non-number limits and times are refused', () => {
  const w = world();
  const before = w.fingerprint();
  // (null and undefined mean "not given" in options: the default applies.)
  for (const n of [-1, -0.5, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 1e300, '5', {}]) {
    refused(() => new Registry({ maxManagersPerUser: n }), 'argument');
    refused(() => new Registry({ connectionTimeoutMs: n }));
    refused(() => new Registry({ staleIdleMs: n }));
    refused(() => new Tracker({ capacity: n }));
    refused(() => Tracker.fromJSON('{}', { maxBytes: n }));
    refused(() => ctxWith({ operationDepth: n }));
    refused(() => w.ids.batchIds('x', n, true));
    refused(() => new IdGenerator({ seed: n }));
  }
  for (const n of [0, 1_000_001]) refused(() => new Registry({ maxManagersPerUser: n }), 'registry.config');
  for (const ts of [NaN, Infinity, -1, 1e300]) refused(() => w.ids.websocketClientId('alice', ts), 'id.timestamp');
  refused(() => new Tracker({ capacity: 0 }), 'report.capacity');
  refused(() => w.ids.baseId('x', { randomLength: 0 }), 'id');
  refused(() => w.ids.baseId('x', { randomLength: 2 ** 40 }));
  // A clock that answers nonsense is refused at the call that reads it.
  for (const bad of [NaN, -5, 2 ** 53, 'now', undefined, null]) {
    const g = new IdGenerator({ seed: 1, clock: () => bad });
    refused(() => g.baseId('x', {}), 'argument');
    assert.equal(g.counter, 0, 'a refused call takes no counter value');
  }
  assert.equal(w.fingerprint(), before);
  // The largest exact times are fine.
  w.clock.set(2 ** 53 - 1);
  assert.equal(w.reg.expireIdle(), 1, 'idle for longer than the timeout: expired, no overflow');
  assert.equal(tl.idAgeMs('x_1_2', 2 ** 53 - 1), 2 ** 53 - 2);
});

test('a clock going backwards keeps ids unique and is counted', () => {
  const clock = manualClock(T0);
  const g = new IdGenerator({ seed: 3, clock });
  const seen = new Set();
  for (let i = 0; i < 1000; i++) {
    clock.advance(i % 100 === 50 ? -3_600_000 : 1);
    for (const id of [g.baseId('req', { includeRandom: false }), g.websocketConnectionId('alice', undefined)]) {
      assert.ok(!seen.has(id), id);
      seen.add(id);
      assert.ok(tl.parseId(id).timestamp >= T0 || tl.parseId(id).timestamp_ms >= T0);
    }
  }
  assert.equal(seen.size, 2000);
  assert.ok(g.clockRegressions > 0);
});

test('reports truncated, of another schema, oversized or absurdly nested are refused', () => {
  const clock = manualClock(T0);
  const tr = new Tracker({ clock });
  tr.takeSnapshot({ operation: 'manager_creation', userId: 'alice', userContextThreadId: 'thread_a', isolationKey: 'alice:thread_b' });
  const text = tr.toJSON();
  assert.equal(Tracker.fromJSON(text, {}).toJSON(), text);
  for (let cut = 0; cut < text.length; cut += 5) refused(() => Tracker.fromJSON(text.slice(0, cut), {}), 'report.json');
  for (const schema of ['"threadline.report/2"', '"threadline.report/0"', 'null']) {
    refused(() => Tracker.fromJSON(text.replace('"threadline.report/1"', schema), {}), 'report.schema');
  }
  refused(() => Tracker.fromJSON(text, { maxBytes: text.length - 1 }), 'report.too_large');
  assert.equal(Tracker.fromJSON(text, { maxBytes: text.length }).totalSnapshots, 1);
  for (const deep of ['['.repeat(100_000), '{"a":'.repeat(100_000), '['.repeat(10 * 1024 * 1024)]) {
    refused(() => Tracker.fromJSON(deep, {}), 'report.too_deep');
  }
  for (const bad of [undefined, null, 5, BYTES, {}]) refused(() => Tracker.fromJSON(bad, {}), 'argument');
});

test('async tasks interleaving on one registry never over-admit or lose a manager', async () => {
  const TASKS = 8;
  const OPS = 1_250; // 10,000 operations in all
  const MAX = 5;
  const clock = manualClock(T0);
  const reg = new Registry({ maxManagersPerUser: MAX, staleIdleMs: 40, staleUnconnectedAgeMs: 40, clock });
  const tally = { created: 0, reused: 0, refused: 0, removed: 0, isolation: 0, eventsCreated: 0, eventsCleaned: 0 };
  const check = () => {
    const keys = reg.keys();
    const counts = {};
    for (const k of keys) counts[k.split(':')[0]] = (counts[k.split(':')[0]] ?? 0) + 1;
    assert.deepEqual(reg.userCounts(), counts, 'counts equal the keys held');
    for (const [u, n] of Object.entries(counts)) assert.ok(n <= MAX, `${u} holds ${n}`);
    const s = reg.stats();
    assert.equal(s.managers_created - s.managers_cleaned_up, s.managers_registered);
    assert.equal(s.managers_registered, keys.length);
    for (const k of keys) for (const c of reg.get(k).connections) assert.equal(c.user_id, reg.get(k).user_id);
  };
  // mulberry32: a small PRNG with good low bits.
  let seed = 12345;
  const rnd = (n) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) % n;
  };
  async function task(t) {
    for (let i = 0; i < OPS; i++) {
      await null; // let the other tasks in between every operation
      clock.advance(1);
      const user = rnd(10) < 7 ? 'hot' : `user${t}`;
      const thread = `thread_${rnd(12)}`;
      const key = `${user}:${thread}`;
      const choice = rnd(100);
      try {
        if (choice < 35) {
          const prior = reg.get(key);
          const c = reg.create(new UserContext({ userId: user, threadId: thread, runId: `run_${thread}`, requestId: `req_${i}` }));
          if (c.reused) tally.reused++;
          else {
            tally.created++;
            tally.removed += c.stale_cleaned + (prior && !prior.active ? 1 : 0);
          }
        } else if (choice < 55) {
          const wrong = rnd(10) === 0;
          reg.addConnection(key, { connectionId: `c${t}_${rnd(4)}`, userId: wrong ? 'intruder' : user });
          assert.ok(!wrong, "another user's connection was admitted");
        } else if (choice < 70) reg.sendToUser(key, user);
        else if (choice < 80) tally.removed += reg.cleanup(key) ? 1 : 0;
        else if (choice < 85) tally.removed += reg.forceCleanupUser(user);
        else if (choice < 92) reg.deactivate(key);
        else if (choice < 97) tally.removed += reg.cleanupStaleForUser(user);
        else tally.removed += reg.expireIdle();
      } catch (e) {
        assert.ok(!(e instanceof WebAssembly.RuntimeError), `panic: ${e}`);
        assert.ok(e instanceof ThreadlineError, String(e));
        if (e.kind === 'registry.limit_exceeded') {
          tally.refused++;
          assert.equal(reg.userCount(user), MAX);
        } else if (e.kind === 'registry.isolation_violation') tally.isolation++;
        else assert.ok(['registry.unknown_manager', 'registry.inactive'].includes(e.kind), e.kind);
      }
      for (const ev of reg.drainEvents()) {
        if (ev.kind === 'created') tally.eventsCreated++;
        if (ev.kind === 'cleaned_up') tally.eventsCleaned++;
      }
      if (i % 25 === 0) check();
    }
  }
  await Promise.all(Array.from({ length: TASKS }, (_, t) => task(t)));
  check();
  const s = reg.stats();
  assert.equal(s.managers_created, tally.created);
  assert.equal(s.managers_reused, tally.reused);
  assert.equal(s.limit_hits, tally.refused);
  assert.equal(s.managers_cleaned_up, tally.removed, 'a removal went unreported');
  assert.equal(s.isolation_violations, tally.isolation);
  assert.equal(tally.eventsCreated, s.managers_created);
  assert.equal(tally.eventsCleaned, s.managers_cleaned_up);
  assert.ok(tally.refused > 50, 'the race for the hot user never happened');
});

test('tasks racing for the last slots admit exactly the free ones', async () => {
  const reg = new Registry({ maxManagersPerUser: 5 });
  for (let round = 0; round < 50; round++) {
    const held = round % 5;
    reg.forceCleanupUser('hot');
    for (let i = 0; i < held; i++) reg.create(new UserContext({ userId: 'hot', threadId: `thread_held_${i}`, runId: 'run_x', requestId: 'req_x' }));
    const results = await Promise.all(
      Array.from({ length: 32 }, async (_, k) => {
        await null;
        try {
          reg.create(new UserContext({ userId: 'hot', threadId: `thread_${round}_${k}`, runId: 'run_x', requestId: 'req_x' }));
          return 1;
        } catch (e) {
          refused(() => {
            throw e;
          }, 'registry.limit_exceeded');
          return 0;
        }
      }),
    );
    assert.equal(results.reduce((a, b) => a + b, 0), 5 - held);
    assert.equal(reg.userCount('hot'), 5);
  }
});

test('a sweep of odd calls never panics, and the module keeps working', () => {
  const w = world();
  const odd = [undefined, null, '', 'x', LONE_HIGH, -1, 0, 2 ** 64, 1.5, NaN, BYTES, [], {}, 7n];
  const fns = [
    tl.parseId, tl.parseContextId, tl.isValidId, tl.idAgeMs, tl.runReadings, tl.threadIdForRun,
    tl.areCorrelated, tl.correlation, (a, b) => IsolationKey.parse(a, b), (a, b) => Tracker.fromJSON(a, b),
    (a, b) => w.reg.get(a, b), (a, b) => w.reg.cleanup(a, b), (a, b) => w.reg.userCount(a, b),
    (a, b) => w.reg.forceCleanupUser(a, b), (a, b) => w.reg.sendToUser(a, b), (a, b) => w.reg.findByRun(a, b),
    (a, b) => w.reg.manager(a, b), (a, b) => w.reg.cleanupId(a, b), (a, b) => w.reg.addConnection(a, b),
    (a, b) => w.tracker.simulateCleanupLookup(a, b), (a, b) => w.tracker.takeSnapshot(a, b),
    (a, b) => w.tracker.recordViolation(a, b, b), (a, b) => w.sessions.getExisting(a, b),
    (a, b) => w.ids.simpleId(a, b), (a, b) => w.ids.sessionId(a, b), (a, b) => w.ids.messageId(a, b, b),
    (a, b) => new UserContext(a, b), (a, b) => new Registry(a, b), (a, b) => new Tracker(a, b),
  ];
  let calls = 0;
  for (const f of fns) {
    for (const a of odd) {
      for (const args of [[a], [a, a], ['alice:thread_a', a]]) {
        try {
          f(...args);
        } catch (e) {
          assert.ok(!(e instanceof WebAssembly.RuntimeError), `panic from ${f}: ${e}`);
          assert.ok(e instanceof ThreadlineError, `${e?.name}: ${e?.message}`);
        }
        calls++;
      }
    }
  }
  assert.equal(calls, fns.length * odd.length * 3);
  assert.match(new IdGenerator({ seed: 9 }).baseId('still', {}), /^still_\d+_1_[0-9a-f]{8}$/);
});
