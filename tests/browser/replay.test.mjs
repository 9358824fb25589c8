// The replay page (replay/) in headless Debian Chromium, driven by playwright-core.
// Opens reports written by the Python demo (python -m threadline demo) and compares
// what the page shows with what Python says; times a 100,000-snapshot load.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from '../../replay/serve.mjs';
import { generateReport } from './gen-report.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = path.join(ROOT, 'test-output', 'browser');
const DATA = path.join(OUT, 'data');
const REPORTS = path.join(ROOT, 'threadline-reports');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PYTHON = fs.existsSync(path.join(ROOT, '.venv', 'bin', 'python'))
  ? path.join(ROOT, '.venv', 'bin', 'python')
  : process.env.PYTHON || 'python3';
const BIG = 100_000;
const HUGE = 1_000_000;

let server;
let base;
let context;
let userDataDir;
let bug; // a demo report with a mismatch: { file, json }
let clean; // a demo report without violations
let bigAnalysis;

function python(args) {
  const r = spawnSync(PYTHON, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) {
    throw new Error(`${PYTHON} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.error}`);
  }
  return r.stdout;
}

function readReports() {
  return fs
    .readdirSync(REPORTS)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ file: f, json: JSON.parse(fs.readFileSync(path.join(REPORTS, f), 'utf8')) }))
    .filter((r) => r.json.schema === 'threadline.report/1');
}

before(async () => {
  fs.mkdirSync(DATA, { recursive: true });
  if (!fs.existsSync(REPORTS) || !readReports().length) python(['-m', 'threadline', 'demo']);
  const reports = readReports();
  assert.ok(reports.length >= 2, `the Python demo wrote ${reports.length} reports into ${REPORTS}`);
  // The seed's bug reproduction if the demo has it, else the smallest report with a fork.
  const forked = reports
    .filter((r) => r.json.analysis.inconsistent_snapshots > 0 && r.json.snapshots.length >= 3)
    .sort((a, b) => a.json.snapshots.length - b.json.snapshots.length);
  bug = forked.find((r) => /inconsisten/.test(r.file)) || forked[0];
  clean = reports.find((r) => r.json.analysis.total_violations === 0 && r.json.snapshots.length > 0);
  assert.ok(bug, 'a demo report with a thread-id mismatch');
  assert.ok(clean, 'a demo report without violations');

  bigAnalysis = generateReport(path.join(DATA, 'big-100k.json'), BIG);
  const truncated = fs.readFileSync(path.join(REPORTS, bug.file), 'utf8');
  fs.writeFileSync(path.join(DATA, 'malformed.json'), truncated.slice(0, Math.floor(truncated.length / 2)));
  // A big file cut short: its head is fine (so the page previews it), the rest is not.
  const big = fs.readFileSync(path.join(DATA, 'big-100k.json'));
  fs.writeFileSync(path.join(DATA, 'big-truncated.json'), big.subarray(0, 8_000_000));
  fs.writeFileSync(
    path.join(DATA, 'wrong-schema.json'),
    JSON.stringify({ ...bug.json, schema: 'threadline.report/9' }),
  );

  ({ server, url: base } = await startServer({ root: ROOT, port: 0, mounts: { '/test-data/': DATA } }));
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'threadline-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    viewport: { width: 1440, height: 900 },
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(base).origin });
});

after(async () => {
  await context?.close();
  server?.close();
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
});

const demoUrl = (r) => `../threadline-reports/${encodeURIComponent(r.file)}`;

/** A new page on `query` + `hash`, waiting until the first rows are on screen. */
async function open(query = '', hash = '', { wait = true } = {}) {
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.problems = problems;
  await page.goto(base + query + hash);
  if (wait) await ready(page);
  return page;
}

async function ready(page, timeout = 20_000) {
  await page.waitForSelector('body[data-state="ready"] #rows .row[data-index]', { timeout });
}

async function settle(page) {
  await page.evaluate(() => window.__replay.settled());
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(OUT, `${name}.png`) });
}

/** Indexes and classes of the rows in the DOM (visible window). */
function domRows(page) {
  return page.$$eval('#rows .row[data-index]:not([hidden])', (rows) =>
    rows.map((r) => ({
      index: Number(r.dataset.index),
      mismatch: r.classList.contains('mismatch'),
      current: r.classList.contains('current'),
      differs: [...r.querySelectorAll('.tid.differs')].map((c) => c.dataset.field),
      user: r.querySelector('.c-user').textContent,
      text: r.textContent,
    })),
  );
}

