//! The consistency tracker, its snapshots and its report JSON.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use threadline::tracker::{Comparison, Snapshot, StoredMetadata, Violation};
use threadline::{
    Analysis, Entropy, ReportLimits, SeededEntropy, SnapshotFilter, SnapshotInput, Tracker,
};

use crate::context::PyUserContext;
use crate::registry::PyRegistryEvent;
use crate::{
    json_to_py, lock, map_to_py, metadata_arg, now_or, stored_metadata_arg, system_now_ms, Kind,
    PyResultExt,
};

/// One recorded moment (the seed's `ThreadIdSnapshot`). Immutable.
#[pyclass(frozen, name = "Snapshot", module = "threadline._native")]
pub struct PySnapshot {
    held: Held,
}

enum Held {
    Owned(Snapshot),
    /// Snapshot `index` of a tracker that keeps every snapshot, which never drops or
    /// changes one: read from there when asked. Most callers never read the snapshot
    /// `take_snapshot` returns; a copy cost a 184-byte copy and eight reference-count
    /// updates to make and eight more to drop, about a tenth of a drop-in call.
    InTracker {
        tracker: Py<PyTracker>,
        index: u64,
    },
}

fn opt(s: &Option<Arc<str>>) -> Option<String> {
    s.as_deref().map(str::to_owned)
}

impl PySnapshot {
    fn owned(inner: Snapshot) -> Self {
        Self {
            held: Held::Owned(inner),
        }
    }

    /// The snapshot `index` of `t` (the tracker behind `tracker`) as returned to Python:
    /// left in an unbounded tracker, copied out of a bounded one.
    fn recorded(tracker: &Bound<'_, PyTracker>, t: &Tracker, index: u64) -> PyResult<Self> {
        let s = t
            .snapshot(index)
            .ok_or_else(|| crate::error(Kind::Base, "snapshot not retained".into()))?;
        Ok(if t.capacity().is_none() {
            Self {
                held: Held::InTracker {
                    tracker: tracker.clone().unbind(),
                    index,
                },
            }
        } else {
            Self::owned(s.clone())
        })
    }

    /// `f` of the snapshot, under its tracker's lock when it is held there (`f` makes
    /// Rust values only: no Python code runs under the lock).
    fn with<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> PyResult<R> {
        match &self.held {
            Held::Owned(s) => Ok(f(s)),
            Held::InTracker { tracker, index } => {
                let t = lock(&tracker.get().inner);
                match t.snapshot(*index) {
                    Some(s) => Ok(f(s)),
                    None => Err(crate::error(
                        Kind::Base,
                        format!("snapshot {index} is no longer in its tracker"),
                    )),
                }
            }
        }
    }
}

