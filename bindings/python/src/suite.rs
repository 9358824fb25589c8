//! The native base of the Netra drop-in's `ThreadIDConsistencyTracker`: its
//! `take_snapshot` of this package's own context, manager and a `str` key runs here,
//! without a Python frame. Any other call goes to the subclass's
//! `_take_snapshot_general`, which reads duck-typed objects.
//!
//! `take_snapshot` is a `METH_FASTCALL | METH_KEYWORDS` method made here by hand: pyo3
//! receives a method with `**kwargs` as an argument tuple plus a keyword dict
//! (`METH_VARARGS`), and building and unpacking those cost about 3,500 instructions,
//! more than a third of a drop-in call. The arguments arrive as an array and keyword
//! names, read below with Python's own rules and messages.

use std::ffi::CStr;
use std::sync::Mutex;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::context::PyUserContext;
use crate::registry::PyManagerHandle;
use crate::tracker::PyTracker;
use crate::{lock, stored_entries, Kind};

/// The drop-in's context and manager classes (registered by `threadline.netra`): only
/// objects of exactly these types take the native path, so a subclass that overrides
/// `user_context` or `thread_id` is read through Python as before.
static FAST_TYPES: PyOnceLock<(Py<PyType>, Py<PyType>)> = PyOnceLock::new();

/// Base of `threadline.netra.ThreadIDConsistencyTracker`. Frozen like every class here,
/// its two fields behind a lock that is never held while Python code runs (an old value
/// is dropped after the lock is released).
#[pyclass(frozen, subclass, name = "SuiteTracker", module = "threadline._native")]
pub struct PySuiteTracker {
    state: Mutex<SuiteState>,
}

#[derive(Default)]
struct SuiteState {
    native: Option<Py<PyTracker>>,
    /// The operation of the latest `take_snapshot` call (the seed's attribute).
    current_operation: Option<Py<PyAny>>,
}

/// The drop-in objects of one call, read natively; `None` when the call needs the
/// general (Python) path.
struct FastCall<'a, 'py> {
    context: Option<Bound<'py, PyUserContext>>,
    manager_context: Option<Bound<'py, PyUserContext>>,
    manager_instance_id: Option<u64>,
    isolation_key: Option<&'a Bound<'py, PyString>>,
}

fn context_of<'py>(ob: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyUserContext>> {
    Ok(ob
        .getattr(intern!(ob.py(), "_ctx"))?
        .cast_into::<PyUserContext>()?)
}

impl<'a, 'py> FastCall<'a, 'py> {
    /// The same cases as the general path's first branch, with the same results: a
    /// drop-in context (or none), a drop-in manager beside a context (or none), a `str`
    /// key (or none) and no `thread_id_cleanup_lookup=`.
    fn read(
        py: Python<'py>,
        user_context: Option<&Bound<'py, PyAny>>,
        manager: Option<&Bound<'py, PyAny>>,
        isolation_key: Option<&'a Bound<'py, PyAny>>,
        cleanup_lookup: bool,
    ) -> PyResult<Option<Self>> {
        if cleanup_lookup {
            return Ok(None);
        }
        let (context_type, manager_type) = match FAST_TYPES.get(py) {
            Some((c, m)) => (Some(c), Some(m)),
            None => (None, None),
        };
        let is =
            |ob: &Bound<'py, PyAny>, t: Option<&Py<PyType>>| t.is_some_and(|t| ob.get_type().is(t));
        let context = match user_context {
            None => None,
            Some(c) if is(c, context_type) => Some(context_of(c)?),
            Some(_) => return Ok(None),
        };
        // Without a context, the general path takes the user id from the manager's.
        let (manager_context, manager_instance_id) = match manager {
            None => (None, None),
            Some(m) if context.is_some() && is(m, manager_type) => {
                let handle = m.cast::<PyManagerHandle>()?;
                let ctx = context_of(handle.get().user_context.bind(m.py()))?;
                (Some(ctx), Some(m.as_ptr() as usize as u64))
            }
            Some(_) => return Ok(None),
        };
        let isolation_key = match isolation_key {
            None => None,
            // A `str` subclass too: the general path takes its text as it is.
            Some(k) => match k.cast::<PyString>() {
                Ok(s) => Some(s),
                Err(_) => return Ok(None),
            },
        };
        Ok(Some(Self {
            context,
            manager_context,
            manager_instance_id,
            isolation_key,
        }))
    }
}

