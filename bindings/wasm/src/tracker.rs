//! `Tracker`: the consistency tracker, and `compareAnalyses`.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;

use threadline::tracker::{
    Analysis, AnalysisLists, Comparison, ReportLimits, SnapshotFilter, SnapshotInput,
};
use threadline::RegistryEvent;

use crate::args::{
    self, argument, core, read_metadata, to_js, to_json_text, JsClock, JsResult, Options,
};

#[wasm_bindgen(module = "/js/analysis.js")]
extern "C" {
    /// An empty `{ threads, users }`: the strings JS holds for one tracker's analyses.
    #[wasm_bindgen(js_name = newAnalysisStrings)]
    fn new_analysis_strings() -> JsValue;

    /// Builds the analysis object from `AnalysisParts` and the rest of it as JSON.
    #[wasm_bindgen(js_name = assembleAnalysis)]
    fn assemble_analysis(
        strings: &JsValue,
        head: &str,
        threads: &str,
        users: &str,
        lengths: &[u32],
        shape: &[u32],
    ) -> JsValue;
}

/// The thread ids and users whose JS strings a tracker's earlier analyses made. A
/// tracker's lists only grow, so the next analysis hands over only the strings added
/// since, and a user seen before is an object key JS has already interned.
#[derive(Default)]
pub struct AnalysisStrings {
    js: Option<JsValue>,
    threads: usize,
    users: usize,
}

/// An analysis's lists in the form `js/analysis.js` reads: the thread ids and the users
/// new since the last analysis, each kind one after another in one text (lent straight
/// from the core's lists, no copy), their lengths in bytes (JS converts them to UTF-16
/// units when a text is not ASCII), and the lists' shape, where a user's threads are
/// positions among the thread ids. Two texts and two arrays cross to JS, not a string
/// (or a JSON string) per id.
struct AnalysisParts<'a> {
    threads: &'a str,
    users: &'a str,
    lengths: Vec<u32>,
    shape: Vec<u32>,
}

impl<'a> AnalysisParts<'a> {
    /// Shape: [new thread ids, new users, users, then for each user its thread count and
    /// its threads' positions, users with multiple thread ids, then their positions].
    fn write(lists: AnalysisLists<'a>, sent: &AnalysisStrings) -> Self {
        let threads = lists.thread_ids().iter_from(sent.threads);
        let users = lists.users().iter_from(sent.users);
        let by_user = lists.threads_by_user();
        let mut parts = AnalysisParts {
            threads: threads.as_str(),
            users: users.as_str(),
            lengths: Vec::with_capacity(threads.len() + users.len()),
            shape: Vec::with_capacity(4 + 2 * by_user.len()),
        };
        // usize is u32 in wasm32: every count and position fits.
        parts.shape.extend([
            threads.len() as u32,
            users.len() as u32,
            by_user.len() as u32,
        ]);
        for s in threads.chain(users) {
            parts.lengths.push(s.len() as u32);
        }
        for threads in by_user {
            parts.shape.push(threads.len() as u32);
            parts.shape.extend(threads.iter().map(|&at| at as u32));
        }
        let count_at = parts.shape.len();
        parts.shape.push(0);
        for position in lists.users_with_multiple_thread_ids() {
            parts.shape.push(position as u32);
        }
        parts.shape[count_at] = (parts.shape.len() - count_at - 1) as u32;
        parts
    }
}

/// A core tracker and its clock, shared by a `Tracker` and the `ThreadGuard` that made it.
pub struct Shared {
    pub core: threadline::Tracker,
    pub clock: JsClock,
    pub analysis_strings: AnalysisStrings,
}

impl Shared {
    pub fn new(core: threadline::Tracker, clock: JsClock) -> SharedTracker {
        Rc::new(RefCell::new(Shared {
            core,
            clock,
            analysis_strings: AnalysisStrings::default(),
        }))
    }
}

pub type SharedTracker = Rc<RefCell<Shared>>;

fn busy() -> JsValue {
    argument("the tracker is in use by a call that has not returned (a clock or getter called back into it)")
}

/// Snapshots, violations, analysis, the report text and its JSON.
#[wasm_bindgen]
pub struct Tracker {
    pub(crate) inner: SharedTracker,
}

impl Tracker {
    pub(crate) fn from_shared(inner: SharedTracker) -> Self {
        Self { inner }
    }

