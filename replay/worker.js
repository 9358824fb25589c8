// The replay page's worker: reads report files, parses and analyses them with the
// threadline wasm package, and hands the page windows of rows. The page never holds a
// whole report, so a million-snapshot file stays off the main thread and out of the DOM.
// The wasm package loads while the first file is read: nothing here waits for it
// before a core call.
import { preview, PREVIEW_MIN_BYTES, FIRST_ROWS } from './head.js';

let Tracker;
let compareAnalyses;
let exportsOf = null;
const ready = import('../pkg/web/threadline.js').then(async (m) => {
  exportsOf = await m.default();
  ({ Tracker, compareAnalyses } = m);
});
ready.catch(() => {});

/** Size of the wasm module's linear memory (it only grows): the worker's big allocation. */
function wasmMemoryBytes() {
  return exportsOf && exportsOf.memory ? exportsOf.memory.buffer.byteLength : null;
}
const reports = new Map(); // rid -> state
let nextRid = 1;

// Reports bigger than the core's 256 MiB default are still fine to open here.
const LIMITS = { maxBytes: 1024 * 1024 * 1024 };
const VIOLATIONS_SENT = 2000;

/** When the tracker started: time offsets in the table count from there. */
function startedOf(tracker, text, head) {
  if (typeof tracker.startedMs === 'number') return tracker.startedMs;
  const m = /"started_at_ms"\s*:\s*(\d+)/.exec(text.slice(0, 4096));
  if (m) return Number(m[1]);
  return head.length ? head[0].timestamp_ms : 0;
}

function message(e) {
  if (e == null) return 'unknown error';
  if (typeof e === 'string') return e;
  return e.message || String(e);
}

/**
 * The whole text of a source. Bytes are decoded as they arrive; once a big file's head is
 * in (analysis and first rows), `onHead` gets a preview of it, long before the rest.
 */
async function readSource({ text, file, url, stream, size, head = true }, onHead) {
  if (typeof text === 'string') return text;
  if (stream) {
    // A body the page fetched (and, if big, is previewing itself).
    size = head ? size ?? Infinity : 0;
  } else if (file) {
    stream = file.stream();
    size = file.size;
  } else if (url) {
    let res;
    try {
      res = await fetch(url);
    } catch (e) {
      throw new Error(`cannot fetch ${url}: ${message(e)}`);
    }
    if (!res.ok) throw new Error(`cannot fetch ${url}: HTTP ${res.status} ${res.statusText}`);
    stream = res.body;
    const len = res.headers.get('Content-Length');
    size = len == null ? Infinity : Number(len);
  } else {
    throw new Error('nothing to open');
  }
  const reader = stream.getReader();
  const decoder = new TextDecoder('utf-8');
  const parts = [];
  let received = 0;
  let tryAt = size >= PREVIEW_MIN_BYTES ? 256 * 1024 : Infinity;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(decoder.decode(value, { stream: true }));
    received += value.byteLength;
    if (received >= tryAt) {
      const p = preview(parts.join(''));
      if (p) {
        onHead(p, received);
        tryAt = Infinity;
      } else {
        tryAt = received * 2;
      }
    }
  }
  parts.push(decoder.decode());
  return parts.length === 1 ? parts[0] : parts.join('');
}

function state(rid) {
  const r = reports.get(rid);
  if (!r) throw new Error(`report ${rid} is not open`);
  return r;
}

function indexAt(r, pos) {
  if (r.contiguous) return r.firstIndex + pos;
  return r.tracker.snapshotRange(pos, pos + 1)[0].index;
}