async function current(page) {
  return page.evaluate(() => {
    const row = document.querySelector('#rows .row.current');
    const h = document.querySelector('#detail h3');
    return {
      hash: location.hash,
      row: row ? Number(row.dataset.index) : null,
      detail: h ? h.textContent : null,
    };
  });
}

function expectedDiffers(s) {
  const fields = ['thread_id_user_context', 'thread_id_manager_context', 'thread_id_isolation_key', 'thread_id_cleanup_lookup'];
  const first = fields.map((f) => s[f]).find((v) => v != null && v !== '');
  return fields.filter((f) => s[f] != null && s[f] !== '' && s[f] !== first);
}

test('a Python demo report: mismatch rows marked, analysis equals Python', async () => {
  const page = await open(`?report=${demoUrl(bug)}`);
  const a = bug.json.analysis;
  const shown = await page.$$eval('[data-field][data-value]', (els) =>
    Object.fromEntries(els.filter((e) => e.closest('#analysis')).map((e) => [e.dataset.field, e.dataset.value])),
  );
  for (const f of [
    'total_snapshots',
    'inconsistent_snapshots',
    'total_violations',
    'unique_thread_ids_found',
    'leaked_managers',
    'first_divergence',
    'last_consistent_before_divergence',
  ]) {
    assert.equal(shown[f], String(a[f]), `analysis ${f}`);
  }
  assert.equal(Number(shown.consistency_score), a.consistency_score);
  const scoreText = await page.textContent('#analysis .score .big');
  assert.equal(scoreText, `${a.consistency_score.toFixed(1)}%`);
  for (const [op, n] of Object.entries(a.operation_violations)) {
    const cell = await page.$(`#analysis [data-op-count="${op}"]`);
    assert.equal(await cell.textContent(), String(n), `violations of ${op}`);
  }
  // The Python-side analysis of the same file, computed now, agrees too.
  const py = JSON.parse(
    python([
      '-c',
      'import json,sys\nfrom threadline import Tracker\nt = Tracker.from_json(open(sys.argv[1]).read())\nprint(json.dumps(t.analyze()))',
      path.join(REPORTS, bug.file),
    ]),
  );
  for (const f of ['total_snapshots', 'total_violations', 'unique_thread_ids_found', 'inconsistent_snapshots', 'consistency_score']) {
    assert.equal(py[f], a[f], `python analyze() ${f}`);
  }

  // Jump to the first divergence: that row is marked, its disagreeing cells highlighted.
  await page.click('#nav-divergence');
  await page.waitForSelector(`#rows .row.current:not([hidden])[data-index="${a.first_divergence}"]`);
  const rows = await domRows(page);
  const byIndex = new Map(bug.json.snapshots.map((s) => [s.index, s]));
  assert.ok(rows.length > 0);
  for (const r of rows) {
    const s = byIndex.get(r.index);
    assert.equal(r.mismatch, s.mismatch, `row ${r.index} mismatch mark`);
    assert.deepEqual(r.differs, expectedDiffers(s), `row ${r.index} highlighted cells`);
  }
  const marked = rows.find((r) => r.index === a.first_divergence);
  assert.ok(marked.mismatch && marked.differs.length > 0, 'the first divergence is marked');
  assert.match(await page.textContent('#detail'), /MISMATCH DETECTED/);
  // The row's detail: its four thread ids and its metadata.
  const snap = byIndex.get(a.first_divergence);
  const detail = await page.textContent('#detail');
  for (const f of ['thread_id_user_context', 'thread_id_manager_context', 'thread_id_isolation_key', 'thread_id_cleanup_lookup']) {
    if (snap[f]) assert.ok(detail.includes(snap[f]), `detail shows ${f}`);
  }
  if (Object.keys(snap.metadata || {}).length) {
    assert.deepEqual(JSON.parse(await page.textContent('#detail pre.meta')), snap.metadata);
  }
  // Violations panel links to its snapshots.
  const links = await page.$$eval('#violations a.snap-link', (as) => as.map((x) => Number(x.dataset.snapshot)));
  const expectedLinks = bug.json.violations.filter((v) => v.snapshot_index != null).map((v) => v.snapshot_index);
  assert.deepEqual(links, expectedLinks);
  await shot(page, 'demo-report');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('"Copy text report" gives what python -m threadline report prints', async () => {
  const page = await open(`?report=${demoUrl(bug)}`);
  await page.click('#copy-text');
  await page.waitForSelector('#toast:not([hidden])');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  const printed = python(['-m', 'threadline', 'report', path.join(REPORTS, bug.file)]);
  assert.equal(copied, printed.replace(/\n$/, ''));
  assert.match(copied, /^=== THREAD_ID CONSISTENCY TRACKING REPORT ===/);
  await page.close();
});

test('keyboard stepping moves the selection and the #snapshot= address', async () => {
  const page = await open(`?report=${demoUrl(bug)}`);
  const idx = bug.json.snapshots.map((s) => s.index);
  assert.ok(idx.length >= 3, 'the demo report has at least 3 snapshots');
  await page.focus('#viewport');
  const expectAt = async (i) => {
    await page.waitForFunction((n) => location.hash === `#snapshot=${n}`, idx[i]);
    const c = await current(page);
    assert.equal(c.row, idx[i]);
    assert.match(c.detail, new RegExp(`^Snapshot ${idx[i]}\\b`));
  };
  await page.keyboard.press('ArrowRight');
  await expectAt(0);
  await page.keyboard.press('ArrowRight');
  await expectAt(1);
  await page.keyboard.press('j');
  await expectAt(2);
  await page.keyboard.press('k');
  await expectAt(1);
  await page.keyboard.press('ArrowLeft');
  await expectAt(0);
  await page.keyboard.press('ArrowLeft'); // stays on the first
  await expectAt(0);
  await page.keyboard.press('End');
  await expectAt(idx.length - 1);
  // d: first divergence; n: next violation after it (or wrap to the first).
  await page.keyboard.press('d');
  await page.waitForFunction((n) => location.hash === `#snapshot=${n}`, bug.json.analysis.first_divergence);
  const vsnaps = [...new Set(bug.json.violations.map((v) => v.snapshot_index).filter((x) => x != null))].sort((a, b) => a - b);
  const after = vsnaps.find((x) => x > bug.json.analysis.first_divergence) ?? vsnaps[0];
  await page.keyboard.press('n');
  await page.waitForFunction((n) => location.hash === `#snapshot=${n}`, after);
  // Play steps on its own; space pauses.
  await page.keyboard.press('Home');
  await expectAt(0);
  await page.keyboard.press(' ');
  await page.waitForFunction((n) => location.hash === `#snapshot=${n}`, idx[2], { timeout: 5000 });
  await page.keyboard.press(' ');
  const stopped = (await current(page)).hash;
  await page.waitForTimeout(1000);
  assert.equal((await current(page)).hash, stopped, 'paused');
  await page.close();
});

test('a navigation still waiting on the worker gives way to a newer one', async () => {
  const page = await open(`?report=${demoUrl(bug)}`);
  const target = bug.json.violations.map((v) => v.snapshot_index).find((x) => x != null && x > 0);
  assert.ok(target != null, 'the demo report has a violation after snapshot 0');
  await page.focus('#viewport');
  await page.keyboard.press('Home');
  await page.waitForFunction(() => location.hash === '#snapshot=0');
  // `n` asks the worker for the next violation; Home, pressed in the same task, comes
  // first. Home is the newer navigation, so the violation's answer must not move the
  // selection when it arrives. Every address the page writes is logged.
  await page.evaluate(() => {
    window.__addresses = [];
    const replace = history.replaceState.bind(history);
    history.replaceState = (state, title, url) => {
      window.__addresses.push(String(url));
      return replace(state, title, url);
    };
    for (const key of ['n', 'Home']) document.dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true }));
  });
  // The worker answers in a few ms; a second is ample for the stale answer to arrive.
  await page.waitForTimeout(1000);
  const written = await page.evaluate(() => window.__addresses);
  assert.ok(!written.some((u) => u.endsWith(`#snapshot=${target}`)), `addresses written: ${written.join(', ')}`);
  assert.equal(await page.evaluate(() => location.hash), '#snapshot=0');
  // A plain `n` still goes to the violation.
  await page.keyboard.press('n');
  await page.waitForFunction((n) => location.hash === `#snapshot=${n}`, target);
  assert.equal((await current(page)).row, target);
  await page.close();
});

