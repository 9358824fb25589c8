// threadline replay: the page. Reports live in the worker (worker.js); this file keeps
// only what is on screen: a window of rows, the analysis and the first violations.

import { preview, PREVIEW_MIN_BYTES } from './head.js';

const ROW_H = 30; // px, must match .row height in style.css
const CHUNK = 128; // rows fetched from the worker at a time
const MAX_CHUNKS = 48; // row chunks kept per report
const MAX_SCROLL_PX = 8_000_000; // beyond this the scrollbar is scaled
const PLAY_MS = 450;
const USERS_SHOWN = 12; // users listed in the analysis panel
const ALL_USERS_SHOWN = 500; // under "All users"
const THREAD_FIELDS = [
  ['thread_id_user_context', 'user context'],
  ['thread_id_manager_context', 'manager context'],
  ['thread_id_isolation_key', 'isolation key'],
  ['thread_id_cleanup_lookup', 'cleanup lookup'],
];

const $ = (sel) => document.querySelector(sel);
const el = {
  tabs: $('#tabs'),
  file: $('#file-input'),
  serverReports: $('#server-reports'),
  copy: $('#copy-text'),
  message: $('#message'),
  toast: $('#toast'),
  busy: $('#busy'),
  empty: $('#empty'),
  main: $('#main'),
  fUser: $('#f-user'),
  fOp: $('#f-op'),
  fThread: $('#f-thread'),
  fMismatch: $('#f-mismatch'),
  fClear: $('#f-clear'),
  fCount: $('#f-count'),
  usersList: $('#users-list'),
  opsList: $('#ops-list'),
  prev: $('#nav-prev'),
  play: $('#nav-play'),
  next: $('#nav-next'),
  divergence: $('#nav-divergence'),
  violation: $('#nav-violation'),
  position: $('#position'),
  viewport: $('#viewport'),
  spacer: $('#spacer'),
  rows: $('#rows'),
  detail: $('#detail'),
  analysis: $('#analysis'),
  violations: $('#violations'),
  violationsCount: $('#violations-count'),
  cmpBefore: $('#cmp-before'),
  cmpAfter: $('#cmp-after'),
  compare: $('#compare'),
  drop: $('#drop'),
};

// What tests and curious people can read: timings of each open.
const replay = (window.__replay = { timings: [], opened: 0, errors: [], app_start_ms: performance.now() });

// ---------------------------------------------------------------- worker calls

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const pending = new Map();
let callId = 1;
let workerReady;
const workerReadyP = new Promise((res, rej) => (workerReady = { res, rej }));
worker.onmessage = (ev) => {
  const { id, ok, result, error } = ev.data;
  if (id === -1) {
    replay.worker_started_ms = performance.now();
    return;
  }
  if (id === 0) {
    replay.wasm_ready_ms = performance.now();
    if (ok) workerReady.res();
    else {
      workerReady.rej(new Error(error));
      showMessage(error);
    }
    return;
  }
  const p = pending.get(id);
  if (!p) return;
  if (ev.data.progress !== undefined) {
    p.progress?.(ev.data.progress);
    return;
  }
  pending.delete(id);
  if (ok) p.resolve(result);
  else p.reject(new Error(error));
};
worker.onerror = (ev) => {
  const text = `The report worker failed: ${ev.message || 'could not start (is pkg/web built? run make wasm)'}`;
  showMessage(text);
  workerReady.rej(new Error(text));
  for (const p of pending.values()) p.reject(new Error(text));
  pending.clear();
};

function call(op, args, progress, transfer = []) {
  const id = callId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, progress });
    worker.postMessage({ id, op, args }, transfer);
  });
}

/**
 * What the worker is to read. A URL is fetched here, so the download starts while the
 * worker is still starting, and its body goes to the worker as a stream; a big one is
 * teed, and the page reads the head of its copy to show the file at once.
 */
async function source(src, onHead) {
  if (!src.url) return { args: src, transfer: [] };
  let res;
  try {
    res = await fetch(src.url);
  } catch (e) {
    throw new Error(`cannot fetch ${src.url}: ${e.message}`);
  }
  if (!res.ok) throw new Error(`cannot fetch ${src.url}: HTTP ${res.status} ${res.statusText}`);
  const len = res.headers.get('Content-Length');
  const size = len == null ? null : Number(len);
  let body = res.body;
  if (size == null || size >= PREVIEW_MIN_BYTES) {
    const [forWorker, forHead] = body.tee();
    body = forWorker;
    readHead(forHead, onHead);
  }
  return { args: { name: src.name, stream: body, size, head: false }, transfer: [body] };
}