    fn now(&self) -> JsResult<u64> {
        let clock = self.inner.try_borrow().map_err(|_| busy())?.clock.clone();
        clock.now()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> JsResult<T>) -> JsResult<T> {
        let mut s = self.inner.try_borrow_mut().map_err(|_| busy())?;
        f(&mut s)
    }

    pub(crate) fn observe_events(&self, events: &[RegistryEvent]) -> JsResult<()> {
        self.with(|s| {
            for e in events {
                s.core.observe(e);
            }
            Ok(())
        })
    }
}

#[wasm_bindgen(module = "/js/args.js")]
extern "C" {
    /// The input's text fields and metadata JSON in one text, their sizes in `sizes`;
    /// `None` for input the fast path does not take (`SnapshotArgs::read`).
    #[wasm_bindgen(js_name = packSnapshotInput, catch)]
    fn pack_snapshot_input(v: &JsValue, sizes: &mut [f64]) -> JsResult<Option<String>>;

    /// `{ index, mismatch, violations }`, made in JS: cheaper than JSON for three fields.
    #[wasm_bindgen(js_name = snapshotOutcome)]
    fn snapshot_outcome(index: f64, mismatch: bool, violations: &[f64]) -> JsValue;
}

/// A `SnapshotOutcome` as the object the API returns.
fn outcome_to_js(out: &threadline::tracker::SnapshotOutcome) -> JsValue {
    let violations: Vec<f64> = out.violations.iter().map(|&i| i as f64).collect();
    snapshot_outcome(out.index as f64, out.mismatch, &violations)
}

/// What `takeSnapshot` reads: every thread id is optional; the isolation key is parsed by
/// the core (canonical or older form). The text fields sit one after another in one
/// text, whichever way they were read.
pub(crate) struct SnapshotArgs {
    text: String,
    /// Where each of `TEXT_FIELDS` lies in `text`; `None` when not given.
    fields: [Option<(usize, usize)>; TEXT_FIELDS.len()],
    manager_instance_id: Option<u64>,
    metadata: Option<threadline::Metadata>,
}

/// `operation` first (required), in the order `js/args.js` packs them.
const TEXT_FIELDS: [&str; 7] = [
    "operation",
    "userId",
    "userContextThreadId",
    "websocketClientId",
    "managerThreadId",
    "isolationKey",
    "cleanupLookupThreadId",
];

impl SnapshotArgs {
    fn read(v: &JsValue) -> JsResult<Self> {
        // The text fields' sizes, the metadata's, then the instance id.
        let mut sizes = [0f64; TEXT_FIELDS.len() + 2];
        match pack_snapshot_input(v, &mut sizes)? {
            Some(text) => match Self::unpack(text, &sizes)? {
                Some(args) => Ok(args),
                None => Self::read_fields(v),
            },
            None => Self::read_fields(v),
        }
    }

    /// From `packSnapshotInput`: sizes in UTF-16 units, -1 for an absent field. `None`
    /// for text that is not ASCII.
    fn unpack(text: String, sizes: &[f64; TEXT_FIELDS.len() + 2]) -> JsResult<Option<Self>> {
        let mut fields = [None; TEXT_FIELDS.len()];
        let mut at = 0.0;
        for (field, size) in fields.iter_mut().zip(sizes) {
            if *size >= 0.0 {
                *field = Some((at as usize, (at + size) as usize));
                at += size;
            }
        }
        let json = sizes[TEXT_FIELDS.len()];
        // UTF-8 takes more bytes than UTF-16 takes units for every character past ASCII:
        // only for ASCII text is a size in units a size in bytes. Other text (rare in
        // ids) is read field by field, which is also what refuses a lone surrogate (it
        // arrives here as U+FFFD, three bytes for one unit).
        if at + json.max(0.0) != text.len() as f64 {
            return Ok(None);
        }
        let metadata = if json >= 0.0 {
            let json = text.get(at as usize..).unwrap_or_default();
            Some(read_metadata(json, "snapshot.metadata")?)
        } else {
            None
        };
        let n = sizes[TEXT_FIELDS.len() + 1];
        Ok(Some(Self {
            text,
            fields,
            manager_instance_id: (!n.is_nan()).then_some(n as u64),
            metadata,
        }))
    }

