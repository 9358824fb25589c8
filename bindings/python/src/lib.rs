//! Python bindings for threadline: type and error conversion only; every rule is in the core.
//!
//! Every object is `frozen` with its mutable core state behind a `Mutex`, so it can be
//! shared between Python threads. A lock is never held while Python code runs or while
//! the GIL is re-acquired (except `ReentrantLock`, a lock for Python code: see lock.rs);
//! long work (analysis, report text, JSON) runs with the GIL released. Time comes from
//! the system clock here, never inside the core.

use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::{PyException, PyLookupError, PyOverflowError, PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use pyo3::IntoPyObjectExt;
use serde_json::Value;
use threadline::tracker::{StoredMetadata, StoredValue};

/// See the note on `mimalloc` in Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod context;
mod ids;
mod lock;
mod registry;
mod suite;
mod tracker;

/// The exception classes, created once at module import.
struct Errors {
    base: Py<PyType>,
    invalid_id: Py<PyType>,
    invalid_context: Py<PyType>,
    invalid_key: Py<PyType>,
    limit: Py<PyType>,
    isolation: Py<PyType>,
    unknown_manager: Py<PyType>,
    inactive_manager: Py<PyType>,
    invalid_config: Py<PyType>,
    report: Py<PyType>,
}

static ERRORS: PyOnceLock<Errors> = PyOnceLock::new();

/// Which exception class a core error maps to.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Base,
    InvalidId,
    InvalidContext,
    InvalidKey,
    Limit,
    Isolation,
    UnknownManager,
    InactiveManager,
    InvalidConfig,
    Report,
}

pub(crate) fn error(kind: Kind, message: String) -> PyErr {
    error_named(kind, None, message)
}

/// The exception of class `kind` with the core's message; `name` (the core's stable
/// `{concern}.{case}` error kind) becomes the exception's `kind` attribute.
pub(crate) fn error_named(kind: Kind, name: Option<&'static str>, message: String) -> PyErr {
    Python::attach(|py| match ERRORS.get(py) {
        Some(e) => {
            let cls = match kind {
                Kind::Base => &e.base,
                Kind::InvalidId => &e.invalid_id,
                Kind::InvalidContext => &e.invalid_context,
                Kind::InvalidKey => &e.invalid_key,
                Kind::Limit => &e.limit,
                Kind::Isolation => &e.isolation,
                Kind::UnknownManager => &e.unknown_manager,
                Kind::InactiveManager => &e.inactive_manager,
                Kind::InvalidConfig => &e.invalid_config,
                Kind::Report => &e.report,
            };
            let err = PyErr::from_type(cls.bind(py).clone(), message);
            if let Some(n) = name {
                // Setting an attribute on a fresh exception cannot fail in practice; if
                // it does, the exception still carries the class and the message.
                let _ = err.value(py).setattr("kind", n);
            }
            err
        }
        // Only reachable before the module finished importing.
        None => PyException::new_err(message),
    })
}

/// Core error types and the exception class each maps to.
pub(crate) trait CoreError: std::fmt::Display {
    /// The exception class.
    fn class(&self) -> Kind;
    /// The core's stable error kind.
    fn name(&self) -> &'static str;
}

impl CoreError for threadline::IdError {
    fn name(&self) -> &'static str {
        self.kind()
    }
    fn class(&self) -> Kind {
        match self {
            threadline::IdError::Seed(_) => Kind::Base,
            _ => Kind::InvalidId,
        }
    }
}
impl CoreError for threadline::ContextError {
    fn name(&self) -> &'static str {
        self.kind()
    }
    fn class(&self) -> Kind {
        Kind::InvalidContext
    }
}
impl CoreError for threadline::KeyError {
    fn name(&self) -> &'static str {
        self.kind()
    }
    fn class(&self) -> Kind {
        match self {
            threadline::KeyError::Part(_) | threadline::KeyError::Unparsable { .. } => {
                Kind::InvalidKey
            }
            threadline::KeyError::TooLong { .. } => Kind::InvalidKey,
        }
    }
}
impl CoreError for threadline::SessionError {
    fn name(&self) -> &'static str {
        self.kind()
    }
    fn class(&self) -> Kind {
        Kind::InvalidContext
    }
}
impl CoreError for threadline::RegistryError {
    fn name(&self) -> &'static str {
        self.kind()
    }
    fn class(&self) -> Kind {
        use threadline::RegistryError as E;
        match self {
            E::LimitExceeded { .. } => Kind::Limit,
            E::IsolationViolation { .. } => Kind::Isolation,
            E::UnknownManager { .. } => Kind::UnknownManager,
            E::Inactive { .. } => Kind::InactiveManager,
            E::Config { .. } => Kind::InvalidConfig,
            E::Context(_) => Kind::InvalidContext,
        }
    }
}
impl CoreError for threadline::ReportError {
    fn name(&self) -> &'static str {
        self.kind()
    }
    fn class(&self) -> Kind {
        Kind::Report
    }
}

