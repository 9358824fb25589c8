// The head of a report file, read without the core: schema, start time, analysis and the
// first snapshots. Used by the page and the worker to show a big file at once.
// Files at least this big (bytes) get a first screen read straight from the file's head
// while the rest arrives and the core parses and checks the whole of it.
export const PREVIEW_MIN_BYTES = 4_000_000;
const SCHEMA = 'threadline.report/1';
const THREAD_FIELDS = [
  'thread_id_user_context',
  'thread_id_manager_context',
  'thread_id_isolation_key',
  'thread_id_cleanup_lookup',
];
export const FIRST_ROWS = 128;

// ------------------------------------------------------------ head preview
// The core writes a report as schema, started_at_ms, generated_at_ms, capacity, analysis,
// snapshots, violations (and last, from a bounded tracker that dropped some, the
// lookup_snapshots). Reading up to the first snapshots takes milliseconds, so the page
// can show the analysis and the first rows of a big file while the core parses it all.
// Nothing here is trusted: the core's parse replaces it, or its error removes it.

function skipWs(t, i) {
  for (;;) {
    const c = t.charCodeAt(i);
    if (c === 32 || c === 10 || c === 13 || c === 9) i++;
    else return i;
  }
}

function endOfString(t, i) {
  for (i++; i < t.length; ) {
    const c = t.charCodeAt(i);
    if (c === 92) i += 2;
    else if (c === 34) return i + 1;
    else i++;
  }
  return -1;
}

function endOfValue(t, i) {
  const c = t.charCodeAt(i);
  if (c === 34) return endOfString(t, i);
  if (c === 123 || c === 91) {
    let depth = 0;
    while (i < t.length) {
      const d = t.charCodeAt(i);
      if (d === 34) {
        i = endOfString(t, i);
        if (i < 0) return -1;
        continue;
      }
      if (d === 123 || d === 91) depth++;
      else if ((d === 125 || d === 93) && --depth === 0) return i + 1;
      i++;
    }
    return -1;
  }
  while (i < t.length) {
    const d = t.charCodeAt(i);
    if (d === 44 || d === 125 || d === 93 || d === 32 || d === 10 || d === 13 || d === 9) break;
    i++;
  }
  return i;
}

function mismatchOf(s) {
  let first = null;
  for (const f of THREAD_FIELDS) {
    const v = s[f];
    if (v == null || v === '') continue;
    if (first == null) first = v;
    else if (v !== first) return true;
  }
  return false;
}

/** Schema, start time, analysis and the first snapshots, or null if the head is unusual. */
export function preview(text, rows = FIRST_ROWS) {
  try {
    let i = skipWs(text, 0);
    if (text[i] !== '{') return null;
    i++;
    const out = {};
    for (;;) {
      i = skipWs(text, i);
      if (text[i] !== '"') return null;
      const ke = endOfString(text, i);
      if (ke < 0) return null;
      const key = JSON.parse(text.slice(i, ke));
      i = skipWs(text, ke);
      if (text[i] !== ':') return null;
      i = skipWs(text, i + 1);
      if (key === 'snapshots') {
        if (text[i] !== '[') return null;
        i = skipWs(text, i + 1);
        const head = [];
        while (head.length < rows && text[i] === '{') {
          const e = endOfValue(text, i);
          if (e < 0) return null;
          const s = JSON.parse(text.slice(i, e));
          s.mismatch = mismatchOf(s);
          if (s.metadata == null) s.metadata = {};
          head.push(s);
          i = skipWs(text, e);
          if (text[i] === ',') i = skipWs(text, i + 1);
        }
        out.head = head;
        break;
      }
      const e = endOfValue(text, i);
      if (e < 0) return null;
      if (key === 'schema') {
        out.schema = JSON.parse(text.slice(i, e));
        if (out.schema !== SCHEMA) return null;
      } else if (key === 'started_at_ms' || key === 'analysis') {
        out[key] = JSON.parse(text.slice(i, e));
      }
      i = skipWs(text, e);
      if (text[i] === ',') i++;
    }
    const a = out.analysis;
    if (out.schema !== SCHEMA || !a || typeof a.retained_snapshots !== 'number') return null;
    if (out.head.length !== Math.min(rows, a.retained_snapshots)) return null;
    return {
      analysis: a,
      retained: a.retained_snapshots,
      totalSnapshots: a.total_snapshots,
      firstIndex: out.head.length ? out.head[0].index : 0,
      lastIndex: out.head.length ? out.head[0].index + a.retained_snapshots - 1 : -1,
      startedAt: out.started_at_ms ?? (out.head.length ? out.head[0].timestamp_ms : 0),
      head: out.head,
    };
  } catch {
    return null;
  }
}

