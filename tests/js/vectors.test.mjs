// The cross-language vectors (tests/vectors/*.json, see its README) through the JS API.
import test from 'node:test';
import assert from 'node:assert/strict';
import { tl, manualClock, readVectors, vectorFiles } from './helpers.mjs';

const { IdGenerator, IsolationKey, Tracker, UserContext } = tl;

/** `fn()`'s value, or `{ error: kind }` when it throws a ThreadlineError. */
function result(fn) {
  try {
    return fn();
  } catch (e) {
    assert.ok(e instanceof tl.ThreadlineError, `not a ThreadlineError: ${e}`);
    return { error: e.kind };
  }
}

const ok = (fn) => {
  const r = result(fn);
  return r && r.error ? r : { ok: true };
};

test('ids.json: parse, context ids, run readings, correlation, validity', () => {
  const v = readVectors('ids.json');
  for (const c of v.parse) assert.deepEqual(result(() => tl.parseId(c.id)), c.expected, c.id);
  for (const c of v.context_ids) assert.deepEqual(result(() => tl.parseContextId(c.id)), c.expected, c.id);
  for (const c of v.run_readings) {
    const got = { readings: tl.runReadings(c.run_id), thread_id_for_run: tl.threadIdForRun(c.run_id) };
    assert.deepEqual(got, c.expected, c.run_id);
  }
  for (const c of v.correlation) {
    const format = tl.correlation(c.thread_id, c.run_id);
    assert.deepEqual({ correlated: tl.areCorrelated(c.thread_id, c.run_id), format }, c.expected);
  }
  for (const c of v.validity) {
    const age = result(() => tl.idAgeMs(c.id, c.now_ms));
    const got = {
      valid: tl.isValidId(c.id, c.expected_prefix, c.now_ms),
      age_ms: typeof age === 'number' ? age : null,
    };
    assert.deepEqual(got, c.expected, `${c.id} at ${c.now_ms}`);
  }
  assert.ok(v.parse.length >= 10 && v.validity.length >= 5);
});

function mint(ids, clock, c) {
  if (c.advance_ms) clock.advance(c.advance_ms);
  const a = c.args;
  switch (c.call) {
    case 'user_context_ids':
      return ids.userContextIds(a[0], a[1]);
    case 'base_id':
      return ids.baseId(a[0], { includeRandom: a[1], randomLength: a[2] });
    case 'simple_id':
      return ids.simpleId(a[0]);
    case 'websocket_client_id':
      return ids.websocketClientId(a[0], a[1]);
    case 'websocket_connection_id':
      return ids.websocketConnectionId(a[0], a[1]);
    case 'session_id':
      return ids.sessionId(a[0], a[1]);
    case 'agent_execution_id':
      return ids.agentExecutionId(a[0], a[1]);
    case 'message_id':
      return ids.messageId(a[0], a[1], a[2]);
    case 'batch_ids':
      return ids.batchIds(a[0], a[1], a[2]);
    case 'manager_run_id':
      return ids.managerRunId(a[0]);
    case 'uuid_v4':
      return ids.uuidV4();
    default:
      throw new Error(`unknown call ${c.call}`);
  }
}

test('ids.json: a seeded generator with a fixed clock mints what the core mints', () => {
  for (const g of readVectors('ids.json').minted) {
    const clock = manualClock(g.start_ms);
    const ids = new IdGenerator({ seed: g.seed, clock });
    const got = g.calls.map((c) => result(() => mint(ids, clock, c)));
    assert.deepEqual(got, g.expected, `seed ${g.seed}`);
    ids.free();
  }
});

test('keys.json: parsed and built isolation keys', () => {
  const v = readVectors('keys.json');
  for (const c of v.parse) {
    const got = result(() => {
      const k = IsolationKey.parse(c.key);
      return {
        user_id: k.userId,
        thread_id: k.threadId,
        form: k.form,
        run_token: k.runToken ?? null,
        canonical: k.canonical(),
        display: k.toString(),
      };
    });
    assert.deepEqual(got, c.expected, JSON.stringify(c.key));
  }
  for (const c of v.build) {
    const got = result(() => ({ key: new IsolationKey(c.user_id, c.thread_id).toString() }));
    assert.deepEqual(got, c.expected, `${c.user_id} / ${JSON.stringify(c.thread_id)}`);
  }
});