    /// Field by field: the slow path, which throws the error that names a bad value.
    fn read_fields(v: &JsValue) -> JsResult<Self> {
        if v.is_null_or_undefined() {
            return Err(argument(
                "takeSnapshot needs an object with at least an operation: got nothing",
            ));
        }
        let o = Options::new(
            v,
            "snapshot",
            &[
                "operation",
                "userId",
                "userContextThreadId",
                "websocketClientId",
                "managerThreadId",
                "managerInstanceId",
                "isolationKey",
                "cleanupLookupThreadId",
                "metadata",
            ],
        )?;
        let mut text = String::new();
        let mut fields = [None; TEXT_FIELDS.len()];
        let mut manager_instance_id = None;
        for (i, (field, name)) in fields.iter_mut().zip(TEXT_FIELDS).enumerate() {
            // Read in the order of the options list above (as `packSnapshotInput` does):
            // the instance id before the isolation key.
            if name == "isolationKey" {
                manager_instance_id = o.whole("managerInstanceId")?;
            }
            let value = if i == 0 {
                Some(o.required_string(name)?)
            } else {
                o.string(name)?
            };
            if let Some(value) = value {
                let start = text.len();
                text.push_str(&value);
                *field = Some((start, text.len()));
            }
        }
        Ok(Self {
            text,
            fields,
            manager_instance_id,
            metadata: o.metadata("metadata")?,
        })
    }

    pub(crate) fn input(&self) -> SnapshotInput<'_> {
        let field = |i: usize| {
            let (start, end) = self.fields.get(i).copied().flatten()?;
            self.text.get(start..end)
        };
        SnapshotInput {
            operation: field(0).unwrap_or_default(),
            user_id: field(1),
            user_context_thread_id: field(2),
            websocket_client_id: field(3),
            manager_thread_id: field(4),
            manager_instance_id: self.manager_instance_id,
            isolation_key: field(5),
            cleanup_lookup_thread_id: field(6),
            metadata: self.metadata.clone(),
        }
    }
}

fn position(v: &JsValue, len: usize, name: &str) -> JsResult<usize> {
    let v = match v.as_f64() {
        Some(n) if !n.is_nan() => n,
        _ => {
            return Err(argument(format!(
                "{name} must be a number: got {}",
                args::describe(v)
            )))
        }
    };
    Ok(if v <= 0.0 {
        0
    } else if v >= len as f64 {
        len
    } else {
        v as usize
    })
}

#[wasm_bindgen]
impl Tracker {
    /// `new Tracker({ capacity?, clock?, startedMs? })`: keeps every snapshot, or the last
    /// `capacity` snapshots and violations (every count stays exact).
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> JsResult<Tracker> {
        let o = Options::new(
            &options,
            "Tracker options",
            &["capacity", "clock", "startedMs"],
        )?;
        let clock = JsClock::from_options(&o)?;
        let started = match o.whole("startedMs")? {
            Some(t) => t,
            None => clock.now()?,
        };
        let capacity = o.size("capacity")?;
        let core =
            threadline::Tracker::seeded(started, capacity, args::hash_seed()?).map_err(core)?;
        Ok(Tracker {
            inner: Shared::new(core, clock),
        })
    }

    /// Reads a report written by `toJSON` (by any language's binding).
    /// `limits`: `{ maxBytes?, maxDepth?, clock? }`.
    #[wasm_bindgen(js_name = fromJSON)]
    pub fn from_json(text: JsValue, limits: JsValue) -> JsResult<Tracker> {
        let text = args::string(&text, "report text")?;
        let o = Options::new(&limits, "limits", &["maxBytes", "maxDepth", "clock"])?;
        let l = read_limits(&o)?;
        let clock = JsClock::from_options(&o)?;
        let core =
            threadline::Tracker::from_json_seeded(&text, l, args::hash_seed()?).map_err(core)?;
        Ok(Tracker {
            inner: Shared::new(core, clock),
        })
    }