/** Reads a stream until its head makes a preview (or 32 MB without one), then stops. */
async function readHead(stream, onHead) {
  const reader = stream.getReader();
  const decoder = new TextDecoder('utf-8');
  let text = '';
  let received = 0;
  let tryAt = 256 * 1024;
  try {
    while (received < 32 * 1024 * 1024) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      received += value.byteLength;
      if (received >= tryAt) {
        const p = preview(text);
        if (p) {
          onHead({ ...p, head_bytes: received });
          break;
        }
        tryAt = received * 2;
      }
    }
  } catch {
    // The worker's copy reports any read error.
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** A call about report `r`, once the worker holds it (a previewed report is still parsing). */
function rcall(r, op, args = {}) {
  return r.ridP.then((rid) => call(op, { ...args, rid }));
}

// ---------------------------------------------------------------- state

/** @type {Array<object>} open reports, in tab order */
const reports = [];
let active = null;
let playTimer = null;

let uids = 0;
function newReport(info, provisional = false) {
  const settle = {};
  const ridP = new Promise((resolve, reject) => Object.assign(settle, { resolve, reject }));
  ridP.catch(() => {});
  if (!provisional) settle.resolve(info.rid);
  const r = {
    ...info,
    uid: ++uids,
    ridP,
    settle,
    verifying: provisional,
    count: info.retained,
    gen: 0, // bumped when the filter changes: older row answers are dropped
    cache: new Map(),
    wanted: new Set(),
    selRow: -1,
    selIndex: null,
    selSnap: null,
    filter: { user_id: '', operation: '', thread_id: '', mismatches_only: false },
    violations: null,
    violationsTotal: 0,
    scrollRow: 0,
    ops: new Set(Object.keys(info.analysis.operation_violations || {})),
  };
  r.cache.set(0, info.head);
  for (const s of info.head) r.ops.add(s.operation);
  return r;
}

// ---------------------------------------------------------------- formatting

const nf = new Intl.NumberFormat('en-US');
const num = (n) => (n == null ? '—' : nf.format(n));
const pct = (x) => `${x.toFixed(1)}%`;
function signed(n, digits = 0) {
  const s = digits ? Math.abs(n).toFixed(digits) : nf.format(Math.abs(n));
  return n > 0 ? `+${s}` : n < 0 ? `−${s}` : digits ? (0).toFixed(digits) : '0';
}
function offset(r, ts) {
  const d = (ts - r.startedAt) / 1000;
  return `${d < 0 ? '−' : '+'}${Math.abs(d).toFixed(3)}s`;
}
/** Unix ms as an ISO date, or the number itself past what a JS Date holds (±8.64e15 ms). */
function isoTime(ms) {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? `${ms} ms` : d.toISOString();
}
function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}
/** A stable hue per thread id, so forks stand out by colour as well as by highlight. */
function hue(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0) % 360;
}
function firstThread(s) {
  for (const [f] of THREAD_FIELDS) if (s[f]) return s[f];
  return null;
}

// ---------------------------------------------------------------- messages

function showMessage(text) {
  el.message.querySelector('.text').textContent = text;
  el.message.hidden = false;
  replay.errors.push(text);
}
el.message.querySelector('.close').onclick = () => (el.message.hidden = true);

let toastTimer = null;
function toast(text) {
  el.toast.textContent = text;
  el.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.toast.hidden = true), 2500);
}
let busyCount = 0;
function busy(text) {
  busyCount++;
  el.busy.querySelector('.text').textContent = text;
  el.busy.hidden = false;
  return () => {
    if (--busyCount === 0) el.busy.hidden = true;
  };
}

// ---------------------------------------------------------------- opening

/**
 * Opens sources one after another ({name, file} | {name, url}). A source that fails
 * shows a message and changes nothing; the first that opens becomes the active tab.
 * A big file shows its head (analysis and first rows, read from the file) while the core
 * parses and checks all of it; if the core refuses it, that preview goes away again.
 */
async function openAll(sources) {
  let first = null;
  for (const src of sources) {
    const t0 = performance.now();
    const done = busy(`Opening ${src.name}…`);
    const previous = active;
    const timing = { name: src.name };
    let r = null;
    let previewShown = null;
    const show = async (info, provisional) => {
      r = newReport(info, provisional);
      reports.push(r);
      const a0 = performance.now();
      if (!first) {
        first = r;
        activate_(r, { fromOpen: true });
      }
      renderTabs();
      renderComparePickers();
      timing.render_ms = performance.now() - a0;
      await nextPaint();
      timing.first_screen_ms = performance.now() - t0;
      timing.first_screen_since_navigation_ms = performance.now();
      timing.preview = provisional;
    };
    let opened = false;
    const onHead = (p) => {
      if (opened || previewShown) return;
      timing.head_bytes = p.head_bytes;
      timing.head_received_ms = performance.now() - t0;
      previewShown = show({ ...p, name: src.name }, true);
      el.busy.querySelector('.text').textContent = `Checking ${src.name} (${num(p.totalSnapshots)} snapshots)…`;
      document.body.dataset.pending = Number(document.body.dataset.pending || 0) + 1;
    };
    try {
      const { args, transfer } = await source(src, onHead);
      const info = await call('open', args, onHead, transfer).finally(() => (opened = true));
      if (previewShown) {
        await previewShown;
        confirm(r, info);
      } else {
        await show(info, false);
      }
      Object.assign(timing, {
        snapshots: info.totalSnapshots,
        bytes: info.bytes,
        open_ms: performance.now() - t0,
        worker: info.timings,
      });
      replay.timings.push(timing);
      replay.opened++;
      loadViolations(r);
    } catch (e) {
      if (r) withdraw(r, previous);
      showMessage(`Could not open ${src.name}: ${e.message}`);
    } finally {
      if (previewShown) {
        document.body.dataset.pending = Math.max(0, Number(document.body.dataset.pending || 0) - 1);
      }
      done();
    }
  }
  return first;
}

/** The core has parsed a previewed report: its own answers replace the file's. */
function confirm(r, info) {
  r.rid = info.rid;
  r.settle.resolve(info.rid);
  Object.assign(r, {
    analysis: info.analysis,
    retained: info.retained,
    totalSnapshots: info.totalSnapshots,
    firstIndex: info.firstIndex,
    lastIndex: info.lastIndex,
    startedAt: info.startedAt,
    verifying: false,
  });
  r.count = info.retained; // a filter set meanwhile applies once the worker answers it
  r.cache.set(0, info.head);
  renderTabs();
  if (r === active) {
    for (const d of pool) d.dataset.key = '';
    layoutSpacer();
    renderAnalysis();
    renderCount();
    renderRows();
    renderPosition();
  }
}

/** A previewed report the core refused: it goes, and what was open before comes back. */
function withdraw(r, previous) {
  r.settle.reject(new Error('the report could not be opened'));
  const i = reports.indexOf(r);
  if (i >= 0) reports.splice(i, 1);
  if (active === r) {
    active = null;
    if (previous && reports.includes(previous)) activate_(previous);
    else if (reports.length) activate_(reports[0]);
    else showEmpty();
  }
  renderTabs();
  renderComparePickers();
}

function nextPaint() {
  return new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(res)));
}

async function loadViolations(r) {
  try {
    const { total, list } = await rcall(r, 'violations');
    r.violations = list;
    r.violationsTotal = total;
    if (r === active) {
      renderViolations();
      renderDetail();
    }
  } catch (e) {
    showMessage(`Could not list violations of ${r.name}: ${e.message}`);
  }
}