#[pymethods]
impl PySuiteTracker {
    /// Any arguments are the subclass's (`__init__` sets `native`).
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyAny>, _kwargs: Option<&Bound<'_, PyAny>>) -> Self {
        Self {
            state: Mutex::new(SuiteState::default()),
        }
    }

    /// Registers the drop-in's context and manager classes (once per process).
    #[staticmethod]
    fn _register_fast_types(context_type: Bound<'_, PyType>, manager_type: Bound<'_, PyType>) {
        let py = context_type.py();
        FAST_TYPES.get_or_init(py, || (context_type.unbind(), manager_type.unbind()));
    }

    /// The native tracker behind this one.
    #[getter]
    fn native<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTracker>> {
        let t = lock(&self.state)
            .native
            .as_ref()
            .map(|t| t.bind(py).clone());
        t.ok_or_else(not_initialised)
    }

    #[setter]
    fn set_native(&self, tracker: Py<PyTracker>) {
        let previous = lock(&self.state).native.replace(tracker);
        drop(previous);
    }

    /// The operation of the latest `take_snapshot` call.
    #[getter]
    fn current_operation<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        let op = lock(&self.state)
            .current_operation
            .as_ref()
            .map(|o| o.bind(py).clone());
        op
    }

    #[setter]
    fn set_current_operation(&self, operation: Option<Py<PyAny>>) {
        let previous = std::mem::replace(&mut lock(&self.state).current_operation, operation);
        drop(previous);
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Never waits: a state in use right now is visited next time.
        if let Ok(state) = self.state.try_lock() {
            if let Some(t) = &state.native {
                visit.call(t)?;
            }
            if let Some(op) = &state.current_operation {
                visit.call(op)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let previous = lock(&self.state).current_operation.take();
        drop(previous);
    }
}

/// The arguments of one `take_snapshot` call, as Python would bind them to
/// `(self, operation, user_context=None, manager=None, isolation_key=None, **kwargs)`.
struct SnapshotArgs<'py> {
    operation: Bound<'py, PyAny>,
    user_context: Option<Bound<'py, PyAny>>,
    manager: Option<Bound<'py, PyAny>>,
    isolation_key: Option<Bound<'py, PyAny>>,
    /// The other keyword arguments, in call order (they become the metadata; a dict is
    /// made of them only for the general path).
    extra: Vec<(Bound<'py, PyString>, Bound<'py, PyAny>)>,
}

const PARAMETERS: [&str; 4] = ["operation", "user_context", "manager", "isolation_key"];

impl<'py> SnapshotArgs<'py> {
    /// # Safety
    /// `args` holds `nargs` positional values followed by one value per name in
    /// `kwnames` (a tuple of `str`, or null), as CPython's vectorcall passes them.
    unsafe fn bind(
        py: Python<'py>,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> PyResult<Self> {
        let nargs = nargs as usize;
        if nargs > PARAMETERS.len() {
            return Err(PyTypeError::new_err(format!(
                "take_snapshot() takes from 2 to 5 positional arguments but {} were given",
                nargs + 1
            )));
        }
        let mut named: [Option<Bound<'py, PyAny>>; 4] = Default::default();
        for (i, slot) in named.iter_mut().enumerate().take(nargs) {
            *slot = Some(Bound::from_borrowed_ptr(py, *args.add(i)));
        }
        let mut extra = Vec::new();
        if !kwnames.is_null() {
            let names = Bound::from_borrowed_ptr(py, kwnames).cast_into::<PyTuple>()?;
            // Names at a call site are interned: a pointer compare finds them.
            let interned = [
                intern!(py, "operation"),
                intern!(py, "user_context"),
                intern!(py, "manager"),
                intern!(py, "isolation_key"),
            ];
            for (i, name) in names.iter().enumerate() {
                let value = Bound::from_borrowed_ptr(py, *args.add(nargs + i));
                let position = match interned.iter().position(|p| p.is(&name)) {
                    Some(p) => Some(p),
                    None => {
                        let text = name.cast::<PyString>()?.to_str()?;
                        PARAMETERS.iter().position(|p| *p == text)
                    }
                };
                match position {
                    Some(p) if named[p].is_some() => {
                        return Err(PyTypeError::new_err(format!(
                            "take_snapshot() got multiple values for argument '{}'",
                            PARAMETERS[p]
                        )));
                    }
                    Some(p) => named[p] = Some(value),
                    None => extra.push((name.cast_into::<PyString>()?, value)),
                }
            }
        }
        let [operation, user_context, manager, isolation_key] = named;
        let operation = operation.ok_or_else(|| {
            PyTypeError::new_err(
                "take_snapshot() missing 1 required positional argument: 'operation'",
            )
        })?;
        // `None` is the parameters' default: the same as not given.
        let given = |v: Option<Bound<'py, PyAny>>| v.filter(|v| !v.is_none());
        Ok(Self {
            operation,
            user_context: given(user_context),
            manager: given(manager),
            isolation_key: given(isolation_key),
            extra,
        })
    }
}

/// Records the thread ids of a context, a manager and an isolation key; extra keyword
/// arguments land in the snapshot's metadata (`thread_id_cleanup_lookup=` is the
/// looked-up thread id and takes part in the check).
fn take_snapshot<'py>(
    slf: &Bound<'py, PySuiteTracker>,
    a: SnapshotArgs<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    let SnapshotArgs {
        operation,
        user_context,
        manager,
        isolation_key,
        extra,
    } = a;
    // Only `Bound`s are dropped here: dropping a `Py` checks pyo3's count of attached
    // calls, which the entry point below does not raise, and would defer the decref.
    let (tracker, previous) = {
        let mut state = lock(&slf.get().state);
        let previous = state.current_operation.replace(operation.clone().unbind());
        (state.native.as_ref().map(|t| t.bind(py).clone()), previous)
    };
    drop(previous.map(|p| p.into_bound(py)));
    let tracker = tracker.ok_or_else(not_initialised)?;
    if let Ok(op) = operation.cast::<PyString>() {
        let cleanup_lookup = extra
            .iter()
            .any(|(k, _)| k.to_str().is_ok_and(|k| k == "thread_id_cleanup_lookup"));
        let call = FastCall::read(
            py,
            user_context.as_ref(),
            manager.as_ref(),
            isolation_key.as_ref(),
            cleanup_lookup,
        )?;
        if let Some(call) = call {
            let len = extra.len();
            let key = match call.isolation_key {
                Some(k) => Some(k.to_str()?),
                None => None,
            };
            let snapshot = PyTracker::take_snapshot_of(
                &tracker,
                op.to_str()?,
                call.context.as_ref().map(|c| c.get()),
                call.manager_context.as_ref().map(|c| c.get()),
                call.manager_instance_id,
                key.filter(|k| !k.is_empty()),
                stored_entries(extra.into_iter().map(|(k, v)| (k.into_any(), v)), len, 0)?,
            )?;
            return Ok(Bound::new(py, snapshot)?.into_any());
        }
    }
    let kwargs = PyDict::new(py);
    for (k, v) in extra {
        kwargs.set_item(k, v)?;
    }
    slf.call_method(
        intern!(py, "_take_snapshot_general"),
        (operation, user_context, manager, isolation_key),
        Some(&kwargs),
    )
}