    /// `fromJSON` from the file's bytes (UTF-8), e.g. `new Uint8Array(await
    /// file.arrayBuffer())`: skips building a JS string of a large report, and its
    /// conversion on the way in.
    #[wasm_bindgen(js_name = fromJSONBytes)]
    pub fn from_json_bytes(bytes: JsValue, limits: JsValue) -> JsResult<Tracker> {
        let array = if bytes.is_instance_of::<js_sys::Uint8Array>() {
            bytes.unchecked_into::<js_sys::Uint8Array>()
        } else if bytes.is_instance_of::<js_sys::ArrayBuffer>() {
            js_sys::Uint8Array::new(&bytes)
        } else {
            return Err(argument(format!(
                "report bytes must be a Uint8Array or an ArrayBuffer: got {}",
                args::describe(&bytes)
            )));
        };
        let o = Options::new(&limits, "limits", &["maxBytes", "maxDepth", "clock"])?;
        let l = read_limits(&o)?;
        let clock = JsClock::from_options(&o)?;
        let len = array.length() as usize;
        if len > l.max_bytes {
            // Refused before copying, like the text form.
            return Err(core(threadline::ReportError::TooLarge {
                len,
                max: l.max_bytes,
            }));
        }
        let bytes = array.to_vec();
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            core(threadline::ReportError::Json(format!(
                "report is not valid UTF-8: {e}"
            )))
        })?;
        let core_tracker =
            threadline::Tracker::from_json_seeded(text, l, args::hash_seed()?).map_err(core)?;
        Ok(Tracker {
            inner: Shared::new(core_tracker, clock),
        })
    }

    /// The report JSON text (schema `threadline.report/1`).
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> JsResult<String> {
        let now = self.now()?;
        self.with(|s| Ok(s.core.to_json(now)))
    }

    /// The report text, in the seed's layout.
    #[wasm_bindgen(js_name = reportText)]
    pub fn report_text(&self) -> JsResult<String> {
        let now = self.now()?;
        self.with(|s| Ok(s.core.report_text(now)))
    }

    /// The analysis (snake_case fields, as in the report JSON).
    pub fn analyze(&self) -> JsResult<JsValue> {
        let now = self.now()?;
        self.with(|s| {
            let (head, lists) = s.core.analyze_parts(now);
            let sent = &mut s.analysis_strings;
            let (threads, users) = (lists.thread_ids().len(), lists.users().len());
            if threads < sent.threads || users < sent.users {
                // Never expected (the lists only grow); start over rather than mislabel.
                *sent = AnalysisStrings::default();
            }
            let head = to_json_text(&head)?;
            let parts = AnalysisParts::write(lists, sent);
            let js = sent.js.get_or_insert_with(new_analysis_strings);
            let analysis = assemble_analysis(
                js,
                &head,
                parts.threads,
                parts.users,
                &parts.lengths,
                &parts.shape,
            );
            (sent.threads, sent.users) = (threads, users);
            Ok(analysis)
        })
    }

    /// Records one snapshot; returns `{ index, mismatch, violations }`.
    #[wasm_bindgen(js_name = takeSnapshot)]
    pub fn take_snapshot(&self, input: JsValue) -> JsResult<JsValue> {
        let a = SnapshotArgs::read(&input)?;
        let now = self.now()?;
        self.with(|s| {
            let out = s.core.take_snapshot(a.input(), now).map_err(core)?;
            Ok(outcome_to_js(&out))
        })
    }

    /// A cleanup looking for `targetThreadId`, recorded beside the latest manager snapshot
    /// (of `userId` when given). Options: `{ userId?, metadata? }`.
    #[wasm_bindgen(js_name = simulateCleanupLookup)]
    pub fn simulate_cleanup_lookup(
        &self,
        target_thread_id: JsValue,
        options: JsValue,
    ) -> JsResult<JsValue> {
        let target = args::string(&target_thread_id, "targetThreadId")?;
        let o = Options::new(&options, "lookup options", &["userId", "metadata"])?;
        let user = o.string("userId")?;
        let metadata = o.metadata("metadata")?;
        let now = self.now()?;
        self.with(|s| {
            let out = s
                .core
                .simulate_cleanup_lookup(&target, user.as_deref(), metadata, now)
                .map_err(core)?;
            Ok(outcome_to_js(&out))
        })
    }

    /// Records a violation found by the caller; returns its index.
    /// Options: `{ operation?, details? }`.
    #[wasm_bindgen(js_name = recordViolation)]
    pub fn record_violation(
        &self,
        violation_type: JsValue,
        severity: JsValue,
        options: JsValue,
    ) -> JsResult<f64> {
        let kind = args::string(&violation_type, "type")?;
        let severity = args::string(&severity, "severity")?;
        let o = Options::new(&options, "violation options", &["operation", "details"])?;
        let operation = o.string("operation")?;
        let details = o.metadata("details")?.unwrap_or_default();
        let now = self.now()?;
        self.with(|s| {
            s.core
                .record_violation(&kind, &severity, operation.as_deref(), details, now)
                .map(|i| i as f64)
                .map_err(core)
        })
    }

    /// Snapshots retained now (at most `capacity`).
    #[wasm_bindgen(getter = retainedCount)]
    pub fn retained_count(&self) -> JsResult<u32> {
        self.with(|s| Ok(s.core.snapshots().len() as u32))
    }

    /// Snapshots ever taken.
    #[wasm_bindgen(getter = totalSnapshots)]
    pub fn total_snapshots(&self) -> JsResult<f64> {
        self.with(|s| Ok(s.core.total_snapshots() as f64))
    }

    /// Violations ever recorded.
    #[wasm_bindgen(getter = totalViolations)]
    pub fn total_violations(&self) -> JsResult<f64> {
        self.with(|s| Ok(s.core.total_violations() as f64))
    }

    /// The bound given at creation, or `null`.
    #[wasm_bindgen(getter)]
    pub fn capacity(&self) -> JsResult<JsValue> {
        self.with(|s| {
            Ok(s.core
                .capacity()
                .map_or(JsValue::NULL, |c| (c as f64).into()))
        })
    }

    /// When tracking started (Unix ms).
    #[wasm_bindgen(getter = startedMs)]
    pub fn started_ms(&self) -> JsResult<f64> {
        self.with(|s| Ok(s.core.started_ms() as f64))
    }

    /// Retained snapshots at positions `start..end` (0 = oldest retained; clamped).
    #[wasm_bindgen(js_name = snapshotRange)]
    pub fn snapshot_range(&self, start: JsValue, end: JsValue) -> JsResult<JsValue> {
        self.with(|s| {
            let snaps = s.core.snapshots();
            let a = position(&start, snaps.len(), "start")?;
            let b = position(&end, snaps.len(), "end")?.max(a);
            let part: Vec<_> = snaps.range(a..b).collect();
            to_js(&part)
        })
    }

    /// Retained violations, oldest first.
    #[wasm_bindgen(js_name = violationList)]
    pub fn violation_list(&self) -> JsResult<JsValue> {
        self.with(|s| to_js(s.core.violations()))
    }

    /// Positions of the retained snapshots the filter keeps:
    /// `{ user_id?, operation?, thread_id?, mismatches_only? }`.
    #[wasm_bindgen(js_name = filterPositions)]
    pub fn filter_positions(&self, filter: JsValue) -> JsResult<Vec<u32>> {
        let f = read_filter(&filter)?;
        self.with(|s| Ok(s.core.filter_positions(&f)))
    }
}