el.file.addEventListener('change', () => {
  const files = [...el.file.files];
  el.file.value = '';
  openAll(files.map((file) => ({ name: file.name, file })));
});

// Drag and drop anywhere on the page.
let dragDepth = 0;
const hasFiles = (ev) => [...(ev.dataTransfer?.types || [])].includes('Files');
window.addEventListener('dragenter', (ev) => {
  if (!hasFiles(ev)) return;
  ev.preventDefault();
  dragDepth++;
  el.drop.hidden = false;
});
window.addEventListener('dragover', (ev) => {
  if (!hasFiles(ev)) return;
  ev.preventDefault();
  ev.dataTransfer.dropEffect = 'copy';
});
window.addEventListener('dragleave', () => {
  if (--dragDepth <= 0) {
    dragDepth = 0;
    el.drop.hidden = true;
  }
});
window.addEventListener('drop', (ev) => {
  ev.preventDefault();
  dragDepth = 0;
  el.drop.hidden = true;
  const files = [...(ev.dataTransfer?.files || [])];
  if (files.length) openAll(files.map((file) => ({ name: file.name, file })));
});

// Reports on the serving host (make replay serves ./threadline-reports/).
async function listServerReports() {
  try {
    const res = await fetch(new URL('../threadline-reports/', location.href));
    if (!res.ok) return;
    const { files } = await res.json();
    if (!files?.length) return;
    for (const f of files) {
      const o = document.createElement('option');
      o.value = new URL(`../threadline-reports/${encodeURIComponent(f)}`, location.href).href;
      o.textContent = f;
      el.serverReports.append(o);
    }
    el.serverReports.hidden = false;
  } catch {
    // Served from somewhere without a listing: the menu stays hidden.
  }
}
el.serverReports.addEventListener('change', () => {
  const url = el.serverReports.value;
  const name = el.serverReports.selectedOptions[0]?.textContent;
  el.serverReports.value = '';
  if (url) openAll([{ name, url }]);
});

// ---------------------------------------------------------------- tabs

async function activate_(r, { fromOpen = false } = {}) {
  if (active && active !== r) active.scrollRow = firstVisibleRow();
  stopPlay();
  active = r;
  document.body.dataset.state = 'ready';
  el.empty.hidden = true;
  el.main.hidden = false;
  el.copy.disabled = false;
  el.fUser.value = r.filter.user_id;
  el.fOp.value = r.filter.operation;
  el.fThread.value = r.filter.thread_id;
  el.fMismatch.checked = r.filter.mismatches_only;
  fillDatalists();
  renderTabs();
  renderAnalysis();
  renderViolations();
  renderCount();
  layoutSpacer();
  scrollToRow(r.scrollRow, 'top');
  renderRows();
  renderDetail();
  renderPosition();
  const want = fromOpen ? hashSnapshot() : null;
  if (want != null) await selectIndex(want, { scroll: 'center' });
  else writeHash();
}

function closeReport(r) {
  const i = reports.indexOf(r);
  if (i < 0) return;
  reports.splice(i, 1);
  r.ridP.then((rid) => call('close', { rid }), () => {});
  if (active === r) {
    active = null;
    if (reports.length) activate_(reports[Math.min(i, reports.length - 1)]);
    else showEmpty();
  }
  renderTabs();
  renderComparePickers();
}

function showEmpty() {
  stopPlay();
  document.body.dataset.state = 'empty';
  el.main.hidden = true;
  el.empty.hidden = false;
  el.copy.disabled = true;
  history.replaceState(null, '', location.pathname + location.search);
}

function renderTabs() {
  el.tabs.replaceChildren(
    ...reports.map((r) => {
      const a = r.analysis;
      const tab = document.createElement('div');
      tab.className = 'tab' + (r === active ? ' active' : '');
      tab.setAttribute('role', 'tab');
      tab.setAttribute('aria-selected', r === active);
      tab.tabIndex = 0;
      tab.title = `${r.name}: ${num(a.total_snapshots)} snapshots, score ${pct(a.consistency_score)}`;
      const ok = a.inconsistent_snapshots === 0;
      tab.innerHTML = `<span class="dot ${r.verifying ? 'wait' : ok ? 'ok' : 'bad'}"></span><span class="name">${esc(r.name)}</span>${r.verifying ? '<span class="verifying" title="The core is still parsing and checking this file">checking…</span>' : ''}<button class="x" aria-label="Close ${esc(r.name)}">×</button>`;
      tab.onclick = (ev) => {
        if (ev.target.closest('.x')) closeReport(r);
        else if (r !== active) activate_(r);
      };
      return tab;
    }),
  );
}

// ---------------------------------------------------------------- virtual table

function geometry() {
  const count = active ? active.count : 0;
  const total = count * ROW_H;
  const spacerH = Math.min(total, MAX_SCROLL_PX);
  const viewH = el.viewport.clientHeight;
  return { count, total, spacerH, viewH, scaled: total > spacerH };
}

function layoutSpacer() {
  el.spacer.style.height = `${geometry().spacerH}px`;
}

/** Virtual pixel offset of the top of the viewport. */
function virtualTop() {
  const g = geometry();
  const st = el.viewport.scrollTop;
  if (!g.scaled) return st;
  const maxScroll = Math.max(1, g.spacerH - g.viewH);
  return (st / maxScroll) * Math.max(0, g.total - g.viewH);
}

function firstVisibleRow() {
  return Math.floor(virtualTop() / ROW_H);
}