test('a #snapshot=N link opens the same place', async () => {
  const n = bug.json.analysis.first_divergence;
  const page = await open(`?report=${demoUrl(bug)}`, `#snapshot=${n}`);
  await page.waitForSelector(`#rows .row.current:not([hidden])[data-index="${n}"]`);
  const c = await current(page);
  assert.equal(c.hash, `#snapshot=${n}`);
  assert.match(c.detail, new RegExp(`^Snapshot ${n}\\b`));
  // Editing the address moves too.
  const m = bug.json.snapshots[0].index;
  await page.evaluate((x) => (location.hash = `#snapshot=${x}`), m);
  await page.waitForSelector(`#rows .row.current:not([hidden])[data-index="${m}"]`);
  // A link into the big report scrolls far down and shows that row.
  const far = 77_777;
  const big = await open('?report=/test-data/big-100k.json', `#snapshot=${far}`);
  await big.waitForSelector(`#rows .row.current:not([hidden])[data-index="${far}"]`);
  assert.match((await current(big)).detail, new RegExp(`^Snapshot ${far}\\b`));
  await shot(big, 'big-report-link');
  await big.close();
  await page.close();
});

test('a snapshot timed past what a JS Date holds shows its raw time in the detail panel', async () => {
  // Clocks are accepted up to 2^53-1 ms; a Date holds ±8.64e15 ms.
  const { Tracker } = await import(path.join(ROOT, 'pkg', 'index.mjs'));
  const late = 2 ** 53 - 1;
  const t = new Tracker({ clock: () => late });
  t.takeSnapshot({ operation: 'late', userContextThreadId: 'thread_a', managerThreadId: 'thread_a' });
  fs.writeFileSync(path.join(DATA, 'late-clock.json'), t.toJSON());
  const page = await open('?report=/test-data/late-clock.json', '#snapshot=0');
  await page.waitForSelector('#rows .row.current:not([hidden])[data-index="0"]');
  assert.match((await current(page)).detail, /^Snapshot 0\b/);
  const time = await page.$eval('#detail dl.facts', (dl) => dl.textContent);
  assert.ok(time.includes(`(${late} ms)`), time);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('filters narrow the table', async () => {
  const page = await open(`?report=${demoUrl(bug)}`);
  const snaps = bug.json.snapshots;
  const total = snaps.length;
  const user = snaps.find((s) => s.mismatch).user_id;
  await page.fill('#f-user', user);
  await settle(page);
  const byUser = snaps.filter((s) => s.user_id === user);
  let rows = await domRows(page);
  assert.deepEqual(rows.map((r) => r.index), byUser.map((s) => s.index));
  assert.match(await page.textContent('#f-count'), new RegExp(`^${byUser.length} of ${total}`));

  // Thread id substring: the forked id's tail.
  // Thread id substring: the tail of the rarest thread id of the forked row.
  const forked = snaps.find((s) => s.mismatch);
  const ids = ['thread_id_user_context', 'thread_id_manager_context', 'thread_id_isolation_key', 'thread_id_cleanup_lookup'];
  const having = (needle) => snaps.filter((s) => ids.some((f) => s[f] != null && s[f].includes(needle)));
  const needle = ids
    .map((f) => forked[f])
    .filter((t) => t)
    .map((t) => t.slice(-6))
    .sort((x, y) => having(x).length - having(y).length)[0];
  await page.fill('#f-user', '');
  await page.fill('#f-thread', needle);
  await settle(page);
  const bySub = having(needle);
  rows = await domRows(page);
  assert.deepEqual(rows.map((r) => r.index), bySub.map((s) => s.index));
  assert.ok(bySub.length < total, 'the substring filter narrows');

  // Operation, exactly, together with the user: both must hold.
  const op = forked.operation;
  await page.fill('#f-thread', '');
  await page.fill('#f-op', op);
  await page.fill('#f-user', user);
  await settle(page);
  rows = await domRows(page);
  const byOp = snaps.filter((s) => s.operation === op && s.user_id === user);
  assert.deepEqual(rows.map((r) => r.index), byOp.map((s) => s.index));
  assert.ok(rows.every((r) => r.text.includes(op)));

  await page.click('#f-clear');
  await page.check('#f-mismatch');
  await settle(page);
  rows = await domRows(page);
  assert.deepEqual(rows.map((r) => r.index), snaps.filter((s) => s.mismatch).map((s) => s.index));
  assert.ok(rows.every((r) => r.mismatch));
  await shot(page, 'filter-mismatches');
  await page.close();

  // On the big report: the forked ids are exactly the violations.
  const big = await open('?report=/test-data/big-100k.json');
  await big.fill('#f-thread', 'different-thread');
  await settle(big);
  assert.match(await big.textContent('#f-count'), new RegExp(`^${bigAnalysis.total_violations.toLocaleString('en-US')} of 100,000`));
  rows = await domRows(big);
  assert.ok(rows.length > 0 && rows.every((r) => r.mismatch));
  await big.close();
});

test('compare two reports: deltas and changed operations', async () => {
  const page = await open(`?report=${demoUrl(bug)}&report=${demoUrl(clean)}`);
  await page.waitForSelector('#tabs .tab:nth-child(2)');
  await page.waitForSelector('#compare table.cmp');
  await page.$eval('#compare-panel', (e) => e.scrollIntoView());
  const b = bug.json.analysis;
  const a = clean.json.analysis;
  const d = await page.$$eval('#compare [data-field]', (els) => Object.fromEntries(els.map((e) => [e.dataset.field, Number(e.dataset.value)])));
  assert.equal(d.violations_delta, a.total_violations - b.total_violations);
  assert.equal(d.inconsistent_delta, a.inconsistent_snapshots - b.inconsistent_snapshots);
  assert.equal(d.unique_thread_ids_delta, a.unique_thread_ids_found - b.unique_thread_ids_found);
  assert.equal(d.leaked_managers_delta, a.leaked_managers - b.leaked_managers);
  assert.ok(Math.abs(d.score_delta - (a.consistency_score - b.consistency_score)) < 1e-9);
  const changed = await page.$$eval('#compare table.changed tbody tr', (trs) =>
    trs.map((tr) => [...tr.children].map((td) => td.textContent)),
  );
  const ops = new Set([...Object.keys(b.operation_violations), ...Object.keys(a.operation_violations)]);
  const expected = [...ops]
    .map((op) => [op, String(b.operation_violations[op] || 0), String(a.operation_violations[op] || 0)])
    .filter(([, x, y]) => x !== y);
  assert.deepEqual(changed, expected);
  await shot(page, 'compare');
  await page.close();
});

test('a malformed or wrong-schema file shows a message and keeps the open report', async () => {
  const page = await open(`?report=${demoUrl(bug)}`, `#snapshot=${bug.json.snapshots[1].index}`);
  await page.waitForSelector('#rows .row.current');
  const before = { rows: await domRows(page), tabs: await page.$$eval('#tabs .tab', (t) => t.map((x) => x.textContent)) };
  for (const [file, pattern] of [
    ['malformed.json', /Could not open malformed\.json: .+/],
    ['big-truncated.json', /Could not open big-truncated\.json: .+/],
    ['wrong-schema.json', /Could not open wrong-schema\.json: .*threadline\.report\/9/],
  ]) {
    await page.setInputFiles('#file-input', path.join(DATA, file));
    await page.waitForSelector('#message:not([hidden])');
    assert.match(await page.textContent('#message .text'), pattern);
    assert.deepEqual(await page.$$eval('#tabs .tab', (t) => t.map((x) => x.textContent)), before.tabs);
    assert.deepEqual(await domRows(page), before.rows);
    assert.equal((await current(page)).hash, `#snapshot=${bug.json.snapshots[1].index}`);
    await shot(page, `error-${file.replace('.json', '')}`);
    await page.click('#message .close');
  }
  // A 404 through ?report= is a message too, with nothing open.
  const missing = await open('?report=/test-data/no-such-report.json', '', { wait: false });
  await missing.waitForSelector('#message:not([hidden])');
  assert.match(await missing.textContent('#message .text'), /HTTP 404/);
  assert.equal(await missing.getAttribute('body', 'data-state'), 'empty');
  await missing.close();

  // Dropping a good file onto the page opens it beside the first.
  const text = fs.readFileSync(path.join(REPORTS, clean.file), 'utf8');
  await page.evaluate(
    ({ text, name }) => {
      const dt = new DataTransfer();
      dt.items.add(new File([text], name, { type: 'application/json' }));
      for (const type of ['dragenter', 'dragover', 'drop']) {
        window.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
      }
    },
    { text, name: clean.file },
  );
  await page.waitForSelector('#tabs .tab:nth-child(2).active');
  assert.equal(await page.textContent('#analysis .score .big'), `${clean.json.analysis.consistency_score.toFixed(1)}%`);
  await page.close();
});

test("a bounded tracker's report: retained window, exact totals, missing snapshots explained", async () => {
  const file = path.join(DATA, 'bounded.json');
  python([
    '-c',
    [
      'import sys',
      'from threadline import Tracker',
      't = Tracker(4)',
      'for i in range(10):',
      "    t.take_snapshot('step_%d' % i, user_id='u1', user_context_thread_id='thread_a', manager_thread_id='thread_b' if i == 7 else 'thread_a', now_ms=1000 + i)",
      "open(sys.argv[1], 'w').write(t.to_json(now_ms=2000))",
    ].join('\n'),
    file,
  ]);
  const page = await open('?report=/test-data/bounded.json', '#snapshot=7');
  await page.waitForSelector('#rows .row.current:not([hidden])[data-index="7"]');
  const rows = await domRows(page);
  assert.deepEqual(rows.map((r) => r.index), [6, 7, 8, 9]);
  assert.deepEqual(rows.map((r) => r.mismatch), [false, true, false, false]);
  assert.match(await page.textContent('#f-count'), /^4 snapshots \(of 10 recorded\)/);
  assert.equal(await page.getAttribute('#analysis [data-field="total_snapshots"]', 'data-value'), '10');
  assert.match(await page.textContent('#analysis'), /Bounded tracker: 4 of 10 snapshots retained/);
  await page.evaluate(() => (location.hash = '#snapshot=2'));
  await page.waitForSelector('#message:not([hidden])');
  assert.match(await page.textContent('#message .text'), /Snapshot 2 is not in bounded\.json: it holds snapshots 6–9/);
  assert.equal((await current(page)).row, 7, 'the selection stays');
  assert.equal((await current(page)).hash, '#snapshot=7', 'and so does the address');
  await page.click('#copy-text');
  await page.waitForSelector('#toast:not([hidden])');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied, python(['-m', 'threadline', 'report', file]).replace(/\n$/, ''));
  assert.match(copied, /\(6 earlier snapshots not retained\)/);
  await page.close();
});

test(`a ${BIG.toLocaleString('en-US')}-snapshot report shows its first screen from the file's head, before the whole file is parsed`, async () => {
  const page = await context.newPage();
  const t0 = Date.now();
  await page.goto(`${base}?report=/test-data/big-100k.json`);
  await page.waitForSelector('#rows .row[data-index="0"]', { timeout: 30_000 });
  const elapsed = Date.now() - t0;
  await shot(page, 'big-report-first-screen');
  // Then the core finishes parsing and checking the whole file.
  await page.waitForFunction(() => window.__replay.opened === 1, null, { timeout: 60_000 });
  const complete = Date.now() - t0;
  const t = await page.evaluate(() => window.__replay.timings[0]);
  console.log(
    `# 100k load: first screen ${elapsed} ms after navigation; whole file parsed and analysed by the core after ${complete} ms ` +
      `(worker: read ${t.worker.read.toFixed(0)} ms, parse+analyse ${t.worker.parse.toFixed(0)} ms; ${(t.bytes / 1e6).toFixed(1)} MB)`,
  );
  fs.writeFileSync(
    path.join(OUT, 'load-100k.json'),
    JSON.stringify({ first_screen_ms: elapsed, complete_ms: complete, page: t }, null, 2),
  );
  // An ordering, not a time budget (timings depend on the machine's load; they are
  // printed above and kept in load-100k.json): the first screen was drawn from the
  // file's head while the core was still reading the whole file.
  assert.equal(t.preview, true, 'the first screen is the preview from the head of the file');
  assert.ok(t.first_screen_ms < t.open_ms, `first screen at ${t.first_screen_ms} ms, whole file at ${t.open_ms} ms`);
  // The core's analysis agrees with the generator's.
  for (const f of ['total_snapshots', 'total_violations', 'inconsistent_snapshots', 'unique_thread_ids_found', 'leaked_managers', 'first_divergence']) {
    assert.equal(await page.getAttribute(`#analysis [data-field="${f}"]`, 'data-value'), String(bigAnalysis[f]), f);
  }
  await shot(page, 'big-report');

  // Only the visible rows are in the DOM, and scrolling far renders the right ones.
  const inDom = await page.$$eval('#rows .row:not([hidden])', (r) => r.length);
  assert.ok(inDom < 60, `${inDom} rows in the DOM`);
  await page.focus('#viewport');
  await page.keyboard.press('End');
  await page.waitForSelector(`#rows .row.current:not([hidden])[data-index="${BIG - 1}"]`);
  await page.$eval('#viewport', (v) => (v.scrollTop = v.scrollHeight / 2));
  await page.waitForFunction(() => {
    const idx = [...document.querySelectorAll('#rows .row[data-index]:not([hidden])')].map((r) => Number(r.dataset.index));
    return idx.length > 10 && idx[0] > 40_000 && idx[0] < 60_000 && idx.every((x, i) => i === 0 || x === idx[i - 1] + 1);
  });
  assert.ok((await page.$$eval('#rows .row:not([hidden])', (r) => r.length)) < 60);
  assert.equal(await page.textContent('#analysis [data-field="total_snapshots"]'), '100,000');
  await page.close();
});

test(`a ${HUGE.toLocaleString('en-US')}-snapshot report opens without running out of memory`, { timeout: 240_000 }, async () => {
  const file = path.join(DATA, 'huge-1m.json');
  const a = generateReport(file, HUGE, { every: 997, compact: true });
  const page = await context.newPage();
  let crashed = false;
  page.on('crash', () => (crashed = true));
  const t0 = Date.now();
  await page.goto(`${base}?report=/test-data/huge-1m.json`);
  await page.waitForSelector('#rows .row[data-index="0"]', { timeout: 60_000 });
  const first = Date.now() - t0;
  await page.waitForFunction(() => window.__replay.opened === 1, null, { timeout: 200_000 });
  const complete = Date.now() - t0;
  const mem = await page.evaluate(() => window.__replay.timings[0]);
  console.log(
    `# 1M load: first screen ${first} ms, whole file parsed by the core after ${complete} ms (${(fs.statSync(file).size / 1e6).toFixed(0)} MB file; worker parse ${mem.worker.parse.toFixed(0)} ms; wasm memory ${(mem.worker.wasm_memory_bytes / 2 ** 20).toFixed(0)} MiB)`,
  );
  assert.equal(await page.getAttribute('#analysis [data-field="total_snapshots"]', 'data-value'), String(HUGE));
  assert.equal(await page.getAttribute('#analysis [data-field="total_violations"]', 'data-value'), String(a.total_violations));
  await page.focus('#viewport');
  await page.keyboard.press('End');
  await page.waitForSelector(`#rows .row.current:not([hidden])[data-index="${HUGE - 1}"]`);
  await page.keyboard.press('n'); // wraps to the first violation
  await page.waitForFunction((n) => location.hash === `#snapshot=${n}`, a.first_divergence);
  await shot(page, 'huge-report');
  assert.equal(crashed, false);
  await page.close();
  fs.rmSync(file, { force: true });
});

test('make replay\'s server: prints its URL, serves the page and the reports on loopback only', async () => {
  const child = spawn(process.execPath, [path.join(ROOT, 'replay', 'serve.mjs'), '--port', '0'], { cwd: ROOT });
  try {
    const url = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        const m = /threadline replay: (http:\/\/127\.0\.0\.1:\d+\/replay\/)/.exec(out);
        if (m) resolve(m[1]);
      });
      child.on('exit', (code) => reject(new Error(`server exited (${code}): ${out}`)));
      setTimeout(() => reject(new Error(`no URL printed: ${out}`)), 10_000);
    });
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>threadline replay<\/title>/);
    const listing = await (await fetch(new URL('../threadline-reports/', url))).json();
    assert.deepEqual(listing.files, fs.readdirSync(REPORTS).filter((f) => f.endsWith('.json')).sort());
    const wasm = await fetch(new URL('../pkg/web/threadline_bg.wasm', url));
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    await wasm.arrayBuffer();
    for (const bad of ['../../etc/passwd', '..%2f..%2fetc%2fpasswd', '../src/lib.rs']) {
      const r = await fetch(url + bad);
      assert.ok(r.status === 403 || r.status === 404, `${bad}: ${r.status}`);
      await r.arrayBuffer();
    }
    assert.equal(new URL(url).hostname, '127.0.0.1');
  } finally {
    child.kill();
  }
});