#[pymethods]
impl PySnapshot {
    /// Builds a snapshot by hand, with the fields of the seed's dataclass (`timestamp`
    /// in Unix seconds). Whether it is a mismatch is the core's rule.
    #[new]
    #[pyo3(signature = (timestamp, operation, thread_id_user_context=None,
        thread_id_manager_context=None, thread_id_isolation_key=None,
        thread_id_cleanup_lookup=None, manager_instance_id=None, isolation_key=None,
        user_id=None, websocket_client_id=None, metadata=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        timestamp: f64,
        operation: String,
        thread_id_user_context: Option<String>,
        thread_id_manager_context: Option<String>,
        thread_id_isolation_key: Option<String>,
        thread_id_cleanup_lookup: Option<String>,
        manager_instance_id: Option<u64>,
        isolation_key: Option<String>,
        user_id: Option<String>,
        websocket_client_id: Option<String>,
        metadata: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        if !timestamp.is_finite() || timestamp < 0.0 {
            return Err(crate::error(
                Kind::Report,
                format!("timestamp {timestamp} is invalid: expected finite Unix seconds from 0"),
            ));
        }
        let md = metadata_arg(metadata)?;
        let a = |s: Option<String>| s.map(Arc::<str>::from);
        let mut inner = Snapshot {
            index: 0,
            timestamp_ms: (timestamp * 1000.0).round() as u64,
            operation: operation.into(),
            thread_id_user_context: a(thread_id_user_context),
            thread_id_manager_context: a(thread_id_manager_context),
            thread_id_isolation_key: a(thread_id_isolation_key),
            thread_id_cleanup_lookup: a(thread_id_cleanup_lookup),
            manager_instance_id,
            isolation_key: a(isolation_key),
            user_id: a(user_id),
            websocket_client_id: a(websocket_client_id),
            mismatch: false,
            metadata: (!md.is_empty()).then(|| md.into()),
        };
        inner.mismatch = inner.has_mismatch();
        Ok(Self::owned(inner))
    }

    /// Position in the tracker's whole history.
    #[getter]
    fn index(&self) -> PyResult<u64> {
        match &self.held {
            Held::InTracker { index, .. } => Ok(*index),
            Held::Owned(s) => Ok(s.index),
        }
    }
    /// Unix seconds.
    #[getter]
    fn timestamp(&self) -> PyResult<f64> {
        self.with(|s| s.timestamp_ms as f64 / 1000.0)
    }
    #[getter]
    fn timestamp_ms(&self) -> PyResult<u64> {
        self.with(|s| s.timestamp_ms)
    }
    #[getter]
    fn operation(&self) -> PyResult<String> {
        self.with(|s| s.operation.to_string())
    }
    #[getter]
    fn thread_id_user_context(&self) -> PyResult<Option<String>> {
        self.with(|s| opt(&s.thread_id_user_context))
    }
    #[getter]
    fn thread_id_manager_context(&self) -> PyResult<Option<String>> {
        self.with(|s| opt(&s.thread_id_manager_context))
    }
    #[getter]
    fn thread_id_isolation_key(&self) -> PyResult<Option<String>> {
        self.with(|s| opt(&s.thread_id_isolation_key))
    }
    #[getter]
    fn thread_id_cleanup_lookup(&self) -> PyResult<Option<String>> {
        self.with(|s| opt(&s.thread_id_cleanup_lookup))
    }
    #[getter]
    fn manager_instance_id(&self) -> PyResult<Option<u64>> {
        self.with(|s| s.manager_instance_id)
    }
    #[getter]
    fn isolation_key(&self) -> PyResult<Option<String>> {
        self.with(|s| opt(&s.isolation_key))
    }
    #[getter]
    fn user_id(&self) -> PyResult<Option<String>> {
        self.with(|s| opt(&s.user_id))
    }
    #[getter]
    fn websocket_client_id(&self) -> PyResult<Option<String>> {
        self.with(|s| opt(&s.websocket_client_id))
    }
    /// A fresh dict each call.
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        match self.with(|s| s.metadata.as_ref().map(|m| m.to_map()))? {
            Some(m) => map_to_py(py, &m),
            None => Ok(PyDict::new(py)),
        }
    }
    #[getter]
    fn mismatch(&self) -> PyResult<bool> {
        self.with(|s| s.mismatch)
    }
    fn has_thread_id_mismatch(&self) -> PyResult<bool> {
        self.with(|s| s.mismatch)
    }
    /// The four thread ids by source, `'None'` where absent (as the seed prints them).
    fn get_thread_id_summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let ids = self.with(|s| {
            s.thread_ids()
                .map(|(label, id)| (label, id.unwrap_or("None").to_owned()))
        })?;
        let d = PyDict::new(py);
        for (label, id) in ids {
            d.set_item(label, id)?;
        }
        Ok(d)
    }
    /// The snapshot as the report JSON writes it.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = self
            .with(|s| serde_json::to_value(s))?
            .map_err(|e| crate::error(Kind::Base, e.to_string()))?;
        json_to_py(py, &v)
    }
    /// As Python would write the fields: `Snapshot(index=0, operation='op', ...)`.
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let (index, operation, ids, mismatch) = self.with(|s| {
            (
                s.index,
                s.operation.to_string(),
                s.thread_ids()
                    .map(|(label, id)| (label, id.map(str::to_owned))),
                s.mismatch,
            )
        })?;
        let text = |t: &str| -> PyResult<String> {
            Ok(PyString::new(py, t).repr()?.to_string_lossy().into_owned())
        };
        let mut out = format!("Snapshot(index={index}, operation={}", text(&operation)?);
        for (label, id) in ids {
            let shown = match id {
                Some(id) => text(&id)?,
                None => "None".to_owned(),
            };
            out.push_str(&format!(", {label}={shown}"));
        }
        out.push_str(if mismatch {
            ", mismatch=True)"
        } else {
            ", mismatch=False)"
        });
        Ok(out)
    }
}

