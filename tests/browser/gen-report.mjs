// Writes a large synthetic threadline.report/1 file (for the load-time and memory tests):
// many users going through the manager lifecycle, with a thread-id fork every so often.
// The analysis block is computed here the way the core computes it, so a reader that
// trusts it and a reader that recomputes it agree.
//
//   node tests/browser/gen-report.mjs OUT.json SNAPSHOTS [--every N]
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

const OPS = [
  'user_context_creation',
  'manager_creation',
  'message_routing',
  'agent_execution',
  'message_routing',
  'cleanup_lookup',
];

function hex8(n) {
  // Deterministic "random" part.
  let x = (Math.imul(n ^ 0x9e3779b9, 2654435761) ^ (n >>> 7)) >>> 0;
  return x.toString(16).padStart(8, '0');
}

/**
 * Writes the report and returns its analysis.
 * @param {string} out path
 * @param {number} n snapshots
 * @param {{every?: number, users?: number, compact?: boolean}} opts a fork every
 *   `every` snapshots; compact: short ids, no client ids or metadata (smaller files)
 */
export function generateReport(out, n, { every = 97, users = 400, compact = false } = {}) {
  const started = 1_700_000_000_000;
  const fd = fs.openSync(out, 'w');
  let buf = '';
  const flush = (force) => {
    if (force || buf.length > 1 << 20) {
      fs.writeSync(fd, buf);
      buf = '';
    }
  };

  const threadIds = [];
  const threadSet = new Set();
  const byUser = new Map();
  const seen = (user, t) => {
    if (!threadSet.has(t)) {
      threadSet.add(t);
      threadIds.push(t);
    }
    let l = byUser.get(user);
    if (!l) byUser.set(user, (l = []));
    if (!l.includes(t)) l.push(t);
  };
  const violations = [];
  let inconsistent = 0;
  let firstDivergence = null;
  let lastConsistentBefore = null;
  let lastConsistent = null;
  let created = 0;
  let cleaned = 0;

  buf += '"snapshots":[';
  for (let i = 0; i < n; i++) {
    const session = Math.floor(i / OPS.length);
    const op = OPS[i % OPS.length];
    const u = session % users;
    const user = `user_${String(u).padStart(4, '0')}`;
    const generation = Math.floor(session / users) % 3;
    const tn = u * 3 + generation;
    const thread = compact ? `t_${tn}_${hex8(tn)}` : `thread_websocket_factory_${tn}_${hex8(tn)}`;
    const ts = started + 1000 + i * 3;
    const fork = i % every === every - 1;
    const forked = compact ? `diff-${hex8(i)}` : `different-thread-${hex8(i)}`;
    const s = {
      index: i,
      timestamp_ms: ts,
      operation: op,
      thread_id_user_context: null,
      thread_id_manager_context: null,
      thread_id_isolation_key: null,
      thread_id_cleanup_lookup: null,
      manager_instance_id: null,
      isolation_key: null,
      user_id: user,
      websocket_client_id: compact ? null : `ws_client_${user.slice(0, 8)}_${ts}_${session}_${hex8(session)}`,
      mismatch: false,
      metadata: {},
    };
    if (op === 'user_context_creation') {
      s.thread_id_user_context = thread;
    } else {
      s.thread_id_user_context = op === 'cleanup_lookup' ? null : thread;
      s.thread_id_manager_context = thread;
      s.thread_id_isolation_key = thread;
      s.isolation_key = `${user}:${thread}`;
      s.manager_instance_id = session + 1;
      if (op === 'cleanup_lookup') s.thread_id_cleanup_lookup = thread;
    }
    if (op === 'manager_creation') created++;
    if (op === 'cleanup_lookup' && !fork) cleaned++;
    if (op === 'agent_execution' && !compact) s.metadata = { agent: 'triage', attempt: (i % 5) + 1 };
    if (fork) {
      if (op === 'cleanup_lookup') s.thread_id_cleanup_lookup = forked;
      else if (op === 'user_context_creation') {
        s.thread_id_manager_context = thread;
        s.thread_id_user_context = forked;
      }
      else s.thread_id_user_context = forked;
    }
    const ids = [s.thread_id_user_context, s.thread_id_manager_context, s.thread_id_isolation_key, s.thread_id_cleanup_lookup].filter(
      (t) => t != null && t !== '',
    );
    s.mismatch = ids.some((t) => t !== ids[0]);
    for (const t of ids) seen(user, t);
    if (s.mismatch) {
      inconsistent++;
      if (firstDivergence == null) {
        firstDivergence = i;
        lastConsistentBefore = lastConsistent;
      }
      violations.push({
        index: violations.length,
        timestamp_ms: ts,
        type: 'thread_id_mismatch',
        severity: 'CRITICAL',
        operation: op,
        snapshot_index: i,
        thread_id_summary: {
          user_context: s.thread_id_user_context,
          manager_context: s.thread_id_manager_context,
          isolation_key: s.thread_id_isolation_key,
          cleanup_lookup: s.thread_id_cleanup_lookup,
        },
        details: {},
      });
    } else {
      lastConsistent = i;
    }
    buf += (i ? ',' : '') + JSON.stringify(s);
    flush(false);
  }
  buf += '],"violations":[';
  violations.forEach((v, k) => {
    buf += (k ? ',' : '') + JSON.stringify(v);
    flush(false);
  });
  buf += ']}';
  const opViolations = {};
  for (const v of violations) opViolations[v.operation] = (opViolations[v.operation] || 0) + 1;
  const generated = started + 1000 + n * 3 + 500;
  const analysis = {
    total_snapshots: n,
    retained_snapshots: n,
    total_violations: violations.length,
    unique_thread_ids_found: threadIds.length,
    thread_ids: threadIds,
    inconsistent_snapshots: inconsistent,
    operation_violations: opViolations,
    consistency_score: n ? ((n - inconsistent) / n) * 100 : 100,
    analysis_duration: (generated - started) / 1000,
    thread_ids_by_user: Object.fromEntries(byUser),
    users_with_multiple_thread_ids: [...byUser].filter(([, l]) => l.length > 1).map(([u]) => u),
    first_divergence: firstDivergence,
    last_consistent_before_divergence: lastConsistentBefore,
    managers_created: created,
    managers_cleaned_up: cleaned,
    leaked_managers: Math.max(0, created - cleaned),
  };
  // The head goes first in the file: write it, then the body collected so far.
  const head = `{"schema":"threadline.report/1","started_at_ms":${started},"generated_at_ms":${generated},"capacity":null,"analysis":${JSON.stringify(analysis)},`;
  flush(true);
  fs.closeSync(fd);
  // Prepend the head without holding the body in memory twice: rewrite through a temp file.
  const tmp = out + '.tmp';
  fs.renameSync(out, tmp);
  const outFd = fs.openSync(out, 'w');
  fs.writeSync(outFd, head);
  const inFd = fs.openSync(tmp, 'r');
  const chunk = Buffer.allocUnsafe(1 << 22);
  let got;
  while ((got = fs.readSync(inFd, chunk, 0, chunk.length, null)) > 0) fs.writeSync(outFd, chunk, 0, got);
  fs.closeSync(inFd);
  fs.closeSync(outFd);
  fs.unlinkSync(tmp);
  return analysis;
}

if (import.meta.url === pathToFileURL(process.argv[1] || '').href) {
  const [out, count, ...rest] = process.argv.slice(2);
  if (!out || !count) {
    console.error('usage: node gen-report.mjs OUT.json SNAPSHOTS [--every N]');
    process.exit(2);
  }
  const every = rest[0] === '--every' ? Number(rest[1]) : undefined;
  const t0 = Date.now();
  const a = generateReport(out, Number(count), { every });
  console.log(
    `${out}: ${a.total_snapshots} snapshots, ${a.total_violations} violations, ${fs.statSync(out).size} bytes, ${Date.now() - t0} ms`,
  );
}