function scrollToRow(row, where = 'nearest') {
  const g = geometry();
  if (row < 0 || g.count === 0) return;
  const top = virtualTop();
  const rowTop = row * ROW_H;
  let target;
  if (where === 'top') target = rowTop;
  else if (where === 'center') target = rowTop - (g.viewH - ROW_H) / 2;
  else if (rowTop < top) target = rowTop;
  else if (rowTop + ROW_H > top + g.viewH) target = rowTop + ROW_H - g.viewH;
  else return;
  target = Math.max(0, Math.min(target, g.total - g.viewH));
  if (g.scaled) {
    const maxScroll = Math.max(1, g.spacerH - g.viewH);
    el.viewport.scrollTop = (target / Math.max(1, g.total - g.viewH)) * maxScroll;
  } else {
    el.viewport.scrollTop = target;
  }
}

function rowData(r, i) {
  const chunk = r.cache.get(Math.floor(i / CHUNK));
  return chunk ? chunk[i % CHUNK] : undefined;
}

function want(r, chunkNo) {
  if (r.cache.has(chunkNo) || r.wanted.has(chunkNo)) return;
  r.wanted.add(chunkNo);
  const gen = r.gen;
  rcall(r, 'rows', { start: chunkNo * CHUNK, end: (chunkNo + 1) * CHUNK })
    .then((rows) => {
      if (r.gen !== gen) return;
      r.wanted.delete(chunkNo);
      r.cache.set(chunkNo, rows);
      for (const s of rows) if (!r.ops.has(s.operation)) r.ops.add(s.operation);
      if (r.cache.size > MAX_CHUNKS) {
        // Forget the oldest chunk that is not on screen.
        const onScreen = Math.floor(firstVisibleRow() / CHUNK);
        for (const k of r.cache.keys()) {
          if (Math.abs(k - onScreen) > 1) {
            r.cache.delete(k);
            break;
          }
        }
      }
      if (r === active) {
        scheduleRender();
        if (r.selRow >= 0 && Math.floor(r.selRow / CHUNK) === chunkNo) refreshSelection();
      }
    })
    .catch((e) => {
      r.wanted.delete(chunkNo);
      if (!reports.includes(r)) return;
      showMessage(`Could not read rows: ${e.message}`);
    });
}

function ensureRow(r, i) {
  const s = rowData(r, i);
  if (s) return Promise.resolve(s);
  return rcall(r, 'rows', { start: i, end: i + 1 }).then((rows) => rows[0]);
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderRows();
  });
}

const pool = [];
function rowEl(i) {
  while (pool.length <= i) {
    const d = document.createElement('div');
    d.setAttribute('role', 'row');
    el.rows.append(d);
    pool.push(d);
  }
  return pool[i];
}

function cellsHtml(r, s) {
  const first = firstThread(s);
  let h = `<span class="c-idx">${s.mismatch ? '<i class="warn" title="thread ids disagree">⚠</i>' : ''}${s.index}</span>`;
  h += `<span class="c-time">${offset(r, s.timestamp_ms)}</span>`;
  h += `<span class="c-op" title="${esc(s.operation)}">${esc(s.operation)}</span>`;
  h += `<span class="c-user" title="${esc(s.user_id ?? '')}">${s.user_id == null ? '<span class="none">—</span>' : esc(s.user_id)}</span>`;
  for (const [f, label] of THREAD_FIELDS) {
    const v = s[f];
    if (v == null || v === '') {
      h += `<span class="tid none" data-field="${f}">—</span>`;
    } else {
      const differs = first != null && v !== first;
      h += `<span class="tid${differs ? ' differs' : ''}" data-field="${f}" title="${label}: ${esc(v)}${differs ? ' (differs from ' + esc(first) + ')' : ''}"><i class="sw" style="--h:${hue(v)}"></i><span class="t">\u200e${esc(v)}\u200e</span></span>`;
    }
  }
  return h;
}

function renderRows() {
  const r = active;
  if (!r) return;
  const g = geometry();
  const vt = virtualTop();
  const first = Math.max(0, Math.floor(vt / ROW_H));
  const shift = vt - first * ROW_H;
  const n = Math.min(g.count - first, Math.ceil(g.viewH / ROW_H) + 1);
  el.rows.style.transform = `translateY(${el.viewport.scrollTop - shift}px)`;
  for (let k = 0; k < n; k++) {
    const i = first + k;
    want(r, Math.floor(i / CHUNK));
    const s = rowData(r, i);
    const d = rowEl(k);
    d.hidden = false;
    const key = s ? `${r.uid}:${r.gen}:${s.index}` : `${r.uid}:${r.gen}:?${i}`;
    if (d.dataset.key !== key) {
      d.dataset.key = key;
      d.dataset.row = i;
      if (s) {
        d.className = 'row' + (s.mismatch ? ' mismatch' : '');
        d.dataset.index = s.index;
        d.innerHTML = cellsHtml(r, s);
      } else {
        d.className = 'row loading';
        delete d.dataset.index;
        d.innerHTML = `<span class="c-idx">…</span>`;
      }
    }
    d.classList.toggle('current', i === r.selRow);
    d.setAttribute('aria-selected', i === r.selRow);
  }
  for (let k = n; k < pool.length; k++) {
    const d = pool[k];
    if (d.hidden) continue;
    d.hidden = true;
    d.className = 'row';
    d.dataset.key = '';
    delete d.dataset.index;
    delete d.dataset.row;
  }
  // Prefetch one chunk past the edges so stepping and scrolling do not wait.
  if (n > 0) {
    want(r, Math.floor(Math.min(g.count - 1, first + n + CHUNK / 2) / CHUNK));
    want(r, Math.floor(Math.max(0, first - CHUNK / 2) / CHUNK));
  }
}

el.viewport.addEventListener('scroll', scheduleRender, { passive: true });
new ResizeObserver(() => {
  if (active) {
    layoutSpacer();
    scheduleRender();
  }
}).observe(el.viewport);

el.rows.addEventListener('click', (ev) => {
  const d = ev.target.closest('.row');
  if (d && d.dataset.row != null) pickRow(Number(d.dataset.row));
});

// ---------------------------------------------------------------- selection

// Every navigation the user starts takes a new number. One still waiting on the worker
// gives way when a newer one has started: `n` then Home before the worker answers lands
// on the first row, not on the violation.
let navigation = 0;