fn violation_dict<'py>(py: Python<'py>, v: &Violation) -> PyResult<Bound<'py, PyDict>> {
    // Caller-given details first, so the core's own fields win on a name clash.
    let d = map_to_py(py, &v.details)?;
    d.set_item("index", v.index)?;
    d.set_item("timestamp", v.timestamp_ms as f64 / 1000.0)?;
    d.set_item("type", &v.kind)?;
    d.set_item("severity", &v.severity)?;
    d.set_item("operation", v.operation.as_deref())?;
    if let Some(i) = v.snapshot_index {
        d.set_item("snapshot_index", i)?;
    }
    if let Some(s) = &v.thread_id_summary {
        let sd = PyDict::new(py);
        sd.set_item("user_context", s.user_context.as_deref().unwrap_or("None"))?;
        sd.set_item(
            "manager_context",
            s.manager_context.as_deref().unwrap_or("None"),
        )?;
        sd.set_item(
            "isolation_key",
            s.isolation_key.as_deref().unwrap_or("None"),
        )?;
        sd.set_item(
            "cleanup_lookup",
            s.cleanup_lookup.as_deref().unwrap_or("None"),
        )?;
        d.set_item("thread_id_summary", sd)?;
    }
    d.set_item("details", map_to_py(py, &v.details)?)?;
    Ok(d)
}

fn analysis_dict<'py>(py: Python<'py>, a: &Analysis) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("total_snapshots", a.total_snapshots)?;
    d.set_item("retained_snapshots", a.retained_snapshots)?;
    d.set_item("total_violations", a.total_violations)?;
    d.set_item("unique_thread_ids_found", a.unique_thread_ids_found)?;
    d.set_item("thread_ids", PyList::new(py, &a.thread_ids)?)?;
    d.set_item("inconsistent_snapshots", a.inconsistent_snapshots)?;
    let ops = PyDict::new(py);
    for (op, n) in &a.operation_violations {
        ops.set_item(op, n)?;
    }
    d.set_item("operation_violations", ops)?;
    d.set_item("consistency_score", a.consistency_score)?;
    d.set_item("analysis_duration", a.analysis_duration)?;
    let by_user = PyDict::new(py);
    for (u, threads) in &a.thread_ids_by_user {
        by_user.set_item(u, PyList::new(py, threads)?)?;
    }
    d.set_item("thread_ids_by_user", by_user)?;
    d.set_item(
        "users_with_multiple_thread_ids",
        PyList::new(py, &a.users_with_multiple_thread_ids)?,
    )?;
    d.set_item("first_divergence", a.first_divergence)?;
    d.set_item(
        "last_consistent_before_divergence",
        a.last_consistent_before_divergence,
    )?;
    d.set_item("managers_created", a.managers_created)?;
    d.set_item("managers_cleaned_up", a.managers_cleaned_up)?;
    d.set_item("leaked_managers", a.leaked_managers)?;
    Ok(d)
}

fn comparison_dict<'py>(py: Python<'py>, c: &Comparison) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(c).map_err(|e| crate::error(Kind::Base, e.to_string()))?;
    json_to_py(py, &v)
}

/// A random key for a tracker's hash tables, from the core's OS-seeded entropy: the ids
/// a tracker interns come from outside, so their hashes must not be predictable.
fn hash_seed() -> PyResult<u64> {
    let mut b = [0u8; 8];
    SeededEntropy::from_os().py()?.fill(&mut b);
    Ok(u64::from_le_bytes(b))
}

/// The consistency tracker (the suite's `ThreadIDConsistencyTracker`, fixed).
#[pyclass(frozen, name = "Tracker", module = "threadline._native")]
pub struct PyTracker {
    inner: Mutex<Tracker>,
}

impl PyTracker {
    /// Takes one snapshot under one hold of the lock and returns it.
    fn record(
        slf: &Bound<'_, Self>,
        input: SnapshotInput<'_>,
        metadata: Option<StoredMetadata>,
        now: u64,
    ) -> PyResult<PySnapshot> {
        let mut t = lock(&slf.get().inner);
        let out = t.take_snapshot_stored(input, metadata, now).py()?;
        PySnapshot::recorded(slf, &t, out.index)
    }

    /// `take_snapshot` of a context, a manager's context and handle and an isolation
    /// key (each may be `None`): the Netra drop-in's call (see `suite.rs`). The
    /// manager's thread id is read from `manager_context` directly.
    pub(crate) fn take_snapshot_of(
        slf: &Bound<'_, Self>,
        operation: &str,
        context: Option<&PyUserContext>,
        manager_context: Option<&PyUserContext>,
        manager_instance_id: Option<u64>,
        isolation_key: Option<&str>,
        metadata: Option<StoredMetadata>,
    ) -> PyResult<PySnapshot> {
        let ctx = context.map(|c| &c.inner);
        let input = SnapshotInput {
            operation,
            user_id: ctx.map(|c| c.user_id()),
            user_context_thread_id: ctx.map(|c| c.thread_id()),
            websocket_client_id: ctx.and_then(|c| c.websocket_client_id()),
            manager_thread_id: manager_context.map(|m| m.inner.thread_id()),
            manager_instance_id,
            isolation_key,
            cleanup_lookup_thread_id: None,
            metadata: None,
        };
        Self::record(slf, input, metadata, system_now_ms())
    }
}