/// `core_result.py()?`: the core's error as the matching exception, with the core's message.
pub(crate) trait PyResultExt<T> {
    fn py(self) -> PyResult<T>;
}

impl<T, E: CoreError> PyResultExt<T> for Result<T, E> {
    fn py(self) -> PyResult<T> {
        self.map_err(|e| error_named(e.class(), Some(e.name()), e.to_string()))
    }
}

/// A Python int for a `usize` parameter whose core rule refuses `usize::MAX` (the
/// per-user limit, a batch count, a random length). An int that does not fit (negative,
/// or past `usize::MAX`) cannot be in the range the core accepts either: the core is
/// given `usize::MAX`, and [`UsizeArg::py`] raises the core's error with the int as
/// given in place of that number. So `-1` and `2**64` get the error, type and message of
/// any other value out of range, not `OverflowError`. Not an int: `TypeError`.
pub(crate) struct UsizeArg {
    value: usize,
    /// The int as given (at most 64 digits shown), when it does not fit.
    given: Option<String>,
}

impl UsizeArg {
    pub(crate) const fn of(value: usize) -> Self {
        Self { value, given: None }
    }

    pub(crate) fn get(&self) -> usize {
        self.value
    }

    /// The core's result; its error names the int as given.
    pub(crate) fn py<T, E: CoreError>(&self, r: Result<T, E>) -> PyResult<T> {
        r.map_err(|e| {
            let mut message = e.to_string();
            if let Some(given) = &self.given {
                message = message.replacen(&usize::MAX.to_string(), given, 1);
            }
            error_named(e.class(), Some(e.name()), message)
        })
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for UsizeArg {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let py = ob.py();
        match ob.extract::<usize>() {
            Ok(value) => Ok(Self::of(value)),
            Err(e) if e.is_instance_of::<PyOverflowError>(py) => {
                // The int's decimal digits, whatever its type's `__str__` says.
                let int = py.get_type::<PyInt>();
                let digits: String = int
                    .call_method1(intern!(py, "__repr__"), (int.call1((&*ob,))?,))?
                    .extract()?;
                let given = match digits.char_indices().nth(64) {
                    Some((cut, _)) => format!("{}… ({} digits)", &digits[..cut], digits.len()),
                    None => digits,
                };
                Ok(Self {
                    value: usize::MAX,
                    given: Some(given),
                })
            }
            Err(e) => Err(e),
        }
    }
}

/// Locks a mutex; a poisoned lock (a panic elsewhere) still holds consistent core state,
/// because every core mutation validates before it changes anything.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Unix time in ms from the system clock (the only clock of the binding).
pub(crate) fn system_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn now_or(now_ms: Option<u64>) -> u64 {
    now_ms.unwrap_or_else(system_now_ms)
}

/// Deepest nesting converted from Python to JSON; deeper values are kept as their `str()`.
const MAX_METADATA_DEPTH: usize = 32;

/// A Python value as JSON: `py_to_stored`'s conversion, as a `serde_json::Value` (one
/// set of rules for both; this path is for violation details and the like, not the
/// per-snapshot hot path).
pub(crate) fn py_to_json(ob: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    py_to_stored(ob, depth).map(|v| v.to_value())
}

/// A Python value in a snapshot's stored metadata: `None`, `bool`, `int`, `float`, `str`,
/// lists, tuples and dicts convert structurally; anything else (and anything nested too
/// deep) as its `str()`.
pub(crate) fn py_to_stored(ob: &Bound<'_, PyAny>, depth: usize) -> PyResult<StoredValue> {
    if ob.is_none() {
        return Ok(StoredValue::Null);
    }
    if let Ok(b) = ob.cast::<PyBool>() {
        return Ok(StoredValue::Bool(b.is_true()));
    }
    if ob.is_instance_of::<PyInt>() {
        if let Ok(i) = ob.extract::<i64>() {
            return Ok(StoredValue::Number(i.into()));
        }
        if let Ok(u) = ob.extract::<u64>() {
            return Ok(StoredValue::Number(u.into()));
        }
        return Ok(StoredValue::String(ob.str()?.to_string_lossy().into()));
    }
    if let Ok(f) = ob.cast::<PyFloat>() {
        let v = f.value();
        return Ok(serde_json::Number::from_f64(v)
            .map(StoredValue::Number)
            .unwrap_or_else(|| StoredValue::String(v.to_string().into())));
    }
    if let Ok(s) = ob.cast::<PyString>() {
        return Ok(StoredValue::String(s.to_string_lossy().into()));
    }
    if depth < MAX_METADATA_DEPTH {
        if let Ok(d) = ob.cast::<PyDict>() {
            return dict_to_stored(d, depth + 1).map(StoredValue::Object);
        }
        if let Ok(l) = ob.cast::<PyList>() {
            return l
                .iter()
                .map(|x| py_to_stored(&x, depth + 1))
                .collect::<PyResult<Vec<_>>>()
                .map(|v| StoredValue::Array(v.into()));
        }
        if let Ok(t) = ob.cast::<PyTuple>() {
            return t
                .iter()
                .map(|x| py_to_stored(&x, depth + 1))
                .collect::<PyResult<Vec<_>>>()
                .map(|v| StoredValue::Array(v.into()));
        }
    }
    Ok(StoredValue::String(ob.str()?.to_string_lossy().into()))
}

/// A dict as a snapshot's stored metadata (keys are their `str()`); `depth` as in
/// `dict_to_map`.
pub(crate) fn dict_to_stored(d: &Bound<'_, PyDict>, depth: usize) -> PyResult<StoredMetadata> {
    Ok(stored_entries(d.iter(), d.len(), depth)?.unwrap_or_default())
}

/// Key-value pairs (`len` of them) as stored metadata (keys are their `str()`); `None`
/// when there are none. A dict's items, or keyword arguments read straight from a call.
pub(crate) fn stored_entries<'py>(
    pairs: impl Iterator<Item = (Bound<'py, PyAny>, Bound<'py, PyAny>)>,
    len: usize,
    depth: usize,
) -> PyResult<Option<StoredMetadata>> {
    if len == 0 {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(len);
    for (k, v) in pairs {
        out.push((key_text(&k)?.into_boxed_str(), py_to_stored(&v, depth)?));
    }
    Ok(Some(StoredMetadata::from_entries(out)))
}

/// Optional snapshot metadata argument: `None`, or a dict (an empty one is no metadata).
pub(crate) fn stored_metadata_arg(
    ob: Option<&Bound<'_, PyDict>>,
) -> PyResult<Option<StoredMetadata>> {
    match ob {
        Some(d) if !d.is_empty() => dict_to_stored(d, 0).map(Some),
        _ => Ok(None),
    }
}

/// A dict as core metadata; keys are their `str()`.
pub(crate) fn dict_to_map(d: &Bound<'_, PyDict>, depth: usize) -> PyResult<threadline::Metadata> {
    let mut out = threadline::Metadata::new();
    for (k, v) in d.iter() {
        out.insert(key_text(&k)?, py_to_json(&v, depth)?);
    }
    Ok(out)
}

/// A dict key as text: a `str` as it is, anything else as its `str()`.
fn key_text(k: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(match k.cast::<PyString>() {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => k.str()?.to_string_lossy().into_owned(),
    })
}

/// Optional metadata argument: `None` or a dict.
pub(crate) fn metadata_arg(ob: Option<&Bound<'_, PyDict>>) -> PyResult<threadline::Metadata> {
    match ob {
        None => Ok(threadline::Metadata::new()),
        Some(d) => dict_to_map(d, 0),
    }
}

pub(crate) fn json_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_bound_py_any(py)?,
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_bound_py_any(py)?
            } else if let Some(u) = n.as_u64() {
                u.into_bound_py_any(py)?
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py)?
            }
        }
        Value::String(s) => s.into_bound_py_any(py)?,
        Value::Array(a) => {
            let l = PyList::empty(py);
            for x in a {
                l.append(json_to_py(py, x)?)?;
            }
            l.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, json_to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

pub(crate) fn map_to_py<'py>(
    py: Python<'py>,
    m: &threadline::Metadata,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in m {
        d.set_item(k, json_to_py(py, v)?)?;
    }
    Ok(d)
}