/** Selects row `i` as a navigation of its own (a click, a key, a step). */
function pickRow(i) {
  navigation++;
  return selectRow(i);
}

async function selectRow(i, { scroll = 'nearest' } = {}) {
  const r = active;
  if (!r || r.count === 0) return;
  i = Math.max(0, Math.min(i, r.count - 1));
  r.selRow = i;
  scrollToRow(i, scroll);
  renderRows();
  const gen = r.gen;
  const s = await ensureRow(r, i);
  if (r !== active || r.selRow !== i || r.gen !== gen || !s) return;
  r.selIndex = s.index;
  r.selSnap = s;
  writeHash();
  renderDetail();
  renderPosition();
  // The detail may have changed the table's height: keep the selection in view.
  scrollToRow(i, 'nearest');
  renderRows();
}

function refreshSelection() {
  const r = active;
  if (r && r.selRow >= 0) {
    const s = rowData(r, r.selRow);
    if (s && s.index !== r.selIndex) selectRow(r.selRow);
  }
}

/** Selects the snapshot with this history index, clearing filters that hide it. */
async function selectIndex(index, { scroll = 'center', nav = ++navigation } = {}) {
  const r = active;
  if (!r) return false;
  let { row, retained } = await rcall(r, 'locate', { index });
  if (nav !== navigation) return false;
  if (!retained) {
    showMessage(
      r.retained
        ? `Snapshot ${index} is not in ${r.name}: it holds snapshots ${r.firstIndex}–${r.lastIndex}.`
        : `${r.name} holds no snapshots.`,
    );
    writeHash(); // the address goes back to what is selected
    return false;
  }
  if (row < 0) {
    await setFilter({ user_id: '', operation: '', thread_id: '', mismatches_only: false });
    toast('Filters cleared to show that snapshot');
    ({ row } = await rcall(r, 'locate', { index }));
    if (nav !== navigation) return false;
  }
  if (row >= 0) await selectRow(row, { scroll });
  return row >= 0;
}

function step(delta) {
  const r = active;
  if (!r || r.count === 0) return;
  const from = r.selRow < 0 ? (delta > 0 ? -1 : r.count) : r.selRow;
  const to = Math.max(0, Math.min(r.count - 1, from + delta));
  if (to !== r.selRow) pickRow(to);
  return to !== from;
}

