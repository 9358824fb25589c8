//! User contexts, isolation keys and the session store.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use threadline::key::KeyForm;
use threadline::{IdGenerator, IsolationKey, SessionStore, UserContext, ValidationRules};

use crate::ids::{default_generator, PyIdGenerator};
use crate::{lock, map_to_py, metadata_arg, now_or, PyResultExt};

fn rules(test_mode: bool) -> ValidationRules {
    if test_mode {
        ValidationRules::TEST
    } else {
        ValidationRules::PRODUCTION
    }
}

fn generator(ids: Option<&PyIdGenerator>) -> PyResult<Arc<IdGenerator>> {
    match ids {
        Some(g) => Ok(g.inner.clone()),
        None => default_generator(),
    }
}

/// One user's execution context, validated by Netra's rules. Immutable.
#[pyclass(frozen, eq, name = "UserContext", module = "threadline._native")]
#[derive(PartialEq)]
pub struct PyUserContext {
    pub(crate) inner: UserContext,
}

#[pymethods]
impl PyUserContext {
    /// Raises `InvalidContextError` when a required id is empty, blank or a placeholder,
    /// or the user id contains ':'. A missing request id becomes a UUID v4.
    #[new]
    #[pyo3(signature = (user_id, thread_id, run_id, request_id=None, websocket_client_id=None,
        agent_context=None, audit_metadata=None, operation_depth=0, parent_request_id=None,
        *, test_mode=false, ids=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        user_id: String,
        thread_id: String,
        run_id: String,
        request_id: Option<String>,
        websocket_client_id: Option<String>,
        agent_context: Option<&Bound<'_, PyDict>>,
        audit_metadata: Option<&Bound<'_, PyDict>>,
        operation_depth: u64,
        parent_request_id: Option<String>,
        test_mode: bool,
        ids: Option<PyRef<'_, PyIdGenerator>>,
    ) -> PyResult<Self> {
        let agent = metadata_arg(agent_context)?;
        let audit = metadata_arg(audit_metadata)?;
        let mut b = UserContext::builder(user_id, thread_id, run_id)
            .websocket_client_id(websocket_client_id)
            .agent_context(agent)
            .audit_metadata(audit)
            .operation_depth(operation_depth)
            .parent_request_id(parent_request_id)
            .rules(rules(test_mode));
        if let Some(r) = request_id {
            b = b.request_id(r);
        }
        let g = generator(ids.as_deref())?;
        Ok(Self {
            inner: b.build(&g).py()?,
        })
    }

    /// Correlated thread, run and request ids from one generator call, and a new
    /// `ws_client_` id when none is given (Netra's `from_websocket_request`).
    #[staticmethod]
    #[pyo3(signature = (user_id, operation="websocket_session", websocket_client_id=None, *, test_mode=false, ids=None))]
    fn for_websocket(
        user_id: &str,
        operation: &str,
        websocket_client_id: Option<&str>,
        test_mode: bool,
        ids: Option<PyRef<'_, PyIdGenerator>>,
    ) -> PyResult<Self> {
        let g = generator(ids.as_deref())?;
        Ok(Self {
            inner: UserContext::for_websocket(
                &g,
                user_id,
                operation,
                websocket_client_id,
                rules(test_mode),
            )
            .py()?,
        })
    }

    #[getter]
    fn user_id(&self) -> &str {
        self.inner.user_id()
    }
    #[getter]
    fn thread_id(&self) -> &str {
        self.inner.thread_id()
    }
    #[getter]
    fn run_id(&self) -> &str {
        self.inner.run_id()
    }
    #[getter]
    fn request_id(&self) -> &str {
        self.inner.request_id()
    }
    #[getter]
    fn websocket_client_id(&self) -> Option<&str> {
        self.inner.websocket_client_id()
    }
    /// A fresh dict each call: the context itself never changes.
    #[getter]
    fn agent_context<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        map_to_py(py, self.inner.agent_context())
    }
    #[getter]
    fn audit_metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        map_to_py(py, self.inner.audit_metadata())
    }
    #[getter]
    fn operation_depth(&self) -> u64 {
        self.inner.operation_depth()
    }
    #[getter]
    fn parent_request_id(&self) -> Option<&str> {
        self.inner.parent_request_id()
    }
    /// The canonical isolation key `{user_id}:{thread_id}`.
    #[getter]
    fn isolation_key(&self) -> String {
        self.inner.isolation_key().canonical()
    }

    fn __repr__(&self) -> String {
        format!(
            "UserContext(user_id={:?}, thread_id={:?}, run_id={:?}, request_id={:?}, websocket_client_id={:?})",
            self.inner.user_id(),
            self.inner.thread_id(),
            self.inner.run_id(),
            self.inner.request_id(),
            self.inner.websocket_client_id()
        )
    }
}

/// A user id and the whole thread id it is filed under.
#[pyclass(frozen, eq, hash, name = "IsolationKey", module = "threadline._native")]
#[derive(PartialEq, Eq, Hash)]
pub struct PyIsolationKey {
    inner: IsolationKey,
}

#[pymethods]
impl PyIsolationKey {
    /// The canonical key; raises `InvalidKeyError`.
    #[new]
    fn new(user_id: &str, thread_id: &str) -> PyResult<Self> {
        Ok(Self {
            inner: IsolationKey::new(user_id, thread_id).py()?,
        })
    }