/// Unix time in milliseconds from the system clock.
#[pyfunction]
fn now_ms() -> u64 {
    system_now_ms()
}

fn make_error<'py>(
    py: Python<'py>,
    name: &str,
    bases: Vec<Bound<'py, PyAny>>,
    doc: &str,
) -> PyResult<Py<PyType>> {
    let ns = PyDict::new(py);
    ns.set_item("__module__", "threadline._native")?;
    ns.set_item("__doc__", doc)?;
    if name == "ThreadlineError" {
        // Instances raised for a core error carry the core's stable kind
        // (`"context.empty"`, ...); this is the default for all others.
        ns.set_item("kind", "threadline")?;
    }
    let cls =
        py.import("builtins")?
            .getattr("type")?
            .call1((name, PyTuple::new(py, bases)?, ns))?;
    Ok(cls.cast_into::<PyType>()?.unbind())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let base = make_error(
        py,
        "ThreadlineError",
        vec![py.get_type::<PyException>().into_any()],
        "Base of every error raised by threadline.",
    )?;
    let b = || base.bind(py).clone().into_any();
    let value = || py.get_type::<PyValueError>().into_any();
    let errors = Errors {
        invalid_id: make_error(
            py,
            "InvalidIdError",
            vec![b(), value()],
            "An id or id part is malformed.",
        )?,
        invalid_context: make_error(
            py,
            "InvalidContextError",
            vec![b(), value()],
            "A user context failed validation (Netra's InvalidContextError).",
        )?,
        invalid_key: make_error(
            py,
            "InvalidKeyError",
            vec![b(), value()],
            "An isolation key does not parse or cannot be built.",
        )?,
        limit: make_error(
            py,
            "ManagerLimitError",
            vec![b(), py.get_type::<PyRuntimeError>().into_any()],
            "A user reached the maximum number of WebSocket managers.",
        )?,
        isolation: make_error(
            py,
            "IsolationViolationError",
            vec![b(), value()],
            "A connection or message of one user was aimed at another user's manager.",
        )?,
        unknown_manager: make_error(
            py,
            "UnknownManagerError",
            vec![b(), py.get_type::<PyLookupError>().into_any()],
            "No manager is registered under the isolation key.",
        )?,
        inactive_manager: make_error(
            py,
            "InactiveManagerError",
            vec![b(), py.get_type::<PyRuntimeError>().into_any()],
            "The manager is inactive.",
        )?,
        invalid_config: make_error(
            py,
            "InvalidConfigError",
            vec![b(), value()],
            "A registry setting is out of range.",
        )?,
        report: make_error(
            py,
            "ReportError",
            vec![b(), value()],
            "A tracker input or report JSON is invalid.",
        )?,
        base,
    };
    m.add("ThreadlineError", errors.base.bind(py))?;
    m.add("InvalidIdError", errors.invalid_id.bind(py))?;
    m.add("InvalidContextError", errors.invalid_context.bind(py))?;
    m.add("InvalidKeyError", errors.invalid_key.bind(py))?;
    m.add("ManagerLimitError", errors.limit.bind(py))?;
    m.add("IsolationViolationError", errors.isolation.bind(py))?;
    m.add("UnknownManagerError", errors.unknown_manager.bind(py))?;
    m.add("InactiveManagerError", errors.inactive_manager.bind(py))?;
    m.add("InvalidConfigError", errors.invalid_config.bind(py))?;
    m.add("ReportError", errors.report.bind(py))?;
    let _ = ERRORS.set(py, errors);

    m.add_function(wrap_pyfunction!(now_ms, m)?)?;
    ids::register(m)?;
    context::register(m)?;
    lock::register(m)?;
    registry::register(m)?;
    suite::register(m)?;
    tracker::register(m)?;
    Ok(())
}