fn read_limits(o: &Options) -> JsResult<ReportLimits> {
    let mut l = ReportLimits::default();
    if let Some(b) = o.whole("maxBytes")? {
        l.max_bytes = usize::try_from(b).unwrap_or(usize::MAX);
    }
    if let Some(d) = o.whole("maxDepth")? {
        l.max_depth = usize::try_from(d).unwrap_or(usize::MAX);
    }
    Ok(l)
}

fn read_filter(v: &JsValue) -> JsResult<SnapshotFilter> {
    let o = Options::new(
        v,
        "filter",
        &["user_id", "operation", "thread_id", "mismatches_only"],
    )?;
    Ok(SnapshotFilter {
        user_id: o.string("user_id")?,
        operation: o.string("operation")?,
        thread_id: o.string("thread_id")?,
        mismatches_only: o.bool("mismatches_only")?.unwrap_or(false),
    })
}

fn read_analysis(v: &JsValue, name: &str) -> JsResult<Analysis> {
    if !v.is_object() {
        return Err(argument(format!(
            "{name} must be an analysis object: got {}",
            args::describe(v)
        )));
    }
    Analysis::from_json(&args::json_text(v, name)?)
        .map_err(|e| argument(format!("{name} is not valid: {e}")))
}

/// Two analyses side by side (before and after a fix).
#[wasm_bindgen(js_name = compareAnalyses)]
pub fn compare_analyses(before: JsValue, after: JsValue) -> JsResult<JsValue> {
    let b = read_analysis(&before, "before")?;
    let a = read_analysis(&after, "after")?;
    to_js(&Comparison::between(&b, &a))
}