/** Position (0 = oldest retained) of the snapshot with this history index, or -1. */
function positionOf(r, index) {
  const n = r.retained;
  if (n === 0 || index < r.firstIndex || index > r.lastIndex) return -1;
  if (r.contiguous) return index - r.firstIndex;
  let lo = 0;
  let hi = n - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const at = indexAt(r, mid);
    if (at === index) return mid;
    if (at < index) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** View row of a position: itself without a filter, else its place in the filter. */
function rowOfPosition(r, pos) {
  if (pos < 0) return -1;
  if (!r.filtered) return pos;
  const f = r.filtered;
  let lo = 0;
  let hi = f.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (f[mid] === pos) return mid;
    if (f[mid] < pos) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

function viewCount(r) {
  return r.filtered ? r.filtered.length : r.retained;
}

function rows(r, start, end) {
  const count = viewCount(r);
  start = Math.max(0, Math.min(start, count));
  end = Math.max(start, Math.min(end, count));
  if (!r.filtered) return r.tracker.snapshotRange(start, end);
  // Runs of consecutive positions are fetched together.
  const out = [];
  let i = start;
  while (i < end) {
    let j = i + 1;
    while (j < end && r.filtered[j] === r.filtered[j - 1] + 1) j++;
    const part = r.tracker.snapshotRange(r.filtered[i], r.filtered[j - 1] + 1);
    for (const s of part) out.push(s);
    i = j;
  }
  return out;
}

const ops = {
  async open(msg, progress) {
    const t0 = performance.now();
    const text = await readSource(msg, (p, received) =>
      progress({ ...p, name: msg.name, head_bytes: received, head_ms: performance.now() - t0 }),
    );
    const t1 = performance.now();
    await ready;
    let tracker;
    try {
      tracker = Tracker.fromJSON(text, LIMITS);
    } catch (e) {
      throw new Error(message(e));
    }
    const t2 = performance.now();
    const analysis = tracker.analyze();
    const retained = tracker.retainedCount;
    const head = tracker.snapshotRange(0, Math.min(FIRST_ROWS, retained));
    const last = retained > 0 ? tracker.snapshotRange(retained - 1, retained)[0] : null;
    const r = {
      rid: nextRid++,
      name: msg.name,
      tracker,
      analysis,
      retained,
      firstIndex: head.length ? head[0].index : 0,
      lastIndex: last ? last.index : -1,
      startedAt: startedOf(tracker, text, head),
      filtered: null,
      violations: null,
    };
    r.contiguous = retained === 0 || r.lastIndex - r.firstIndex === retained - 1;
    reports.set(r.rid, r);
    const t3 = performance.now();
    return {
      rid: r.rid,
      name: r.name,
      bytes: text.length,
      analysis,
      retained,
      totalSnapshots: tracker.totalSnapshots,
      firstIndex: r.firstIndex,
      lastIndex: r.lastIndex,
      startedAt: r.startedAt,
      head,
      timings: { read: t1 - t0, parse: t2 - t1, rest: t3 - t2, wasm_memory_bytes: wasmMemoryBytes() },
    };
  },

  violations({ rid }) {
    const r = state(rid);
    if (!r.violations) {
      const list = r.tracker.violationList();
      const snaps = [];
      for (const v of list) {
        if (v.snapshot_index != null) snaps.push(v.snapshot_index);
      }
      snaps.sort((a, b) => a - b);
      r.violations = { list, snaps: Float64Array.from(snaps) };
    }
    const { list } = r.violations;
    return { total: list.length, list: list.slice(0, VIOLATIONS_SENT) };
  },

  rows({ rid, start, end }) {
    return rows(state(rid), start, end);
  },

  filter({ rid, filter }) {
    const r = state(rid);
    const f = {};
    if (filter.user_id) f.user_id = filter.user_id;
    if (filter.operation) f.operation = filter.operation;
    if (filter.thread_id) f.thread_id = filter.thread_id;
    if (filter.mismatches_only) f.mismatches_only = true;
    r.filtered = Object.keys(f).length ? r.tracker.filterPositions(f) : null;
    return { count: viewCount(r) };
  },

  /** View row of the snapshot with this index; -1 if filtered out or not retained. */
  locate({ rid, index }) {
    const r = state(rid);
    const pos = positionOf(r, index);
    return { row: rowOfPosition(r, pos), retained: pos >= 0 };
  },

  /** Snapshot index of the first violation on a snapshot after `after` (wrapping). */
  nextViolation({ rid, after }) {
    const r = state(rid);
    if (!r.violations) ops.violations({ rid });
    const s = r.violations.snaps;
    if (s.length === 0) return null;
    let lo = 0;
    let hi = s.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (s[mid] <= after) lo = mid + 1;
      else hi = mid;
    }
    return { index: lo < s.length ? s[lo] : s[0], wrapped: lo >= s.length };
  },

  reportText({ rid }) {
    return state(rid).tracker.reportText();
  },

  async compare({ before, after }) {
    await ready;
    return compareAnalyses(state(before).analysis, state(after).analysis);
  },

  close({ rid }) {
    const r = reports.get(rid);
    if (r) {
      r.tracker.free();
      reports.delete(rid);
    }
    return true;
  },
};

self.onmessage = async (ev) => {
  const { id, op, args } = ev.data;
  try {
    if (!ops[op]) throw new Error(`unknown operation ${op}`);
    const progress = (data) => self.postMessage({ id, progress: data });
    const result = await ops[op](args || {}, progress);
    self.postMessage({ id, ok: true, result });
  } catch (e) {
    self.postMessage({ id, ok: false, error: message(e) });
  }
};

self.postMessage({ id: -1, ok: true, result: 'started' });
ready.then(
  () => self.postMessage({ id: 0, ok: true, result: 'ready' }),
  (e) => self.postMessage({ id: 0, ok: false, error: `wasm failed to load: ${message(e)}` }),
);