function errorCase(call, args) {
  switch (call) {
    case 'parse_id':
      return ok(() => tl.parseId(args[0]));
    case 'parse_context_id':
      return ok(() => tl.parseContextId(args[0]));
    case 'isolation_key_parse':
      return ok(() => IsolationKey.parse(args[0]));
    case 'isolation_key_new':
      return ok(() => new IsolationKey(args[0], args[1]));
    case 'user_context': {
      const f = args[0];
      return ok(
        () =>
          new UserContext({
            userId: f.user_id,
            threadId: f.thread_id,
            runId: f.run_id,
            requestId: 'req_vectors_1_abcdef12',
            testMode: f.test_mode ?? false,
          }),
      );
    }
    case 'user_context_ids':
      return ok(() => new IdGenerator({ seed: 0, clock: () => 0 }).userContextIds(args[0], args[1]));
    case 'base_id':
      return ok(() =>
        new IdGenerator({ seed: 0, clock: () => 0 }).baseId(args[0], { includeRandom: args[1], randomLength: args[2] }),
      );
    case 'tracker_bounded':
      return ok(() => new Tracker({ capacity: args[0], startedMs: 0 }));
    case 'take_snapshot':
      return ok(() => new Tracker({ clock: () => 0 }).takeSnapshot({ operation: args[0] }));
    case 'tracker_from_json': {
      const limits = {};
      if (args[1].max_bytes !== undefined) limits.maxBytes = args[1].max_bytes;
      if (args[1].max_depth !== undefined) limits.maxDepth = args[1].max_depth;
      return ok(() => Tracker.fromJSON(args[0], limits));
    }
    default:
      throw new Error(`unknown call ${call}`);
  }
}

test('errors.json: invalid inputs throw ThreadlineErrors of the core kinds', () => {
  const { cases } = readVectors('errors.json');
  assert.ok(cases.length >= 20);
  for (const c of cases) {
    assert.deepEqual(errorCase(c.call, c.args), c.expected, `${c.call} ${JSON.stringify(c.args).slice(0, 80)}`);
  }
});

function runSteps(doc) {
  const clock = manualClock(doc.started_ms);
  const opts = { clock, startedMs: doc.started_ms };
  if (doc.capacity !== null) opts.capacity = doc.capacity;
  const tr = new Tracker(opts);
  const outcomes = [];
  for (const s of doc.steps) {
    clock.set(s.at_ms);
    if (s.op === 'take_snapshot') {
      const input = { operation: s.operation };
      const names = {
        user_id: 'userId',
        user_context_thread_id: 'userContextThreadId',
        websocket_client_id: 'websocketClientId',
        manager_thread_id: 'managerThreadId',
        manager_instance_id: 'managerInstanceId',
        isolation_key: 'isolationKey',
        cleanup_lookup_thread_id: 'cleanupLookupThreadId',
        metadata: 'metadata',
      };
      for (const [snake, camel] of Object.entries(names)) if (snake in s) input[camel] = s[snake];
      outcomes.push(tr.takeSnapshot(input));
    } else if (s.op === 'simulate_cleanup_lookup') {
      outcomes.push(tr.simulateCleanupLookup(s.target_thread_id, { userId: s.user_id, metadata: s.metadata }));
    } else if (s.op === 'record_violation') {
      outcomes.push(tr.recordViolation(s.type, s.severity, { operation: s.operation, details: s.details }));
    } else {
      throw new Error(`unknown step ${s.op}`);
    }
  }
  clock.set(doc.report_at_ms);
  return { tr, outcomes };
}

const trackerFiles = vectorFiles().filter((f) => f.startsWith('tracker-'));

test('there are tracker vectors', () => {
  assert.ok(trackerFiles.length >= 3, trackerFiles.join(', '));
});

for (const file of trackerFiles) {
  test(`${file}: outcomes, analysis, report text and JSON match the core`, () => {
    const doc = readVectors(file);
    const { tr, outcomes } = runSteps(doc);
    const want = doc.expected;
    assert.deepEqual(outcomes, want.outcomes);
    assert.deepEqual(tr.analyze(), want.analysis);
    assert.equal(tr.reportText(), want.report_text);
    assert.equal(tr.toJSON(), want.json);
    // A report written by the core loads here and prints identically.
    const back = Tracker.fromJSON(want.json, { clock: () => 0 });
    assert.equal(back.reportText(), want.report_text);
    assert.equal(back.toJSON(), want.json);
    assert.deepEqual(back.analyze(), want.analysis);
    back.free();
    tr.free();
  });
}