    /// Reads `{user_id}:{thread_id}` or the older `{user_id}_thread_..._{run token}`.
    #[staticmethod]
    fn parse(key: &str) -> PyResult<Self> {
        Ok(Self {
            inner: IsolationKey::parse(key).py()?,
        })
    }

    #[getter]
    fn user_id(&self) -> &str {
        self.inner.user_id()
    }
    #[getter]
    fn thread_id(&self) -> &str {
        self.inner.thread_id()
    }
    /// `"canonical"` or `"legacy"`.
    #[getter]
    fn form(&self) -> &'static str {
        match self.inner.form() {
            KeyForm::Canonical => "canonical",
            KeyForm::Legacy { .. } => "legacy",
        }
    }
    /// The run token of an older-form key.
    #[getter]
    fn run_token(&self) -> Option<String> {
        match self.inner.form() {
            KeyForm::Canonical => None,
            KeyForm::Legacy { run_token } => Some(run_token),
        }
    }
    fn canonical(&self) -> String {
        self.inner.canonical()
    }
    fn __str__(&self) -> String {
        self.inner.to_string()
    }
    fn __repr__(&self) -> String {
        format!("IsolationKey({:?})", self.inner.to_string())
    }
}

/// The session store: the same thread id for the same `user_id:thread_id` every call.
#[pyclass(frozen, name = "SessionStore", module = "threadline._native")]
pub struct PySessionStore {
    inner: Mutex<SessionStore>,
    ids: Arc<IdGenerator>,
    test_mode: bool,
}

#[pymethods]
impl PySessionStore {
    #[new]
    #[pyo3(signature = (*, test_mode=false, ids=None))]
    fn new(test_mode: bool, ids: Option<PyRef<'_, PyIdGenerator>>) -> PyResult<Self> {
        Ok(Self {
            inner: Mutex::new(SessionStore::new(rules(test_mode))),
            ids: generator(ids.as_deref())?,
            test_mode,
        })
    }

    /// `{"thread_id", "run_id", "request_id", "created"}`.
    #[pyo3(signature = (user_id, thread_id=None, run_id=None, operation="session", *, now_ms=None))]
    fn get_or_create<'py>(
        &self,
        py: Python<'py>,
        user_id: &str,
        thread_id: Option<&str>,
        run_id: Option<&str>,
        operation: &str,
        now_ms: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let s = lock(&self.inner)
            .get_or_create(
                &self.ids,
                user_id,
                thread_id,
                run_id,
                operation,
                now_or(now_ms),
            )
            .py()?;
        let d = PyDict::new(py);
        d.set_item("thread_id", s.thread_id)?;
        d.set_item("run_id", s.run_id)?;
        d.set_item("request_id", s.request_id)?;
        d.set_item("created", s.created)?;
        Ok(d)
    }

    /// `get_or_create`, as a validated `UserContext`.
    #[pyo3(signature = (user_id, thread_id=None, run_id=None, operation="session", websocket_client_id=None, *, now_ms=None))]
    fn context(
        &self,
        user_id: &str,
        thread_id: Option<&str>,
        run_id: Option<&str>,
        operation: &str,
        websocket_client_id: Option<String>,
        now_ms: Option<u64>,
    ) -> PyResult<PyUserContext> {
        let c = lock(&self.inner)
            .context(
                &self.ids,
                user_id,
                thread_id,
                run_id,
                operation,
                websocket_client_id,
                now_or(now_ms),
            )
            .py()?;
        Ok(PyUserContext { inner: c })
    }

    /// The stored session as a dict, or `None`.
    #[pyo3(signature = (user_id, thread_id=None))]
    fn get_existing<'py>(
        &self,
        py: Python<'py>,
        user_id: &str,
        thread_id: Option<&str>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let s = lock(&self.inner).get_existing(user_id, thread_id).cloned();
        let Some(s) = s else { return Ok(None) };
        let d = PyDict::new(py);
        d.set_item("user_id", s.user_id)?;
        d.set_item("thread_id", s.thread_id)?;
        d.set_item("run_id", s.run_id)?;
        d.set_item("request_id", s.request_id)?;
        d.set_item("operation", s.operation)?;
        d.set_item("created_ms", s.created_ms)?;
        d.set_item("last_access_ms", s.last_access_ms)?;
        d.set_item("accesses", s.accesses)?;
        Ok(Some(d))
    }

    /// Drops sessions unused for more than `max_age_ms`; returns how many.
    #[pyo3(signature = (max_age_ms, *, now_ms=None))]
    fn cleanup_expired(&self, max_age_ms: u64, now_ms: Option<u64>) -> usize {
        lock(&self.inner).cleanup_expired(now_or(now_ms), max_age_ms)
    }

    fn invalidate_user(&self, user_id: &str) -> usize {
        lock(&self.inner).invalidate_user(user_id)
    }

    fn active_count(&self) -> usize {
        lock(&self.inner).active_count()
    }

    fn user_count(&self, user_id: &str) -> usize {
        lock(&self.inner).user_count(user_id)
    }

    #[getter]
    fn test_mode(&self) -> bool {
        self.test_mode
    }

    fn __len__(&self) -> usize {
        lock(&self.inner).active_count()
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyUserContext>()?;
    m.add_class::<PyIsolationKey>()?;
    m.add_class::<PySessionStore>()?;
    Ok(())
}