#[pymethods]
impl PyTracker {
    /// `capacity`: keep only the last N snapshots and violations (counts stay exact).
    #[new]
    #[pyo3(signature = (capacity=None, *, started_ms=None))]
    fn new(capacity: Option<usize>, started_ms: Option<u64>) -> PyResult<Self> {
        let start = now_or(started_ms);
        let t = Tracker::seeded(start, capacity, hash_seed()?).py()?;
        Ok(Self {
            inner: Mutex::new(t),
        })
    }

    /// Records one snapshot and returns it. `context` fills the user-context fields
    /// (explicit arguments win). Raises `ReportError` for an empty or oversized operation.
    #[pyo3(signature = (operation, *, context=None, user_id=None, user_context_thread_id=None,
        websocket_client_id=None, manager_thread_id=None, manager_instance_id=None,
        isolation_key=None, cleanup_lookup_thread_id=None, metadata=None, now_ms=None))]
    #[allow(clippy::too_many_arguments)]
    fn take_snapshot(
        slf: &Bound<'_, Self>,
        operation: &str,
        context: Option<PyRef<'_, PyUserContext>>,
        user_id: Option<&str>,
        user_context_thread_id: Option<&str>,
        websocket_client_id: Option<&str>,
        manager_thread_id: Option<&str>,
        manager_instance_id: Option<u64>,
        isolation_key: Option<&str>,
        cleanup_lookup_thread_id: Option<&str>,
        metadata: Option<&Bound<'_, PyDict>>,
        now_ms: Option<u64>,
    ) -> PyResult<PySnapshot> {
        let md = stored_metadata_arg(metadata)?;
        let ctx = context.as_deref().map(|c| &c.inner);
        let input = SnapshotInput {
            operation,
            user_id: user_id.or(ctx.map(|c| c.user_id())),
            user_context_thread_id: user_context_thread_id.or(ctx.map(|c| c.thread_id())),
            websocket_client_id: websocket_client_id.or(ctx.and_then(|c| c.websocket_client_id())),
            manager_thread_id,
            manager_instance_id,
            isolation_key,
            cleanup_lookup_thread_id,
            metadata: None,
        };
        Self::record(slf, input, md, now_or(now_ms))
    }

    /// A cleanup looking for `target_thread_id`, recorded beside the latest manager
    /// snapshot (of `user_id` when given): a lookup by the wrong thread is a mismatch.
    #[pyo3(signature = (target_thread_id, user_id=None, metadata=None, *, now_ms=None))]
    fn simulate_cleanup_lookup(
        slf: &Bound<'_, Self>,
        target_thread_id: &str,
        user_id: Option<&str>,
        metadata: Option<&Bound<'_, PyDict>>,
        now_ms: Option<u64>,
    ) -> PyResult<PySnapshot> {
        let md = metadata_arg(metadata)?;
        let mut t = lock(&slf.get().inner);
        let out = t
            .simulate_cleanup_lookup(target_thread_id, user_id, Some(md), now_or(now_ms))
            .py()?;
        PySnapshot::recorded(slf, &t, out.index)
    }

    /// Records a violation found by the caller; returns its index.
    #[pyo3(signature = (violation_type, severity, operation=None, details=None, *, now_ms=None))]
    fn record_violation(
        &self,
        violation_type: String,
        severity: String,
        operation: Option<String>,
        details: Option<&Bound<'_, PyDict>>,
        now_ms: Option<u64>,
    ) -> PyResult<u64> {
        let d = metadata_arg(details)?;
        lock(&self.inner)
            .record_violation(
                &violation_type,
                &severity,
                operation.as_deref(),
                d,
                now_or(now_ms),
            )
            .py()
    }

    /// Follows a registry event (manager counts, refused creates).
    fn observe(&self, event: PyRef<'_, PyRegistryEvent>) {
        lock(&self.inner).observe(&event.inner);
    }

    /// The full analysis as a dict (runs with the GIL released).
    #[pyo3(signature = (*, now_ms=None))]
    fn analyze<'py>(&self, py: Python<'py>, now_ms: Option<u64>) -> PyResult<Bound<'py, PyDict>> {
        let now = now_or(now_ms);
        let a = py.detach(|| lock(&self.inner).analyze(now));
        analysis_dict(py, &a)
    }

    /// The report in the seed's layout (built with the GIL released).
    #[pyo3(signature = (*, now_ms=None))]
    fn report_text(&self, py: Python<'_>, now_ms: Option<u64>) -> String {
        let now = now_or(now_ms);
        py.detach(|| lock(&self.inner).report_text(now))
    }

    /// The versioned report JSON (built with the GIL released).
    #[pyo3(signature = (*, now_ms=None))]
    fn to_json(&self, py: Python<'_>, now_ms: Option<u64>) -> String {
        let now = now_or(now_ms);
        py.detach(|| lock(&self.inner).to_json(now))
    }

    /// Reads report JSON written by any binding; raises `ReportError` for malformed,
    /// oversized, too deeply nested or wrong-schema input.
    #[staticmethod]
    #[pyo3(signature = (text, *, max_bytes=None, max_depth=None))]
    fn from_json(
        py: Python<'_>,
        text: String,
        max_bytes: Option<usize>,
        max_depth: Option<usize>,
    ) -> PyResult<Self> {
        let d = ReportLimits::default();
        let limits = ReportLimits {
            max_bytes: max_bytes.unwrap_or(d.max_bytes),
            max_depth: max_depth.unwrap_or(d.max_depth),
        };
        let seed = hash_seed()?;
        let t = py
            .detach(|| Tracker::from_json_seeded(&text, limits, seed))
            .py()?;
        Ok(Self {
            inner: Mutex::new(t),
        })
    }

    /// Retained snapshots, oldest first (copies).
    fn snapshots(&self, py: Python<'_>) -> Vec<PySnapshot> {
        let v: Vec<Snapshot> =
            py.detach(|| lock(&self.inner).snapshots().iter().cloned().collect());
        v.into_iter().map(PySnapshot::owned).collect()
    }

    /// The retained snapshot with this history index, or `None`.
    fn snapshot(&self, index: u64) -> Option<PySnapshot> {
        lock(&self.inner)
            .snapshot(index)
            .cloned()
            .map(PySnapshot::owned)
    }

    /// The retained snapshot at `position` (0 = oldest retained), or `None`.
    fn snapshot_at(&self, position: usize) -> Option<PySnapshot> {
        lock(&self.inner)
            .snapshots()
            .get(position)
            .cloned()
            .map(PySnapshot::owned)
    }

    /// The retained violation at `position` (0 = oldest retained) as a dict, or `None`.
    fn violation_at<'py>(
        &self,
        py: Python<'py>,
        position: usize,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let v = lock(&self.inner).violations().get(position).cloned();
        v.map(|v| violation_dict(py, &v)).transpose()
    }

    /// How many violations are retained.
    fn retained_violations(&self) -> usize {
        lock(&self.inner).violations().len()
    }

    /// Retained violations as dicts: the caller's details, then `index`, `timestamp`,
    /// `type`, `severity`, `operation`, `snapshot_index`, `thread_id_summary`, `details`.
    fn violations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let v: Vec<Violation> = lock(&self.inner).violations().iter().cloned().collect();
        let l = PyList::empty(py);
        for x in &v {
            l.append(violation_dict(py, x)?)?;
        }
        Ok(l)
    }

    #[getter]
    fn total_snapshots(&self) -> u64 {
        lock(&self.inner).total_snapshots()
    }

    #[getter]
    fn total_violations(&self) -> u64 {
        lock(&self.inner).total_violations()
    }

    #[getter]
    fn started_ms(&self) -> u64 {
        lock(&self.inner).started_ms()
    }

    #[getter]
    fn capacity(&self) -> Option<usize> {
        lock(&self.inner).capacity()
    }

    /// Positions (0 = oldest retained) of the snapshots matching every given condition.
    #[pyo3(signature = (*, user_id=None, operation=None, thread_id=None, mismatches_only=false))]
    fn filter(
        &self,
        user_id: Option<String>,
        operation: Option<String>,
        thread_id: Option<String>,
        mismatches_only: bool,
    ) -> Vec<u32> {
        let f = SnapshotFilter {
            user_id,
            operation,
            thread_id,
            mismatches_only,
        };
        lock(&self.inner).filter_positions(&f)
    }

    /// This tracker (before) against `other` (after), as a dict.
    #[pyo3(signature = (other, *, now_ms=None))]
    fn compare<'py>(
        &self,
        py: Python<'py>,
        other: PyRef<'py, PyTracker>,
        now_ms: Option<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let now = now_or(now_ms);
        let before = lock(&self.inner).analyze(now);
        let after = lock(&other.inner).analyze(now);
        comparison_dict(py, &Comparison::between(&before, &after))
    }

    fn __len__(&self) -> usize {
        lock(&self.inner).snapshots().len()
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySnapshot>()?;
    m.add_class::<PyTracker>()?;
    Ok(())
}
