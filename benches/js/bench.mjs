// The wasm package in Node against the native core, in one run, on the same inputs (issue 6).
//
//   node benches/js/bench.mjs [--snapshots 1000000] [--reps 5] [--native PATH] [--json OUT]
//
// The native side is `examples/bench_native` (built by `make bench-js`): it writes the
// snapshot inputs, then replays them and prints its timings; this script replays the
// same inputs through the wasm package's Tracker and times the same calls.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const snapshots = Number(opt('snapshots', '1000000'));
const reps = Number(opt('reps', '5'));
const native = opt('native', join(root, 'target', 'release', 'examples', 'bench_native'));
const jsonOut = opt('json', null);

const { Tracker, version } = await import(join(root, 'pkg', 'index.mjs'));

const dir = mkdtempSync(join(tmpdir(), 'threadline-bench-'));
try {
  const inputsPath = join(dir, 'inputs.json');
  execFileSync(native, ['inputs', inputsPath, String(snapshots)], { stdio: 'inherit' });
  const inputs = JSON.parse(readFileSync(inputsPath, 'utf8'));

  // Native first, then wasm, then native again: a change of load shows as a gap
  // between the two native runs.
  const runNative = () =>
    JSON.parse(execFileSync(native, ['tracker', inputsPath, String(reps)], { encoding: 'utf8' }));
  const native1 = runNative();

  const started = inputs.started_ms;
  const tracker = new Tracker({ clock: () => started, startedMs: started });
  const users = inputs.users;
  const t0 = performance.now();
  for (let i = 0; i < inputs.snapshots; i++) {
    const j = i % users.length;
    const u = users[j];
    const input = {
      operation: 'manager_creation',
      userId: u.user_id,
      userContextThreadId: u.thread_id,
      websocketClientId: u.websocket_client_id,
      managerThreadId: u.thread_id,
      managerInstanceId: j,
      isolationKey: u.isolation_key,
    };
    if (i % 100 === 99) input.cleanupLookupThreadId = inputs.wrong_thread;
    tracker.takeSnapshot(input);
  }
  const fill = performance.now() - t0;
  // `f` may return its own time, when part of it is set-up.
  const median = (f) => {
    const times = [];
    for (let r = 0; r < reps; r++) {
      const s = performance.now();
      const own = f();
      times.push(typeof own === 'number' ? own : performance.now() - s);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)];
  };
  // A tracker's first analyze() hands every thread id and user to JS; later ones only
  // those added since (bindings/wasm/js/analysis.js). First calls are timed on fresh
  // trackers read back from this one's report (the same totals), one call each.
  const report = tracker.toJSON();
  const firstTimes = [];
  for (let r = 0; r < reps; r++) {
    const fresh = Tracker.fromJSON(report, { clock: () => started });
    const s = performance.now();
    fresh.analyze();
    firstTimes.push(performance.now() - s);
    fresh.free();
  }
  firstTimes.sort((a, b) => a - b);
  const firstMs = firstTimes[Math.floor(firstTimes.length / 2)];
  let analysis = tracker.analyze();
  const analyzeMs = median(() => {
    analysis = tracker.analyze();
  });
  // What V8 alone takes, with no wasm at all, for the part of a first call no
  // implementation can skip when its users are new to V8: a plain object with as many
  // user keys as the analysis has, none of them interned yet, each holding a new array
  // of its thread ids (BENCHMARKS.md, the wasm table). The wasm first calls above can
  // read below it: their users' keys may still be interned from the previous call.
  const byUser = Object.entries(analysis.thread_ids_by_user);
  let round = 0;
  const floorMs = median(() => {
    round += 1;
    // Sliced from one text, as the wasm package's keys are (bindings/wasm/js/analysis.js).
    const named = byUser.map(([user]) => `${user}#${round}`);
    const text = named.join('');
    let at = 0;
    const keys = named.map((k) => text.substring(at, (at += k.length)));
    const s = performance.now();
    const o = {};
    for (let i = 0; i < keys.length; i++) o[keys[i]] = byUser[i][1].slice();
    return performance.now() - s;
  });
  // The same object with the analysis's own user keys, which V8 already holds (the
  // analyses above interned them): V8's least cost for this object, whatever makes it.
  const knownMs = median(() => {
    const s = performance.now();
    const o = {};
    for (let i = 0; i < byUser.length; i++) o[byUser[i][0]] = byUser[i][1].slice();
    return performance.now() - s;
  });
  const reportMs = median(() => tracker.reportText());
  const native2 = runNative();
  if (analysis.inconsistent_snapshots !== native1.inconsistent) {
    throw new Error(`wasm and native disagree: ${analysis.inconsistent_snapshots} vs ${native1.inconsistent}`);
  }
  const nat = (k) => Math.min(native1[k], native2[k]);
  const rows = [
    ['take_snapshot (context, manager, key)', (fill * 1e6) / snapshots, nat('take_snapshot_ns'), 'ns'],
    [`analyze, ${snapshots} snapshots, a tracker's first call`, firstMs, nat('analyze_ms'), 'ms', 3],
    [`analyze, ${snapshots} snapshots, later calls`, analyzeMs, nat('analyze_ms'), 'ms', 3],
    [`JS alone, no wasm: an object of ${byUser.length} new user keys and their arrays`, floorMs, nat('analyze_ms'), 'ms'],
    [`JS alone, no wasm: the same object with keys V8 already holds`, knownMs, nat('analyze_ms'), 'ms'],
    [`report text, ${snapshots} snapshots`, reportMs, nat('report_text_ms'), 'ms'],
  ];
  console.log(
    `\nthreadline wasm ${version()} (Node ${process.version}) vs native; ${cpus().length} CPUs, ` +
      `${cpus()[0]?.model ?? 'unknown'}; ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; ` +
      `load average ${loadavg()[0].toFixed(2)}; median of ${reps}; native = the better of two runs ` +
      `(${native1.analyze_ms.toFixed(1)} / ${native2.analyze_ms.toFixed(1)} ms analyse)`,
  );
  console.log('| operation | wasm in Node | native | wasm / native | target |');
  console.log('|---|---|---|---|---|');
  const out = [];
  for (const [name, w, n, unit, target] of rows) {
    const ratio = w / n;
    const verdict = target ? `within ${target}x: ${ratio <= target ? 'met' : 'MISSED'}` : '';
    console.log(`| ${name} | ${w.toFixed(unit === 'ns' ? 0 : 1)} ${unit} | ${n.toFixed(unit === 'ns' ? 0 : 1)} ${unit} | ${ratio.toFixed(2)}x | ${verdict} |`);
    out.push({ operation: name, wasm: w, native: n, unit, ratio, target: target ?? null });
  }
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ node: process.version, rows: out, native1, native2 }, null, 1));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