function hashSnapshot() {
  const m = /(?:^#|&)snapshot=(\d+)/.exec(location.hash);
  return m ? Number(m[1]) : null;
}

function writeHash() {
  const r = active;
  const h = r && r.selIndex != null ? `#snapshot=${r.selIndex}` : '';
  if (location.hash !== h) history.replaceState(null, '', location.pathname + location.search + h);
}

window.addEventListener('hashchange', () => {
  const n = hashSnapshot();
  if (n != null && active && n !== active.selIndex) selectIndex(n);
});

function renderPosition() {
  const r = active;
  if (!r) return;
  const where = r.selRow >= 0 ? `row ${num(r.selRow + 1)} of ${num(r.count)}` : `${num(r.count)} rows`;
  el.position.innerHTML = r.selIndex != null ? `snapshot <b>${r.selIndex}</b> · ${where}` : where;
  el.divergence.disabled = r.analysis.first_divergence == null;
  el.violation.disabled = r.analysis.total_violations === 0;
}

// ---------------------------------------------------------------- play

function stopPlay() {
  if (playTimer) clearInterval(playTimer);
  playTimer = null;
  el.play.textContent = '▶ Play';
  el.play.classList.remove('on');
}
function togglePlay() {
  if (playTimer) return stopPlay();
  if (!active || active.count === 0) return;
  if (active.selRow >= active.count - 1) pickRow(0);
  el.play.textContent = '❚❚ Pause';
  el.play.classList.add('on');
  playTimer = setInterval(() => {
    if (!active || active.selRow >= active.count - 1) stopPlay();
    else step(1);
  }, PLAY_MS);
}

async function firstDivergence() {
  const r = active;
  if (r && r.analysis.first_divergence != null) await selectIndex(r.analysis.first_divergence);
}

async function nextViolation() {
  const r = active;
  if (!r) return;
  const nav = ++navigation;
  const res = await rcall(r, 'nextViolation', { after: r.selIndex ?? -1 });
  if (nav !== navigation) return;
  if (!res) {
    toast('No violation is tied to a retained snapshot');
    return;
  }
  if (res.wrapped) toast('Wrapped to the first violation');
  await selectIndex(res.index, { nav });
}

el.prev.onclick = () => step(-1);
el.next.onclick = () => step(1);
el.play.onclick = togglePlay;
el.divergence.onclick = firstDivergence;
el.violation.onclick = nextViolation;

document.addEventListener('keydown', (ev) => {
  if (!active || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const t = ev.target;
  if (t.closest && t.closest('input, select, textarea')) return;
  const keys = {
    ArrowRight: () => step(1),
    ArrowLeft: () => step(-1),
    j: () => step(1),
    k: () => step(-1),
    ' ': togglePlay,
    Home: () => pickRow(0),
    End: () => pickRow(active.count - 1),
    d: firstDivergence,
    n: nextViolation,
  };
  const f = keys[ev.key];
  if (!f) return;
  if (t.tagName === 'BUTTON' && (ev.key === ' ' || ev.key === 'Enter')) return;
  ev.preventDefault();
  f();
});

// ---------------------------------------------------------------- filters

async function setFilter(f) {
  const r = active;
  if (!r) return;
  r.filter = { ...f };
  el.fUser.value = f.user_id;
  el.fOp.value = f.operation;
  el.fThread.value = f.thread_id;
  el.fMismatch.checked = f.mismatches_only;
  const { count } = await rcall(r, 'filter', { filter: f });
  if (r !== active) return;
  r.gen++;
  r.cache = new Map();
  r.wanted = new Set();
  r.count = count;
  layoutSpacer();
  // Keep the selected snapshot selected when it survives the filter.
  let row = -1;
  if (r.selIndex != null) ({ row } = await rcall(r, 'locate', { index: r.selIndex }));
  r.selRow = row;
  if (row < 0) {
    r.selIndex = null;
    r.selSnap = null;
    writeHash();
  }
  scrollToRow(Math.max(row, 0), row >= 0 ? 'center' : 'top');
  for (const d of pool) d.dataset.key = '';
  renderRows();
  renderCount();
  renderPosition();
  renderDetail();
}

function readFilterInputs() {
  return {
    user_id: el.fUser.value.trim(),
    operation: el.fOp.value.trim(),
    thread_id: el.fThread.value.trim(),
    mismatches_only: el.fMismatch.checked,
  };
}

let filterTimer = null;
let filterChain = Promise.resolve();
function filterSoon(delay = 150) {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => {
    const f = readFilterInputs();
    filterChain = filterChain.then(() => setFilter(f)).catch((e) => showMessage(e.message));
  }, delay);
}
for (const input of [el.fUser, el.fOp, el.fThread]) input.addEventListener('input', () => filterSoon());
el.fMismatch.addEventListener('change', () => filterSoon(0));
el.fClear.onclick = () => {
  el.fUser.value = el.fOp.value = el.fThread.value = '';
  el.fMismatch.checked = false;
  filterSoon(0);
};
// Expose: a promise that settles when pending filter work is done (used by tests).
replay.settled = async () => {
  const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
  await sleep(200);
  await filterChain;
  while (active && (active.wanted.size || renderQueued)) await sleep(20);
  await nextPaint();
};

function renderCount() {
  const r = active;
  const filtered = r.count !== r.retained;
  el.fCount.innerHTML = filtered
    ? `<b>${num(r.count)}</b> of ${num(r.retained)} snapshots`
    : `${num(r.retained)} snapshots${r.retained < r.totalSnapshots ? ` (of ${num(r.totalSnapshots)} recorded)` : ''}`;
  el.fCount.classList.toggle('filtered', filtered);
}

function fillDatalists() {
  const r = active;
  const users = Object.keys(r.analysis.thread_ids_by_user || {}).slice(0, 500);
  el.usersList.replaceChildren(...users.map((u) => Object.assign(document.createElement('option'), { value: u })));
  el.opsList.replaceChildren(
    ...[...r.ops].slice(0, 500).map((o) => Object.assign(document.createElement('option'), { value: o })),
  );
}
el.fOp.addEventListener('focus', () => active && fillDatalists());

// ---------------------------------------------------------------- detail

function renderDetail() {
  const r = active;
  const s = r && r.selSnap && r.selRow >= 0 ? r.selSnap : null;
  if (!s) {
    el.detail.innerHTML = `<p class="muted">Select a snapshot (click a row, or step with the keys below) to see its thread ids, metadata and violations.</p>
      <div class="keys">
        <span><kbd>→</kbd><kbd>j</kbd> next snapshot</span>
        <span><kbd>←</kbd><kbd>k</kbd> previous snapshot</span>
        <span><kbd>space</kbd> play / pause</span>
        <span><kbd>d</kbd> first divergence</span>
        <span><kbd>n</kbd> next violation</span>
        <span><kbd>Home</kbd><kbd>End</kbd> first / last</span>
      </div>
      <p class="muted small">The address ends in <code>#snapshot=N</code> once a snapshot is selected: share it to open the same place.</p>`;
    return;
  }
  const first = firstThread(s);
  const threads = THREAD_FIELDS.map(([f, label]) => {
    const v = s[f];
    const differs = v != null && v !== '' && first != null && v !== first;
    return `<tr class="${differs ? 'differs' : ''}"><th>${label}</th><td>${v == null ? '<span class="none">None</span>' : `<i class="sw" style="--h:${hue(v)}"></i><code>${esc(v)}</code>`}${differs ? ' <span class="tag bad">differs</span>' : ''}</td></tr>`;
  }).join('');
  const meta = s.metadata && Object.keys(s.metadata).length ? `<pre class="meta">${esc(JSON.stringify(s.metadata, null, 2))}</pre>` : '<p class="muted">No metadata.</p>';
  const vs = (r.violations || []).filter((v) => v.snapshot_index === s.index);
  const vhtml = vs.length
    ? `<ul class="vlist">${vs.map((v) => `<li><span class="sev ${esc(v.severity.toLowerCase())}">${esc(v.severity)}</span> ${esc(v.type)} <span class="muted">#${v.index}</span></li>`).join('')}</ul>`
    : '';
  const field = (k, v) => `<div><dt>${k}</dt><dd>${v == null ? '<span class="none">—</span>' : v}</dd></div>`;
  el.detail.innerHTML = `
    <header>
      <h3>Snapshot ${s.index} <span class="op">${esc(s.operation)}</span></h3>
      ${s.mismatch ? '<span class="tag bad">⚠ MISMATCH DETECTED</span>' : '<span class="tag ok">consistent</span>'}
    </header>
    <div class="detail-body">
      <div>
        <table class="threads">${threads}</table>
        ${vhtml}
        <dl class="facts">
          ${field('time', `${offset(r, s.timestamp_ms)} <span class="muted">(${isoTime(s.timestamp_ms)})</span>`)}
          ${field('user', s.user_id == null ? null : `<code>${esc(s.user_id)}</code>`)}
          ${field('websocket client', s.websocket_client_id == null ? null : `<code>${esc(s.websocket_client_id)}</code>`)}
          ${field('manager instance', s.manager_instance_id)}
          ${field('isolation key', s.isolation_key == null ? null : `<code>${esc(s.isolation_key)}</code>`)}
        </dl>
      </div>
      <div><h4>metadata</h4>${meta}</div>
    </div>`;
}

// ---------------------------------------------------------------- side panels

function snapLink(index, text = `#${index}`) {
  return index == null ? '<span class="none">—</span>' : `<a href="#snapshot=${index}" class="snap-link" data-snapshot="${index}">${text}</a>`;
}

function renderAnalysis() {
  const r = active;
  const a = r.analysis;
  const score = a.consistency_score;
  const cls = score >= 100 ? 'ok' : score >= 90 ? 'warn' : 'bad';
  const metric = (field, label, value, shown = num(value)) =>
    `<div class="metric"><dt>${label}</dt><dd data-field="${field}" data-value="${value}">${shown}</dd></div>`;
  const byUser = Object.entries(a.thread_ids_by_user || {});
  const multi = new Set(a.users_with_multiple_thread_ids || []);
  // Users whose thread id forked come first; a few are shown, the rest on request.
  const forked = byUser.filter(([u]) => multi.has(u));
  const shownUsers = (forked.length ? forked : byUser).slice(0, USERS_SHOWN);
  const userRows = userList(shownUsers, multi);
  const opv = Object.entries(a.operation_violations || {});
  const maxOp = Math.max(1, ...opv.map(([, n]) => n));
  const opRows = opv
    .map(
      ([op, n]) =>
        `<tr><td><button class="linkish" data-op="${esc(op)}" title="Filter by this operation">${esc(op)}</button></td><td class="n" data-op-count="${esc(op)}">${num(n)}</td><td class="bar"><i style="width:${(n / maxOp) * 100}%"></i></td></tr>`,
    )
    .join('');
  el.analysis.innerHTML = `
    <div class="score ${cls}">
      <div class="big" data-field="consistency_score" data-value="${score}">${pct(score)}</div>
      <div class="label">consistency score</div>
    </div>
    <dl class="metrics">
      ${metric('total_snapshots', 'snapshots', a.total_snapshots)}
      ${metric('inconsistent_snapshots', 'inconsistent', a.inconsistent_snapshots)}
      ${metric('total_violations', 'violations', a.total_violations)}
      ${metric('unique_thread_ids_found', 'unique thread ids', a.unique_thread_ids_found)}
      ${metric('leaked_managers', 'leaked managers', a.leaked_managers, `${num(a.leaked_managers)} <span class="muted">(${num(a.managers_created)} created, ${num(a.managers_cleaned_up)} cleaned)</span>`)}
      ${metric('first_divergence', 'first divergence', a.first_divergence, snapLink(a.first_divergence))}
      ${metric('last_consistent_before_divergence', 'last consistent before', a.last_consistent_before_divergence, snapLink(a.last_consistent_before_divergence))}
      ${metric('analysis_duration', 'tracking duration', a.analysis_duration, `${a.analysis_duration.toFixed(2)}s`)}
    </dl>
    ${r.verifying ? `<p class="note">Read from the file's header while the core parses and checks all ${num(a.retained_snapshots)} snapshots; it replaces these numbers with its own when done.</p>` : ''}
    ${a.retained_snapshots < a.total_snapshots ? `<p class="note">Bounded tracker: ${num(a.retained_snapshots)} of ${num(a.total_snapshots)} snapshots retained; counts cover all of them.</p>` : ''}
    <h3>Violations by operation</h3>
    ${opRows ? `<table class="ops">${opRows}</table>` : '<p class="muted">None.</p>'}
    <h3>Thread ids by user <span class="muted">(${num(byUser.length)} users, ${num(multi.size)} with several)</span></h3>
    ${
      byUser.length
        ? `<ul class="users">${userRows}</ul>${
            forked.length > USERS_SHOWN || byUser.length > shownUsers.length
              ? `<details class="all-users"><summary>All ${num(byUser.length)} users</summary><ul class="users scroll"></ul></details>`
              : ''
          }`
        : '<p class="muted">No user recorded.</p>'
    }`;
  const all = el.analysis.querySelector('details.all-users');
  if (all) {
    all.addEventListener('toggle', () => {
      const ul = all.querySelector('ul');
      if (all.open && !ul.childElementCount) {
        ul.innerHTML =
          userList(byUser.slice(0, ALL_USERS_SHOWN), multi) +
          (byUser.length > ALL_USERS_SHOWN ? `<li class="muted">… ${num(byUser.length - ALL_USERS_SHOWN)} more (filter by user to see them)</li>` : '');
      }
    });
  }
}

function userList(entries, multi) {
  return entries
    .map(
      ([u, ids]) =>
        `<li class="${multi.has(u) ? 'multi' : ''}"><button class="linkish" data-user="${esc(u)}" title="Filter by this user">${esc(u)}</button> <span class="badge ${ids.length > 1 ? 'bad' : ''}">${ids.length}</span><ul>${ids
          .slice(0, 8)
          .map((t) => `<li><i class="sw" style="--h:${hue(t)}"></i><code>${esc(t)}</code></li>`)
          .join('')}${ids.length > 8 ? `<li class="muted">… ${ids.length - 8} more</li>` : ''}</ul></li>`,
    )
    .join('');
}

el.analysis.addEventListener('click', (ev) => {
  const b = ev.target.closest('button.linkish');
  if (!b || !active) return;
  const f = { ...active.filter };
  if (b.dataset.user != null) f.user_id = b.dataset.user;
  if (b.dataset.op != null) f.operation = b.dataset.op;
  filterChain = filterChain.then(() => setFilter(f));
});

function renderViolations() {
  const r = active;
  if (!r.violations) {
    el.violationsCount.textContent = num(r.analysis.total_violations);
    el.violations.innerHTML = '<li class="muted">Loading…</li>';
    return;
  }
  el.violationsCount.textContent = num(r.analysis.total_violations);
  el.violationsCount.className = 'badge' + (r.analysis.total_violations ? ' bad' : ' ok');
  if (!r.violations.length) {
    el.violations.innerHTML = '<li class="muted">No violations. Every snapshot agrees.</li>';
    return;
  }
  const items = r.violations.map((v) => {
    const sum = v.thread_id_summary;
    const ids = sum
      ? Object.values(sum)
          .filter((x) => x != null)
          .filter((x, i, all) => all.indexOf(x) === i)
          .map((t) => `<i class="sw" style="--h:${hue(t)}" title="${esc(t)}"></i>`)
          .join('')
      : '';
    return `<li data-violation="${v.index}">
      <div class="vhead"><span class="sev ${esc(String(v.severity).toLowerCase())}">${esc(v.severity)}</span> <span class="vtype">${esc(v.type)}</span> ${snapLink(v.snapshot_index, `snapshot ${v.snapshot_index}`)}</div>
      <div class="vop">${esc(v.operation ?? 'unknown')} ${ids}</div></li>`;
  });
  const more = r.violationsTotal > r.violations.length ? `<li class="muted">… ${num(r.violationsTotal - r.violations.length)} more (use “Next violation”)</li>` : '';
  el.violations.innerHTML = items.join('') + more;
}

document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a.snap-link');
  if (!a) return;
  ev.preventDefault();
  selectIndex(Number(a.dataset.snapshot));
});

// ---------------------------------------------------------------- compare

function renderComparePickers() {
  const opts = (sel, want) => {
    const cur = sel.value;
    sel.replaceChildren(
      ...reports.map((r) => Object.assign(document.createElement('option'), { value: r.uid, textContent: r.name })),
    );
    if (reports.some((r) => String(r.uid) === cur)) sel.value = cur;
    else if (want) sel.value = want.uid;
  };
  opts(el.cmpBefore, reports[0]);
  opts(el.cmpAfter, reports[reports.length - 1]);
  // Two reports open and both pickers on the same one: compare with the newest instead.
  if (reports.length >= 2 && el.cmpBefore.value === el.cmpAfter.value) {
    const other = [...reports].reverse().find((r) => String(r.uid) !== el.cmpBefore.value);
    el.cmpAfter.value = other.uid;
  }
  renderCompare();
}

let compareSeq = 0;
async function renderCompare() {
  const seq = ++compareSeq;
  const b = reports.find((r) => String(r.uid) === el.cmpBefore.value);
  const a = reports.find((r) => String(r.uid) === el.cmpAfter.value);
  if (!b || !a || reports.length < 2) {
    el.compare.innerHTML = '<p class="muted">Open two reports (before and after a fix) to compare them.</p>';
    return;
  }
  let c;
  try {
    c = await Promise.all([b.ridP, a.ridP]).then(([before, after]) => call('compare', { before, after }));
  } catch (e) {
    if (seq === compareSeq) el.compare.innerHTML = `<p class="error">${esc(e.message)}</p>`;
    return;
  }
  if (seq !== compareSeq) return; // the pickers or the open reports changed meanwhile
  // Lower is better for everything but the score.
  const tone = (d, higherIsBetter = false) => (d === 0 ? '' : (d > 0) === higherIsBetter ? 'good' : 'worse');
  const row = (field, label, before, after, delta, shown, higherIsBetter) =>
    `<tr><th>${label}</th><td>${before}</td><td>${after}</td><td class="delta ${tone(delta, higherIsBetter)}" data-field="${field}" data-value="${delta}">${shown}</td></tr>`;
  const ch = c.changed_operations || [];
  el.compare.innerHTML = `
    <table class="cmp">
      <thead><tr><th></th><th>before</th><th>after</th><th>Δ</th></tr></thead>
      <tbody>
      ${row('score_delta', 'score', pct(c.score_before), pct(c.score_after), c.score_delta, `${signed(c.score_delta, 1)} pt`, true)}
      ${row('violations_delta', 'violations', num(c.violations_before), num(c.violations_after), c.violations_delta, signed(c.violations_delta))}
      ${row('inconsistent_delta', 'inconsistent', num(b.analysis.inconsistent_snapshots), num(a.analysis.inconsistent_snapshots), c.inconsistent_delta, signed(c.inconsistent_delta))}
      ${row('unique_thread_ids_delta', 'unique thread ids', num(b.analysis.unique_thread_ids_found), num(a.analysis.unique_thread_ids_found), c.unique_thread_ids_delta, signed(c.unique_thread_ids_delta))}
      ${row('leaked_managers_delta', 'leaked managers', num(b.analysis.leaked_managers), num(a.analysis.leaked_managers), c.leaked_managers_delta, signed(c.leaked_managers_delta))}
      </tbody>
    </table>
    <h3>Operations that changed</h3>
    ${
      ch.length
        ? `<table class="changed"><thead><tr><th>operation</th><th>before</th><th>after</th></tr></thead><tbody>${ch
            .map(
              (o) =>
                `<tr data-operation="${esc(o.operation)}"><td>${esc(o.operation)}</td><td>${num(o.before)}</td><td class="${o.after < o.before ? 'good' : 'worse'}">${num(o.after)}</td></tr>`,
            )
            .join('')}</tbody></table>`
        : '<p class="muted">No operation’s violation count changed.</p>'
    }`;
}
el.cmpBefore.onchange = renderCompare;
el.cmpAfter.onchange = renderCompare;

// ---------------------------------------------------------------- copy text report

async function copyText() {
  const r = active;
  if (!r) return;
  const done = busy('Building the text report…');
  try {
    const text = await rcall(r, 'reportText');
    replay.lastCopied = text;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const ta = document.createElement('textarea');
      ta.value = text;
      ta.style.position = 'fixed';
      ta.style.opacity = '0';
      document.body.append(ta);
      ta.select();
      const ok = document.execCommand('copy');
      ta.remove();
      if (!ok) throw new Error('the browser refused clipboard access');
    }
    toast(`Copied the text report (${num(text.split('\n').length)} lines)`);
  } catch (e) {
    showMessage(`Could not copy the text report: ${e.message}`);
  } finally {
    done();
  }
}
el.copy.onclick = copyText;

// ---------------------------------------------------------------- start

function startFromUrl() {
  const params = new URLSearchParams(location.search);
  const urls = params.getAll('report').filter(Boolean);
  if (!urls.length) return;
  const sources = urls.map((u) => {
    const url = new URL(u, location.href).href;
    const name = decodeURIComponent(url.split('/').pop() || url);
    return { name, url };
  });
  openAll(sources);
}

listServerReports();
startFromUrl();