/// CPython's entry point for `SuiteTracker.take_snapshot`.
unsafe extern "C" fn take_snapshot_fastcall(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // CPython calls this holding the GIL (attached), with `slf` an instance of
    // `SuiteTracker` (the method descriptor checks it).
    let py = Python::assume_attached();
    let run = || -> PyResult<Bound<'_, PyAny>> {
        let slf = Bound::from_borrowed_ptr(py, slf).cast_into::<PySuiteTracker>()?;
        let a = SnapshotArgs::bind(py, args, nargs, kwnames)?;
        take_snapshot(&slf, a)
    };
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        Err(pyo3::panic::PanicException::new_err(msg))
    });
    match out {
        Ok(v) => v.into_ptr(),
        Err(e) => {
            e.restore(py);
            std::ptr::null_mut()
        }
    }
}

const TAKE_SNAPSHOT_DOC: &CStr = c"take_snapshot($self, /, operation, user_context=None, manager=None, isolation_key=None, **kwargs)
--

Records the thread ids of a context, a manager and an isolation key; extra keyword
arguments land in the snapshot's metadata (`thread_id_cleanup_lookup=` is the
looked-up thread id and takes part in the check).";

/// The method definition CPython keeps a pointer to for the life of the process.
struct MethodDef(ffi::PyMethodDef);
// SAFETY: only read (by CPython, under the GIL) after it is made.
unsafe impl Sync for MethodDef {}
unsafe impl Send for MethodDef {}

static TAKE_SNAPSHOT_DEF: PyOnceLock<Box<MethodDef>> = PyOnceLock::new();

/// Puts the `METH_FASTCALL` `take_snapshot` into `SuiteTracker`'s dict.
fn add_take_snapshot(ty: &Bound<'_, PyType>) -> PyResult<()> {
    let py = ty.py();
    let def = TAKE_SNAPSHOT_DEF.get_or_init(py, || {
        Box::new(MethodDef(ffi::PyMethodDef {
            ml_name: c"take_snapshot".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: take_snapshot_fastcall,
            },
            ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: TAKE_SNAPSHOT_DOC.as_ptr(),
        }))
    });
    let ptr = &def.0 as *const ffi::PyMethodDef as *mut ffi::PyMethodDef;
    // SAFETY: `ty` is a type object and the definition lives as long as the process.
    let descr =
        unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_type_ptr(), ptr))? };
    ty.setattr(intern!(py, "take_snapshot"), descr)
}

fn not_initialised() -> PyErr {
    crate::error(
        Kind::Base,
        "this tracker has no native tracker: ThreadIDConsistencyTracker.__init__ (or \
         from_json) was not called"
            .into(),
    )
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySuiteTracker>()?;
    add_take_snapshot(&m.py().get_type::<PySuiteTracker>())
}
